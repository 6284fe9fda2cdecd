// The empirical distribution of scores (optuna-dashboard's EDF plot): for each score x, the
// fraction of completed trials that scored at most x, as a step line. One line per job: the
// job page draws its own, the compare page one per job on a shared score axis.

import { frame, notEnough, numericAxis, plotPanel, plottedTrials, scoreCaption } from "./plots.js";
import { COLORS } from "./charts.js";
import { el, fmtScore, scoreObjective, svg } from "./util.js";

const MIN_TRIALS = 2;

// How to read the curve, whichever way the objective points.
export function edfReading(direction) {
  return direction === "max"
    ? "Higher is better: the further right a curve rises, the better its trials."
    : "Lower is better: the further left a curve rises, the better its trials.";
}

// [score, fraction of scores ≤ it] at each distinct score, in increasing order.
function steps(scores) {
  const sorted = [...scores].sort((a, b) => a - b);
  const out = [];
  sorted.forEach((s, i) => {
    if (i + 1 < sorted.length && sorted[i + 1] === s) return;
    out.push([s, (i + 1) / sorted.length]);
  });
  return out;
}

// `series`: [{label, color, scores}], each a line; `xLabel`: the score's name.
export function edfChart(container, series, xLabel) {
  const drawn = series.filter((s) => s.scores.length);
  container.replaceChildren();
  if (!drawn.length) return;
  const xAxis = numericAxis(drawn.flatMap((s) => s.scores));
  const at = (p) => 0.04 + 0.92 * p; // 0% and 100% a little inside the frame
  const yAxis = { pos: at, log: false, ticks: [0, 0.25, 0.5, 0.75, 1].map((p) => ({ at: at(p), label: `${100 * p}%` })) };
  const f = frame(container, {
    xAxis,
    yAxis,
    xLabel,
    yLabel: "trials scoring ≤ x",
    className: "edf-plot",
    height: 260,
    title: `Empirical distribution of ${xLabel}: the fraction of completed trials scoring at most x`,
  });
  for (const s of drawn) {
    const g = svg("g", { class: "edf-series", "data-label": s.label });
    const points = steps(s.scores);
    let d = `M${f.x(0).toFixed(1)},${f.y(at(0)).toFixed(1)}`;
    for (const [score, fraction] of points) {
      d += `H${f.x(xAxis.pos(score)).toFixed(1)}V${f.y(at(fraction)).toFixed(1)}`;
    }
    d += `H${f.x(1).toFixed(1)}`;
    g.append(svg("path", { d, class: "edf-line", stroke: s.color }));
    for (const [score, fraction] of points) {
      g.append(
        svg(
          "circle",
          {
            cx: f.x(xAxis.pos(score)).toFixed(1),
            cy: f.y(at(fraction)).toFixed(1),
            r: 3,
            class: "edf-step",
            fill: s.color,
            "data-score": String(score),
            "data-fraction": String(fraction),
          },
          svg("title", {}, `${s.label}: ${(100 * fraction).toFixed(0)}% of trials score ≤ ${fmtScore(score)}`),
        ),
      );
    }
    f.root.append(g);
  }
  container.append(f.root);
}

export function edfPanel() {
  const { element, caption, plot, empty } = plotPanel("edf-panel", "Distribution of scores");
  let drawnKey = null;

  function show(job, trials) {
    const plotted = plottedTrials(trials);
    const objective = scoreObjective(job.spec);
    caption.textContent = `${scoreCaption(job, trials, plotted)} ${edfReading(objective.direction)}`;
    const key = JSON.stringify([plotted.map((t) => t.score), job.spec.objective]);
    if (key === drawnKey) return;
    drawnKey = key;
    if (plotted.length < MIN_TRIALS) return empty(notEnough("distribution", MIN_TRIALS, plotted.length));
    edfChart(plot, [{ label: "this job", color: COLORS.best, scores: plotted.map((t) => t.score) }], objective.name);
  }

  return { element, show, invalidate: () => (drawnKey = null) };
}

// For the compare page: a panel with one line per job, in the job's colour.
export function compareEdfPanel() {
  const note = el("p", { class: "muted small plot-caption", id: "compare-edf-note" });
  const plot = el("div", { id: "compare-edf", class: "plot-area" });
  const element = el("section", { class: "panel", id: "compare-edf-panel" }, el("h2", {}, "Distribution of scores"), note, plot);

  // `runs`: [{label, color, job, trials}]. Jobs whose objectives differ are drawn anyway,
  // as the best-so-far chart is: the page warns above it that their scales differ.
  function show(runs) {
    const series = runs.map((r) => ({ label: r.label, color: r.color, scores: plottedTrials(r.trials).map((t) => t.score) }));
    const objectives = [...new Set(runs.map((r) => scoreObjective(r.job.spec).direction))];
    note.textContent =
      "One line per job: the fraction of its completed trials (pruned and failed ones left out) scoring at most x; " +
      `a multi-objective job by its first objective. ${objectives.length === 1 ? edfReading(objectives[0]) : ""}`;
    if (!series.some((s) => s.scores.length)) {
      plot.replaceChildren(el("p", { class: "empty plot-empty" }, "No completed trial yet."));
      return;
    }
    const names = new Set(runs.map((r) => scoreObjective(r.job.spec).name));
    edfChart(plot, series, names.size === 1 ? [...names][0] : "score");
  }

  return { element, show };
}
