// Hyperparameter importance (GET /jobs/{id}/importance: Optuna's PED-ANOVA over the completed
// trials), one horizontal bar per hyperparameter, most important first. Below the API's
// minimum number of trials (a 409) the chart is hidden and its reason shown instead.

import { apiPath, get } from "./api.js";
import { el } from "./util.js";

const pct = (value) => `${(100 * value).toFixed(1)}%`;

export function importancePanel(jobId) {
  const chart = el("div", { id: "importance-chart", class: "importance", hidden: true });
  const reason = el("p", { class: "empty", id: "importance-reason" }, "No completed trial yet.");
  const note = el("p", { class: "muted small", id: "importance-note", hidden: true });
  const element = el(
    "section",
    { class: "panel", id: "importance-panel" },
    el("h2", {}, "Hyperparameter importance"),
    reason,
    chart,
    note,
  );
  let shownKey = null;
  let pending = null;

  function draw(body) {
    const entries = Object.entries(body.importances);
    const top = Math.max(...entries.map(([, v]) => v), 0);
    chart.replaceChildren(
      ...entries.map(([name, value]) =>
        el(
          "div",
          { class: "importance-row", dataset: { name, value: String(value) }, title: `${name}: ${pct(value)}` },
          el("span", { class: "importance-name mono" }, name),
          el(
            "span",
            { class: "importance-track" },
            // Scaled to the largest share, so the ranking reads at a glance; the label has the value.
            el("span", { class: "importance-bar", style: `width: ${top > 0 ? (100 * value) / top : 0}%` }),
          ),
          el("span", { class: "importance-value" }, pct(value)),
        ),
      ),
    );
    note.textContent =
      `How strongly each hyperparameter sets the best trials apart from the rest (${body.method === "ped_anova" ? "PED-ANOVA" : body.method}, ` +
      `Optuna), over ${body.trials} completed trials; the shares sum to 100%.`;
    chart.hidden = note.hidden = false;
    reason.hidden = true;
  }

  function explain(message) {
    reason.textContent = message;
    reason.hidden = false;
    chart.hidden = note.hidden = true;
  }

  // `trials`: the job's trials as the trials page lists them. The importances change only when
  // a trial completes, so they are asked for again only then (the server caches them too).
  function show(trials) {
    const done = trials.filter((t) => t.status === "COMPLETED" && t.score !== null);
    const key = JSON.stringify([done.length, done.map((t) => t.trial_id).sort()]);
    if (key === shownKey || pending) return pending;
    pending = get(apiPath`/jobs/${jobId}/importance`)
      .then(draw, (e) => {
        // 409: too few trials (the API says how many it needs); anything else, its message.
        explain(e.status === 409 ? `Not enough trials yet: ${e.message}.` : `Importance unavailable: ${e.message}`);
      })
      .then(() => {
        shownKey = key;
      })
      .finally(() => {
        pending = null;
      });
    return pending;
  }

  return { element, show };
}
