// The job's model's card (GET /jobs/{id}/model_card, written by the search beside the model):
// the best trial's, or the ensemble's with its members and weights; the dataset and its
// columns, the preprocessing statistics, the scores, the training time, the versions, and a
// download per format. Fetched again only when the best trial changes.

import { ApiError, apiPath, download, get } from "./api.js";
import { el, fmtDuration, fmtScore, fmtValue, toast, trialLabel } from "./util.js";

const FORMATS = [
  ["keras", "Keras (.keras)", "best.keras"],
  ["saved_model", "SavedModel (.tar.gz)", "saved_model.tar.gz"],
  ["onnx", "ONNX", "best.onnx"],
];

function facts(id, rows) {
  return el(
    "dl",
    { class: "hyperparameters", id },
    rows
      .filter(([, value]) => value !== null && value !== undefined)
      // A sha256 is one 64-character word: let it wrap inside its cell.
      .map(([label, value]) =>
        el("div", {}, el("dt", {}, label), el("dd", { class: "mono", style: "overflow-wrap: anywhere" }, value)),
      ),
  );
}

function columnTable(card) {
  const numeric = new Map(card.preprocessing.numeric.map((n) => [n.column, n]));
  const categorical = new Map(card.preprocessing.categorical.map((c) => [c.column, c]));
  // A numeric column's header is right-aligned as its cells are, so each sits above its values.
  const head = [
    ["column"],
    ["kind"],
    ["missing", "num"],
    ["median", "num"],
    ["mean", "num"],
    ["variance", "num"],
    ["vocabulary", "num"],
    ["serving input"],
  ];
  return el(
    "div",
    { class: "scroll-x" },
    el(
      "table",
      { class: "table compact", id: "model-card-columns" },
      el("thead", {}, el("tr", {}, head.map(([h, align]) => el("th", { class: align }, h)))),
      el(
        "tbody",
        {},
        card.dataset.columns.map((c) => {
          const n = numeric.get(c.name);
          const v = categorical.get(c.name);
          return el(
            "tr",
            { dataset: { column: c.name } },
            el("td", {}, c.name),
            el("td", {}, c.kind),
            el("td", { class: "num" }, String(c.missing)),
            el("td", { class: "num" }, n ? fmtScore(n.median) : ""),
            el("td", { class: "num" }, n ? fmtScore(n.mean) : ""),
            el("td", { class: "num" }, n ? fmtScore(n.variance) : ""),
            el("td", { class: "num" }, v ? String(v.vocabulary_size) : ""),
            el("td", { class: "mono" }, c.serving_input),
          );
        }),
      ),
    ),
  );
}

function scoreRows(card) {
  const s = card.scores;
  const rows = [[`Validation ${s.objective.name}`, fmtScore(s.validation)]];
  if (s.cross_validation) rows.push(["Fold scores", s.cross_validation.fold_scores.map(fmtScore).join(", ")]);
  if (s.test) rows.push([`Test ${s.test.metric} (${s.test.rows} rows)`, fmtScore(s.test.score)]);
  for (const [name, baseline] of Object.entries(s.baselines || {})) {
    if (baseline && baseline.score != null) rows.push([`Baseline ${name}`, fmtScore(baseline.score)]);
  }
  return rows;
}

// An ensemble's card names its members and their weights: "3 trials: 2 (50.0%), 7 (30.0%), …".
function ensembleText(card) {
  const members = card.model === "ensemble" ? card.ensemble?.members : null;
  if (!members) return null;
  const each = members.map((m) => `${trialLabel(m.trial_id)} (${(100 * m.weight).toFixed(1)}%)`);
  return `${members.length} trial${members.length === 1 ? "" : "s"}: ${each.join(", ")}`;
}

function render(jobId, card) {
  const t = card.training;
  const v = card.versions;
  const exported = FORMATS.filter(([key]) => card.formats[key]);
  return [
    facts("model-card-dataset", [
      ["Dataset", `${card.dataset.name} (${card.dataset.rows} rows)`],
      ["sha256", card.dataset.sha256],
      ["Classes", card.dataset.classes ? card.dataset.classes.map(fmtValue).join(", ") : null],
      ["Trial", card.trial_id != null ? trialLabel(card.trial_id) : null],
      ["Ensemble", ensembleText(card)],
    ]),
    columnTable(card),
    facts("model-card-scores", [
      ...scoreRows(card),
      ["Training time (trial)", t.trial_duration_s != null ? fmtDuration(t.trial_duration_s) : null],
      ["Epochs (best)", t.epochs_run != null ? `${t.epochs_run} (${t.best_epoch ?? "—"})` : null],
      ["Versions", `TensorFlow ${v.tensorflow} · Keras ${v.keras} · KerasTuner ${v.keras_tuner}`],
      ["ONNX opset", card.formats.onnx ? String(card.formats.onnx.opset) : null],
    ]),
    el(
      "div",
      { class: "actions" },
      exported.map(([key, label, suffix]) =>
        el(
          "button",
          {
            type: "button",
            dataset: { format: key },
            onclick: () => download(`${apiPath`/jobs/${jobId}/model`}?format=${key}`, `${jobId}-${suffix}`).catch((e) => toast(e.message)),
          },
          label,
        ),
      ),
      el(
        "button",
        {
          type: "button",
          id: "download-model-card",
          onclick: () => download(apiPath`/jobs/${jobId}/model_card?format=md`, `${jobId}-model_card.md`).catch((e) => toast(e.message)),
        },
        "Model card (Markdown)",
      ),
      // A best model the search may still replace is kept as .keras only (docs/models.md).
      card.formats.keras && card.formats.keras.interim
        ? el("span", { class: "muted small", id: "model-formats-pending" }, "SavedModel and ONNX are written when the search ends.")
        : null,
    ),
  ];
}

export function modelCardPanel(jobId) {
  const body = el("div", { id: "model-card" });
  const element = el(
    "section",
    { class: "panel", id: "model-card-panel", hidden: true },
    el("h2", {}, "Model card"),
    body,
  );
  let shownKey = null;

  // `job`: GET /jobs/{id}. The card follows the best model, and is final once the job is.
  async function show(job) {
    if (!job.best) return;
    const key = `${job.best.trial_id}:${job.status}`;
    if (key === shownKey) return;
    shownKey = key;
    try {
      const card = await get(apiPath`/jobs/${jobId}/model_card`);
      body.replaceChildren(...render(jobId, card));
      element.hidden = false;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) toast(e.message);
      shownKey = null; // not written yet: ask again on the next refresh
    }
  }

  return { element, show };
}
