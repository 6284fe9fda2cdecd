// The job page's charts: a trial's learning curves and the score over trials (both uPlot,
// vendored in /static/vendor), and a parallel-coordinates view drawn as plain SVG
// (uPlot has none; a few dozen lines of SVG beat a second library).

import { el, fmtScore, fmtValue } from "./util.js";

const COLORS = {
  loss: "#3465a4",
  valLoss: "#e07b00",
  bestEpoch: "#2a9d4b",
  overfit: "#c62828",
  score: "#7a869a",
  best: "#1f5fbf",
};

// Tick steps for epochs and trial numbers: whole numbers only.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

function chartWidth(container) {
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

// Training vs validation loss of one trial, with its best epoch (where EarlyStopping's
// restore_best_weights takes the weights from) and the start of overfitting marked.
export function curveChart(container, trial) {
  const rows = trial.metrics;
  const markers = [];
  if (trial.best_epoch !== null && trial.best_epoch !== undefined) {
    markers.push({
      x: trial.best_epoch,
      color: COLORS.bestEpoch,
      short: "best epoch",
      text: `best epoch ${trial.best_epoch}${trial.stopped_early ? " (stopped early; weights restored from here)" : ""}`,
      kind: "best-epoch",
    });
  }
  if (trial.overfit_epoch !== null && trial.overfit_epoch !== undefined) {
    markers.push({
      x: trial.overfit_epoch,
      color: COLORS.overfit,
      short: "overfitting",
      text: `overfitting from epoch ${trial.overfit_epoch} (validation loss rises while training loss falls)`,
      kind: "overfit",
    });
  }
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
    trial.generalization_gap !== null && trial.generalization_gap !== undefined
      ? el("li", { class: "muted" }, `generalization gap at best epoch: ${fmtScore(trial.generalization_gap)}`)
      : null,
  );
  const plot = el("div", { class: "chart" });
  container.replaceChildren(plot, legend);
  if (!rows.length) {
    plot.append(el("p", { class: "empty" }, "No epoch recorded yet."));
    return null;
  }
  const data = [
    rows.map((r) => r.epoch),
    rows.map((r) => r.loss),
    rows.map((r) => r.val_loss),
  ];
  const options = {
    width: chartWidth(container),
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "epoch", incrs: WHOLE }, { label: "loss" }],
    series: [
      { label: "epoch", value: (u, v) => (v === null || v === undefined ? "—" : String(v)) },
      { label: "training loss", stroke: COLORS.loss, width: 2, value: legendValue },
      { label: "validation loss", stroke: COLORS.valLoss, width: 2, value: legendValue },
    ],
    plugins: [markerPlugin(markers)],
  };
  return new window.uPlot(options, data, plot);
}

// One point per trial (in the order they started) and the best score so far as a step line.
export function scoreChart(container, trials, objective) {
  const maximize = objective.direction === "max";
  const xs = [];
  const scores = [];
  const bestSoFar = [];
  let best = null;
  trials.forEach((trial, i) => {
    xs.push(i + 1);
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
  const options = {
    width: chartWidth(container),
    height: 220,
    scales: { x: { time: false } },
    axes: [{ label: "trial (in start order)", incrs: WHOLE }, { label: objective.name }],
    series: [
      { label: "trial" },
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
  return new window.uPlot(options, [xs, scores, bestSoFar], container);
}

// --- Parallel coordinates ------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// How an axis maps a value to [0, 1] (bottom to top), and which labels it shows.
function makeAxis(name, values, spaceEntry) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const numeric = present.length > 0 && present.every((v) => typeof v === "number");
  if (numeric) {
    const log =
      spaceEntry && (spaceEntry.type === "pow2" || spaceEntry.sampling === "log") && present.every((v) => v > 0);
    const f = log ? Math.log : (v) => v;
    const lo = Math.min(...present.map(f));
    const hi = Math.max(...present.map(f));
    const pos = (v) => (hi === lo ? 0.5 : (f(v) - lo) / (hi - lo));
    // A few distinct values (layers, units, batch sizes) are labelled each; a range by its ends.
    const distinct = [...new Set(present)].sort((a, b) => a - b);
    const continuous = spaceEntry && spaceEntry.type === "float" && !spaceEntry.step;
    const ends = [distinct[0], distinct[distinct.length - 1]];
    const labelled = distinct.length <= 6 && !continuous ? distinct : [...new Set(ends)];
    return { name, pos, ticks: labelled.map((v) => ({ at: pos(v), label: fmtValue(v) })) };
  }
  // Categories in the search space's order when it lists them, else as first seen.
  const seen = present.map(String);
  const declared = spaceEntry && spaceEntry.values ? spaceEntry.values.map(String) : [];
  const categories = [...new Set([...declared.filter((v) => seen.includes(v)), ...seen])];
  const at = (i) => (categories.length === 1 ? 0.5 : i / (categories.length - 1));
  return {
    name,
    pos: (v) => at(categories.indexOf(String(v))),
    ticks: categories.map((c, i) => ({ at: at(i), label: c })),
  };
}

// Hyperparameters that take more than one value among these trials, then the score.
export function parallelCoordinates(container, trials, hpNames, space, objective, options) {
  const scored = trials.filter((t) => t.score !== null);
  container.replaceChildren();
  if (scored.length < 2) {
    container.append(el("p", { class: "empty" }, "Needs two scored trials."));
    return;
  }
  const varying = hpNames.filter(
    (name) => new Set(scored.map((t) => JSON.stringify(t.hyperparameters[name] ?? null))).size > 1,
  );
  const spaceOf = (name) => space[name] || space[name.replace(/_\d+$/, "")];
  const axes = varying.map((name) =>
    makeAxis(name, scored.map((t) => t.hyperparameters[name]), spaceOf(name)),
  );
  axes.push(makeAxis(objective.name, scored.map((t) => t.score), null));

  const width = chartWidth(container);
  const height = 300;
  const margin = { top: 44, bottom: 16, left: 40, right: 90 };
  const plotH = height - margin.top - margin.bottom;
  const x = (i) => margin.left + (i * (width - margin.left - margin.right)) / Math.max(1, axes.length - 1);
  const y = (p) => margin.top + (1 - p) * plotH;

  const scores = scored.map((t) => t.score);
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const maximize = objective.direction === "max";
  // 0 = worst, 1 = best, whichever way the objective points.
  const quality = (s) => (hi === lo ? 1 : maximize ? (s - lo) / (hi - lo) : (hi - s) / (hi - lo));

  const root = svg("svg", { width, height, class: "parcoords", role: "img" });
  root.append(svg("title", {}, "Hyperparameters against score, one line per trial"));
  const lines = svg("g", { class: "lines" });
  const ordered = [...scored].sort((a, b) => quality(a.score) - quality(b.score)); // best on top
  for (const trial of ordered) {
    const q = quality(trial.score);
    const isBest = trial.trial_id === options.bestId;
    let d = "";
    let pen = false; // a per-layer `units_i` is absent when the layer is: break the line there
    axes.forEach((axis, i) => {
      const value = i === axes.length - 1 ? trial.score : trial.hyperparameters[axis.name];
      if (value === null || value === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(axis.pos(value)).toFixed(1)}`;
      pen = true;
    });
    const classes = ["trial-line"];
    if (isBest) classes.push("best");
    if (trial.trial_id === options.selectedId) classes.push("selected");
    lines.append(
      svg(
        "path",
        {
          d,
          class: classes.join(" "),
          stroke: isBest ? COLORS.valLoss : `hsl(215, 60%, ${82 - 52 * q}%)`,
          "data-trial-id": trial.trial_id,
          onclick: () => options.onSelect(trial.trial_id),
        },
        svg("title", {}, `trial ${trial.trial_id}: ${fmtScore(trial.score)}`),
      ),
    );
  }
  root.append(lines);
  axes.forEach((axis, i) => {
    const g = svg("g", { class: "axis" });
    g.append(svg("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1) }));
    // Names alternate between two rows so that long neighbours do not overlap.
    g.append(svg("text", { x: x(i), y: i % 2 ? 30 : 14, class: "axis-name" }, axis.name));
    for (const tick of axis.ticks) {
      g.append(svg("text", { x: x(i) + 4, y: y(tick.at) + 4, class: "tick" }, tick.label));
    }
    root.append(g);
  });
  container.append(root);
}
