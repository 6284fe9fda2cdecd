// A new job: upload a dataset (or pick one), see its profile, choose the algorithm and the
// budget (the rest of the spec under "advanced"), edit the search space the dataset seeds,
// and submit.

import { advancedFields } from "./advanced.js";
import { ApiError, get, post, request } from "./api.js";
import { spaceEditor } from "./space.js";
import { el, fmtTime, fmtValue, shortId, toast } from "./util.js";

// "" leaves the choice to the server: Hyperband, or TPE when the job has a time budget.
const ALGORITHMS = {
  "": "Automatic",
  random_search: "Random search",
  hyperband: "Hyperband",
  bayesian: "Bayesian optimization",
  grid: "Grid search",
  tpe: "TPE (Optuna)",
  nsga2: "NSGA-II (Optuna)",
};

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

function datasetSummary(ds) {
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
function datasetOption(ds) {
  const text = `${ds.name} · ${ds.rows} rows · ${fmtTime(ds.created_at)} · ${shortId(ds.id)}`;
  return el("option", { value: ds.id, title: ds.id }, text);
}

// Marks the form fields a 422 names by their spec path (data-loc), opening "advanced" when
// one of them is in it.
function markFormErrors(form, errors) {
  for (const node of form.querySelectorAll("[data-loc].invalid")) node.classList.remove("invalid");
  for (const error of errors || []) {
    const [where, ...path] = error.loc || [];
    if (where !== "body") continue;
    // The most specific field named: training.validation_split, else callbacks.early_stopping.
    for (let n = path.length; n > 0; n--) {
      const input = form.querySelector(`[data-loc="${CSS.escape(path.slice(0, n).join("."))}"]`);
      if (!input) continue;
      input.classList.add("invalid");
      input.title = error.msg;
      const details = input.closest("details");
      if (details) details.open = true;
      break;
    }
  }
}

function numberInput(id, attrs = {}) {
  return el("input", { id, type: "number", min: 1, step: 1, ...attrs });
}

function labelled(text, input, hint) {
  return el("label", { class: "field" }, el("span", {}, text), input, hint ? el("small", { class: "muted" }, hint) : null);
}

export function renderNewJob(view) {
  let dataset = null;

  // 1. Dataset.
  const file = el("input", { type: "file", id: "dataset-file", accept: ".csv,.parquet,.pq,.npz", required: true });
  const targetList = el("datalist", { id: "target-columns" });
  const target = el("input", { type: "text", id: "dataset-target", list: "target-columns", placeholder: "column to predict" });
  const task = el(
    "select",
    { id: "dataset-task" },
    el("option", { value: "" }, "infer"),
    el("option", { value: "classification" }, "classification"),
    el("option", { value: "regression" }, "regression"),
  );
  const name = el("input", { type: "text", id: "dataset-name", placeholder: "the file name" });
  const uploadButton = el("button", { type: "submit", class: "primary", id: "upload-dataset" }, "Upload");
  const existing = el("select", { id: "existing-dataset" }, el("option", { value: "" }, "— choose —"));
  const summary = el("div", { id: "dataset-profile" });

  // 2. Search.
  const algorithm = el(
    "select",
    { id: "job-algorithm" },
    Object.entries(ALGORITHMS).map(([value, text]) => el("option", { value, selected: value === "" }, text)),
  );
  const maxTrials = numberInput("job-max-trials", { placeholder: "20" });
  const epochs = numberInput("job-epochs", { value: "30" });
  const maxEpochs = numberInput("job-max-epochs", { placeholder: "= epochs" });
  const factor = numberInput("job-factor", { min: 2, value: "3" });
  const iterations = numberInput("job-hyperband-iterations", { value: "1" });
  const parallel = numberInput("job-parallel-trials", { min: 1, max: 64, placeholder: "auto" });
  const jobName = el("input", { type: "text", id: "job-name", dataset: { loc: "name" }, placeholder: "optional" });
  const nameField = labelled("Job name", jobName);
  const advanced = advancedFields();
  for (const [input, loc] of [
    [algorithm, "tuner.algorithm"],
    [maxTrials, "tuner.max_trials"],
    [epochs, "training.epochs"],
    [maxEpochs, "tuner.max_epochs"],
    [factor, "tuner.factor"],
    [iterations, "tuner.hyperband_iterations"],
    [parallel, "parallel_trials"],
  ]) {
    input.dataset.loc = loc;
  }
  const hyperbandFields = el(
    "div",
    { class: "row", id: "hyperband-fields" },
    labelled("Max epochs (Hyperband)", maxEpochs),
    labelled("Factor", factor),
    labelled("Iterations", iterations, "full Hyperband schedules"),
  );
  const trialsHint = el("small", { class: "muted" });
  const syncAlgorithm = () => {
    const hyperband = algorithm.value === "hyperband";
    hyperbandFields.hidden = !hyperband;
    trialsHint.textContent = {
      "": "empty: Hyperband's full schedule; with a time budget, as many as fit",
      hyperband: "empty: Hyperband's full schedule",
    }[algorithm.value] ?? "empty: 20; with a time budget, as many as fit";
  };
  algorithm.addEventListener("change", syncAlgorithm);
  syncAlgorithm();

  // 3. Search space.
  const editor = spaceEditor();
  const reset = el("button", { type: "button", id: "reset-space" }, "Reset to the dataset's defaults");
  const submitButton = el("button", { type: "submit", class: "primary", id: "submit-job" }, "Start search");
  const errorBox = el("pre", { class: "error-box", id: "job-form-error", hidden: true });

  const searchSection = el(
    "form",
    // The server checks every field and names the bad one (marked below): the browser's own
    // checks would stop the request and hide that answer.
    { class: "panel", id: "job-form", hidden: true, novalidate: true },
    el("h2", {}, "2. Search"),
    el(
      "div",
      { class: "row" },
      nameField,
      labelled("Algorithm", algorithm),
      el("label", { class: "field" }, el("span", {}, "Max trials"), maxTrials, trialsHint),
      labelled("Epochs per trial", epochs),
      labelled("Parallel trials", parallel, "empty: auto, every idle worker helps; a number caps it"),
    ),
    hyperbandFields,
    advanced.element,
    el("h2", {}, "3. Search space"),
    el(
      "p",
      { class: "muted" },
      "Pre-filled with the defaults seeded from this dataset (units around the recommended width). ",
      reset,
    ),
    el("div", { class: "scroll-x" }, editor.table),
    errorBox,
    el("div", { class: "actions" }, submitButton),
  );

  const uploadForm = el(
    "form",
    { id: "upload-form" },
    el(
      "div",
      { class: "row" },
      labelled("File (CSV, Parquet, NPZ)", file),
      labelled("Target column", target),
      targetList,
      labelled("Task", task),
      labelled("Name", name),
    ),
    el("div", { class: "actions" }, uploadButton),
  );

  view.append(
    el(
      "section",
      { class: "panel" },
      el("h1", {}, "New job"),
      el("h2", {}, "1. Dataset"),
      uploadForm,
      el("p", { class: "muted" }, "or use an uploaded dataset: ", existing),
      summary,
    ),
    searchSection,
  );

  async function useDataset(ds) {
    dataset = ds;
    summary.replaceChildren(datasetSummary(ds));
    advanced.setTask(ds.task);
    editor.load(await get(`/datasets/${ds.id}/search_space`));
    editor.markErrors([]);
    markFormErrors(searchSection, []);
    errorBox.hidden = true;
    searchSection.hidden = false;
  }

  file.addEventListener("change", async () => {
    const picked = file.files[0];
    targetList.replaceChildren();
    if (!picked || !/\.csv$/i.test(picked.name)) return;
    const names = csvHeader(await picked.slice(0, 65536).text());
    targetList.replaceChildren(...names.map((n) => el("option", { value: n })));
    if (!target.value && names.length) target.value = names[names.length - 1];
  });

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files[0]) return toast("Choose a file first.");
    const form = new FormData();
    form.append("file", file.files[0]);
    if (target.value.trim()) form.append("target", target.value.trim());
    if (task.value) form.append("task", task.value);
    if (name.value.trim()) form.append("name", name.value.trim());
    uploadButton.disabled = true;
    uploadButton.textContent = "Uploading…";
    try {
      const ds = await request("/datasets", { method: "POST", body: form });
      existing.append(datasetOption(ds));
      existing.value = ds.id;
      await useDataset(ds);
    } catch (e) {
      toast(e.message);
    } finally {
      uploadButton.disabled = false;
      uploadButton.textContent = "Upload";
    }
  });

  existing.addEventListener("change", async () => {
    if (!existing.value) return;
    try {
      await useDataset(await get(`/datasets/${existing.value}`));
    } catch (e) {
      toast(e.message);
    }
  });

  reset.addEventListener("click", () => dataset && useDataset(dataset));

  searchSection.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tuner = algorithm.value ? { algorithm: algorithm.value } : {};
    if (maxTrials.value) tuner.max_trials = Number(maxTrials.value);
    if (algorithm.value === "hyperband") {
      if (maxEpochs.value) tuner.max_epochs = Number(maxEpochs.value);
      if (factor.value) tuner.factor = Number(factor.value);
      if (iterations.value) tuner.hyperband_iterations = Number(iterations.value);
    }
    const spec = {
      dataset_id: dataset.id,
      tuner,
      search_space: editor.read(),
    };
    // Empty fields keep the server's defaults.
    if (epochs.value) spec.training = { epochs: Number(epochs.value) };
    if (parallel.value) spec.parallel_trials = Number(parallel.value);
    if (jobName.value.trim()) spec.name = jobName.value.trim();
    advanced.apply(spec);
    submitButton.disabled = true;
    try {
      const job = await post("/jobs", spec);
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      errorBox.hidden = false;
      errorBox.textContent = e.message;
      if (e instanceof ApiError) {
        editor.markErrors(e.errors);
        markFormErrors(searchSection, e.errors);
      }
    } finally {
      submitButton.disabled = false;
    }
  });

  get("/datasets?limit=500")
    .then((page) => existing.append(...page.items.map(datasetOption)))
    .catch((e) => toast(e.message));

  return () => {};
}
