// The best-trial panel: its id, score, hyperparameters, the held-out test score and the
// baselines beside it, the verdict when a baseline beat the search, the ensemble of the best
// trials (ensemble.js), and the downloads (the job's model, the trials as CSV).

import { apiPath, download } from "./api.js";
import { ensembleSection } from "./ensemble.js";
import { el, fmtScore, fmtValue, scoreObjective, toast, trialLabel } from "./util.js";

// Is the best score any good? The held-out test score (rows no trial saw) and the two
// scikit-learn baselines scored on the same validation rows with the same metric.
function scoresBeside(job) {
  const rows = [];
  if (job.best.test_score != null) rows.push(["Test score (held-out rows)", job.best.test_score, "test"]);
  const baselines = job.baselines || {};
  const names = { linear: "Linear model", gradient_boosting: "Gradient boosting" };
  for (const [key, label] of Object.entries(names)) {
    if (baselines[key]?.score != null) rows.push([`${label} (baseline)`, baselines[key].score, key]);
  }
  if (!rows.length) return null;
  return el(
    "dl",
    { class: "hyperparameters", id: "best-comparisons" },
    rows.map(([label, value, key]) =>
      el("div", { dataset: { score: key } }, el("dt", {}, label), el("dd", { class: "mono" }, fmtScore(value))),
    ),
  );
}

function button(id, text, path, fallbackName, primary = false) {
  const onclick = () => download(path, fallbackName).catch((e) => toast(e.message));
  return el("button", { type: "button", id, class: primary ? "primary" : undefined, onclick }, text);
}

export function bestPanel(jobId) {
  const body = el("div", { id: "best-trial" });
  const element = el("section", { class: "panel" }, el("h2", {}, "Best trial"), body);
  let shownKey = null;

  function show(job) {
    // Redrawn only when what it shows changes, so a button is never replaced under the pointer.
    const key = JSON.stringify([job.best, job.baselines, job.ensemble, job.verdict]);
    if (key === shownKey) return;
    shownKey = key;
    if (!job.best) {
      body.replaceChildren(el("p", { class: "empty" }, "No completed trial yet."));
      return;
    }
    const hps = Object.entries(job.best.hyperparameters);
    const ensembleUsed = Boolean(job.ensemble?.used);
    body.replaceChildren(
      el(
        "p",
        { class: "best-score" },
        "Trial ",
        el("strong", { class: "mono", id: "best-trial-id", dataset: { trialId: job.best.trial_id } }, trialLabel(job.best.trial_id)),
        ": ",
        el("strong", { id: "best-score" }, fmtScore(job.best.score)),
        el("span", { class: "muted" }, ` ${scoreObjective(job.spec).name}`),
      ),
      // A baseline that beat the search is said first, where the eye lands, not in a table.
      job.verdict ? el("p", { class: "verdict", id: "best-verdict", role: "note" }, job.verdict) : "",
      scoresBeside(job) ?? "", // replaceChildren would write a null as the text "null"
      el(
        "dl",
        { class: "hyperparameters", id: "best-hyperparameters" },
        hps.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", { class: "mono" }, fmtValue(value)))),
      ),
      el(
        "div",
        { class: "actions" },
        button(
          "download-model",
          ensembleUsed ? "Download the job's model: the ensemble (.keras)" : "Download model (.keras)",
          apiPath`/jobs/${jobId}/model`,
          `${jobId}-best.keras`,
          true,
        ),
        button("download-csv", "Download trials (CSV)", apiPath`/jobs/${jobId}/trials.csv`, `job-${jobId}-trials.csv`),
      ),
      ensembleSection(jobId, job) ?? "",
    );
  }

  return { element, show };
}
