// A job's notes, in its head: the user's own text on it (what was tried, why), shown as
// text with its line breaks, never as markup, and edited in place (PATCH /jobs/{id} with
// `notes`), a finished job's too. A refresh while the editor is open leaves the editor alone.

import { apiPath, patch } from "./api.js";
import { el, toast } from "./util.js";

// The server's limit (app.search.spec.MAX_NOTES): the textarea stops there.
const MAX_NOTES = 10000;

// `onSaved(job)`: the job as the PATCH answered it, for the rest of the head.
export function notesBlock(jobId, { onSaved }) {
  let notes = null;
  const text = el("div", { class: "notes-text", id: "job-notes-text", hidden: true });
  const edit = el("button", { type: "button", id: "edit-notes", class: "link-button" }, "Add notes");
  const input = el("textarea", {
    id: "job-notes-input",
    "aria-label": "job notes",
    rows: 4,
    maxlength: MAX_NOTES,
    placeholder: "what this run tries, what to do next…",
  });
  const save = el("button", { type: "submit", class: "primary", id: "job-notes-save" }, "Save notes");
  const form = el(
    "form",
    { id: "job-notes-form", class: "notes-form", hidden: true },
    input,
    el("div", { class: "actions tight" }, save, el("button", { type: "button", onclick: () => close() }, "Keep")),
  );
  const element = el("div", { class: "notes", id: "job-notes" }, text, edit, form);

  function draw() {
    text.hidden = !notes;
    text.textContent = notes || "";
    edit.textContent = notes ? "Edit notes" : "Add notes";
  }

  function close() {
    form.hidden = true;
    edit.hidden = false;
  }

  edit.addEventListener("click", () => {
    input.value = notes || "";
    form.hidden = false;
    edit.hidden = true;
    input.focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      // Blank notes clear them.
      const job = await patch(apiPath`/jobs/${jobId}`, { notes: input.value.trim() ? input.value : null });
      notes = job.notes;
      close();
      draw();
      onSaved(job);
    } catch (e) {
      toast(e.message);
    } finally {
      save.disabled = false;
    }
  });

  function show(job) {
    notes = job.notes || null;
    draw();
  }

  return { element, show };
}
