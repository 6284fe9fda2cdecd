// The jobs list: status, algorithm, dataset, progress, best score and age of every job,
// refreshed every two seconds so running searches move on screen.

import { get } from "./api.js";
import { el, fmtAge, fmtScore, poll, progressBar, shortId, statusBadge } from "./util.js";

const REFRESH_MS = 2000;

function jobRow(job, datasetNames) {
  const objective = job.spec.objective || {};
  const best = job.best
    ? el("span", { title: objective.name }, fmtScore(job.best.score))
    : el("span", { class: "muted" }, "—");
  const open = () => (location.hash = `#/jobs/${job.id}`);
  return el(
    "tr",
    { class: "clickable", dataset: { jobId: job.id, status: job.status }, onclick: open },
    el("td", {}, el("a", { href: `#/jobs/${job.id}`, class: "mono" }, shortId(job.id))),
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
  const body = el("tbody");
  const count = el("span", { class: "muted" });
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
        el("a", { class: "button primary", href: "#/new" }, "New job"),
      ),
      el(
        "table",
        { class: "table", id: "jobs-table" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ["Job", "Status", "Algorithm", "Dataset", "Progress", "Best score", "Age"].map((h) =>
              el("th", {}, h),
            ),
          ),
        ),
        body,
      ),
      empty,
    ),
  );

  return poll(async () => {
    const [jobs, datasets] = await Promise.all([
      get("/jobs?limit=200"),
      get("/datasets?limit=500"),
    ]);
    const names = new Map(datasets.items.map((d) => [d.id, d.name]));
    body.replaceChildren(...jobs.items.map((job) => jobRow(job, names)));
    count.textContent = `(${jobs.total})`;
    empty.hidden = jobs.total > 0;
  }, REFRESH_MS);
}
