// The job's ensemble, shown beside its best trial once the search has ended (job.ensemble):
// its members and their weights, its score against the best single trial's (both from the
// trials' own validation predictions, on the same folds), and whether it is the job's model.
// When it is ("used"), /model, /predict and the model card are the ensemble's, and the best
// single trial's model is still one download away (?source=trial).

import { apiPath, download } from "./api.js";
import { el, fmtScore, toast, trialLabel } from "./util.js";

const pct = (weight) => `${(100 * weight).toFixed(1)}%`;

function scores(ensemble) {
  const rows = [
    ["ensemble", `Ensemble (${ensemble.metric || "score"})`, ensemble.score],
    ["trial", "Best trial alone", ensemble.trial_score],
  ];
  if (ensemble.test_score !== null && ensemble.test_score !== undefined) {
    rows.push(["test", "Ensemble on the test rows", ensemble.test_score]);
  }
  return el(
    "dl",
    { class: "hyperparameters", id: "ensemble-scores" },
    rows.map(([key, label, value]) =>
      el("div", { dataset: { score: key } }, el("dt", {}, label), el("dd", { class: "mono" }, fmtScore(value))),
    ),
  );
}

function members(ensemble) {
  return el(
    "table",
    { class: "table compact", id: "ensemble-members" },
    el("thead", {}, el("tr", {}, el("th", {}, "trial"), el("th", { class: "num" }, "weight"))),
    el(
      "tbody",
      {},
      ensemble.members.map((m) =>
        el(
          "tr",
          { dataset: { trialId: m.trial_id } },
          el("td", { class: "mono" }, trialLabel(m.trial_id)),
          el("td", { class: "num mono" }, pct(m.weight)),
        ),
      ),
    ),
  );
}

// The section, or null when the job has no ensemble (off, multi-objective, not yet).
export function ensembleSection(jobId, job) {
  const ensemble = job.ensemble;
  if (!ensemble) return null;
  const used = Boolean(ensemble.used);
  const count = ensemble.members.length;
  const why = used
    ? "It scores above the best trial alone, so it is the job's model: the download, the predictions and the model card are the ensemble's."
    : "It does not score above the best trial alone, so the job's model is the best trial's.";
  const folds = ensemble.members_are === "fold_models" ? " Each member averages its trial's fold models." : "";
  return el(
    "div",
    { id: "best-ensemble", class: "ensemble", dataset: { used: String(used) } },
    el(
      "h3",
      {},
      `Ensemble of ${count} trial${count === 1 ? "" : "s"} `,
      el("span", { class: `badge ${used ? "status-succeeded" : ""}`, id: "ensemble-used" }, used ? "used" : "not used"),
    ),
    el("p", { class: "muted small" }, why + folds),
    scores(ensemble),
    members(ensemble),
    used
      ? el(
          "div",
          { class: "actions" },
          el(
            "button",
            {
              type: "button",
              id: "download-best-trial",
              onclick: () =>
                download(`${apiPath`/jobs/${jobId}/model`}?source=trial`, `${jobId}-best-trial.keras`).catch((e) =>
                  toast(e.message),
                ),
            },
            "Download the best single trial (.keras)",
          ),
        )
      : null,
  );
}
