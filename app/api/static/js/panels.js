// The job page's trial panels: the score over trials, the hyperparameters against the score
// (parallel coordinates, whose brushes filter the trial table) and the trial table. Each is
// {element, show(...)} and redraws only when what it shows has changed, as curvesPanel and
// paretoPanel do.

import { scoreChart } from "./charts.js";
import { parallelCoordinates } from "./parcoords.js";
import { fixedNames, hyperparameterNames, trialTable } from "./trials.js";
import { el, fmtValue, scoreObjective } from "./util.js";

function panel(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), ...children);
}

export function scorePanel() {
  const chart = el("div", { id: "score-chart" });
  const element = panel("Score over trials", chart);
  let drawnKey = null;

  function show(job, trials) {
    const key = JSON.stringify(trials.map((t) => [t.trial_id, t.score]));
    if (key === drawnKey) return;
    drawnKey = key;
    scoreChart(chart, trials, scoreObjective(job.spec));
  }

  return { element, show, invalidate: () => (drawnKey = null) };
}

// The hyperparameters a table or chart shows: every one the trials carry, less those the
// search space fixes (named in a note instead).
export function shownHyperparameters(job, trials) {
  const fixed = fixedNames(job.search_space);
  const names = hyperparameterNames(trials);
  return { shown: names.filter((n) => !fixed.has(n)), fixed: names.filter((n) => fixed.has(n)) };
}

// `onSelect(trialId)`, `onBrush(brushes)`: a click on a line, a drag along an axis.
export function parcoordsPanel({ onSelect, onBrush }) {
  const chart = el("div", { id: "parcoords" });
  const filterText = el("span");
  const filterNote = el(
    "p",
    { class: "muted small", id: "filter-note", hidden: true },
    filterText,
    el("button", { type: "button", class: "link-button", id: "clear-brushes", onclick: () => onBrush({}) }, "Clear filters"),
  );
  const element = panel(
    "Hyperparameters vs score",
    el("p", { class: "muted small" }, "Drag along an axis to filter the trials; click the axis to clear it."),
    chart,
    filterNote,
  );
  let drawnKey = null;

  // `view`: {job, trials, shown, selectedId, brushes, visibleIds}.
  function show({ job, trials, shown, selectedId, brushes, visibleIds }) {
    filterNote.hidden = visibleIds === null;
    filterText.textContent = `Brushed: the table shows ${visibleIds ? visibleIds.length : 0} of ${trials.length} trials. `;
    const bestId = job.best ? job.best.trial_id : null;
    const key = JSON.stringify([trials.map((t) => [t.trial_id, t.score]), shown, selectedId, bestId, brushes]);
    if (key === drawnKey) return;
    drawnKey = key;
    parallelCoordinates(chart, trials, shown, job.search_space, scoreObjective(job.spec), {
      bestId,
      selectedId,
      onSelect,
      brushes,
      onBrush,
    });
  }

  return { element, show, invalidate: () => (drawnKey = null) };
}

// `handlers`: trialTable's (onSelect, onCheck, onDownload).
export function trialsPanel(handlers) {
  const fixedNote = el("p", { class: "muted small", id: "fixed-note" });
  const table = trialTable(handlers);
  const element = panel("Trials", fixedNote, el("div", { class: "scroll-x" }, table.table));

  // `view`: {job, trials, shown, fixed, selectedId, checkedIds, visibleIds, modelIds}.
  function show({ job, fixed, ...rows }) {
    fixedNote.textContent = fixed.length
      ? `Fixed in this search: ${fixed.map((n) => `${n} = ${fmtValue(job.search_space[n].value)}`).join(", ")}.`
      : "";
    table.update({
      trials: rows.trials,
      hpNames: rows.shown,
      objective: scoreObjective(job.spec),
      bestId: job.best ? job.best.trial_id : null,
      selectedId: rows.selectedId,
      checkedIds: rows.checkedIds,
      visibleIds: rows.visibleIds,
      modelIds: rows.modelIds,
    });
  }

  return { element, show };
}
