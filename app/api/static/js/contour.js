// The contour plot (optuna-dashboard's): two hyperparameters, chosen in two selects, on x and
// y, the score as colour. The trials are points over a 20x20 grid whose cells take the score
// interpolated from them by inverse-distance weighting: a rough map of where the good region
// lies, not a model of it (it is only as dense as the trials). Categories are evenly spaced.

import {
  frame,
  hpAxis,
  hpSelect,
  notEnough,
  plotPanel,
  plottedTrials,
  qualityColor,
  scoreCaption,
  varyingNames,
} from "./plots.js";
import { el, fmtScore, fmtValue, scoreObjective, svg, trialLabel } from "./util.js";

const MIN_TRIALS = 3;
const GRID = 20;
const LEGEND_W = 90; // the colour legend's strip, right of the plot

// The score at (u, v) from points {u, v, score}: their average weighted by 1 / distance².
function interpolate(points, u, v) {
  let sum = 0;
  let weights = 0;
  for (const p of points) {
    const d2 = (p.u - u) ** 2 + (p.v - v) ** 2;
    if (d2 < 1e-12) return p.score;
    sum += p.score / d2;
    weights += 1 / d2;
  }
  return sum / weights;
}

function legend(f, lo, hi, maximize) {
  const g = svg("g", { class: "contour-legend" });
  const left = f.width - LEGEND_W + 24;
  const steps = 24;
  const top = f.y(1);
  const h = (f.y(0) - f.y(1)) / steps;
  // Best at the top, whichever way the objective points.
  for (let i = 0; i < steps; i++) {
    g.append(svg("rect", { x: left, y: top + i * h, width: 14, height: h + 0.5, fill: qualityColor(1 - i / (steps - 1)) }));
  }
  const [best, worst] = maximize ? [hi, lo] : [lo, hi];
  g.append(
    svg("text", { x: left + 18, y: top + 9, class: "tick", "data-legend": "best" }, fmtScore(best)),
    svg("text", { x: left + 18, y: f.y(0), class: "tick", "data-legend": "worst" }, fmtScore(worst)),
    svg("text", { x: left - 4, y: top - 2, class: "tick" }, "better"),
  );
  return g;
}

// `onSelect(trialId)`: a click on a point opens its trial.
export function contourPanel({ onSelect }) {
  const xParam = hpSelect({ id: "contour-x", "aria-label": "x hyperparameter" }, () => redraw());
  const yParam = hpSelect({ id: "contour-y", "aria-label": "y hyperparameter" }, () => redraw());
  const { element, caption, plot, empty } = plotPanel(
    "contour-panel",
    "Contour: two hyperparameters against the score",
    el("label", { class: "field inline" }, el("span", {}, "x"), xParam.select),
    el("label", { class: "field inline" }, el("span", {}, "y"), yParam.select),
  );
  let last = null;
  let drawnKey = null;

  function redraw() {
    if (!last) return;
    const { job, trials } = last;
    const plotted = plottedTrials(trials);
    const names = varyingNames(job, plotted);
    const xName = xParam.offer(names, names[0]);
    const yName = yParam.offer(names, names.find((n) => n !== xName));
    xParam.select.disabled = yParam.select.disabled = names.length < 2;
    caption.textContent = `${scoreCaption(job, trials, plotted)} The grid interpolates the points (inverse-distance weighting).`;
    const key = JSON.stringify([plotted.map((t) => [t.trial_id, t.score, t.hyperparameters]), xName, yName, job.spec.objective]);
    if (key === drawnKey) return;
    drawnKey = key;
    if (plotted.length < MIN_TRIALS) return empty(notEnough("contour plot", MIN_TRIALS, plotted.length));
    if (names.length < 2) return empty("Fewer than two hyperparameters took more than one value: nothing to map.");
    if (xName === yName) return empty("Choose two different hyperparameters.");

    const has = (t, n) => t.hyperparameters[n] !== undefined && t.hyperparameters[n] !== null;
    const trialsXY = plotted.filter((t) => has(t, xName) && has(t, yName));
    if (trialsXY.length < MIN_TRIALS) return empty(notEnough("contour plot", MIN_TRIALS, trialsXY.length));
    const xAxis = hpAxis(job, xName, trialsXY.map((t) => t.hyperparameters[xName]));
    const yAxis = hpAxis(job, yName, trialsXY.map((t) => t.hyperparameters[yName]));
    const points = trialsXY.map((t) => ({
      trial: t,
      u: xAxis.pos(t.hyperparameters[xName]),
      v: yAxis.pos(t.hyperparameters[yName]),
      score: t.score,
    }));
    const scores = points.map((p) => p.score);
    const lo = Math.min(...scores);
    const hi = Math.max(...scores);
    const objective = scoreObjective(job.spec);
    const maximize = objective.direction === "max";
    const quality = (s) => (hi === lo ? 1 : maximize ? (s - lo) / (hi - lo) : (hi - s) / (hi - lo));

    plot.replaceChildren();
    const f = frame(plot, {
      xAxis,
      yAxis,
      xLabel: xName,
      yLabel: yName,
      className: "contour-plot",
      right: LEGEND_W,
      height: 340,
      title: `${objective.name} over ${xName} and ${yName}: completed trials over an interpolated grid`,
    });
    const grid = svg("g", { class: "contour-grid" });
    const cellW = (f.x(1) - f.x(0)) / GRID;
    const cellH = (f.y(0) - f.y(1)) / GRID;
    for (let i = 0; i < GRID; i++) {
      for (let j = 0; j < GRID; j++) {
        const score = interpolate(points, (i + 0.5) / GRID, (j + 0.5) / GRID);
        grid.append(
          svg("rect", {
            x: (f.x(0) + i * cellW).toFixed(1),
            y: (f.y(1) + (GRID - 1 - j) * cellH).toFixed(1),
            // A hair wider, so no seam shows between cells.
            width: (cellW + 0.5).toFixed(1),
            height: (cellH + 0.5).toFixed(1),
            class: "contour-cell",
            fill: qualityColor(quality(score)),
          }),
        );
      }
    }
    // Under the axes, so their lines stay visible.
    f.root.insertBefore(grid, f.root.querySelector(".axes"));
    const dots = svg("g", { class: "points" });
    for (const p of points) {
      const t = p.trial;
      dots.append(
        svg(
          "circle",
          {
            cx: f.x(p.u).toFixed(1),
            cy: f.y(p.v).toFixed(1),
            r: 5,
            class: "contour-point",
            fill: qualityColor(quality(t.score)),
            "data-trial-id": t.trial_id,
            onclick: () => onSelect(t.trial_id),
          },
          svg(
            "title",
            {},
            `trial ${trialLabel(t.trial_id)}: ${xName} ${fmtValue(t.hyperparameters[xName])}, ` +
              `${yName} ${fmtValue(t.hyperparameters[yName])}, ${objective.name} ${fmtScore(t.score)}`,
          ),
        ),
      );
    }
    f.root.append(dots, legend(f, lo, hi, maximize));
    plot.append(f.root);
  }

  function show(job, trials) {
    last = { job, trials };
    redraw();
  }

  return { element, show, invalidate: () => (drawnKey = null) };
}
