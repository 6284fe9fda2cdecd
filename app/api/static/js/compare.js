// Two or more jobs side by side: each one's best score so far, over the trials it finished or
// over the time since it started, on one chart, a table of their settings and results, and
// the distribution of their scores (edf.js).
// Each line follows its own job's direction; a multi-objective job's line is its first
// objective (its score), and the table says so. Refreshed while any of them runs.

import { apiPath, get, getAll } from "./api.js";
import { compareChart } from "./charts.js";
import { compareEdfPanel } from "./edf.js";
import {
  FINISHED,
  PALETTE,
  datasetLabel,
  el,
  fmtDuration,
  fmtScore,
  jobLabel,
  jobName,
  parseTime,
  poll,
  scoreObjective,
  shortId,
  statusBadge,
} from "./util.js";

const REFRESH_MS = 3000;

// [x, best so far] at each trial that changed or kept the best, in `mode`'s order.
function bestPoints(job, trials, mode) {
  const maximize = scoreObjective(job.spec).direction === "max";
  const start = parseTime(job.started_at);
  let rows;
  if (mode === "time") {
    rows = trials
      .filter((t) => t.finished_at && start)
      .map((t) => [(parseTime(t.finished_at) - start) / 1000, t.score])
      .sort((a, b) => a[0] - b[0]);
  } else {
    rows = trials.map((t, i) => [i + 1, t.score]); // the API lists them in start order
  }
  const points = [];
  let best = null;
  for (const [x, score] of rows) {
    if (score !== null && (best === null || (maximize ? score > best : score < best))) best = score;
    if (best !== null) points.push([x, best]);
  }
  return points;
}

function duration(job) {
  const start = parseTime(job.started_at);
  if (!start) return null;
  return ((parseTime(job.finished_at) || new Date()) - start) / 1000;
}

// "val_accuracy (max)", and for a multi-objective job what else it searched: its line and
// its best are the first objective's.
function objectiveText(spec) {
  const objective = scoreObjective(spec);
  const text = `${objective.name} (${objective.direction})`;
  if (!Array.isArray(spec.objective) || spec.objective.length < 2) return text;
  return `${text}, first of ${spec.objective.length}: ${spec.objective.slice(1).map((o) => o.name).join(", ")} not plotted`;
}

function summaryRow(run, showNames) {
  const { job, trials, color } = run;
  return el(
    "tr",
    { dataset: { jobId: job.id } },
    el("td", {}, el("span", { class: "swatch", style: `border-top: 3px solid ${color}` })),
    el("td", {}, el("a", { href: `#/jobs/${job.id}`, class: "mono" }, shortId(job.id))),
    showNames ? el("td", { class: "job-name" }, jobName(job) || "") : null,
    el("td", {}, statusBadge(job.status)),
    el("td", {}, job.spec.tuner.algorithm),
    el("td", {}, datasetLabel(job)),
    el("td", { class: "compare-objective" }, objectiveText(job.spec)),
    el("td", { class: "num compare-best" }, job.best ? fmtScore(job.best.score) : "—"),
    el("td", { class: "num" }, String(trials.length)),
    el("td", { class: "num" }, fmtDuration(duration(job))),
  );
}

export function renderCompare(view, jobIds) {
  let runs = [];
  let drawnKey = null;
  const mode = el(
    "select",
    { id: "compare-x", "aria-label": "x axis" },
    el("option", { value: "trials" }, "over trials finished"),
    el("option", { value: "time" }, "over time since the job started"),
  );
  const warning = el("p", { class: "error-box", id: "compare-warning", hidden: true });
  const chart = el("div", { id: "compare-chart" });
  const head = el("thead");
  const body = el("tbody");
  const edf = compareEdfPanel();
  view.append(
    el(
      "section",
      { class: "panel" },
      el("a", { href: "#/", class: "back" }, "← Jobs"),
      el("h1", {}, `Comparing ${jobIds.length} jobs`),
      el("table", { class: "table", id: "compare-table" }, head, body),
    ),
    el(
      "section",
      { class: "panel" },
      el("div", { class: "panel-head" }, el("h2", {}, "Best score so far"), el("label", { class: "field inline" }, el("span", {}, "x axis"), mode)),
      warning,
      chart,
    ),
    edf.element,
  );

  function draw() {
    const key = JSON.stringify([runs.map((r) => [r.job, r.trials]), mode.value]);
    if (key === drawnKey) return;
    drawnKey = key;
    // A name column only when some job has a name (the API may not take names yet).
    const showNames = runs.some((run) => jobName(run.job));
    const heads = ["", "Job", ...(showNames ? ["Name"] : []), "Status", "Algorithm", "Dataset", "Objective", "Best", "Trials", "Duration"];
    head.replaceChildren(el("tr", {}, heads.map((h) => el("th", {}, h))));
    body.replaceChildren(...runs.map((run) => summaryRow(run, showNames)));
    const objectives = new Set(runs.map((r) => `${scoreObjective(r.job.spec).name} (${scoreObjective(r.job.spec).direction})`));
    warning.hidden = objectives.size < 2;
    warning.textContent = `These jobs optimize different objectives (${[...objectives].join(", ")}): their scores do not share a scale.`;
    const yLabel = objectives.size === 1 ? scoreObjective(runs[0].job.spec).name : "score";
    compareChart(
      chart,
      runs.map((run) => ({ label: jobLabel(run.job), color: run.color, points: bestPoints(run.job, run.trials, mode.value) })),
      { xLabel: mode.value === "time" ? "seconds since the job started" : "trials finished", yLabel },
    );
    edf.show(runs.map((run) => ({ ...run, label: jobLabel(run.job) })));
  }

  mode.addEventListener("change", draw);

  return poll(async () => {
    const loaded = await Promise.all(
      jobIds.map(async (id) => {
        const [job, trials] = await Promise.all([get(apiPath`/jobs/${id}`), getAll(apiPath`/jobs/${id}/trials`, 1000)]);
        return { job, trials };
      }),
    );
    runs = loaded.map((run, i) => ({ ...run, color: PALETTE[i % PALETTE.length] }));
    draw();
    return runs.some((run) => !FINISHED.has(run.job.status));
  }, REFRESH_MS);
}
