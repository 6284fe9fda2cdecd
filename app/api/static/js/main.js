// The dashboard's entry point: a hash router over five views (jobs, one job, a comparison
// of jobs, new job, datasets). A view's options ride in the fragment's query
// (#/?status=running, #/new?from=<job id>).
// Each view returns a function that stops its polling when another view takes over.

import { changeKey, storedKey } from "./api.js";
import { renderCompare } from "./compare.js";
import { renderDatasets } from "./datasets.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderNewJob } from "./newjob.js";
import { dismissToast } from "./util.js";

const view = document.getElementById("view");
let stop = () => {};

// A malformed escape in a typed or crafted link is left as it is, not a script error.
function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function route() {
  stop();
  dismissToast();
  view.replaceChildren();
  const [hash, query = ""] = (location.hash.replace(/^#/, "") || "/").split("?");
  const params = new URLSearchParams(query);
  const job = /^\/jobs\/([^/]+)$/.exec(hash);
  const compare = /^\/compare\/([^/]+)$/.exec(hash);
  let section = "jobs";
  if (compare) {
    section = "compare";
    stop = renderCompare(view, decoded(compare[1]).split(",").filter(Boolean));
  } else if (job) {
    stop = renderJob(view, decoded(job[1]));
  } else if (hash === "/new") {
    section = "new";
    stop = renderNewJob(view, { from: params.get("from"), dataset: params.get("dataset") });
  } else if (hash === "/datasets") {
    section = "datasets";
    stop = renderDatasets(view);
  } else {
    stop = renderJobs(view);
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === (section === "compare" ? "jobs" : section));
  }
  document.body.dataset.view = job ? "job" : section;
}

document.querySelector("#toast .toast-close").addEventListener("click", dismissToast);

const keyButton = document.getElementById("key-button");
keyButton.hidden = !storedKey();
keyButton.addEventListener("click", () => changeKey().then(route));

window.addEventListener("hashchange", route);
route();
