// A new job: upload a dataset (or pick one), see its profile, choose the algorithm and the
// budget (the rest of the spec under "advanced"), edit the search space the dataset seeds,
// see the estimate (estimate.js: the budget and what the server derives from the table, as
// POST /jobs/preview answers for the form as it stands), and submit. Opened as #/new?from=<job id> ("run again"), the form starts filled with that
// job's spec; as #/new?dataset=<id>, with that dataset chosen.

import { advancedFields } from "./advanced.js";
import { ApiError, apiPath, get, getAll, post, request } from "./api.js";
import { csvHeader, datasetOption, datasetSummary } from "./dataset_profile.js";
import { estimatePanel } from "./estimate.js";
import { spaceEditor } from "./space.js";
import { el, shortId, toast } from "./util.js";

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

export function renderNewJob(view, { from = null, dataset: datasetId = null } = {}) {
  let dataset = null;
  // The editor's rows as the dataset seeds them: a row left so is not sent, so the server
  // derives it for the job (the batch sizes from the rows one fit trains on, say).
  let seeded = {};

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
  // Empty: derived from the table (the estimate shows the number), as the patiences are.
  const epochs = numberInput("job-epochs", { placeholder: "derived" });
  const maxEpochs = numberInput("job-max-epochs", { placeholder: "= epochs" });
  const minEpochs = numberInput("job-min-epochs", { placeholder: "derived" });
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
    [minEpochs, "tuner.min_epochs"],
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
    labelled("Min epochs", minEpochs, "its smallest rung"),
    labelled("Factor", factor),
    labelled("Iterations", iterations, "full Hyperband schedules"),
  );
  const trialsHint = el("small", { class: "muted" });
  const syncAlgorithm = () => {
    const hyperband = algorithm.value === "hyperband";
    hyperbandFields.hidden = !hyperband;
    advanced.setAlgorithm(algorithm.value);
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
  const estimate = estimatePanel({ readSpec, rows: () => dataset?.rows ?? null });
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
      labelled("Epochs per trial", epochs, "empty: derived from the table"),
      labelled("Parallel trials", parallel, "empty: auto, every idle worker helps; a number caps it"),
    ),
    hyperbandFields,
    advanced.element,
    el("h2", {}, "3. Search space"),
    el(
      "p",
      { class: "muted" },
      "Pre-filled with the defaults seeded from this dataset (units around the recommended width). " +
        "Only the rows you change are sent: the server derives the others for the job, the batch sizes from its rows (see the estimate). ",
      reset,
    ),
    el("div", { class: "scroll-x" }, editor.table),
    estimate.element,
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
    editor.load(await get(apiPath`/datasets/${ds.id}/search_space`));
    seeded = editor.read();
    editor.markErrors([]);
    markFormErrors(searchSection, []);
    errorBox.hidden = true;
    searchSection.hidden = false;
    estimate.refresh();
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
      await useDataset(await get(apiPath`/datasets/${existing.value}`));
    } catch (e) {
      toast(e.message);
    }
  });

  reset.addEventListener("click", () => dataset && useDataset(dataset));

  // The body POST /jobs (and /jobs/preview) gets for the form as it stands; null before a
  // dataset is chosen.
  function readSpec() {
    if (!dataset) return null;
    const tuner = algorithm.value ? { algorithm: algorithm.value } : {};
    if (maxTrials.value) tuner.max_trials = Number(maxTrials.value);
    if (algorithm.value === "hyperband") {
      if (maxEpochs.value) tuner.max_epochs = Number(maxEpochs.value);
      if (minEpochs.value) tuner.min_epochs = Number(minEpochs.value);
      if (factor.value) tuner.factor = Number(factor.value);
      if (iterations.value) tuner.hyperband_iterations = Number(iterations.value);
    }
    const spec = { dataset_id: dataset.id, tuner };
    const changed = Object.entries(editor.read()).filter(
      ([name, entry]) => JSON.stringify(entry) !== JSON.stringify(seeded[name]),
    );
    if (changed.length) spec.search_space = Object.fromEntries(changed);
    // Empty fields keep the server's defaults.
    if (epochs.value) spec.training = { epochs: Number(epochs.value) };
    if (parallel.value) spec.parallel_trials = Number(parallel.value);
    if (jobName.value.trim()) spec.name = jobName.value.trim();
    return advanced.apply(spec);
  }

  // Any change to the form asks for a new estimate (once it stops changing); so do the
  // buttons that change it without an input event (adding an objective, say).
  searchSection.addEventListener("input", estimate.refresh);
  searchSection.addEventListener("change", estimate.refresh);
  searchSection.addEventListener("click", (event) => {
    if (event.target.closest("button:not([type=submit])")) estimate.refresh();
  });

  searchSection.addEventListener("submit", async (event) => {
    event.preventDefault();
    const spec = readSpec();
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

  const cloneNote = el("p", { class: "muted", id: "clone-note", hidden: true });
  view.prepend(cloneNote);

  // Run again: the earlier job's dataset, its effective search space, and every field of its
  // spec the user set (what the server derived is left for it to derive again).
  async function fillFrom(jobId) {
    const job = await get(apiPath`/jobs/${jobId}`);
    const spec = job.spec;
    const derived = new Set(spec.derivation?.derived || []);
    const put = (input, path, value) => {
      input.value = value === null || value === undefined || derived.has(path) ? "" : String(value);
    };
    existing.value = job.dataset_id;
    await useDataset(await get(apiPath`/datasets/${job.dataset_id}`));
    algorithm.value = spec.tuner.algorithm;
    // Under a budget the server derived, the trial count is only its cap: left to it too.
    put(maxTrials, "tuner.max_trials", spec.derivation?.budget_source ? null : spec.tuner.max_trials);
    put(epochs, "training.epochs", spec.training.epochs);
    put(maxEpochs, "tuner.max_epochs", spec.tuner.max_epochs);
    put(minEpochs, "tuner.min_epochs", spec.tuner.min_epochs);
    put(factor, "tuner.factor", spec.tuner.factor);
    put(iterations, "tuner.hyperband_iterations", spec.tuner.hyperband_iterations);
    put(parallel, "parallel_trials", spec.parallel_trials === "auto" ? null : spec.parallel_trials);
    jobName.value = job.name || "";
    syncAlgorithm();
    advanced.fill(spec);
    editor.load(job.search_space);
    cloneNote.replaceChildren(
      "Filled from job ",
      el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "mono" }, job.name || shortId(job.id)),
      ": change what you want, then start the search.",
    );
    cloneNote.hidden = false;
    estimate.refresh();
  }

  getAll("/datasets")
    .then(async (items) => {
      existing.append(...items.map(datasetOption));
      if (from) await fillFrom(from);
      else if (datasetId) {
        existing.value = datasetId;
        await useDataset(await get(apiPath`/datasets/${datasetId}`));
      }
    })
    .catch((e) => toast(e.message));

  return () => estimate.stop();
}
