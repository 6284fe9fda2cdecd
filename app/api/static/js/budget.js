// A job's time budget as the pages show it: a budgeted job's progress is its time (elapsed
// of the budget, and what is left), its trials only a count, since its trials_planned is a
// cap the budget ends long before; where the budget came from; and what the server derived
// from the table (the resolved spec's `derivation`). Shared by the jobs list, a job's page
// and the new-job form's estimate.

import { FINISHED, el, fmtClock, fmtValue, progressBar } from "./util.js";

export const isBudgeted = (job) => job.progress?.budget_s !== null && job.progress?.budget_s !== undefined;

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// "1 min 12 s of 1 min 30 s, 18 s left"; a queued job's clock has not started yet.
export function timeText(job) {
  const { budget_s: budget, elapsed_s: elapsed, remaining_s: left } = job.progress;
  if (elapsed === null || elapsed === undefined) return `not started, budget ${fmtClock(budget)}`;
  const spent = `${fmtClock(elapsed)} of ${fmtClock(budget)}`;
  if (FINISHED.has(job.status)) return `ran ${spent}`;
  // The end phase (refit, baselines, ensemble, exports) may run a little past the budget.
  return left > 0 ? `${spent}, ${fmtClock(left)} left` : `${spent}: budget spent, finishing`;
}

export function trialsText(job) {
  const { trials_completed: done, trials_planned: planned } = job.progress;
  return isBudgeted(job) ? `${plural(done, "trial")} completed` : `${done} / ${planned} trials`;
}

// The progress bar: on time under a budget, on trials otherwise. `compact`: the jobs list's
// narrow cell, whose label carries the trial count too ("1 min 12 s / 1 min 30 s · 13 trials").
export function jobProgress(job, { compact = false } = {}) {
  const { trials_completed: done, trials_planned: planned, elapsed_s: elapsed, budget_s: budget } = job.progress;
  if (!isBudgeted(job)) return progressBar(done, planned);
  const time = timeText(job);
  const clock = elapsed === null || elapsed === undefined ? `budget ${fmtClock(budget)}` : `${fmtClock(elapsed)} / ${fmtClock(budget)}`;
  return progressBar(elapsed || 0, budget, {
    label: compact ? `${clock} · ${plural(done, "trial")}` : time,
    title: `${time}; ${trialsText(job)} (at most ${planned})`,
  });
}

// Where a budget came from: "auto: derived from 150 rows and 2 workers", or "yours". `rows`:
// the dataset's, when known.
export function budgetSource(spec, rows) {
  if (spec.max_runtime_s === null || spec.max_runtime_s === undefined) return null;
  const derivation = spec.derivation || {};
  if (derivation.budget_source !== "auto") return "yours";
  // The rows the budget was derived from (all but the test rows), else the dataset's.
  const counted = derivation.train_rows ?? rows;
  const table =
    counted === null || counted === undefined ? "the table's size" : plural(counted, "row");
  const workers = derivation.workers ? ` and ${plural(derivation.workers, "worker")}` : "";
  return `auto: derived from ${table}${workers}`;
}

// The spec fields the server may derive from the table, in the order a reader wants them.
const DERIVABLE = {
  max_runtime_s: "Time budget",
  "training.epochs": "Epochs per trial",
  "callbacks.early_stopping.patience": "Early-stopping patience",
  "callbacks.reduce_lr_on_plateau.patience": "ReduceLROnPlateau patience",
  "pruning.min_epochs": "Pruning judges from epoch",
  "tuner.max_epochs": "Hyperband max epochs",
  "tuner.min_epochs": "Hyperband min epochs",
  "search_space.units.max": "Largest width (narrowed to fit the limits)",
};

function valueAt(spec, path) {
  return path.split(".").reduce((value, key) => (value === null || value === undefined ? value : value[key]), spec);
}

// [{key, label, value, tag}] of a resolved spec: what the lengths came from (rows per fit,
// batch, steps per epoch), then each length, tagged "derived" or "yours", then the trial's
// and the end phase's time. A field the server derives that this page has no name for is
// listed by its path.
export function derivationFacts(spec) {
  const d = spec.derivation || {};
  const derived = new Set(d.derived || []);
  const facts = [];
  const add = (key, label, value, tag = null) => {
    if (value !== null && value !== undefined) facts.push({ key, label, value: String(value), tag });
  };
  add("fit_rows", "Rows per fit", d.fit_rows);
  add("batch_size", "Batch size (largest)", d.batch_size);
  add("steps_per_epoch", "Steps per epoch", d.steps_per_epoch);
  const paths = [...Object.keys(DERIVABLE), ...[...derived].filter((p) => !(p in DERIVABLE))];
  for (const path of paths) {
    const value = valueAt(spec, path);
    const shown = path === "max_runtime_s" && value !== null && value !== undefined ? fmtClock(value) : value;
    // A job resolved before derivations were recorded says nothing of where its values came from.
    const tag = spec.derivation ? (derived.has(path) ? "derived" : "yours") : null;
    add(path, DERIVABLE[path] || path, shown === undefined || shown === null ? null : fmtValue(shown), tag);
  }
  if (d.trial_estimate_s) add("trial_estimate_s", "One trial, at most", `about ${fmtClock(d.trial_estimate_s)}`);
  if (d.end_phase_s) add("end_phase_s", "Kept for the end phase", fmtClock(d.end_phase_s));
  return facts;
}

export function factList(id, facts) {
  return el(
    "dl",
    { class: "hyperparameters", id },
    facts.map((f) =>
      el(
        "div",
        { dataset: { field: f.key } },
        el("dt", {}, f.label),
        el("dd", { class: "mono" }, f.value, f.tag ? el("span", { class: `tag tag-${f.tag}` }, f.tag) : null),
      ),
    ),
  );
}
