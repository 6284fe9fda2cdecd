// A queued or running job's time budget, changed in place (PATCH /jobs/{id} with
// max_runtime_s): a number of seconds, or none. The server counts it from the job's first
// start, so a budget already spent stops the search at its next heartbeat. A refusal (a job
// that has finished meanwhile, a number out of range) is shown under the field in the
// server's words.

import { apiPath, patch } from "./api.js";
import { el } from "./util.js";

// `onSaved(job)`: the job as the PATCH answered it.
export function budgetForm(jobId, { onSaved }) {
  const input = el("input", {
    type: "number",
    id: "budget-input",
    min: 1,
    step: "any",
    "aria-label": "time budget in seconds",
  });
  const save = el("button", { type: "submit", class: "primary", id: "budget-save" }, "Save");
  const none = el("button", { type: "button", id: "budget-none", title: "run the planned trials, however long" }, "No budget");
  const keep = el("button", { type: "button", id: "budget-keep" }, "Keep");
  const error = el("p", { class: "error-box", id: "budget-error", hidden: true });
  // novalidate: the server checks the number and says what is wrong with it.
  const element = el(
    "form",
    { id: "budget-form", class: "budget-form", hidden: true, novalidate: true },
    el("div", { class: "row" }, el("label", { class: "field inline" }, el("span", {}, "Time budget (s)"), input), save, none, keep),
    error,
  );

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  async function send(seconds) {
    save.disabled = none.disabled = true;
    try {
      const job = await patch(apiPath`/jobs/${jobId}`, { max_runtime_s: seconds });
      element.hidden = true;
      onSaved(job);
    } catch (e) {
      showError(e.message);
    } finally {
      save.disabled = none.disabled = false;
    }
  }

  element.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim() === "") return showError("Enter a number of seconds, or choose No budget.");
    send(Number(input.value));
  });
  none.addEventListener("click", () => send(null));
  keep.addEventListener("click", () => (element.hidden = true));

  function open(job) {
    const seconds = job.spec.max_runtime_s;
    input.value = seconds === null || seconds === undefined ? "" : String(seconds);
    error.hidden = true;
    element.hidden = false;
    input.focus();
  }

  return { element, open, close: () => (element.hidden = true) };
}
