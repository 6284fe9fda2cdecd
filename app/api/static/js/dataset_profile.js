// A dataset as the new-job form shows it: its profile (rows, columns with their kind and
// missing values, target, task, recommended units), its line in the dataset dropdown, and
// the column names of a CSV about to be uploaded (offered as targets).

import { el, fmtTime, fmtValue, shortId } from "./util.js";

// The column names of a CSV's header line (quoted names may hold commas), to offer as targets.
export function csvHeader(text) {
  const names = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      names.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") break;
    else field += c;
  }
  names.push(field);
  return names.filter((n) => n !== "");
}

export function datasetSummary(ds) {
  const row = (label, value, id) => el("tr", {}, el("th", {}, label), el("td", { dataset: { summary: id } }, value));
  return el(
    "table",
    { class: "table compact", id: "dataset-summary" },
    el(
      "tbody",
      {},
      row("Name", ds.name, "name"),
      row("Rows", `${ds.rows}${ds.rows_dropped ? ` (${ds.rows_dropped} without a target left out)` : ""}`, "rows"),
      row(
        "Columns",
        el(
          "span",
          {},
          `${ds.input_columns.length} inputs: `,
          ds.columns.map((c, i) =>
            el(
              "span",
              { class: "column", title: `${c.kind}, ${c.missing} missing` },
              i ? ", " : "",
              c.name,
              el("span", { class: "muted small" }, ` (${c.kind}${c.missing ? `, ${c.missing} missing` : ""})`),
            ),
          ),
        ),
        "columns",
      ),
      row("Target", ds.target, "target"),
      row("Task", ds.task + (ds.classes ? `: ${ds.classes.map(fmtValue).join(", ")}` : ""), "task"),
      row("Features after encoding", String(ds.features), "features"),
      row("Recommended units", String(ds.recommended_units), "recommended-units"),
      row("Units range", `${ds.units_range[0]} – ${ds.units_range[1]}`, "units-range"),
    ),
  );
}

// Several uploads of one file share its name: rows, upload time and id tell them apart.
export function datasetOption(ds) {
  const text = `${ds.name} · ${ds.rows} rows · ${fmtTime(ds.created_at)} · ${shortId(ds.id)}`;
  return el("option", { value: ds.id, title: ds.id }, text);
}
