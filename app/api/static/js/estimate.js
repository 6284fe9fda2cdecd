// The new-job form's estimate, before anything is submitted: what POST /jobs/preview says
// the form would queue (nothing is queued): the time budget and where it came from, or none
// (the planned trials all run); the algorithm and the trials planned; the epochs and
// patiences the server derives from the table, with the steps per epoch they came from; and
// its note (a budget shorter than one trial, say). Asked again a moment after the form
// stops changing; an answer to an older state of the form is dropped.

import { post } from "./api.js";
import { budgetSource, derivationFacts, factList } from "./budget.js";
import { el, fmtClock } from "./util.js";

const DEBOUNCE_MS = 400;

// `readSpec()`: the body the form would POST (null before a dataset is chosen); `rows()`:
// the chosen dataset's rows.
export function estimatePanel({ readSpec, rows }) {
  const budget = el("p", { id: "estimate-budget" });
  const trials = el("p", { class: "muted", id: "estimate-trials" });
  const facts = el("div");
  const note = el("p", { class: "note", id: "estimate-note", hidden: true });
  const error = el("p", { class: "error-box", id: "estimate-error", hidden: true });
  const body = el("div", {}, budget, trials, facts);
  const element = el(
    "div",
    { class: "estimate", id: "job-estimate", hidden: true, "aria-live": "polite" },
    el("h3", {}, "Estimate (nothing is queued until you start the search)"),
    body,
    note,
    error,
  );
  let timer = null;
  let asked = 0;

  function draw(preview) {
    const spec = preview.spec;
    const seconds = preview.max_runtime_s;
    const endPhase = spec.derivation?.end_phase_s;
    budget.replaceChildren(
      seconds === null || seconds === undefined
        ? el("strong", {}, "No time budget: ")
        : el("strong", {}, `Time budget ${fmtClock(seconds)} `),
      seconds === null || seconds === undefined
        ? `the search runs all its planned trials, however long they take.`
        : `(${budgetSource(spec, rows())})` +
            (endPhase ? `; the search stops ${fmtClock(endPhase)} before it, for the refit, baselines, ensemble and exports.` : ".") +
            " Advanced › no time budget runs without one.",
    );
    const planned = preview.trials_planned;
    trials.textContent =
      `${spec.tuner.algorithm}: ` +
      (seconds === null || seconds === undefined
        ? `${planned} trial${planned === 1 ? "" : "s"} planned.`
        : `as many trials as the budget allows (at most ${planned}).`);
    facts.replaceChildren(factList("estimate-derivation", derivationFacts(spec)));
    const text = spec.derivation?.note;
    note.hidden = !text;
    note.textContent = text ? `Note: ${text.replace(/\.?$/, ".")}` : "";
  }

  async function ask() {
    const mine = ++asked;
    element.classList.add("stale");
    try {
      const spec = readSpec();
      if (!spec) return;
      const preview = await post("/jobs/preview", spec);
      if (mine !== asked) return;
      draw(preview);
      body.hidden = false;
      error.hidden = true;
      element.hidden = false;
    } catch (e) {
      if (mine !== asked) return;
      // Said here, not in a toast: the form is still being filled in.
      body.hidden = true;
      note.hidden = true;
      error.textContent = `No estimate: the server would refuse this job. ${e.message}`;
      error.hidden = false;
      element.hidden = false;
    } finally {
      if (mine === asked) element.classList.remove("stale");
    }
  }

  // Asks a moment after the last change; `stop()` drops what is pending (the view closes).
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(ask, DEBOUNCE_MS);
  }

  function stop() {
    clearTimeout(timer);
    asked++;
  }

  return { element, refresh, stop };
}
