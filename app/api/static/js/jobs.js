// The jobs list: status, algorithm, dataset, progress (its time, under a budget), best score
// and age of every job, refreshed every two seconds so running searches move on screen;
// searched by name, id, notes or dataset, filtered by status and dataset, fifty to a page;
// the server filters and pages (GET /jobs?q=&status=&dataset_id=). Ticking two or more jobs
// opens them side by side (compare.js). The filters live in the URL
// (#/?q=&status=&dataset=&page=), so a reload or the back button keeps them.

import { get, getAll } from "./api.js";
import { jobProgress } from "./budget.js";
import {
  datasetLabel,
  el,
  fmtAge,
  fmtScore,
  jobName,
  poll,
  scoreObjective,
  shortId,
  statusBadge,
  toast,
} from "./util.js";

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
// The server's limit on a search (GET /jobs?q=, app.api.routes.jobs.MAX_SEARCH).
const MAX_SEARCH = 200;
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

function jobRow(job, { picked, onPick }) {
  const objective = scoreObjective(job.spec);
  const best = job.best
    ? el("span", { title: objective.name }, fmtScore(job.best.score))
    : el("span", { class: "muted" }, "—");
  const href = `#/jobs/${encodeURIComponent(job.id)}`;
  const box = el("input", {
    type: "checkbox",
    class: "pick-job",
    "aria-label": `compare job ${shortId(job.id)}`,
    checked: picked.has(job.id),
    onchange: (event) => onPick(job.id, event.target.checked),
  });
  return el(
    "tr",
    { class: "clickable", dataset: { jobId: job.id, status: job.status }, onclick: () => (location.hash = href) },
    // A tick selects the job for comparison; it must not open it.
    el("td", { class: "pick", onclick: (event) => event.stopPropagation() }, box),
    el("td", {}, el("a", { href, class: "mono" }, shortId(job.id))),
    el("td", { class: "job-name" }, jobName(job) || ""),
    el("td", { class: "job-status" }, statusBadge(job.status)),
    el("td", {}, job.spec.tuner.algorithm),
    el("td", { class: "job-dataset" }, datasetLabel(job)),
    el("td", { class: "job-progress" }, jobProgress(job, { compact: true })),
    el("td", { class: "num job-best" }, best, el("span", { class: "muted small" }, ` ${objective.name || ""}`)),
    el("td", { class: "muted", title: job.created_at }, fmtAge(job.created_at)),
  );
}

// The filters as the URL holds them.
function readFilters() {
  const query = location.hash.split("?")[1] || "";
  const params = new URLSearchParams(query);
  return {
    q: params.get("q") || "",
    status: params.get("status") || "",
    dataset: params.get("dataset") || "",
    page: Math.max(0, Number(params.get("page") || 1) - 1) || 0,
  };
}

function writeFilters(filters) {
  const params = new URLSearchParams();
  if (filters.q) params.set("q", filters.q);
  if (filters.status) params.set("status", filters.status);
  if (filters.dataset) params.set("dataset", filters.dataset);
  if (filters.page) params.set("page", String(filters.page + 1));
  const query = params.toString();
  // replaceState fires no hashchange: the view stays, only the address follows the filters.
  history.replaceState(null, "", query ? `#/?${query}` : "#/");
}

export function renderJobs(view) {
  const picked = new Set();
  const filters = readFilters();
  let lastKey = null;
  let latest = { jobs: [], total: 0, all: 0 };

  const head = el("thead");
  const body = el("tbody");
  const count = el("span", { class: "muted", id: "jobs-count" });
  const compare = el("button", { type: "button", id: "compare-jobs", disabled: true }, "Compare");
  const search = el("input", {
    type: "search",
    id: "job-search",
    placeholder: "name, id, notes or dataset",
    maxlength: MAX_SEARCH,
    "aria-label": "search jobs",
    value: filters.q,
  });
  const status = el(
    "select",
    { id: "job-filter-status", "aria-label": "status" },
    el("option", { value: "" }, "any status"),
    STATUSES.map((s) => el("option", { value: s, selected: s === filters.status }, s)),
  );
  const dataset = el("select", { id: "job-filter-dataset", "aria-label": "dataset" }, el("option", { value: "" }, "any dataset"));
  const prev = el("button", { type: "button", id: "jobs-prev" }, "← Newer");
  const next = el("button", { type: "button", id: "jobs-next" }, "Older →");
  const range = el("span", { class: "muted", id: "jobs-range" });
  const empty = el("p", { class: "empty", id: "jobs-empty", hidden: true });
  view.append(
    el(
      "section",
      { class: "panel" },
      el(
        "div",
        { class: "panel-head" },
        el("h1", {}, "Jobs ", count),
        el("div", { class: "actions tight" }, compare, el("a", { class: "button primary", href: "#/new" }, "New job")),
      ),
      el("div", { class: "row filters" }, search, status, dataset),
      el("table", { class: "table", id: "jobs-table" }, head, body),
      empty,
      el("div", { class: "row pager" }, prev, range, next),
    ),
  );

  function syncCompare() {
    compare.disabled = picked.size < 2;
    compare.textContent = picked.size ? `Compare (${picked.size})` : "Compare";
    compare.title = picked.size < 2 ? "tick two or more jobs" : "";
  }

  function onPick(id, on) {
    if (on) picked.add(id);
    else picked.delete(id);
    syncCompare();
  }

  compare.addEventListener("click", () => {
    // In the list's order (newest first), so the comparison's colours follow the table.
    const ids = latest.jobs.map((j) => j.id).filter((id) => picked.has(id));
    location.hash = `#/compare/${ids.map(encodeURIComponent).join(",")}`;
  });

  function draw() {
    const headers = ["", "Job", "Name", "Status", "Algorithm", "Dataset", "Progress", "Best score", "Age"];
    head.replaceChildren(el("tr", {}, headers.map((h) => el("th", {}, h))));
    const options = { picked, onPick };
    body.replaceChildren(...latest.jobs.map((job) => jobRow(job, options)));
    const first = filters.page * PAGE_SIZE;
    range.textContent = latest.total ? `${first + 1}–${first + latest.jobs.length} of ${latest.total}` : "";
    prev.disabled = filters.page === 0;
    next.disabled = first + latest.jobs.length >= latest.total;
    const filtered = filters.q || filters.status || filters.dataset;
    count.textContent = `(${latest.total}${filtered ? " shown" : ""})`;
    empty.hidden = latest.total > 0;
    empty.replaceChildren(
      ...(filtered
        ? ["No job matches these filters."]
        : ["No jobs yet. ", el("a", { href: "#/new" }, "Upload a dataset and start a search"), "."]),
    );
  }

  // One page, filtered by the server: each poll reads fifty jobs, however many there are.
  async function load() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(filters.page * PAGE_SIZE) });
    if (filters.status) params.set("status", filters.status);
    if (filters.dataset) params.set("dataset_id", filters.dataset);
    if (filters.q) params.set("q", filters.q);
    const page = await get(`/jobs?${params}`);
    return { jobs: page.items, total: page.total };
  }

  // Each load is numbered: an answer to filters the user has since changed is dropped.
  let seq = 0;
  async function show() {
    const mine = ++seq;
    let result = await load();
    // Past the last page (jobs deleted meanwhile, or a stale link): back to the first.
    if (!result.jobs.length && filters.page > 0) {
      filters.page = 0;
      writeFilters(filters);
      result = await load();
    }
    if (mine !== seq) return;
    latest = result;
    // Rows are redrawn only when something changed, so a tick box is never replaced
    // under the pointer; the ages move on at the next change.
    const key = JSON.stringify([latest, filters]);
    if (key !== lastKey) {
      lastKey = key;
      draw();
    }
  }

  const stopPolling = poll(show, REFRESH_MS);
  const refresh = () => {
    writeFilters(filters);
    show().catch((e) => toast(e.message));
  };

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      filters.q = search.value.trim();
      filters.page = 0;
      refresh();
    }, 250);
  });
  status.addEventListener("change", () => {
    filters.status = status.value;
    filters.page = 0;
    refresh();
  });
  dataset.addEventListener("change", () => {
    filters.dataset = dataset.value;
    filters.page = 0;
    refresh();
  });
  prev.addEventListener("click", () => {
    filters.page = Math.max(0, filters.page - 1);
    refresh();
  });
  next.addEventListener("click", () => {
    filters.page += 1;
    refresh();
  });

  // The datasets, once, for the filter's choices only: each job names its own dataset
  // (`dataset_name`), so the polled list reads no dataset.
  getAll("/datasets")
    .then((items) => {
      dataset.append(...items.map((d) => el("option", { value: d.id, title: d.id }, `${d.name} · ${shortId(d.id)}`)));
      // A filter from a link (the datasets page) for a dataset that is gone still shows.
      if (filters.dataset && !items.some((d) => d.id === filters.dataset)) {
        dataset.append(el("option", { value: filters.dataset }, shortId(filters.dataset)));
      }
      dataset.value = filters.dataset;
    })
    .catch((e) => toast(e.message));

  return () => {
    stopPolling();
    clearTimeout(typing);
  };
}
