// The learning-curves panel: any recorded metric (training and validation together, or one
// alone, or the learning rate) of the selected trial and of every trial ticked in the table,
// overlaid, on a linear or a log scale.

import { ApiError, apiPath, get } from "./api.js";
import { COLORS, curveChart } from "./charts.js";
import { PALETTE, el, toast, trialLabel } from "./util.js";

// The metrics a model compiles (app.search.spec.TASK_METRICS) come first, in this order.
const ORDER = ["loss", "accuracy", "mae", "learning_rate"];

function metricKeys(details) {
  const keys = new Set();
  for (const d of details) {
    for (const row of d.metrics) {
      for (const [k, v] of Object.entries(row)) if (k !== "epoch" && v !== null) keys.add(k);
    }
  }
  const rank = (k) => {
    const i = ORDER.indexOf(k.replace(/^val_/, ""));
    return [i === -1 ? ORDER.length : i, k.startsWith("val_") ? 1 : 0];
  };
  return [...keys].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    return ra[0] - rb[0] || ra[1] - rb[1] || a.localeCompare(b);
  });
}

// "pair:loss" draws loss and val_loss together; "one:<key>" one metric alone.
function metricChoices(keys) {
  const pairs = keys.filter((k) => !k.startsWith("val_") && keys.includes(`val_${k}`));
  return [
    ...pairs.map((k) => [`pair:${k}`, `${k} & val_${k}`]),
    ...keys.map((k) => [`one:${k}`, k]),
  ];
}

function buildSeries(details, choice) {
  const [mode, base] = choice.split(":");
  const keys = mode === "pair" ? [base, `val_${base}`] : [base];
  const xs = [...new Set(details.flatMap((d) => d.metrics.map((r) => r.epoch)))].sort((a, b) => a - b);
  const single = details.length === 1;
  const series = [];
  details.forEach((detail, i) => {
    const byEpoch = new Map(detail.metrics.map((r) => [r.epoch, r]));
    keys.forEach((key, k) => {
      const validation = key.startsWith("val_");
      const name = mode === "pair" ? `${validation ? "validation" : "training"} ${base}` : key;
      series.push({
        label: single ? name : `trial ${trialLabel(detail.trial_id)} ${key}`,
        color: single ? (k ? COLORS.valLoss : COLORS.loss) : PALETTE[i % PALETTE.length],
        // Several trials: colour tells the trial, a dash its validation curve.
        dash: !single && validation ? [6, 4] : undefined,
        values: xs.map((x) => byEpoch.get(x)?.[key] ?? null),
      });
    });
  });
  return { xs, series, yLabel: base };
}

export function curvesPanel(jobId) {
  const cache = new Map(); // trial id -> {key, detail}
  const state = { ids: [], trials: [], drawnKey: null, seq: 0 };
  const title = el("h2", { id: "curves-title" }, "Learning curves");
  const metric = el("select", { id: "curve-metric", "aria-label": "metric" });
  const log = el("input", { type: "checkbox", id: "curve-log" });
  const controls = el(
    "div",
    { class: "row tight", id: "curve-controls", hidden: true },
    el("label", { class: "field inline" }, el("span", {}, "Metric"), metric),
    el("label", { class: "field inline" }, log, el("span", {}, "log scale")),
  );
  const chart = el("div", { id: "curves" });
  const element = el("section", { class: "panel", id: "curves-panel" }, title, controls, chart);

  async function detailOf(id) {
    const listed = state.trials.find((t) => t.trial_id === id);
    const key = JSON.stringify([listed && listed.epochs_run, listed && listed.status]);
    const hit = cache.get(id);
    if (hit && hit.key === key) return hit.detail;
    try {
      const detail = await get(apiPath`/jobs/${jobId}/trials/${id}`);
      cache.set(id, { key, detail });
      return detail;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null; // not recorded yet
      throw e;
    }
  }

  function drawTitle(details) {
    const [first, ...others] = details;
    title.replaceChildren(
      "Learning curves: trial ",
      el("span", { class: "mono", id: "curves-trial-id", dataset: { trialId: first.trial_id } }, trialLabel(first.trial_id)),
      first.status === "RUNNING" ? el("span", { class: "muted" }, " (running)") : "",
      others.length
        ? el("span", { class: "muted", id: "curves-overlaid" }, ` with ${others.map((d) => trialLabel(d.trial_id)).join(", ")}`)
        : "",
    );
  }

  function syncChoices(details) {
    const choices = metricChoices(metricKeys(details));
    const values = choices.map(([v]) => v);
    if (JSON.stringify(values) !== JSON.stringify([...metric.options].map((o) => o.value))) {
      const keep = metric.value;
      metric.replaceChildren(...choices.map(([value, text]) => el("option", { value }, text)));
      metric.value = values.includes(keep) ? keep : values[0] || "";
    }
    controls.hidden = !values.length;
  }

  function draw(details) {
    const key = JSON.stringify([
      details.map((d) => [d.trial_id, d.metrics.length, d.status]),
      metric.value,
      log.checked,
    ]);
    if (key === state.drawnKey) return;
    state.drawnKey = key;
    const { xs, series, yLabel } = metric.value
      ? buildSeries(details, metric.value)
      : { xs: [], series: [], yLabel: "" };
    curveChart(chart, { xs, series, yLabel, log: log.checked, trial: details.length === 1 ? details[0] : null });
  }

  // `ids`: the selected trial first, then the ticked ones; `trials`: the job's trial list.
  async function show(ids, trials) {
    state.ids = [...new Set(ids.filter((id) => id !== null))];
    state.trials = trials;
    const seq = ++state.seq;
    if (!state.ids.length) {
      state.drawnKey = null;
      title.textContent = "Learning curves";
      controls.hidden = true;
      chart.replaceChildren(el("p", { class: "empty" }, "Click a trial to see its curves."));
      return;
    }
    const details = (await Promise.all(state.ids.map(detailOf))).filter(Boolean);
    if (seq !== state.seq || !details.length) return; // another selection came meanwhile
    drawTitle(details);
    syncChoices(details);
    draw(details);
  }

  const again = () => {
    state.drawnKey = null;
    show(state.ids, state.trials).catch((e) => toast(e.message));
  };
  metric.addEventListener("change", again);
  log.addEventListener("change", again);

  return { element, show, invalidate: () => (state.drawnKey = null) };
}
