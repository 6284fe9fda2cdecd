// A job page's head: its name (renamed in place, PATCH /jobs/{id}), its notes (notes.js),
// status, what it searches,
// its progress (under a time budget: the time, elapsed and left, and the trials as a count),
// where its budget came from (changed in place while it runs, budgetform.js), the server's
// note on it, its error, and its actions: run again (the new-job form filled with this
// job's spec), cancel while it runs, delete once it has finished.

import { apiPath, del, patch, post } from "./api.js";
import { budgetSource, isBudgeted, jobProgress, trialsText } from "./budget.js";
import { budgetForm } from "./budgetform.js";
import { confirmAction } from "./dialog.js";
import { notesBlock } from "./notes.js";
import { objectiveList } from "./pareto.js";
import {
  FINISHED,
  el,
  fmtAge,
  fmtClock,
  fmtDuration,
  jobLabel,
  jobName,
  parseTime,
  scoreObjective,
  shortId,
  statusBadge,
  toast,
  trialLabel,
} from "./util.js";

function elapsed(job) {
  const start = parseTime(job.started_at);
  if (!start) return null;
  const end = parseTime(job.finished_at) || new Date();
  return (end - start) / 1000;
}

function summaryText(job, datasetName) {
  const spec = job.spec;
  const took = elapsed(job);
  const objectives = objectiveList(spec) || [scoreObjective(spec)];
  return (
    `${spec.tuner.algorithm} on ${datasetName} · ` +
    `objective${objectives.length > 1 ? "s" : ""} ${objectives.map((o) => `${o.name} (${o.direction})`).join(", ")} · ` +
    `${spec.training.epochs} epochs per trial · ` +
    `created ${fmtAge(job.created_at)}` +
    (took !== null ? ` · ${job.finished_at ? "ran" : "running for"} ${fmtDuration(took)}` : "")
  );
}

// A cross-validated trial's folds: between them its epochs are rewritten (as means), so
// the fold is what moves.
function foldText(cur, job) {
  const cv = job.spec.training && job.spec.training.cross_validation;
  if (cur.folds_completed == null || !cv) return "";
  return `fold ${Math.min(cur.folds_completed + 1, cv.folds)} of ${cv.folds}, `;
}

// `trialCount()`: how many trials the delete would take with it (for the confirmation).
export function jobHeader(jobId, { trialCount }) {
  let job = null;
  const title = el("h1", {}, "Job ", el("span", { class: "mono", id: "job-title" }, shortId(jobId)));
  const status = el("span", { id: "job-status" });
  const nameInput = el("input", { type: "text", id: "job-rename-input", "aria-label": "job name", maxlength: 200 });
  const renameForm = el(
    "form",
    { id: "job-rename-form", class: "rename-form", hidden: true },
    nameInput,
    el("button", { type: "submit", class: "primary", id: "job-rename-save" }, "Save"),
    el("button", { type: "button", onclick: () => (renameForm.hidden = true) }, "Keep"),
  );
  const rename = el("button", { type: "button", id: "rename-job", class: "link-button" }, "Rename");
  const again = el("a", { class: "button", id: "clone-job", href: `#/new?from=${encodeURIComponent(jobId)}` }, "Run again…");
  const cancel = el("button", { type: "button", id: "cancel-job", class: "danger", hidden: true }, "Cancel job");
  const remove = el("button", { type: "button", id: "delete-job", class: "danger", hidden: true }, "Delete job");
  const summary = el("p", { class: "muted", id: "job-summary" });
  const progress = el("div", { id: "job-progress" });
  const trials = el("p", { class: "muted", id: "job-trials" });
  // Kept, not redrawn, on each refresh: a button is never replaced under the pointer.
  const budgetText = el("span", { id: "job-budget-text" });
  const changeBudget = el("button", { type: "button", id: "change-budget", class: "link-button" }, "Change");
  const budget = el("p", { class: "muted", id: "job-budget" }, budgetText, " ", changeBudget);
  const note = el("p", { class: "note", id: "job-budget-note", hidden: true });
  const budgetEditor = budgetForm(jobId, {
    onSaved: (next) => {
      job = next;
      draw();
      const seconds = next.spec.max_runtime_s;
      toast(seconds ? `Time budget now ${fmtClock(seconds)}.` : "No time budget now.", "info");
    },
  });
  const current = el("p", { class: "muted", id: "current-trial" });
  const notes = notesBlock(jobId, {
    onSaved: (next) => {
      job = next;
      draw();
    },
  });
  const error = el("pre", { class: "error-box", id: "job-error", hidden: true });
  const element = el(
    "section",
    { class: "panel" },
    el(
      "div",
      { class: "panel-head" },
      el("div", {}, el("a", { href: "#/", class: "back" }, "← Jobs"), title, status, " ", rename, renameForm),
      el("div", { class: "actions tight" }, again, cancel, remove),
    ),
    summary,
    notes.element,
    progress,
    trials,
    budget,
    budgetEditor.element,
    note,
    current,
    error,
  );
  let datasetName = shortId(jobId);
  let datasetRows = null;

  function draw() {
    status.replaceChildren(statusBadge(job.status));
    const active = !FINISHED.has(job.status);
    cancel.hidden = !active;
    remove.hidden = active;
    const name = jobName(job);
    title.replaceChildren("Job ", el("span", { class: name ? "" : "mono", id: "job-title" }, name || shortId(jobId)));
    cancel.textContent = job.cancel_requested ? "Cancelling…" : "Cancel job";
    cancel.disabled = job.cancel_requested;
    summary.textContent = summaryText(job, datasetName);
    notes.show(job);
    progress.replaceChildren(jobProgress(job));
    // Under a budget the planned trials are only a cap: the bar is the time, the trials a count.
    trials.hidden = !isBudgeted(job);
    trials.textContent = isBudgeted(job) ? trialsText(job) : "";
    drawBudget(active);
    const cur = job.progress.current_trial;
    current.textContent = cur
      ? `Trial ${trialLabel(cur.trial_id)} running: ${foldText(cur, job)}${cur.epochs_run} epoch(s) done.`
      : job.status === "queued"
        ? "Waiting for a worker."
        : "";
    error.hidden = !job.error;
    error.textContent = job.error || "";
  }

  function drawBudget(active) {
    const spec = job.spec;
    const source = budgetSource(spec, datasetRows);
    budgetText.textContent = source
      ? `Time budget ${fmtClock(spec.max_runtime_s)} (${source}).`
      : `No time budget: the search runs its ${job.progress.trials_planned} planned trial(s).`;
    changeBudget.hidden = !active;
    changeBudget.textContent = source ? "Change" : "Set a budget";
    if (!active) budgetEditor.close();
    const text = spec.derivation?.note;
    note.hidden = !text;
    note.textContent = text ? `Note: ${text.replace(/\.?$/, ".")}` : "";
  }

  changeBudget.addEventListener("click", () => budgetEditor.open(job));

  rename.addEventListener("click", () => {
    nameInput.value = jobName(job || {}) || "";
    renameForm.hidden = false;
    nameInput.focus();
  });

  renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      // An empty name clears it: the job is shown by its id again.
      job = await patch(apiPath`/jobs/${jobId}`, { name: nameInput.value.trim() || null });
      renameForm.hidden = true;
      draw();
    } catch (e) {
      toast(e.message);
    }
  });

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      job = await post(apiPath`/jobs/${jobId}/cancel`);
      toast("Cancel requested: the search stops at the end of its current epoch.", "info");
      draw();
    } catch (e) {
      toast(e.message);
    } finally {
      cancel.disabled = false;
    }
  });

  remove.addEventListener("click", async () => {
    const label = jobLabel(job);
    const ok = await confirmAction({
      title: `Delete job ${label}?`,
      message:
        `Job ${jobName(job) ? `${label} (${shortId(jobId)})` : label}, its ${trialCount()} ` +
        "trial(s), its model and its files are deleted. This cannot be undone.",
      confirm: "Delete job",
    });
    if (!ok) return;
    remove.disabled = true;
    try {
      await del(apiPath`/jobs/${jobId}`);
      // The toast comes after the jobs view has replaced this one (a view change clears it).
      window.addEventListener("hashchange", () => toast(`Job ${label} deleted.`, "info"), { once: true });
      location.hash = "#/";
    } catch (e) {
      toast(e.message);
      remove.disabled = false;
    }
  });

  // `name`: the dataset's name (the job's dataset_name, or the dataset read once); `rows`:
  // its rows, when read (what an automatic budget was derived from).
  function show(next, name, rows = null) {
    job = next;
    datasetName = name;
    datasetRows = rows;
    draw();
  }

  return { element, show };
}
