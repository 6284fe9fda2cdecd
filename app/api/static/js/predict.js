// Predict one row with a succeeded job's model (its best trial's, or its ensemble's): a field
// per input column of the dataset (a number or a category, as profiled at upload), posted to
// POST /jobs/{id}/predict, and the answer shown: the label with each class's probability, or
// the value.

import { ApiError, apiPath, post } from "./api.js";
import { el, fmtScore, fmtValue } from "./util.js";

function fieldFor(column) {
  const numeric = column.kind === "numeric";
  const input = el("input", {
    type: numeric ? "number" : "text",
    step: numeric ? "any" : undefined,
    placeholder: "missing",
    dataset: { column: column.name },
    "aria-label": column.name,
  });
  const hint = numeric ? "number" : `category${column.categories ? ` (${column.categories} seen)` : ""}`;
  return el("label", { class: "field" }, el("span", {}, column.name), input, el("small", { class: "muted" }, hint));
}

// An empty field is a missing value (null): numbers take the training median, a missing
// category is its own category.
function readRow(form, columns) {
  const row = {};
  for (const column of columns) {
    const input = form.querySelector(`[data-column="${CSS.escape(column.name)}"]`);
    const text = input.value.trim();
    row[column.name] = text === "" ? null : column.kind === "numeric" ? Number(text) : text;
  }
  return row;
}

// The dataset's input columns, in its order, each with the kind its profile gives it.
function inputColumns(dataset) {
  const profiled = new Map(dataset.columns.map((c) => [c.name, c]));
  return dataset.input_columns.map((name) => profiled.get(name) || { name, kind: "categorical" });
}

function answer(prediction) {
  if (prediction.value !== undefined && prediction.value !== null) {
    return el("p", { class: "best-score" }, "Predicted value: ", el("strong", { id: "predict-value" }, fmtScore(prediction.value)));
  }
  const probabilities = Object.entries(prediction.probabilities || {});
  return el(
    "div",
    {},
    el("p", { class: "best-score" }, "Predicted class: ", el("strong", { id: "predict-label" }, fmtValue(prediction.label))),
    el(
      "table",
      { class: "table compact", id: "predict-probabilities" },
      el(
        "tbody",
        {},
        probabilities.map(([label, p]) =>
          el(
            "tr",
            { dataset: { class: label }, class: label === String(prediction.label) ? "selected" : undefined },
            el("th", {}, label),
            el("td", { class: "num" }, p.toFixed(4)), // never exponent form, even when tiny
            el("td", { class: "bar-cell" }, el("div", { class: "bar", style: `width: ${Math.round(p * 100)}%` })),
          ),
        ),
      ),
    ),
  );
}

export function predictPanel(jobId) {
  const form = el("form", { id: "predict-form" });
  const result = el("div", { id: "predict-result", "aria-live": "polite" });
  const error = el("pre", { class: "error-box", id: "predict-error", hidden: true });
  const element = el(
    "section",
    { class: "panel", id: "predict-panel", hidden: true },
    el("h2", {}, "Predict"),
    el("p", { class: "muted small" }, "One row for the job's model; leave a field empty for a missing value."),
    form,
    error,
    result,
  );
  let shownFor = null;

  function show(dataset) {
    if (!dataset || shownFor === dataset.id) return;
    shownFor = dataset.id;
    const columns = inputColumns(dataset);
    const submit = el("button", { type: "submit", class: "primary", id: "predict-submit" }, "Predict");
    form.replaceChildren(
      el("div", { class: "row" }, columns.map(fieldFor)),
      el("div", { class: "actions" }, submit),
    );
    element.hidden = false;
    form.onsubmit = async (event) => {
      event.preventDefault();
      for (const node of form.querySelectorAll(".invalid")) node.classList.remove("invalid");
      submit.disabled = true;
      try {
        const body = await post(apiPath`/jobs/${jobId}/predict`, { rows: [readRow(form, columns)] });
        error.hidden = true;
        result.replaceChildren(answer(body.predictions[0]));
      } catch (e) {
        result.replaceChildren();
        error.hidden = false;
        error.textContent = e.message;
        // A 422 names the column: loc ["body", "rows", 0, column].
        for (const problem of e instanceof ApiError ? e.errors : []) {
          const column = problem.loc && problem.loc[3];
          const input = column !== undefined && form.querySelector(`[data-column="${CSS.escape(String(column))}"]`);
          if (input) input.classList.add("invalid");
        }
      } finally {
        submit.disabled = false;
      }
    };
  }

  return { element, show };
}
