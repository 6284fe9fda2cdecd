// The line charts (uPlot, vendored in /static/vendor): learning curves of one or several
// trials, the score over trials, and the best score of several jobs side by side. The
// parallel coordinates are SVG, in parcoords.js.

import { el, fmtScore, trialLabel } from "./util.js";

export const COLORS = {
  loss: "#3465a4",
  valLoss: "#e07b00",
  bestEpoch: "#2a9d4b",
  overfit: "#c62828",
  score: "#7a869a",
  best: "#1f5fbf",
};

// Tick steps for epochs and trial numbers: whole numbers only.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export function chartWidth(container) {
  return Math.max(320, Math.floor(container.getBoundingClientRect().width) - 8);
}

// The legend shows the hovered epoch's values as the tables do (4 decimals).
const legendValue = (u, v) => fmtScore(v);

// Vertical dashed lines at given x values, drawn on uPlot's canvas after each redraw.
function markerPlugin(markers) {
  return {
    hooks: {
      draw: [
        (u) => {
          const ctx = u.ctx;
          const dpr = window.devicePixelRatio || 1;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.font = `${11 * dpr}px system-ui, sans-serif`;
          markers.forEach((marker, i) => {
            const x = Math.round(u.valToPos(marker.x, "x", true));
            ctx.strokeStyle = marker.color;
            ctx.fillStyle = marker.color;
            ctx.lineWidth = 2 * dpr;
            ctx.setLineDash([6 * dpr, 4 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const text = marker.short;
            const right = x + ctx.measureText(text).width + 8 * dpr > u.bbox.left + u.bbox.width;
            ctx.textAlign = right ? "right" : "left";
            ctx.fillText(text, x + (right ? -4 : 4) * dpr, top + (14 + 14 * i) * dpr);
          });
          ctx.restore();
        },
      ],
    },
  };
}

// Draws `series` (each {label, color, dash, values aligned to xs, stepped}) against xs. The
// uPlot instance is kept on the chart's element (`.chart`) for the console and the tests.
function lineChart(plot, { xs, series, xLabel, yLabel, log = false, markers = [], height = 260, xValue }) {
  // A log axis cannot place zero or a negative value: those points are left out.
  const clean = (values) => (log ? values.map((v) => (v !== null && v > 0 ? v : null)) : values);
  const options = {
    width: chartWidth(plot.parentElement),
    height,
    scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : {} },
    axes: [{ label: xLabel, incrs: WHOLE }, { label: yLabel }],
    series: [
      { label: xLabel, value: xValue || ((u, v) => (v === null || v === undefined ? "—" : String(v))) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        dash: s.dash,
        spanGaps: true,
        value: legendValue,
        ...(s.stepped ? { paths: window.uPlot.paths.stepped({ align: 1 }), points: { show: false } } : {}),
      })),
    ],
    plugins: [markerPlugin(markers)],
  };
  const chart = new window.uPlot(options, [xs, ...series.map((s) => clean(s.values))], plot);
  plot.dataset.scale = log ? "log" : "linear";
  plot.chart = chart;
  return chart;
}

// Learning curves: one line per (trial, metric), with a single trial's best epoch (where
// EarlyStopping's restore_best_weights takes the weights from) and its start of overfitting
// marked. `trial` is that single trial, or null when several are overlaid.
export function curveChart(container, { xs, series, yLabel, log, trial }) {
  const markers = [];
  if (trial && trial.best_epoch !== null && trial.best_epoch !== undefined) {
    markers.push({
      x: trial.best_epoch,
      color: COLORS.bestEpoch,
      short: "best epoch",
      text: `best epoch ${trial.best_epoch}${trial.stopped_early ? " (stopped early; weights restored from here)" : ""}`,
      kind: "best-epoch",
    });
  }
  if (trial && trial.overfit_epoch !== null && trial.overfit_epoch !== undefined) {
    markers.push({
      x: trial.overfit_epoch,
      color: COLORS.overfit,
      short: "overfitting",
      text: `overfitting from epoch ${trial.overfit_epoch} (validation loss rises while training loss falls)`,
      kind: "overfit",
    });
  }
  const gap = trial ? trial.generalization_gap : null;
  const legend = el(
    "ul",
    { class: "markers" },
    markers.map((m) =>
      el(
        "li",
        { dataset: { marker: m.kind } },
        el("span", { class: "swatch dashed", style: `border-color: ${m.color}` }),
        m.text,
      ),
    ),
    gap !== null && gap !== undefined
      ? el("li", { class: "muted" }, `generalization gap at best epoch: ${fmtScore(gap)}`)
      : null,
  );
  const plot = el("div", { class: "chart" });
  container.replaceChildren(plot, legend);
  if (!xs.length) {
    plot.append(el("p", { class: "empty" }, "No epoch recorded yet."));
    return null;
  }
  return lineChart(plot, { xs, series, xLabel: "epoch", yLabel, log, markers });
}

// One point per trial, in the order they started, labelled by the trial's number (trialLabel:
// KerasTuner counts from 0), and the best score so far as a step line.
export function scoreChart(container, trials, objective) {
  const maximize = objective.direction === "max";
  const xs = [];
  const scores = [];
  const bestSoFar = [];
  let best = null;
  trials.forEach((trial, i) => {
    xs.push(i);
    scores.push(trial.score);
    if (trial.score !== null && (best === null || (maximize ? trial.score > best : trial.score < best))) {
      best = trial.score;
    }
    bestSoFar.push(best);
  });
  container.replaceChildren();
  if (best === null) {
    container.append(el("p", { class: "empty" }, xs.length ? "No scored trial yet." : "No trial yet."));
    return null;
  }
  const idAt = (i) => (Number.isInteger(i) && trials[i] ? trialLabel(trials[i].trial_id) : "");
  const options = {
    width: chartWidth(container),
    height: 220,
    scales: { x: { time: false } },
    axes: [
      { label: "trial", incrs: WHOLE, values: (u, splits) => splits.map(idAt) },
      { label: objective.name },
    ],
    series: [
      { label: "trial", value: (u, v) => (v === null || v === undefined ? "—" : idAt(v)) },
      {
        label: objective.name,
        value: legendValue,
        stroke: COLORS.score,
        paths: () => null,
        points: { show: true, size: 8, fill: COLORS.score },
      },
      {
        label: "best so far",
        value: legendValue,
        stroke: COLORS.best,
        width: 2,
        paths: window.uPlot.paths.stepped({ align: 1 }),
        points: { show: false },
      },
    ],
  };
  const chart = new window.uPlot(options, [xs, scores, bestSoFar], container);
  container.chart = chart;
  return chart;
}

// Several jobs' best score so far on one chart: `runs` are [{label, color, points: [[x, y]]}].
// Each line holds its last best until its own last point, so the legend reads every job at
// any x the cursor is on.
export function compareChart(container, runs, { xLabel, yLabel }) {
  const xs = [...new Set(runs.flatMap((r) => r.points.map(([x]) => x)))].sort((a, b) => a - b);
  const series = runs.map((run) => {
    const at = new Map(run.points);
    const last = run.points.length ? run.points[run.points.length - 1][0] : -Infinity;
    let held = null;
    const values = xs.map((x) => {
      if (at.has(x)) held = at.get(x);
      return x <= last ? held : null;
    });
    return { label: run.label, color: run.color, values, stepped: true };
  });
  const plot = el("div", { class: "chart" });
  container.replaceChildren(plot);
  if (!xs.length || series.every((s) => s.values.every((v) => v === null))) {
    plot.append(el("p", { class: "empty" }, "No scored trial yet."));
    return null;
  }
  const xValue = (u, v) => (v === null || v === undefined ? "—" : String(+v.toPrecision(4)));
  return lineChart(plot, { xs, series, xLabel, yLabel, height: 320, xValue });
}
