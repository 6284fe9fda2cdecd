// The job's set-up: what the server derived from the table when it resolved the spec
// (spec.derivation: the rows one fit trains on, the batch, the steps an epoch takes, and the
// epochs, patiences and budget decided from them, each tagged "derived" or "yours"), and the
// resolved spec itself, as JSON, for everything else.

import { budgetSource, derivationFacts, factList } from "./budget.js";
import { el } from "./util.js";

export function setupPanel() {
  const body = el("div", { id: "job-setup" });
  const element = el("section", { class: "panel", id: "setup-panel" }, el("h2", {}, "Set-up"), body);
  let shownKey = null;

  // `rows`: the dataset's, when read.
  function show(job, rows = null) {
    const key = JSON.stringify([job.spec, rows]);
    if (key === shownKey) return;
    shownKey = key;
    const spec = job.spec;
    const d = spec.derivation;
    const source = budgetSource(spec, rows);
    body.replaceChildren(
      el(
        "p",
        { class: "muted small" },
        d?.steps_per_epoch
          ? "Training lengths are counted in gradient steps and turned into epochs with the steps an epoch takes; the fields marked derived came from the table."
          : "Nothing was derived from the table for this job.",
        source ? ` Time budget: ${source}.` : "",
      ),
      factList("job-derivation", derivationFacts(spec)),
      el(
        "details",
        { class: "advanced" },
        el("summary", {}, "Resolved spec (JSON)"),
        el("pre", { class: "mono small scroll-x", id: "job-spec-json" }, JSON.stringify(spec, null, 2)),
      ),
    );
  }

  return { element, show };
}
