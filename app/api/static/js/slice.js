// The slice plot (optuna-dashboard's): one hyperparameter, chosen in a select, against the
// score, one point per completed trial, coloured by trial order. A trial without that
// hyperparameter (a per-layer `units_1` of a one-layer trial) is left out of its slice.

import {
  frame,
  hpAxis,
  hpSelect,
  notEnough,
  numericAxis,
  orderColor,
  plotPanel,
  plottedTrials,
  scoreCaption,
  varyingNames,
} from "./plots.js";
import { el, fmtScore, fmtValue, scoreObjective, svg, trialLabel } from "./util.js";

const MIN_TRIALS = 2;

// `onSelect(trialId)`: a click on a point opens its trial.
export function slicePanel({ onSelect }) {
  const param = hpSelect({ id: "slice-param", "aria-label": "hyperparameter" }, () => redraw());
  const { element, caption, plot, empty } = plotPanel(
    "slice-panel",
    "Slice: a hyperparameter against the score",
    el("label", { class: "field inline" }, el("span", {}, "hyperparameter"), param.select),
  );
  let last = null;
  let drawnKey = null;

  function redraw() {
    if (!last) return;
    const { job, trials } = last;
    const plotted = plottedTrials(trials);
    const names = varyingNames(job, plotted);
    const name = param.offer(names);
    param.select.disabled = names.length === 0;
    caption.textContent = `${scoreCaption(job, trials, plotted)} Darker points are later trials.`;
    const key = JSON.stringify([plotted.map((t) => [t.trial_id, t.score, t.hyperparameters]), name, job.spec.objective]);
    if (key === drawnKey) return;
    drawnKey = key;
    if (plotted.length < MIN_TRIALS) return empty(notEnough("slice plot", MIN_TRIALS, plotted.length));
    if (!names.length) return empty("Every hyperparameter took one value in these trials: nothing to slice.");

    // Colour by the trial's place among all plotted trials, whether or not it has `name`.
    const order = new Map(plotted.map((t, i) => [t.trial_id, i]));
    const points = plotted.filter((t) => t.hyperparameters[name] !== undefined && t.hyperparameters[name] !== null);
    const xAxis = hpAxis(job, name, points.map((t) => t.hyperparameters[name]));
    const yAxis = numericAxis(points.map((t) => t.score));
    const objective = scoreObjective(job.spec);
    plot.replaceChildren();
    const f = frame(plot, {
      xAxis,
      yAxis,
      xLabel: name,
      yLabel: objective.name,
      className: "slice-plot",
      title: `${name} against ${objective.name}, one point per completed trial`,
    });
    const dots = svg("g", { class: "points" });
    for (const t of points) {
      const value = t.hyperparameters[name];
      dots.append(
        svg(
          "circle",
          {
            cx: f.x(xAxis.pos(value)).toFixed(1),
            cy: f.y(yAxis.pos(t.score)).toFixed(1),
            r: 5,
            class: "slice-point",
            fill: orderColor(order.get(t.trial_id), plotted.length),
            "data-trial-id": t.trial_id,
            onclick: () => onSelect(t.trial_id),
          },
          svg("title", {}, `trial ${trialLabel(t.trial_id)}: ${name} ${fmtValue(value)}, ${objective.name} ${fmtScore(t.score)}`),
        ),
      );
    }
    f.root.append(dots);
    plot.append(f.root);
  }

  function show(job, trials) {
    last = { job, trials };
    redraw();
  }

  return { element, show, invalidate: () => (drawnKey = null) };
}
