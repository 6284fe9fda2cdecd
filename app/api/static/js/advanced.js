// The new-job form's "advanced" section: every other field of the job spec the API accepts
// (app.search.spec.JobCreate): the objective or objectives (objectives.js), seed,
// executions per trial, time budget, validation and test splits, cross-validation, warm
// start and the callbacks. Each input carries `data-loc`, the spec path a 422 names, so the
// server's complaint marks the field it is about.

import { objectivesEditor } from "./objectives.js";
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
  const objectives = objectivesEditor();
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
    // Empty: derived from the steps an epoch takes (the estimate shows the number).
    patience: number("job-patience", "callbacks.early_stopping.patience", { min: 0, step: 1, placeholder: "derived" }),
    minDelta: number("es-min-delta", "callbacks.early_stopping.min_delta", { min: 0, value: "0" }),
    restore: check("es-restore", "callbacks.early_stopping.restore_best_weights", true),
  };
  const rlr = {
    on: check("rlr-enabled", "callbacks.reduce_lr_on_plateau", false),
    monitor: monitorSelect("rlr-monitor", "callbacks.reduce_lr_on_plateau.monitor"),
    factor: number("rlr-factor", "callbacks.reduce_lr_on_plateau.factor", { min: 0, max: 1, value: "0.1" }),
    patience: number("rlr-patience", "callbacks.reduce_lr_on_plateau.patience", { min: 0, step: 1, placeholder: "derived" }),
    minLr: number("rlr-min-lr", "callbacks.reduce_lr_on_plateau.min_lr", { min: 0, value: "0" }),
    minDelta: number("rlr-min-delta", "callbacks.reduce_lr_on_plateau.min_delta", { min: 0, value: "0.0001" }),
  };
  const tensorboard = check("job-tensorboard", "callbacks.tensorboard", false);
  // Unticked with an empty budget: the server derives one (unless max trials is set).
  const noBudget = el("input", { id: "job-no-budget", type: "checkbox", dataset: { loc: "max_runtime_s" } });
  // A direction against the metric's nature (val_loss: max) is refused unless asked for.
  const override = el("input", { id: "job-direction-override", type: "checkbox", dataset: { loc: "objective.direction_override" } });
  // Median pruning is on by default except under Hyperband (its brackets prune).
  const pruning = el(
    "select",
    { id: "job-pruning", dataset: { loc: "pruning" } },
    el("option", { value: "" }, "default"),
    el("option", { value: "median" }, "median stopping"),
    el("option", { value: "off" }, "off"),
  );
  const pruneAfter = number("job-pruning-min-epochs", "pruning.min_epochs", { min: 1, step: 1, placeholder: "derived" });
  const ensemble = el(
    "select",
    { id: "job-ensemble", dataset: { loc: "training.ensemble" } },
    el("option", { value: "auto" }, "auto (up to 10)"),
    el("option", { value: "none" }, "none"),
    el("option", { value: "max" }, "up to …"),
  );
  const ensembleMembers = number("job-ensemble-members", "training.ensemble.max_members", { min: 2, max: 50, step: 1, placeholder: "10" });

  // A switched-off callback greys its settings out (they are not sent).
  const sync = () => {
    for (const [group, input] of [[es, es.on], [rlr, rlr.on]]) {
      for (const [name, node] of Object.entries(group)) if (name !== "on") node.disabled = !input.checked;
    }
  };
  // A number that only applies to one choice is greyed out under the others.
  const syncOptions = () => {
    pruneAfter.disabled = pruning.value !== "median";
    ensembleMembers.disabled = ensemble.value !== "max";
    runtime.disabled = noBudget.checked;
  };
  for (const input of [pruning, ensemble, noBudget]) input.addEventListener("change", syncOptions);
  syncOptions();
  es.on.addEventListener("change", sync);
  rlr.on.addEventListener("change", sync);
  sync();

  const element = el(
    "details",
    { id: "advanced", class: "advanced" },
    el("summary", {}, "Advanced: objectives, seed, time budget, validation and test splits, cross-validation, warm start, callbacks"),
    objectives.element,
    el(
      "div",
      { class: "row" },
      field("Seed", seed, "empty: drawn at submission, shown in the job"),
      field("Executions per trial", executions),
      field("Time budget (s)", runtime, "empty: derived from the table, unless max trials is set"),
      field("Validation split", split),
      field("Test split", testSplit, "held out, scores the best model"),
      field("Cross-validation", folds, "auto: 5 folds under 1,000 rows"),
      field("Warm start", warmStart, "try earlier jobs' best configurations first"),
      field("Warm start: best of each", warmTopK),
      el("label", { class: "field inline" }, noBudget, el("span", {}, "no time budget")),
      el("label", { class: "field inline" }, override, el("span", {}, "allow a direction against the metric")),
    ),
    el(
      "div",
      { class: "row" },
      field("Pruning", pruning, "median: stop a trial below the others' median"),
      field("Prune after (epochs)", pruneAfter),
      field("Ensemble", ensemble, "of the best trials, when it beats the best one"),
      field("Ensemble members", ensembleMembers),
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
    objectives.setMetrics(names, task === "regression" ? "val_loss" : "val_accuracy");
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
    const objective = objectives.read();
    if (objective !== undefined) spec.objective = objective;
    set(spec.tuner, "seed", seed);
    set(spec.tuner, "executions_per_trial", executions);
    set(spec, "max_runtime_s", runtime);
    if (noBudget.checked) spec.max_runtime_s = null;
    if (override.checked) {
      const list = Array.isArray(spec.objective) ? spec.objective : [spec.objective || (spec.objective = {})];
      for (const o of list) o.direction_override = true;
    }
    if (pruning.value === "off") spec.pruning = null;
    else if (pruning.value === "median") {
      spec.pruning = { rule: "median" };
      set(spec.pruning, "min_epochs", pruneAfter);
    }
    spec.training = spec.training || {};
    set(spec.training, "validation_split", split);
    set(spec.training, "test_split", testSplit);
    if (ensemble.value === "none") spec.training.ensemble = null;
    else if (ensemble.value === "max") spec.training.ensemble = { max_members: num(ensembleMembers) };
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

  // Fills the section from an earlier job's resolved spec (run again). A value the server
  // derived from the table (listed in spec.derivation.derived) is left empty, so the new job
  // derives it afresh rather than freezing the old job's.
  function fill(spec) {
    const derived = new Set(spec.derivation?.derived || []);
    const put = (input, path, value) => {
      input.value = value === null || value === undefined || derived.has(path) ? "" : String(value);
    };
    objectives.fill(spec.objective);
    put(seed, "tuner.seed", spec.tuner?.seed);
    put(executions, "tuner.executions_per_trial", spec.tuner?.executions_per_trial);
    put(runtime, "max_runtime_s", spec.max_runtime_s);
    noBudget.checked = spec.max_runtime_s === null && !derived.has("max_runtime_s");
    const objectiveList = Array.isArray(spec.objective) ? spec.objective : [spec.objective || {}];
    override.checked = objectiveList.some((o) => o.direction_override);
    pruning.value = spec.pruning === null ? "off" : spec.pruning ? "median" : "";
    put(pruneAfter, "pruning.min_epochs", spec.pruning?.min_epochs);
    const members = spec.training?.ensemble;
    ensemble.value = members === null ? "none" : members && members.max_members ? "max" : "auto";
    ensembleMembers.value = members && members.max_members ? String(members.max_members) : "";
    const training = spec.training || {};
    put(split, "training.validation_split", training.validation_split);
    put(testSplit, "training.test_split", training.test_split || null);
    const cv = training.cross_validation;
    folds.value = cv === null ? "none" : cv && cv.folds ? String(cv.folds) : "auto";
    const warm = spec.warm_start;
    warmStart.value = warm === "auto" ? "auto" : warm && warm.jobs ? warm.jobs.join(", ") : "";
    warmTopK.value = warm && warm.top_k && warm !== "auto" ? String(warm.top_k) : "";
    const callbacks = spec.callbacks || {};
    const early = callbacks.early_stopping;
    es.on.checked = Boolean(early);
    if (early) {
      es.monitor.value = early.monitor;
      put(es.patience, "callbacks.early_stopping.patience", early.patience);
      put(es.minDelta, "callbacks.early_stopping.min_delta", early.min_delta);
      es.restore.checked = early.restore_best_weights !== false;
    }
    const plateau = callbacks.reduce_lr_on_plateau;
    rlr.on.checked = Boolean(plateau);
    if (plateau) {
      rlr.monitor.value = plateau.monitor;
      for (const key of ["factor", "patience", "min_lr", "min_delta"]) {
        const input = { factor: rlr.factor, patience: rlr.patience, min_lr: rlr.minLr, min_delta: rlr.minDelta }[key];
        put(input, `callbacks.reduce_lr_on_plateau.${key}`, plateau[key]);
      }
    }
    tensorboard.checked = Boolean(callbacks.tensorboard);
    syncOptions();
    sync();
  }

  return { element, setTask, setAlgorithm: objectives.setAlgorithm, apply, fill };
}
