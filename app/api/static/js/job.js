// One job: progress, best trial (with downloads), score over trials, learning curves of the
// selected and ticked trials, parallel coordinates (brushing filters the trial table), the
// trial table, and a predict form once it has succeeded; refreshed while the job runs.

import { del, download, get, post } from "./api.js";
import { scoreChart } from "./charts.js";
import { curvesPanel } from "./curves.js";
import { importancePanel } from "./importance.js";
import { confirmAction } from "./dialog.js";
import { objectiveList, paretoPanel } from "./pareto.js";
import { brushFilter, parallelCoordinates } from "./parcoords.js";
import { modelCardPanel } from "./modelcard.js";
import { predictPanel } from "./predict.js";
import { fixedNames, hyperparameterNames, trialTable } from "./trials.js";
import {
  FINISHED,
  el,
  fmtAge,
  fmtDuration,
  fmtScore,
  fmtValue,
  jobLabel,
  jobName,
  parseTime,
  poll,
  progressBar,
  scoreObjective,
  shortId,
  statusBadge,
  toast,
} from "./util.js";

const REFRESH_MS = 2000;

function panel(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), ...children);
}

function elapsed(job) {
  const start = parseTime(job.started_at);
  if (!start) return null;
  const end = parseTime(job.finished_at) || new Date();
  return (end - start) / 1000;
}

export function renderJob(view, jobId) {
  const state = {
    job: null,
    dataset: null,
    trials: [],
    selectedId: null,
    userSelected: false, // until the user picks a trial, the curves follow the best one
    checkedIds: [], // trials ticked in the table: their curves are overlaid
    brushes: {}, // parallel-coordinates brushes, by axis
    scoreKey: null,
    parcoordsKey: null,
    bestKey: null,
  };

  const title = el("h1", {}, "Job ", el("span", { class: "mono" }, shortId(jobId)));
  const status = el("span", { id: "job-status" });
  const cancel = el("button", { type: "button", id: "cancel-job", class: "danger", hidden: true });
  cancel.textContent = "Cancel job";
  const remove = el("button", { type: "button", id: "delete-job", class: "danger", hidden: true }, "Delete job");
  const summary = el("p", { class: "muted", id: "job-summary" });
  const progress = el("div", { id: "job-progress" });
  const current = el("p", { class: "muted", id: "current-trial" });
  const error = el("pre", { class: "error-box", id: "job-error", hidden: true });
  const best = el("div", { id: "best-trial" });
  const scores = el("div", { id: "score-chart" });
  const curves = curvesPanel(jobId);
  const predict = predictPanel(jobId);
  const modelCard = modelCardPanel(jobId);
  const importance = importancePanel(jobId);
  const pareto = paretoPanel(jobId, { onSelect: (id) => select(id, true) });
  const parcoords = el("div", { id: "parcoords" });
  const filterText = el("span");
  const filterNote = el(
    "p",
    { class: "muted small", id: "filter-note", hidden: true },
    filterText,
    el("button", { type: "button", class: "link-button", id: "clear-brushes", onclick: () => brush({}) }, "Clear filters"),
  );
  const fixedNote = el("p", { class: "muted small", id: "fixed-note" });
  const table = trialTable({ onSelect: (id) => select(id, true), onCheck: check });

  view.append(
    el(
      "section",
      { class: "panel" },
      el(
        "div",
        { class: "panel-head" },
        el("div", {}, el("a", { href: "#/", class: "back" }, "← Jobs"), title, status),
        el("div", { class: "actions tight" }, cancel, remove),
      ),
      summary,
      progress,
      current,
      error,
    ),
    el(
      "div",
      { class: "grid" },
      panel("Best trial", best),
      panel("Score over trials", scores),
    ),
    pareto.element,
    predict.element,
    modelCard.element,
    panel(
      "Hyperparameters vs score",
      el("p", { class: "muted small" }, "Drag along an axis to filter the trials; click the axis to clear it."),
      parcoords,
      filterNote,
    ),
    importance.element,
    curves.element,
    panel("Trials", fixedNote, el("div", { class: "scroll-x" }, table.table)),
  );

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      state.job = await post(`/jobs/${jobId}/cancel`);
      toast("Cancel requested: the search stops at the end of its current epoch.", "info");
      drawHeader();
    } catch (e) {
      toast(e.message);
    } finally {
      cancel.disabled = false;
    }
  });

  remove.addEventListener("click", async () => {
    const label = jobLabel(state.job);
    const ok = await confirmAction({
      title: `Delete job ${label}?`,
      message:
        `Job ${jobName(state.job) ? `${label} (${shortId(jobId)})` : label}, its ${state.trials.length} ` +
        "trial(s), its model and its files are deleted. This cannot be undone.",
      confirm: "Delete job",
    });
    if (!ok) return;
    remove.disabled = true;
    try {
      await del(`/jobs/${jobId}`);
      // The toast comes after the jobs view has replaced this one (a view change clears it).
      window.addEventListener("hashchange", () => toast(`Job ${label} deleted.`, "info"), { once: true });
      location.hash = "#/";
    } catch (e) {
      toast(e.message);
      remove.disabled = false;
    }
  });

  function refreshCurves() {
    const ids = [state.selectedId, ...state.checkedIds];
    return curves.show(ids, state.trials);
  }

  function select(trialId, byUser) {
    state.selectedId = trialId;
    state.userSelected = state.userSelected || byUser;
    drawTrials();
    refreshCurves().catch((e) => toast(e.message));
    if (byUser) curves.element.scrollIntoView({ block: "nearest" });
  }

  function check(trialId, on) {
    state.checkedIds = on
      ? [...state.checkedIds.filter((id) => id !== trialId), trialId]
      : state.checkedIds.filter((id) => id !== trialId);
    drawTrials();
    refreshCurves().catch((e) => toast(e.message));
  }

  function brush(next) {
    state.brushes = next;
    drawTrials();
  }

  function drawHeader() {
    const job = state.job;
    const spec = job.spec;
    status.replaceChildren(statusBadge(job.status));
    const active = !FINISHED.has(job.status);
    cancel.hidden = !active;
    remove.hidden = active;
    const name = jobName(job);
    title.replaceChildren("Job ", el("span", { class: name ? "" : "mono", id: "job-title" }, name || shortId(jobId)));
    cancel.textContent = job.cancel_requested ? "Cancelling…" : "Cancel job";
    cancel.disabled = job.cancel_requested;
    const datasetName = state.dataset ? state.dataset.name : shortId(job.dataset_id);
    const took = elapsed(job);
    const objectives = objectiveList(spec) || [scoreObjective(spec)];
    summary.textContent =
      `${spec.tuner.algorithm} on ${datasetName} · ` +
      `objective${objectives.length > 1 ? "s" : ""} ${objectives.map((o) => `${o.name} (${o.direction})`).join(", ")} · ` +
      `${spec.training.epochs} epochs per trial · ` +
      // Under a time budget the planned trials are a cap; the budget is what ends it.
      (spec.max_runtime_s ? `time budget ${fmtDuration(spec.max_runtime_s)} · ` : "") +
      `created ${fmtAge(job.created_at)}` +
      (took !== null ? ` · ${job.finished_at ? "ran" : "running for"} ${fmtDuration(took)}` : "");
    progress.replaceChildren(
      progressBar(job.progress.trials_completed, job.progress.trials_planned),
    );
    const cur = job.progress.current_trial;
    current.textContent = cur
      ? `Trial ${cur.trial_id} running: ${cur.epochs_run} epoch(s) done.`
      : job.status === "queued"
        ? "Waiting for a worker."
        : "";
    error.hidden = !job.error;
    error.textContent = job.error || "";
  }

  function drawBest() {
    const job = state.job;
    // Redrawn only when the best changes, so a button is never replaced under the pointer.
    const key = JSON.stringify(job.best);
    if (key === state.bestKey) return;
    state.bestKey = key;
    if (!job.best) {
      best.replaceChildren(el("p", { class: "empty" }, "No completed trial yet."));
      return;
    }
    const hps = Object.entries(job.best.hyperparameters);
    best.replaceChildren(
      el(
        "p",
        { class: "best-score" },
        "Trial ",
        el("strong", { class: "mono", id: "best-trial-id" }, job.best.trial_id),
        ": ",
        el("strong", { id: "best-score" }, fmtScore(job.best.score)),
        el("span", { class: "muted" }, ` ${scoreObjective(job.spec).name}`),
      ),
      scoresBeside(job) ?? "", // replaceChildren would write a null as the text "null"
      el(
        "dl",
        { class: "hyperparameters", id: "best-hyperparameters" },
        hps.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", { class: "mono" }, fmtValue(value)))),
      ),
      el(
        "div",
        { class: "actions" },
        el(
          "button",
          {
            type: "button",
            id: "download-model",
            class: "primary",
            onclick: () => download(`/jobs/${jobId}/model`, `${jobId}-best.keras`).catch((e) => toast(e.message)),
          },
          "Download model (.keras)",
        ),
        el(
          "button",
          {
            type: "button",
            id: "download-csv",
            onclick: () => download(`/jobs/${jobId}/trials.csv`, `job-${jobId}-trials.csv`).catch((e) => toast(e.message)),
          },
          "Download trials (CSV)",
        ),
      ),
    );
  }

  function drawTrials() {
    const job = state.job;
    const fixed = fixedNames(job.search_space);
    const names = hyperparameterNames(state.trials);
    const shown = names.filter((n) => !fixed.has(n));
    const fixedShown = names.filter((n) => fixed.has(n));
    fixedNote.textContent = fixedShown.length
      ? `Fixed in this search: ${fixedShown.map((n) => `${n} = ${fmtValue(job.search_space[n].value)}`).join(", ")}.`
      : "";
    const visibleIds = brushFilter(state.trials, state.brushes);
    filterNote.hidden = visibleIds === null;
    filterText.textContent = `Brushed: the table shows ${visibleIds ? visibleIds.length : 0} of ${state.trials.length} trials. `;
    table.update({
      trials: state.trials,
      hpNames: shown,
      objective: scoreObjective(job.spec),
      bestId: job.best ? job.best.trial_id : null,
      selectedId: state.selectedId,
      checkedIds: state.checkedIds,
      visibleIds,
    });
    const scoreKey = JSON.stringify(state.trials.map((t) => t.score));
    if (scoreKey !== state.scoreKey) {
      state.scoreKey = scoreKey;
      scoreChart(scores, state.trials, scoreObjective(job.spec));
    }
    const pcKey = JSON.stringify([scoreKey, state.selectedId, job.best && job.best.trial_id, state.brushes]);
    if (pcKey !== state.parcoordsKey) {
      state.parcoordsKey = pcKey;
      parallelCoordinates(parcoords, state.trials, shown, job.search_space, scoreObjective(job.spec), {
        bestId: job.best ? job.best.trial_id : null,
        selectedId: state.selectedId,
        onSelect: (id) => select(id, true),
        brushes: state.brushes,
        onBrush: brush,
      });
    }
    pareto.show(job, state.trials, state.selectedId).catch((e) => toast(e.message));
  }

  // Charts are drawn at the width of their panel: redraw them when the window's width
  // changes. Not its height: a phone's address bar, or a full-page screenshot, resizes the
  // window's height only, and a redraw would replace a chart under the user's pointer.
  let resizeTimer = null;
  let drawnWidth = document.documentElement.clientWidth;
  const onResize = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const width = document.documentElement.clientWidth;
      if (!state.job || width === drawnWidth) return;
      drawnWidth = width;
      state.scoreKey = state.parcoordsKey = null;
      curves.invalidate();
      pareto.invalidate();
      drawTrials();
      refreshCurves().catch((e) => toast(e.message));
    }, 200);
  };
  window.addEventListener("resize", onResize);

  const stopPolling = poll(async () => {
    const job = await get(`/jobs/${jobId}`);
    if (!state.dataset) {
      state.dataset = await get(`/datasets/${job.dataset_id}`).catch(() => null);
    }
    const page = await get(`/jobs/${jobId}/trials?limit=1000`);
    state.job = job;
    state.trials = page.items;
    if (!state.userSelected) {
      const follow = job.best ? job.best.trial_id : job.progress.current_trial?.trial_id ?? null;
      state.selectedId = follow;
    }
    drawHeader();
    drawBest();
    drawTrials();
    if (job.status === "succeeded") predict.show(state.dataset);
    await modelCard.show(job);
    await importance.show(state.trials);
    await refreshCurves();
    // One last refresh after the job finishes, then stop polling.
    return !FINISHED.has(job.status);
  }, REFRESH_MS);
  return () => {
    stopPolling();
    clearTimeout(resizeTimer);
    window.removeEventListener("resize", onResize);
  };
}

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
