// A confirmation asked in the page's own <dialog> (index.html), not window.confirm: it names
// what is about to go, and resolves true only on the explicit button.

export function confirmAction({ title, message, confirm }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus(); // Enter keeps the job
  });
}
