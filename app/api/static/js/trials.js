// The trial table: one row per trial, sortable by any column (score, each hyperparameter,
// duration, ...), with pruned, early-stopped and overfitting trials flagged, a tick per trial
// to overlay its curves, a download for each trial that kept its model, and only the trials
// the parallel coordinates' brushes keep.

import { el, fmtDuration, fmtScore, fmtValue, trialLabel } from "./util.js";

// The order the model builder declares its hyperparameters in (app.search_space.RULES);
// per-layer `units_<i>` go after num_layers, anything unknown goes last.
const DECLARED = [
  "num_layers",
  "units",
  "activation",
  "dropout",
  "kernel_initializer",
  "optimizer",
  "learning_rate",
  "batch_size",
  "l2",
  "batch_norm",
];

function rank(name) {
  const layer = /^units_(\d+)$/.exec(name);
  if (layer) return [DECLARED.indexOf("units"), Number(layer[1])];
  const i = DECLARED.indexOf(name);
  return [i === -1 ? DECLARED.length : i, 0];
}

// Every hyperparameter name the trials carry, in declaration order.
export function hyperparameterNames(trials) {
  const names = new Set(trials.flatMap((t) => Object.keys(t.hyperparameters)));
  return [...names].sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    return ra[0] - rb[0] || ra[1] - rb[1] || a.localeCompare(b);
  });
}

// Hyperparameters the search space fixes: the same in every trial, so not worth a column.
export function fixedNames(space) {
  return new Set(Object.entries(space).filter(([, p]) => p.type === "fixed").map(([n]) => n));
}

function compare(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

// How a trial ended early, if it did: pruned (the job's pruning rule stopped it, below the
// median of the others at the same epoch; its status stays COMPLETED) or stopped early
// (EarlyStopping: its monitored metric stopped improving).
function endBadge(t) {
  if (t.pruned) {
    return el("span", { class: "badge flag-pruned", title: `pruned after ${t.epochs_run} epoch(s)` }, "pruned");
  }
  return t.stopped_early ? el("span", { class: "badge flag-early" }, "stopped early") : "";
}

function columns(hpNames, objective, overlay, models) {
  const hp = hpNames.map((name) => ({
    key: `hp:${name}`,
    label: name,
    value: (t) => t.hyperparameters[name],
    cell: (t) => fmtValue(t.hyperparameters[name]),
    className: "num",
  }));
  return [
    {
      key: "overlay",
      label: "Overlay",
      value: (t) => overlay.checked.has(t.trial_id),
      cell: (t) =>
        el("input", {
          type: "checkbox",
          class: "overlay",
          "aria-label": `overlay the curves of trial ${t.trial_id}`,
          checked: overlay.checked.has(t.trial_id),
          onchange: (event) => overlay.onCheck(t.trial_id, event.target.checked),
        }),
      // Ticking a trial adds its curves; it does not make it the one selected.
      stop: true,
    },
    { key: "trial_id", label: "Trial", value: (t) => t.trial_id, cell: (t) => trialLabel(t.trial_id), className: "mono trial-id" },
    {
      key: "status",
      label: "Status",
      value: (t) => t.status,
      cell: (t) => el("span", { class: `badge trial-${t.status.toLowerCase()}`, title: t.message || "" }, t.status),
    },
    {
      key: "score",
      label: `Score (${objective.name})`,
      value: (t) => t.score,
      cell: (t) => fmtScore(t.score),
      className: "num",
      descFirst: objective.direction === "max",
    },
    { key: "epochs_run", label: "Epochs", value: (t) => t.epochs_run, cell: (t) => String(t.epochs_run), className: "num" },
    { key: "best_epoch", label: "Best epoch", value: (t) => t.best_epoch, cell: (t) => fmtValue(t.best_epoch), className: "num" },
    {
      key: "ended",
      label: "Ended early",
      // Sorts pruned trials after early-stopped ones, and both after those that ran out.
      value: (t) => (t.pruned ? 2 : t.stopped_early ? 1 : 0),
      cell: endBadge,
    },
    {
      key: "overfit_epoch",
      label: "Overfitting",
      value: (t) => t.overfit_epoch,
      cell: (t) =>
        t.overfit_epoch === null || t.overfit_epoch === undefined
          ? ""
          : el("span", { class: "badge flag-overfit" }, `from epoch ${t.overfit_epoch}`),
    },
    {
      key: "generalization_gap",
      label: "Gap",
      value: (t) => t.generalization_gap,
      cell: (t) => fmtScore(t.generalization_gap),
      className: "num",
    },
    {
      key: "duration_s",
      label: "Duration",
      value: (t) => t.duration_s,
      cell: (t) => fmtDuration(t.duration_s),
      className: "num",
    },
    {
      // Which worker ran it (host:pid): with parallel_trials, trials spread over several.
      key: "worker",
      label: "Worker",
      value: (t) => t.worker,
      cell: (t) => (t.worker ? t.worker.split(":").slice(0, 2).join(":") : ""),
    },
    {
      // Only some trials keep a model: the best, and each Pareto-front trial of a
      // multi-objective job (GET /jobs/{id}/trials/{trial_id}/model).
      key: "model",
      label: "Model",
      value: (t) => models.ids.has(t.trial_id),
      cell: (t) =>
        models.ids.has(t.trial_id)
          ? el(
              "button",
              {
                type: "button",
                class: "link-button download-trial-model",
                title: `download trial ${trialLabel(t.trial_id)}'s model (.keras)`,
                onclick: () => models.onDownload(t.trial_id),
              },
              ".keras",
            )
          : "",
      stop: true,
    },
    ...hp,
  ];
}

// A table that keeps its sort order across refreshes; `update` redraws the rows.
export function trialTable({ onSelect, onCheck, onDownload }) {
  const state = {
    sort: null,
    trials: [],
    hpNames: [],
    objective: {},
    bestId: null,
    selectedId: null,
    checkedIds: [],
    modelIds: [], // the trials whose model can be downloaded
    visibleIds: null, // null: every trial
  };
  const head = el("thead");
  const body = el("tbody");
  const table = el("table", { class: "table trials", id: "trials-table" }, head, body);

  function sorted(cols) {
    const visible = state.visibleIds && new Set(state.visibleIds);
    const rows = state.trials.filter((t) => !visible || visible.has(t.trial_id));
    const col = state.sort && cols.find((c) => c.key === state.sort.key);
    if (!col) return rows;
    const sign = state.sort.dir === "asc" ? 1 : -1;
    return rows.sort((a, b) => {
      const [va, vb] = [col.value(a), col.value(b)];
      const missingA = va === null || va === undefined;
      const missingB = vb === null || vb === undefined;
      if (missingA || missingB) return Number(missingA) - Number(missingB); // always last
      return sign * compare(va, vb);
    });
  }

  function draw() {
    const overlay = { checked: new Set(state.checkedIds), onCheck };
    const cols = columns(state.hpNames, state.objective, overlay, { ids: new Set(state.modelIds), onDownload });
    head.replaceChildren(
      el(
        "tr",
        {},
        cols.map((col) => {
          const active = state.sort && state.sort.key === col.key;
          const arrow = active ? (state.sort.dir === "asc" ? " ▲" : " ▼") : "";
          return el(
            "th",
            {
              class: col.className === "num" ? "num" : undefined,
              dataset: { sort: col.key },
              "aria-sort": active ? (state.sort.dir === "asc" ? "ascending" : "descending") : "none",
            },
            el(
              "button",
              {
                type: "button",
                class: "sort",
                onclick: () => {
                  const dir = active
                    ? state.sort.dir === "asc" ? "desc" : "asc"
                    : col.descFirst ? "desc" : "asc";
                  state.sort = { key: col.key, dir };
                  draw();
                },
              },
              col.label + arrow,
            ),
          );
        }),
      ),
    );
    body.replaceChildren(
      ...sorted(cols).map((trial) => {
        const classes = ["clickable"];
        if (trial.trial_id === state.bestId) classes.push("best");
        if (trial.trial_id === state.selectedId) classes.push("selected");
        if (trial.stopped_early) classes.push("stopped-early");
        if (trial.pruned) classes.push("pruned");
        if (trial.overfit_epoch !== null && trial.overfit_epoch !== undefined) classes.push("overfit");
        return el(
          "tr",
          {
            class: classes.join(" "),
            dataset: { trialId: trial.trial_id },
            onclick: () => onSelect(trial.trial_id),
            title: trial.trial_id === state.bestId ? "best trial" : "show learning curves",
          },
          cols.map((col) =>
            el(
              "td",
              { class: col.className, onclick: col.stop ? (event) => event.stopPropagation() : undefined },
              col.cell(trial),
            ),
          ),
        );
      }),
    );
  }

  return {
    table,
    update(values) {
      // Unchanged rows are left alone, so a row is not replaced under a click.
      const key = JSON.stringify(values);
      if (key === state.key) return;
      Object.assign(state, values, { key });
      draw();
    },
  };
}
