// Parallel coordinates, drawn as plain SVG (uPlot has none; a hundred lines of SVG beat a
// second library): one line per scored trial across every hyperparameter that varied, then
// the score. Dragging along an axis brushes a range on it; only the trials inside every
// brush stay lit, and the trial table shows just those (brushFilter).

import { chartWidth } from "./charts.js";
import { el, fmtScore, fmtValue, svg, trialLabel } from "./util.js";

const SCORE = "score"; // the score axis's key; hyperparameter axes are keyed by their name
const BEST_COLOR = "#e07b00";

const valueOf = (trial, key) => (key === SCORE ? trial.score : trial.hyperparameters[key]);

// How an axis maps a value to [0, 1] (bottom to top), which labels it shows, and how a
// brushed band [p0, p1] of it reads back as values (kept in values, not pixels, so that a
// brush means the same trials after the axis rescales for a new one).
function makeAxis(key, label, values, spaceEntry) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const numeric = present.length > 0 && present.every((v) => typeof v === "number");
  if (numeric) {
    const log =
      spaceEntry && (spaceEntry.type === "pow2" || spaceEntry.sampling === "log") && present.every((v) => v > 0);
    const f = log ? Math.log : (v) => v;
    const inv = log ? Math.exp : (v) => v;
    const lo = Math.min(...present.map(f));
    const hi = Math.max(...present.map(f));
    const pos = (v) => (hi === lo ? 0.5 : (f(v) - lo) / (hi - lo));
    const at = (p) => (hi === lo ? inv(lo) : inv(lo + p * (hi - lo)));
    // A few distinct values (layers, units, batch sizes) are labelled each; a range by its ends.
    const distinct = [...new Set(present)].sort((a, b) => a - b);
    const continuous = spaceEntry && spaceEntry.type === "float" && !spaceEntry.step;
    const ends = [distinct[0], distinct[distinct.length - 1]];
    const labelled = distinct.length <= 6 && !continuous ? distinct : [...new Set(ends)];
    return {
      key,
      label,
      pos,
      ticks: labelled.map((v) => ({ at: pos(v), label: fmtValue(v) })),
      brushOf: (p0, p1) => ({ lo: at(p0), hi: at(p1) }),
      bandOf: (b) => (b.lo === undefined ? null : [pos(b.lo), pos(b.hi)]),
    };
  }
  // Categories in the search space's order when it lists them, else as first seen.
  const seen = present.map(String);
  const declared = spaceEntry && spaceEntry.values ? spaceEntry.values.map(String) : [];
  const categories = [...new Set([...declared.filter((v) => seen.includes(v)), ...seen])];
  const at = (i) => (categories.length === 1 ? 0.5 : i / (categories.length - 1));
  const pos = (v) => at(categories.indexOf(String(v)));
  return {
    key,
    label,
    pos,
    ticks: categories.map((c, i) => ({ at: at(i), label: c })),
    brushOf: (p0, p1) => ({ values: categories.filter((c, i) => at(i) >= p0 && at(i) <= p1) }),
    bandOf: (b) => {
      const ps = (b.values || []).filter((v) => categories.includes(v)).map(pos);
      return ps.length ? [Math.min(...ps), Math.max(...ps)] : null;
    },
  };
}

function inBrush(value, brush) {
  if (value === null || value === undefined) return false;
  if (brush.values) return brush.values.includes(String(value));
  // A hair of slack: the band's ends come back from pixels.
  const slack = 1e-9 * Math.max(1, Math.abs(brush.lo), Math.abs(brush.hi));
  return value >= brush.lo - slack && value <= brush.hi + slack;
}

// The ids of the trials inside every brush, or null when nothing is brushed. Unscored
// trials are not lines, so a brush leaves them out too.
export function brushFilter(trials, brushes) {
  const active = Object.entries(brushes);
  if (!active.length) return null;
  return trials
    .filter((t) => t.score !== null && active.every(([key, b]) => inBrush(valueOf(t, key), b)))
    .map((t) => t.trial_id);
}

export function parallelCoordinates(container, trials, hpNames, space, objective, options) {
  const { brushes = {}, onBrush = () => {} } = options;
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
    makeAxis(name, name, scored.map((t) => t.hyperparameters[name]), spaceOf(name)),
  );
  axes.push(makeAxis(SCORE, objective.name, scored.map((t) => t.score), null));

  const width = chartWidth(container);
  const height = 300;
  const margin = { top: 44, bottom: 16, left: 40, right: 90 };
  const plotH = height - margin.top - margin.bottom;
  const x = (i) => margin.left + (i * (width - margin.left - margin.right)) / Math.max(1, axes.length - 1);
  const y = (p) => margin.top + (1 - p) * plotH;
  const pAt = (py) => Math.min(1, Math.max(0, 1 - (py - margin.top) / plotH));

  const scores = scored.map((t) => t.score);
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const maximize = objective.direction === "max";
  // 0 = worst, 1 = best, whichever way the objective points.
  const quality = (s) => (hi === lo ? 1 : maximize ? (s - lo) / (hi - lo) : (hi - s) / (hi - lo));
  const kept = new Set(brushFilter(scored, brushes) ?? scored.map((t) => t.trial_id));

  const root = svg("svg", { width, height, class: "parcoords", role: "img" });
  root.append(svg("title", {}, "Hyperparameters against score, one line per trial; drag along an axis to filter"));
  const lines = svg("g", { class: "lines" });
  // Filtered-out lines first (underneath), then the kept ones, best on top.
  const ordered = [...scored].sort(
    (a, b) => kept.has(a.trial_id) - kept.has(b.trial_id) || quality(a.score) - quality(b.score),
  );
  for (const trial of ordered) {
    const q = quality(trial.score);
    const isBest = trial.trial_id === options.bestId;
    let d = "";
    let pen = false; // a per-layer `units_i` is absent when the layer is: break the line there
    axes.forEach((axis, i) => {
      const value = valueOf(trial, axis.key);
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
    if (!kept.has(trial.trial_id)) classes.push("filtered");
    lines.append(
      svg(
        "path",
        {
          d,
          class: classes.join(" "),
          stroke: isBest ? BEST_COLOR : `hsl(215, 60%, ${82 - 52 * q}%)`,
          "data-trial-id": trial.trial_id,
          onclick: () => options.onSelect(trial.trial_id),
        },
        svg("title", {}, `trial ${trialLabel(trial.trial_id)}: ${fmtScore(trial.score)}`),
      ),
    );
  }
  root.append(lines);

  axes.forEach((axis, i) => {
    const g = svg("g", { class: "axis", "data-axis": axis.key });
    g.append(svg("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1) }));
    // Names alternate between two rows so that long neighbours do not overlap.
    g.append(svg("text", { x: x(i), y: i % 2 ? 30 : 14, class: "axis-name" }, axis.label));
    for (const tick of axis.ticks) {
      g.append(svg("text", { x: x(i) + 4, y: y(tick.at) + 4, class: "tick" }, tick.label));
    }
    const band = brushes[axis.key] && axis.bandOf(brushes[axis.key]);
    const shown = svg("rect", { class: "brush", x: x(i) - 7, width: 14, y: 0, height: 0 });
    const place = (p0, p1) => {
      shown.setAttribute("y", y(Math.max(p0, p1)) - 3);
      shown.setAttribute("height", Math.abs(y(p0) - y(p1)) + 6);
    };
    if (band) place(band[0], band[1]);
    else shown.setAttribute("visibility", "hidden");
    g.append(shown);
    // The zone that takes the drag: the axis's height, a finger wide.
    const zone = svg("rect", { class: "brush-zone", x: x(i) - 14, width: 28, y: y(1) - 8, height: plotH + 16 });
    let start = null;
    const local = (event) => event.clientY - root.getBoundingClientRect().top;
    zone.addEventListener("pointerdown", (event) => {
      start = pAt(local(event));
      zone.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    zone.addEventListener("pointermove", (event) => {
      if (start === null) return;
      shown.removeAttribute("visibility");
      place(start, pAt(local(event)));
    });
    zone.addEventListener("pointerup", (event) => {
      if (start === null) return;
      const end = pAt(local(event));
      const [p0, p1] = [Math.min(start, end), Math.max(start, end)];
      start = null;
      const next = { ...brushes };
      // A click without a drag clears the axis's brush.
      if (Math.abs(y(p0) - y(p1)) < 4) delete next[axis.key];
      else next[axis.key] = axis.brushOf(p0, p1);
      onBrush(next);
    });
    zone.append(svg("title", {}, `drag to filter by ${axis.label}; click to clear`));
    g.append(zone);
    root.append(g);
  });
  container.append(root);
}
