// The new-job form's objectives: one metric and its direction, and with TPE or NSGA-II (the
// algorithms that keep several objectives apart and find a Pareto front) up to three more,
// among them what the search measures per trial: model_params and predict_latency_ms.
// Several are sent as the spec's list form, [{name, direction}, ...] (app.search.objectives).

import { el } from "./util.js";

export const MULTI_OBJECTIVE_ALGORITHMS = new Set(["tpe", "nsga2"]);
const MAX_OBJECTIVES = 4; // app.search.objectives.MAX_OBJECTIVES
// Measured after training, each better when lower; never the first objective (KerasTuner's
// score, early stopping and the checkpoint follow the first, which every epoch must log).
const MEASURED = ["model_params", "predict_latency_ms"];

function directionSelect(attrs) {
  return el(
    "select",
    attrs,
    el("option", { value: "" }, "by metric"),
    el("option", { value: "min" }, "min"),
    el("option", { value: "max" }, "max"),
  );
}

function field(text, input) {
  return el("label", { class: "field" }, el("span", {}, text), input);
}

export function objectivesEditor() {
  let metrics = [];
  let byTask = "val_loss";
  const first = el("select", { id: "job-objective", dataset: { loc: "objective.name" } });
  const firstDirection = directionSelect({ id: "job-direction", dataset: { loc: "objective.direction" } });
  const more = el("div", { id: "objectives", dataset: { loc: "objective" } });
  const add = el("button", { type: "button", id: "add-objective", class: "link-button" }, "+ Add an objective");
  const hint = el("small", { class: "muted", id: "objectives-hint" });
  const element = el(
    "div",
    { class: "objectives" },
    el("div", { class: "row" }, field("Objective", first), field("Direction", firstDirection)),
    more,
    el("div", {}, add, " ", hint),
  );

  const rows = () => [...more.querySelectorAll(".objective-row")];

  function renumber() {
    const listed = rows().length > 0;
    // A 422 names objective.<i>.name for a list, objective.name for one.
    first.dataset.loc = listed ? "objective.0.name" : "objective.name";
    firstDirection.dataset.loc = listed ? "objective.0.direction" : "objective.direction";
    rows().forEach((row, i) => {
      row.querySelector(".objective-name").dataset.loc = `objective.${i + 1}.name`;
      row.querySelector(".objective-direction").dataset.loc = `objective.${i + 1}.direction`;
    });
    add.disabled = rows().length + 1 >= MAX_OBJECTIVES;
  }

  function options(select, names, keep) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(keep) ? keep : names[0];
  }

  function addRow(name, direction = "") {
    const select = el("select", { class: "objective-name", "aria-label": "objective" });
    // The measured ones first: they are what a second objective is usually for.
    const taken = new Set([first.value || byTask, ...rows().map((r) => r.querySelector(".objective-name").value)]);
    const names = [...MEASURED, ...metrics];
    options(select, names, name ?? names.find((n) => !taken.has(n)));
    const dir = directionSelect({ class: "objective-direction", "aria-label": "direction" });
    dir.value = direction;
    const row = el(
      "div",
      { class: "objective-row" },
      field("Objective", select),
      field("Direction", dir),
      el("button", { type: "button", class: "link-button remove-objective", onclick: () => (row.remove(), renumber()) }, "remove"),
    );
    more.append(row);
    renumber();
  }

  add.addEventListener("click", () => addRow());

  // Only TPE and NSGA-II take a list; another algorithm drops the extra rows (the server
  // would refuse them, naming the algorithm).
  function setAlgorithm(algorithm) {
    const multi = MULTI_OBJECTIVE_ALGORITHMS.has(algorithm);
    add.hidden = !multi;
    hint.textContent = multi
      ? "several objectives: the search finds a Pareto front (model_params and predict_latency_ms are measured per trial)"
      : "several objectives need the TPE or NSGA-II algorithm";
    if (!multi) {
      for (const row of rows()) row.remove();
      renumber();
    }
  }

  // `names`: the metrics a model of the dataset's task logs; `fallback`: the server's default.
  function setMetrics(names, fallback) {
    metrics = names;
    byTask = fallback;
    const keep = names.includes(first.value) ? first.value : "";
    first.replaceChildren(el("option", { value: "" }, `default (${fallback})`), ...names.map((n) => el("option", { value: n }, n)));
    first.value = keep;
    for (const row of rows()) {
      const select = row.querySelector(".objective-name");
      options(select, [...MEASURED, ...names], select.value);
    }
  }

  // The spec's `objective` (one, or a list), or undefined to keep the server's default.
  function read() {
    const one = (name, direction) => ({ ...(name ? { name } : {}), ...(direction ? { direction } : {}) });
    const head = one(first.value, firstDirection.value);
    if (!rows().length) return Object.keys(head).length ? head : undefined;
    const rest = rows().map((r) => one(r.querySelector(".objective-name").value, r.querySelector(".objective-direction").value));
    return [head, ...rest];
  }

  // From an earlier job's spec (run again): its objective or objectives, directions included.
  function fill(objective) {
    for (const row of rows()) row.remove();
    const list = Array.isArray(objective) ? objective : objective ? [objective] : [];
    const [head, ...rest] = list;
    first.value = head && metrics.includes(head.name) ? head.name : "";
    firstDirection.value = head?.direction || "";
    for (const o of rest) addRow(o.name, o.direction || "");
    renumber();
  }

  return { element, setAlgorithm, setMetrics, read, fill };
}
