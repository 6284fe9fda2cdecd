// The Pareto front of a multi-objective job (its spec's `objective` is a list): every trial
// that has objective values as a point of its first two objectives, the non-dominated ones
// (GET /jobs/{id}/pareto) highlighted and joined by a dashed line. SVG, as parcoords.js; a
// click on a point opens that trial, as a row of the trial table does.

import { apiPath, get } from "./api.js";
import { chartWidth } from "./charts.js";
import { el, fmtValue, svg, trialLabel } from "./util.js";

const FRONT_COLOR = "#e07b00";
const OTHER_COLOR = "#7a869a";

// The list of objectives of a multi-objective job, or null for a single objective.
export function objectiveList(spec) {
  return Array.isArray(spec.objective) && spec.objective.length >= 2 ? spec.objective : null;
}

// An axis over `values`: linear, or log when they are all positive and span two decades or
// more (model_params and latencies often do).
function scale(values, from, to) {
  const lo0 = Math.min(...values);
  const hi0 = Math.max(...values);
  const log = lo0 > 0 && hi0 / lo0 >= 100;
  const f = log ? Math.log10 : (v) => v;
  const pad = lo0 === hi0 ? 1 : 0.05 * (f(hi0) - f(lo0));
  const lo = f(lo0) - pad;
  const hi = f(hi0) + pad;
  const pos = (v) => from + ((f(v) - lo) / (hi - lo)) * (to - from);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((p) => {
    const t = lo + p * (hi - lo);
    return log ? 10 ** t : t;
  });
  return { pos, ticks, log };
}

const valueOf = (trial, name) => {
  const value = trial.objectives ? trial.objectives[name] : undefined;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
};

function scatter(container, objectives, trials, frontIds, { selectedId, onSelect }) {
  const [ox, oy] = objectives;
  const points = trials
    .map((t) => ({ trial: t, x: valueOf(t, ox.name), y: valueOf(t, oy.name) }))
    .filter((p) => p.x !== null && p.y !== null);
  container.replaceChildren();
  if (!points.length) {
    container.append(el("p", { class: "empty" }, "No trial with objective values yet."));
    return;
  }
  const width = chartWidth(container);
  const height = 320;
  const margin = { top: 14, right: 20, bottom: 44, left: 78 };
  const sx = scale(points.map((p) => p.x), margin.left, width - margin.right);
  const sy = scale(points.map((p) => p.y), height - margin.bottom, margin.top);
  const root = svg("svg", { width, height, class: "pareto", role: "img" });
  root.append(svg("title", {}, `${ox.name} against ${oy.name}, one point per trial; the Pareto front highlighted`));

  const axes = svg("g", { class: "axes" });
  axes.append(
    svg("line", { x1: margin.left, x2: width - margin.right, y1: height - margin.bottom, y2: height - margin.bottom }),
    svg("line", { x1: margin.left, x2: margin.left, y1: margin.top, y2: height - margin.bottom }),
  );
  for (const t of sx.ticks) {
    axes.append(svg("text", { x: sx.pos(t), y: height - margin.bottom + 16, class: "tick", "text-anchor": "middle" }, fmtValue(t)));
  }
  for (const t of sy.ticks) {
    axes.append(svg("text", { x: margin.left - 6, y: sy.pos(t) + 4, class: "tick", "text-anchor": "end" }, fmtValue(t)));
  }
  const label = (o, log) => `${o.name} (${o.direction}${log ? ", log scale" : ""})`;
  axes.append(
    svg("text", { x: (margin.left + width - margin.right) / 2, y: height - 6, class: "axis-name", "data-axis": "x" }, label(ox, sx.log)),
    svg(
      "text",
      { x: 14, y: height / 2, class: "axis-name", "data-axis": "y", transform: `rotate(-90 14 ${height / 2})` },
      label(oy, sy.log),
    ),
  );
  root.append(axes);

  // The front as a dashed line through its points in order along the first objective.
  const front = points.filter((p) => frontIds.has(p.trial.trial_id)).sort((a, b) => a.x - b.x || a.y - b.y);
  if (front.length > 1) {
    const d = front.map((p, i) => `${i ? "L" : "M"}${sx.pos(p.x).toFixed(1)},${sy.pos(p.y).toFixed(1)}`).join("");
    root.append(svg("path", { d, class: "front-line", stroke: FRONT_COLOR }));
  }
  const dots = svg("g", { class: "points" });
  // The front last, so it lies on top.
  const ordered = [...points].sort((a, b) => frontIds.has(a.trial.trial_id) - frontIds.has(b.trial.trial_id));
  for (const p of ordered) {
    const id = p.trial.trial_id;
    const onFront = frontIds.has(id);
    const classes = ["trial-point"];
    if (onFront) classes.push("front");
    if (id === selectedId) classes.push("selected");
    dots.append(
      svg(
        "circle",
        {
          cx: sx.pos(p.x).toFixed(1),
          cy: sy.pos(p.y).toFixed(1),
          r: onFront ? 7 : 5,
          class: classes.join(" "),
          fill: onFront ? FRONT_COLOR : OTHER_COLOR,
          "data-trial-id": id,
          onclick: () => onSelect(id),
        },
        svg("title", {}, `trial ${trialLabel(id)}${onFront ? " (on the front)" : ""}: ${ox.name} ${fmtValue(p.x)}, ${oy.name} ${fmtValue(p.y)}`),
      ),
    );
  }
  root.append(dots);
  container.append(root);
}

export function paretoPanel(jobId, { onSelect }) {
  const plot = el("div", { id: "pareto-chart" });
  const note = el("p", { class: "muted small", id: "pareto-note" });
  const element = el(
    "section",
    { class: "panel", id: "pareto-panel", hidden: true },
    el("h2", {}, "Pareto front"),
    note,
    plot,
  );
  let frontKey = null;
  let frontIds = new Set();
  let drawnKey = null;

  // Drawn for a job with a list objective; the front is asked for again only when a trial
  // completes. Redrawn when the trials or the selection change (and after invalidate()).
  // Resolves true when the front's trials changed.
  async function show(job, trials, selectedId) {
    const objectives = objectiveList(job.spec);
    element.hidden = !objectives;
    if (!objectives) return false;
    const before = JSON.stringify([...frontIds]);
    const done = trials.filter((t) => t.status === "COMPLETED").map((t) => t.trial_id);
    const key = JSON.stringify(done);
    if (key !== frontKey) {
      try {
        const page = await get(apiPath`/jobs/${jobId}/pareto`);
        frontIds = new Set(page.items.map((item) => item.trial_id));
        note.textContent =
          `${frontIds.size} trial(s) on the front: no other trial is at least as good on every objective ` +
          `and better on one. Click a point to open its trial.` +
          (objectives.length > 2 ? ` Showing the first two of ${objectives.length} objectives.` : "");
      } catch (e) {
        frontIds = new Set();
        note.textContent = `The front is unavailable: ${e.message}`;
      }
      frontKey = key;
    }
    const changed = JSON.stringify([...frontIds]) !== before;
    const drawKey = JSON.stringify([key, trials.map((t) => t.objectives ?? null), selectedId, [...frontIds]]);
    if (drawKey === drawnKey) return changed;
    drawnKey = drawKey;
    scatter(plot, objectives, trials, frontIds, { selectedId, onSelect });
    return changed;
  }

  // After a resize: the next show draws at the new width.
  function invalidate() {
    drawnKey = null;
  }

  // The front's trial ids (each keeps its model), as last read.
  return { element, show, invalidate, frontIds: () => [...frontIds] };
}
