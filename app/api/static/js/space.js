// The search-space editor: one row per hyperparameter, pre-filled with the seeded default
// space the API gives for the dataset (GET /datasets/{id}/search_space). The server
// validates what is sent and names the offending field; the editor only shapes the JSON.

import { el } from "./util.js";

const TYPES = ["int", "float", "pow2", "choice", "boolean", "fixed"];

// The fields each type takes (app.search_space), in the order they are shown.
const FIELDS = {
  int: ["min", "max", "step", "sampling", "default"],
  float: ["min", "max", "step", "sampling", "default"],
  pow2: ["min", "max", "default"],
  choice: ["values", "default"],
  boolean: ["default"],
  fixed: ["value"],
};
const NUMERIC = new Set(["min", "max", "step"]);

// "true" / "false" are booleans, anything that reads as a number is one, the rest is text:
// the choice of activations and the choice of batch sizes are typed the same way.
export function parseScalar(text) {
  const value = text.trim();
  if (value === "true" || value === "false") return value === "true";
  if (value !== "" && !Number.isNaN(Number(value))) return Number(value);
  return value;
}

function show(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.map(String).join(", ");
  return String(value);
}

function fieldInput(name, type, value) {
  const attrs = { dataset: { field: name }, "aria-label": name };
  if (name === "sampling") {
    return el(
      "select",
      attrs,
      ["linear", "log"].map((s) => el("option", { value: s, selected: (value || "linear") === s }, s)),
    );
  }
  if (name === "default" && type === "boolean") {
    return el(
      "select",
      attrs,
      ["false", "true"].map((s) => el("option", { value: s, selected: String(value ?? false) === s }, s)),
    );
  }
  const numeric = NUMERIC.has(name) || (name === "default" && ["int", "float", "pow2"].includes(type));
  return el("input", {
    ...attrs,
    type: numeric ? "number" : "text",
    step: numeric ? "any" : undefined,
    placeholder: name === "values" ? "a, b, c" : name === "min" || name === "max" ? "seeded" : "",
    value: show(value),
    class: name === "values" ? "wide" : "",
  });
}

function fieldsOf(row) {
  return row.querySelector(".fields");
}

function drawFields(row, type, entry) {
  fieldsOf(row).replaceChildren(
    ...FIELDS[type].map((name) =>
      el("label", { class: "field" }, el("span", {}, name), fieldInput(name, type, entry[name])),
    ),
  );
}

// Reads one row back into a search-space entry; empty fields are left out (server defaults).
function readRow(row) {
  const type = row.querySelector("[data-field=type]").value;
  const entry = { type };
  for (const input of fieldsOf(row).querySelectorAll("[data-field]")) {
    const name = input.dataset.field;
    const text = input.value.trim();
    if (text === "") continue;
    if (name === "values") entry.values = text.split(",").filter((v) => v.trim() !== "").map(parseScalar);
    else if (NUMERIC.has(name)) entry[name] = Number(text);
    else if (name === "sampling") entry.sampling = text;
    else entry[name] = parseScalar(text);
  }
  return entry;
}

export function spaceEditor() {
  const body = el("tbody");
  const table = el(
    "table",
    { class: "table space", id: "space-editor" },
    el("thead", {}, el("tr", {}, el("th", {}, "Hyperparameter"), el("th", {}, "Type"), el("th", {}, "Settings"))),
    body,
  );

  function load(space) {
    body.replaceChildren(
      ...Object.entries(space).map(([name, entry]) => {
        const typeSelect = el(
          "select",
          { dataset: { field: "type" }, "aria-label": `${name} type` },
          TYPES.map((t) => el("option", { value: t, selected: t === entry.type }, t)),
        );
        const row = el(
          "tr",
          { dataset: { param: name } },
          el("th", { class: "mono" }, name),
          el("td", {}, typeSelect),
          el("td", { class: "fields" }),
        );
        // Switching type keeps the values the new type also has (min/max, default).
        typeSelect.addEventListener("change", () => drawFields(row, typeSelect.value, readRow(row)));
        drawFields(row, entry.type, entry);
        return row;
      }),
    );
  }

  function read() {
    return Object.fromEntries([...body.rows].map((row) => [row.dataset.param, readRow(row)]));
  }

  // Marks the fields a 422 names (loc ["body", "search_space", name, field...]).
  function markErrors(errors) {
    for (const node of table.querySelectorAll(".invalid")) node.classList.remove("invalid");
    for (const error of errors || []) {
      const [where, section, param, field] = error.loc || [];
      if (where !== "body" || section !== "search_space") continue;
      const row = body.querySelector(`tr[data-param="${CSS.escape(String(param))}"]`);
      if (!row) continue;
      const input = field && row.querySelector(`[data-field="${CSS.escape(String(field))}"]`);
      (input || row).classList.add("invalid");
      row.title = error.msg;
    }
  }

  return { table, load, read, markErrors };
}
