// One job, as a column of panels: its head (jobhead.js), the best trial (best.js), the score
// over trials, the Pareto front, a predict form once it has succeeded, the model card, its
// set-up (what the server derived from the table, setup.js), the hyperparameters against
// the score (brushing filters the trial table), their importance, the slice and contour
// plots and the distribution of scores, the learning curves of the selected and ticked
// trials, and the trial table. This module only holds the page's state (which trial is
// selected, ticked, brushed) and refreshes the panels while the job runs.

import { apiPath, download, get, getAll } from "./api.js";
import { bestPanel } from "./best.js";
import { contourPanel } from "./contour.js";
import { curvesPanel } from "./curves.js";
import { edfPanel } from "./edf.js";
import { importancePanel } from "./importance.js";
import { jobHeader } from "./jobhead.js";
import { modelCardPanel } from "./modelcard.js";
import { parcoordsPanel, scorePanel, shownHyperparameters, trialsPanel } from "./panels.js";
import { paretoPanel } from "./pareto.js";
import { brushFilter } from "./parcoords.js";
import { predictPanel } from "./predict.js";
import { setupPanel } from "./setup.js";
import { slicePanel } from "./slice.js";
import { FINISHED, datasetLabel, el, poll, toast } from "./util.js";

const REFRESH_MS = 2000;

export function renderJob(view, jobId) {
  const state = {
    job: null,
    dataset: null,
    trials: [],
    selectedId: null,
    userSelected: false, // until the user picks a trial, the curves follow the best one
    checkedIds: [], // trials ticked in the table: their curves are overlaid
    brushes: {}, // parallel-coordinates brushes, by axis
  };

  const downloadTrial = (trialId) =>
    download(apiPath`/jobs/${jobId}/trials/${trialId}/model`, `${jobId}-trial-${trialId}.keras`).catch((e) =>
      toast(e.message),
    );
  const head = jobHeader(jobId, { trialCount: () => state.trials.length });
  const best = bestPanel(jobId);
  const scores = scorePanel();
  const curves = curvesPanel(jobId);
  const predict = predictPanel(jobId);
  const modelCard = modelCardPanel(jobId);
  const setup = setupPanel();
  const importance = importancePanel(jobId);
  const pareto = paretoPanel(jobId, { onSelect: (id) => select(id, true) });
  const parcoords = parcoordsPanel({ onSelect: (id) => select(id, true), onBrush: brush });
  // Slice, contour and score distribution (slice.js, contour.js, edf.js), as optuna-dashboard's.
  const slice = slicePanel({ onSelect: (id) => select(id, true) });
  const contour = contourPanel({ onSelect: (id) => select(id, true) });
  const edf = edfPanel();
  const table = trialsPanel({ onSelect: (id) => select(id, true), onCheck: check, onDownload: downloadTrial });

  view.append(
    head.element,
    el("div", { class: "grid" }, best.element, scores.element),
    pareto.element,
    predict.element,
    modelCard.element,
    setup.element,
    parcoords.element,
    importance.element,
    slice.element,
    contour.element,
    edf.element,
    curves.element,
    table.element,
  );

  function refreshCurves() {
    return curves.show([state.selectedId, ...state.checkedIds], state.trials);
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

  function drawTrials() {
    const { job, trials, selectedId } = state;
    const { shown, fixed } = shownHyperparameters(job, trials);
    const visibleIds = brushFilter(trials, state.brushes);
    const bestId = job.best ? job.best.trial_id : null;
    const modelIds = [...new Set([...(bestId === null ? [] : [bestId]), ...pareto.frontIds()])];
    const rows = { job, trials, shown, selectedId, visibleIds };
    table.show({ ...rows, fixed, checkedIds: state.checkedIds, modelIds });
    scores.show(job, trials);
    parcoords.show({ ...rows, brushes: state.brushes });
    for (const plot of [slice, contour, edf]) plot.show(job, trials);
    // A front read anew may add trials whose model can be downloaded: the table follows.
    pareto
      .show(job, trials, selectedId)
      .then((frontChanged) => frontChanged && drawTrials())
      .catch((e) => toast(e.message));
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
      for (const chart of [scores, parcoords, curves, pareto, slice, contour, edf]) chart.invalidate();
      drawTrials();
      refreshCurves().catch((e) => toast(e.message));
    }, 200);
  };
  window.addEventListener("resize", onResize);

  const stopPolling = poll(async () => {
    const job = await get(apiPath`/jobs/${jobId}`);
    // Read once: the predict form needs its columns, the head its rows.
    if (!state.dataset) state.dataset = await get(apiPath`/datasets/${job.dataset_id}`).catch(() => null);
    state.job = job;
    state.trials = await getAll(apiPath`/jobs/${jobId}/trials`, 1000);
    if (!state.userSelected) {
      state.selectedId = job.best ? job.best.trial_id : (job.progress.current_trial?.trial_id ?? null);
    }
    const rows = state.dataset?.rows ?? null;
    head.show(job, datasetLabel(job), rows);
    best.show(job);
    setup.show(job, rows);
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
