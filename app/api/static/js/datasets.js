// The datasets page: every uploaded dataset (name, rows, task, target, upload time), with a
// link to its jobs, a new job on it, and a delete that the API refuses (409) while a job
// uses it. Read when the page opens and after a delete: datasets change only by hand.

import { apiPath, del, getAll } from "./api.js";
import { confirmAction } from "./dialog.js";
import { el, fmtTime, shortId, toast } from "./util.js";

function datasetRow(ds, onDelete) {
  const id = encodeURIComponent(ds.id);
  return el(
    "tr",
    { dataset: { datasetId: ds.id } },
    el("td", { class: "dataset-name" }, ds.name),
    el("td", { class: "mono", title: ds.id }, shortId(ds.id)),
    el("td", { class: "num" }, String(ds.rows)),
    el("td", {}, ds.task),
    el("td", {}, ds.target),
    el("td", { class: "muted", title: ds.created_at }, fmtTime(ds.created_at)),
    el(
      "td",
      { class: "actions tight" },
      el("a", { class: "button", href: `#/?dataset=${id}` }, "Jobs"),
      el("a", { class: "button", href: `#/new?dataset=${id}` }, "New job"),
      el("button", { type: "button", class: "danger delete-dataset", onclick: () => onDelete(ds) }, "Delete"),
    ),
  );
}

export function renderDatasets(view) {
  const body = el("tbody");
  const count = el("span", { class: "muted" });
  const empty = el(
    "p",
    { class: "empty", hidden: true },
    "No datasets yet. ",
    el("a", { href: "#/new" }, "Upload one"),
    ".",
  );
  view.append(
    el(
      "section",
      { class: "panel" },
      el(
        "div",
        { class: "panel-head" },
        el("h1", {}, "Datasets ", count),
        el("div", { class: "actions tight" }, el("a", { class: "button primary", href: "#/new" }, "Upload")),
      ),
      el(
        "table",
        { class: "table", id: "datasets-table" },
        el("thead", {}, el("tr", {}, ["Name", "Id", "Rows", "Task", "Target", "Uploaded", ""].map((h) => el("th", {}, h)))),
        body,
      ),
      empty,
    ),
  );
  let stopped = false;

  async function onDelete(ds) {
    const ok = await confirmAction({
      title: `Delete dataset ${ds.name}?`,
      message: `Dataset ${ds.name} (${shortId(ds.id)}, ${ds.rows} rows) and its file are deleted. This cannot be undone.`,
      confirm: "Delete dataset",
    });
    if (!ok) return;
    try {
      await del(apiPath`/datasets/${ds.id}`);
      toast(`Dataset ${ds.name} deleted.`, "info");
    } catch (e) {
      // 409 while a job uses it: the server's message says how many.
      toast(e.status === 409 ? `${e.message}: delete those jobs first.` : e.message);
    }
    await load();
  }

  async function load() {
    try {
      const items = await getAll("/datasets");
      if (stopped) return;
      body.replaceChildren(...items.map((ds) => datasetRow(ds, onDelete)));
      count.textContent = `(${items.length})`;
      empty.hidden = items.length > 0;
    } catch (e) {
      toast(e.message);
    }
  }

  load();
  return () => {
    stopped = true;
  };
}
