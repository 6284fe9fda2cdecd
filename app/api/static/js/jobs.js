// The jobs list: status, algorithm, dataset, progress, best score and age of every job,
// refreshed every two seconds so running searches move on screen. Ticking two or more jobs
// opens them side by side (compare.js).

import { get } from "./api.js";
import { el, fmtAge, fmtScore, jobName, poll, progressBar, scoreObjective, shortId, statusBadge } from "./util.js";

const REFRESH_MS = 2000;

function jobRow(job, datasetNames, { picked, onPick }) {
  const objective = scoreObjective(job.spec);
  const best = job.best
    ? el("span", { title: objective.name }, fmtScore(job.best.score))
    : el("span", { class: "muted" }, "—");
  const open = () => (location.hash = `#/jobs/${job.id}`);
  const box = el("input", {
    type: "checkbox",
    class: "pick-job",
    "aria-label": `compare job ${shortId(job.id)}`,
    checked: picked.has(job.id),
    onchange: (event) => onPick(job.id, event.target.checked),
  });
  return el(
    "tr",
    { class: "clickable", dataset: { jobId: job.id, status: job.status }, onclick: open },
    // A tick selects the job for comparison; it must not open it.
    el("td", { class: "pick", onclick: (event) => event.stopPropagation() }, box),
    el("td", {}, el("a", { href: `#/jobs/${job.id}`, class: "mono" }, shortId(job.id))),
    el("td", { class: "job-name" }, jobName(job) || ""),
    el("td", { class: "job-status" }, statusBadge(job.status)),
    el("td", {}, job.spec.tuner.algorithm),
    el("td", {}, datasetNames.get(job.dataset_id) || shortId(job.dataset_id)),
    el(
      "td",
      { class: "job-progress" },
      progressBar(job.progress.trials_completed, job.progress.trials_planned),
    ),
    el("td", { class: "num job-best" }, best, el("span", { class: "muted small" }, ` ${objective.name || ""}`)),
    el("td", { class: "muted", title: job.created_at }, fmtAge(job.created_at)),
  );
}

export function renderJobs(view) {
  const picked = new Set();
  let lastKey = null;
  let latest = { jobs: [], names: new Map() };
  const head = el("thead");
  const body = el("tbody");
  const count = el("span", { class: "muted" });
  const compare = el("button", { type: "button", id: "compare-jobs", disabled: true }, "Compare");
  const empty = el(
    "p",
    { class: "empty", hidden: true },
    "No jobs yet. ",
    el("a", { href: "#/new" }, "Upload a dataset and start a search"),
    ".",
  );
  view.append(
    el(
      "section",
      { class: "panel" },
      el(
        "div",
        { class: "panel-head" },
        el("h1", {}, "Jobs ", count),
        el("div", { class: "actions tight" }, compare, el("a", { class: "button primary", href: "#/new" }, "New job")),
      ),
      el("table", { class: "table", id: "jobs-table" }, head, body),
      empty,
    ),
  );

  function syncCompare() {
    compare.disabled = picked.size < 2;
    compare.textContent = picked.size ? `Compare (${picked.size})` : "Compare";
    compare.title = picked.size < 2 ? "tick two or more jobs" : "";
  }

  function onPick(id, on) {
    if (on) picked.add(id);
    else picked.delete(id);
    syncCompare();
  }

  compare.addEventListener("click", () => {
    // In the list's order (newest first), so the comparison's colours follow the table.
    const ids = latest.jobs.map((j) => j.id).filter((id) => picked.has(id));
    location.hash = `#/compare/${ids.map(encodeURIComponent).join(",")}`;
  });

  function draw() {
    const headers = ["", "Job", "Name", "Status", "Algorithm", "Dataset", "Progress", "Best score", "Age"];
    head.replaceChildren(el("tr", {}, headers.map((h) => el("th", {}, h))));
    const options = { picked, onPick };
    body.replaceChildren(...latest.jobs.map((job) => jobRow(job, latest.names, options)));
  }

  return poll(async () => {
    const [jobs, datasets] = await Promise.all([
      get("/jobs?limit=200"),
      get("/datasets?limit=500"),
    ]);
    latest = { jobs: jobs.items, names: new Map(datasets.items.map((d) => [d.id, d.name])) };
    // Rows are redrawn only when something changed, so a tick box is never replaced
    // under the pointer; the ages move on at the next change.
    const key = JSON.stringify([jobs.items, [...latest.names]]);
    if (key !== lastKey) {
      lastKey = key;
      draw();
    }
    count.textContent = `(${jobs.total})`;
    empty.hidden = jobs.total > 0;
  }, REFRESH_MS);
}
