// The new-job form's "advanced" section: every other field of the job spec the API accepts
// (app.search.spec.JobCreate): objective, seed, executions per trial, time budget,
// validation split and the callbacks. Each input carries `data-loc`, the spec path a 422
// names, so the server's complaint marks the field it is about.

import { el } from "./util.js";

// The metrics a model of each task logs (app.search.spec.metric_names).
function metricNames(task) {
  const names = ["loss", task === "regression" ? "mae" : "accuracy"];
  return [...names, ...names.map((n) => `val_${n}`)];
}

function field(text, input, hint) {
  return el("label", { class: "field" }, el("span", {}, text), input, hint ? el("small", { class: "muted" }, hint) : null);
}

function number(id, loc, attrs = {}) {
  return el("input", { id, type: "number", step: "any", dataset: { loc }, ...attrs });
}

function check(id, loc, checked) {
  return el("input", { id, type: "checkbox", checked, dataset: { loc } });
}

function monitorSelect(id, loc) {
  return el("select", { id, dataset: { loc, monitor: "" } });
}

export function advancedFields() {
  const objective = el("select", { id: "job-objective", dataset: { loc: "objective.name" } });
  const direction = el(
    "select",
    { id: "job-direction", dataset: { loc: "objective.direction" } },
    el("option", { value: "" }, "by metric"),
    el("option", { value: "min" }, "min"),
    el("option", { value: "max" }, "max"),
  );
  const seed = number("job-seed", "tuner.seed", { min: 0, step: 1, placeholder: "random" });
  const executions = number("job-executions", "tuner.executions_per_trial", { min: 1, step: 1, placeholder: "1" });
  const runtime = number("job-max-runtime", "max_runtime_s", { min: 1, placeholder: "none" });
  const split = number("job-validation-split", "training.validation_split", { min: 0, max: 1, value: "0.2" });
  // Empty: not sent, so the server's default (no test rows) holds.
  const testSplit = number("job-test-split", "training.test_split", { min: 0, max: 0.5, placeholder: "0" });
  // Empty: no warm start; "auto": this key's latest succeeded jobs on the same data; or
  // full job ids, separated by commas or spaces (top_k applies to those).
  const warmStart = el("input", {
    id: "job-warm-start",
    type: "text",
    dataset: { loc: "warm_start.jobs" },
    placeholder: "none, auto, or job ids",
  });
  const warmTopK = number("job-warm-top-k", "warm_start.top_k", { min: 1, max: 100, step: 1, placeholder: "5" });
  // "auto": 5 folds under 1,000 training rows, else one split (the server decides).
  const folds = el(
    "select",
    { id: "job-cross-validation", dataset: { loc: "training.cross_validation.folds" } },
    el("option", { value: "auto" }, "auto"),
    el("option", { value: "none" }, "none (one validation split)"),
    ...[2, 3, 4, 5, 6, 7, 8, 9, 10].map((k) => el("option", { value: String(k) }, `${k} folds`)),
  );

  const es = {
    on: check("es-enabled", "callbacks.early_stopping", true),
    monitor: monitorSelect("es-monitor", "callbacks.early_stopping.monitor"),
    patience: number("job-patience", "callbacks.early_stopping.patience", { min: 0, step: 1, value: "5" }),
    minDelta: number("es-min-delta", "callbacks.early_stopping.min_delta", { min: 0, value: "0" }),
    restore: check("es-restore", "callbacks.early_stopping.restore_best_weights", true),
  };
  const rlr = {
    on: check("rlr-enabled", "callbacks.reduce_lr_on_plateau", false),
    monitor: monitorSelect("rlr-monitor", "callbacks.reduce_lr_on_plateau.monitor"),
    factor: number("rlr-factor", "callbacks.reduce_lr_on_plateau.factor", { min: 0, max: 1, value: "0.1" }),
    patience: number("rlr-patience", "callbacks.reduce_lr_on_plateau.patience", { min: 0, step: 1, value: "3" }),
    minLr: number("rlr-min-lr", "callbacks.reduce_lr_on_plateau.min_lr", { min: 0, value: "0" }),
    minDelta: number("rlr-min-delta", "callbacks.reduce_lr_on_plateau.min_delta", { min: 0, value: "0.0001" }),
  };
  const tensorboard = check("job-tensorboard", "callbacks.tensorboard", false);

  // A switched-off callback greys its settings out (they are not sent).
  const sync = () => {
    for (const [group, input] of [[es, es.on], [rlr, rlr.on]]) {
      for (const [name, node] of Object.entries(group)) if (name !== "on") node.disabled = !input.checked;
    }
  };
  es.on.addEventListener("change", sync);
  rlr.on.addEventListener("change", sync);
  sync();

  const element = el(
    "details",
    { id: "advanced", class: "advanced" },
    el("summary", {}, "Advanced: objective, seed, time budget, validation and test splits, cross-validation, warm start, callbacks"),
    el(
      "div",
      { class: "row" },
      field("Objective", objective),
      field("Direction", direction),
      field("Seed", seed, "empty: drawn at submission, shown in the job"),
      field("Executions per trial", executions),
      field("Time budget (s)", runtime, "empty: no limit"),
      field("Validation split", split),
      field("Test split", testSplit, "held out, scores the best model"),
      field("Cross-validation", folds, "auto: 5 folds under 1,000 rows"),
      field("Warm start", warmStart, "try earlier jobs' best configurations first"),
      field("Warm start: best of each", warmTopK),
    ),
    el(
      "fieldset",
      { class: "row" },
      el("legend", {}, el("label", {}, es.on, " Early stopping")),
      field("Monitor", es.monitor),
      field("Patience", es.patience, "epochs without improvement"),
      field("Min delta", es.minDelta),
      el("label", { class: "field inline" }, es.restore, el("span", {}, "restore best weights")),
    ),
    el(
      "fieldset",
      { class: "row" },
      el("legend", {}, el("label", {}, rlr.on, " Reduce learning rate on plateau")),
      field("Monitor", rlr.monitor),
      field("Factor", rlr.factor),
      field("Patience", rlr.patience),
      field("Min learning rate", rlr.minLr),
      field("Min delta", rlr.minDelta),
    ),
    el("div", { class: "row" }, el("label", { class: "field inline" }, tensorboard, el("span", {}, "TensorBoard logs"))),
  );

  // The metric lists follow the dataset's task; a choice the task still has is kept.
  function setTask(task) {
    const names = metricNames(task);
    const keep = (select, fallback) => (names.includes(select.value) ? select.value : fallback);
    const byTask = task === "regression" ? "val_loss" : "val_accuracy";
    const current = keep(objective, "");
    objective.replaceChildren(
      el("option", { value: "" }, `default (${byTask})`),
      ...names.map((n) => el("option", { value: n }, n)),
    );
    objective.value = current;
    for (const select of [es.monitor, rlr.monitor]) {
      const value = keep(select, "val_loss");
      select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      select.value = value;
    }
  }

  const num = (input) => Number(input.value);
  const set = (target, key, input) => {
    if (input.value.trim() !== "") target[key] = num(input);
  };

  // Writes the section's fields into `spec` (which already holds tuner and training); an
  // empty field keeps the server's default.
  function apply(spec) {
    if (objective.value || direction.value) {
      spec.objective = {};
      if (objective.value) spec.objective.name = objective.value;
      if (direction.value) spec.objective.direction = direction.value;
    }
    set(spec.tuner, "seed", seed);
    set(spec.tuner, "executions_per_trial", executions);
    set(spec, "max_runtime_s", runtime);
    spec.training = spec.training || {};
    set(spec.training, "validation_split", split);
    set(spec.training, "test_split", testSplit);
    if (folds.value === "none") spec.training.cross_validation = null;
    else if (folds.value !== "auto") spec.training.cross_validation = { folds: Number(folds.value) };
    const warm = warmStart.value.trim();
    if (warm === "auto") spec.warm_start = "auto"; // its top_k is the server's (5)
    else if (warm) {
      spec.warm_start = { jobs: warm.split(/[\s,]+/).filter(Boolean) };
      set(spec.warm_start, "top_k", warmTopK);
    }
    const callbacks = {};
    if (es.on.checked) {
      callbacks.early_stopping = { monitor: es.monitor.value, restore_best_weights: es.restore.checked };
      set(callbacks.early_stopping, "patience", es.patience);
      set(callbacks.early_stopping, "min_delta", es.minDelta);
    } else {
      callbacks.early_stopping = null;
    }
    if (rlr.on.checked) {
      callbacks.reduce_lr_on_plateau = { monitor: rlr.monitor.value };
      set(callbacks.reduce_lr_on_plateau, "factor", rlr.factor);
      set(callbacks.reduce_lr_on_plateau, "patience", rlr.patience);
      set(callbacks.reduce_lr_on_plateau, "min_lr", rlr.minLr);
      set(callbacks.reduce_lr_on_plateau, "min_delta", rlr.minDelta);
    }
    if (tensorboard.checked) callbacks.tensorboard = true;
    spec.callbacks = callbacks;
    return spec;
  }

  return { element, setTask, apply };
}
