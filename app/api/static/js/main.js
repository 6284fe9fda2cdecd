// The dashboard's entry point: a hash router over four views (jobs, one job, a comparison
// of jobs, new job).
// Each view returns a function that stops its polling when another view takes over.

import { changeKey, storedKey } from "./api.js";
import { renderCompare } from "./compare.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderNewJob } from "./newjob.js";
import { dismissToast } from "./util.js";

const view = document.getElementById("view");
let stop = () => {};

function route() {
  stop();
  dismissToast();
  view.replaceChildren();
  const hash = location.hash.replace(/^#/, "") || "/";
  const job = /^\/jobs\/([^/]+)$/.exec(hash);
  const compare = /^\/compare\/([^/]+)$/.exec(hash);
  let section = "jobs";
  if (compare) {
    section = "compare";
    stop = renderCompare(view, decodeURIComponent(compare[1]).split(",").filter(Boolean));
  } else if (job) {
    stop = renderJob(view, decodeURIComponent(job[1]));
  } else if (hash === "/new") {
    section = "new";
    stop = renderNewJob(view);
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
