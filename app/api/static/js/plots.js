// What the slice, contour and EDF plots (slice.js, contour.js, edf.js) share, as optuna-dashboard
// draws them: the trials they plot, an axis over a hyperparameter's values, the SVG frame with
// its ticks, the colour scales, and a hyperparameter select that keeps its choice. SVG drawn
// by hand as in parcoords.js: the page's CSP allows no outside script, and these need no more.

import { chartWidth } from "./charts.js";
import { fixedNames, hyperparameterNames } from "./trials.js";
import { el, fmtValue, scoreObjective, svg } from "./util.js";

// Completed trials with a score. A pruned trial keeps status COMPLETED but its score is from
// fewer epochs than the others': it would read as a worse setting than it may be.
export function plottedTrials(trials) {
  return trials.filter((t) => t.status === "COMPLETED" && !t.pruned && Number.isFinite(t.score));
}

// One line under a plot's title: what its score is, and what it leaves out.
export function scoreCaption(job, trials, plotted) {
  const objective = scoreObjective(job.spec);
  const list = Array.isArray(job.spec.objective) ? job.spec.objective : [];
  const better = objective.direction === "max" ? "higher is better" : "lower is better";
  const first = list.length > 1 ? `, the first of ${list.length} objectives` : "";
  const left = trials.length - plotted.length;
  const out = left ? ` ${left} pruned, failed or unfinished trial(s) left out.` : " Pruned and failed trials are left out.";
  return `Score: ${objective.name} (${better})${first}; ${plotted.length} completed trial(s).${out}`;
}

// The hyperparameters worth a plot: those the search space does not fix and that take more
// than one value among the plotted trials. A per-layer `units_1` may be absent from some.
export function varyingNames(job, plotted) {
  const fixed = fixedNames(job.search_space || {});
  return hyperparameterNames(plotted).filter(
    (name) =>
      !fixed.has(name) &&
      new Set(plotted.map((t) => JSON.stringify(t.hyperparameters[name] ?? null)).filter((v) => v !== "null")).size > 1,
  );
}

const spaceEntry = (job, name) => {
  const space = job.search_space || {};
  return space[name] || space[name.replace(/_\d+$/, "")] || null;
};

// Round steps (1, 2 or 5 times a power of ten) across [lo, hi].
function niceTicks(lo, hi, count = 5) {
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

// A numeric axis over `values`, mapped to [0, 1] with a margin so no point sits on the frame;
// `log`: by powers of ten (every value must then be positive); `labelEach`: a tick at each
// distinct value (a few layers, units or steps read better so than by round numbers).
export function numericAxis(values, log = false, labelEach = false) {
  const f = log ? Math.log10 : (v) => v;
  const lo0 = Math.min(...values.map(f));
  const hi0 = Math.max(...values.map(f));
  const pad = hi0 > lo0 ? 0.05 * (hi0 - lo0) : Math.abs(lo0) * 0.1 || 0.5;
  const lo = lo0 - pad;
  const hi = hi0 + pad;
  const pos = (v) => (f(v) - lo) / (hi - lo);
  let ticks;
  if (labelEach) {
    ticks = [...new Set(values)];
  } else if (log) {
    const decades = [];
    for (let k = Math.ceil(lo); k <= Math.floor(hi); k++) decades.push(10 ** k);
    // Within a decade or two, the data's own ends are the more useful labels.
    ticks = decades.length >= 2 ? decades : [...new Set([10 ** lo0, 10 ** hi0])];
  } else {
    ticks = niceTicks(lo, hi);
  }
  return { pos, log, ticks: ticks.map((v) => ({ at: pos(v), label: fmtValue(v) })) };
}

// The axis of one hyperparameter: numeric (log where the search space samples it so, or
// steps by powers of two), or evenly spaced categories for a choice, a string or a boolean.
export function hpAxis(job, name, values) {
  const entry = spaceEntry(job, name);
  const present = values.filter((v) => v !== null && v !== undefined);
  if (entry?.type !== "choice" && present.every((v) => typeof v === "number")) {
    const log = Boolean(entry && (entry.sampling === "log" || entry.type === "pow2")) && present.every((v) => v > 0);
    const continuous = entry?.type === "float" && !entry.step;
    return numericAxis(present, log, !continuous && new Set(present).size <= 6);
  }
  // Categories in the search space's order when it lists them, then as first seen.
  const seen = present.map(String);
  const declared = entry?.values ? entry.values.map(String) : [];
  const categories = [...new Set([...declared.filter((v) => seen.includes(v)), ...seen])];
  const at = (i) => (i + 0.5) / categories.length;
  return {
    pos: (v) => at(categories.indexOf(String(v))),
    log: false,
    categorical: true,
    ticks: categories.map((c, i) => ({ at: at(i), label: c })),
  };
}

// An SVG plot area of the container's width: `x(p)`, `y(p)` map [0, 1] to pixels, and the
// axes are drawn with their ticks and names.
export function frame(container, { height = 300, xAxis, yAxis, xLabel, yLabel, className, title, right = 20 }) {
  const width = chartWidth(container);
  const m = { top: 12, right, bottom: 44, left: 70 };
  const x = (p) => m.left + p * (width - m.left - m.right);
  const y = (p) => height - m.bottom - p * (height - m.top - m.bottom);
  const root = svg("svg", { width, height, class: `plot ${className}`, role: "img" });
  root.append(svg("title", {}, title));
  const axes = svg("g", { class: "axes" });
  axes.append(
    svg("line", { x1: x(0), x2: x(1), y1: y(0), y2: y(0) }),
    svg("line", { x1: x(0), x2: x(0), y1: y(0), y2: y(1) }),
  );
  for (const t of xAxis.ticks) {
    axes.append(svg("text", { x: x(t.at), y: y(0) + 16, class: "tick", "text-anchor": "middle" }, t.label));
  }
  for (const t of yAxis.ticks) {
    axes.append(svg("text", { x: x(0) - 6, y: y(t.at) + 4, class: "tick", "text-anchor": "end" }, t.label));
  }
  const named = (label, axis) => `${label}${axis.log ? " (log scale)" : ""}`;
  axes.append(
    svg("text", { x: (x(0) + x(1)) / 2, y: height - 6, class: "axis-name", "data-axis": "x" }, named(xLabel, xAxis)),
    svg(
      "text",
      { x: 14, y: height / 2, class: "axis-name", "data-axis": "y", transform: `rotate(-90 14 ${height / 2})` },
      named(yLabel, yAxis),
    ),
  );
  root.append(axes);
  return { root, x, y, width, height };
}

// Trial order, earliest light to latest dark (parcoords.js's blue).
export const orderColor = (i, n) => `hsl(215, 60%, ${n > 1 ? 80 - (55 * i) / (n - 1) : 45}%)`;

// A score's place between the worst (0) and the best (1) as viridis (dark purple to yellow):
// told apart in grey and by most eyes.
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
export function qualityColor(q) {
  const t = Math.min(1, Math.max(0, q)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const mix = VIRIDIS[i].map((c, k) => Math.round(c + (t - i) * (VIRIDIS[i + 1][k] - c)));
  return `rgb(${mix.join(",")})`;
}

// A select of hyperparameter names that keeps the user's choice while the list grows.
export function hpSelect(attrs, onChange) {
  const select = el("select", { ...attrs, onchange: onChange });
  let listed = "";
  // `preferred`: the choice when the current one is not among `names`.
  function offer(names, preferred) {
    const key = JSON.stringify(names);
    const keep = names.includes(select.value) ? select.value : preferred;
    if (key !== listed) {
      select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      listed = key;
    }
    select.value = keep ?? names[0] ?? "";
    return select.value;
  }
  return { select, offer };
}

// A panel as the job page's others: a title with its controls, a caption and the plot.
export function plotPanel(id, title, ...controls) {
  const caption = el("p", { class: "muted small plot-caption" });
  const plot = el("div", { class: "plot-area" });
  const element = el(
    "section",
    { class: "panel", id },
    el("div", { class: "panel-head" }, el("h2", {}, title), el("div", { class: "plot-controls" }, ...controls)),
    caption,
    plot,
  );
  const empty = (message) => plot.replaceChildren(el("p", { class: "empty plot-empty" }, message));
  return { element, caption, plot, empty };
}

export const notEnough = (what, need, have) =>
  `Not enough trials: the ${what} needs at least ${need} completed trials (this job has ${have}).`;
