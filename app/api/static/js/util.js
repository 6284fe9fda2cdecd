// Small DOM and formatting helpers shared by the views.

// el("td", {class: "num", dataset: {id: 1}}, "text", child): every string becomes a text node,
// so values from the API (column names, error messages) can never inject markup.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function fmtScore(value) {
  if (value === null || value === undefined) return "—";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e5)) return value.toExponential(3);
  return value.toFixed(4);
}

export function fmtValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && !Number.isInteger(value)) {
    const abs = Math.abs(value);
    return abs !== 0 && abs < 1e-2 ? value.toExponential(2) : String(+value.toPrecision(4));
  }
  return String(value);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

// Whole seconds, for a clock and a budget: "18 s", "1 min 12 s", "2 min", "1 h 5 min".
export function fmtClock(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const minutes = Math.round((s % 3600) / 60);
  return `${Math.floor(s / 3600)} h${minutes ? ` ${minutes} min` : ""}`;
}

// The API's datetimes are UTC; an older migration may store them without a zone suffix.
export function parseTime(value) {
  if (!value) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
}

export function fmtAge(value) {
  const time = parseTime(value);
  if (!time) return "—";
  const seconds = Math.max(0, (Date.now() - time.getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function shortId(id) {
  return id.slice(0, 8);
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${status.toLowerCase()}` }, status.toLowerCase());
}

// `label` and `title` default to trials ("3 / 20"); a budgeted job's bar is its time
// (budget.js), with its own words.
export function progressBar(done, planned, { label, title } = {}) {
  const pct = planned ? Math.min(100, Math.round((100 * done) / planned)) : 0;
  return el(
    "div",
    { class: "progress", title: title ?? `${done} of ${planned} trials` },
    el("div", { class: "progress-fill", style: `width: ${pct}%` }),
    el("span", { class: "progress-label" }, label ?? `${done} / ${planned}`),
  );
}

// The toast sits in the page header (index.html), never over the page: it cannot hide a
// control. It goes by itself, on a click, or when the view changes (a stale message about
// the previous page would only mislead).
const TOAST_MS = { error: 8000, info: 5000 };
let toastTimer = null;

export function dismissToast() {
  clearTimeout(toastTimer);
  document.getElementById("toast").hidden = true;
}

export function toast(message, kind = "error") {
  const box = document.getElementById("toast");
  box.querySelector(".toast-text").textContent = message;
  box.className = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(dismissToast, TOAST_MS[kind] || TOAST_MS.error);
}

// Runs `task` now and then every `ms` after it finishes (never two at once); `stop()` ends it.
// A failed run shows its error and the polling goes on: the server may just be restarting.
export function poll(task, ms) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      const again = await task();
      if (again === false) return;
    } catch (error) {
      if (!stopped) toast(error.message);
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

// A job's name when the API has them (`name`, or the submitted spec's), else its short id.
export function jobName(job) {
  return job.name || job.spec?.name || null;
}

export function jobLabel(job) {
  return jobName(job) || shortId(job.id);
}

// The job's dataset by name: the API reads it with the job (`dataset_name`), so no view
// looks datasets up to name them; the short id only if a name is ever missing.
export function datasetLabel(job) {
  return job.dataset_name || shortId(job.dataset_id);
}

// How a trial id is shown. KerasTuner pads its ids to the width of max_trials ("0003" under
// Hyperband, "03" with 20 trials) and the Optuna oracles do not ("3"): a numeric id is shown
// as its number under every algorithm. Display only: requests and data-trial-id keep the
// stored id, which the API needs verbatim.
export function trialLabel(id) {
  const text = String(id);
  return /^\d+$/.test(text) ? text.replace(/^0+(?=\d)/, "") : text;
}

// Colours told apart by most eyes (Okabe-Ito), for one line per trial or per job.
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442"];

export function fmtTime(value) {
  const time = parseTime(value);
  if (!time) return "—";
  return time.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// The objective a job's score is: a multi-objective job's first (KerasTuner's score).
export function scoreObjective(spec) {
  return (Array.isArray(spec.objective) ? spec.objective[0] : spec.objective) || {};
}

// An SVG element, for the charts drawn without uPlot (parallel coordinates, the Pareto
// front); attributes named on<event> become listeners.
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}
