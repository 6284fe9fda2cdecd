// The REST API, as the dashboard calls it: one place that adds the API key, asks for one
// on a 401 and turns problem+json answers into errors with the server's own message.

const KEY_STORAGE = "tuner-service.api-key";
const PREFIX = "/api/v1";

// pydantic words a validator's message "Value error, min=3 is not a power of two": the
// prefix says nothing to a user, so it is dropped wherever it appears in a message.
export function plainMessage(text) {
  return String(text).replace(/(^|[:;,]\s*)Value error, /g, "$1");
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(plainMessage(problem.detail || problem.title || `HTTP ${status}`));
    this.status = status;
    this.problem = problem;
    this.errors = (problem.errors || []).map((e) => ({ ...e, msg: plainMessage(e.msg || "") }));
  }
}

export function storedKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

// Every request that meets a 401 while the dialog is open waits for the same answer, so the
// polling views never stack several prompts.
let pendingKey = null;

function askForKey(rejected) {
  if (pendingKey) return pendingKey;
  const dialog = document.getElementById("key-dialog");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  document.getElementById("key-message").textContent = rejected
    ? "The server refused the stored API key. Enter a valid one."
    : "This service needs an API key (TUNER_API_KEYS).";
  input.value = "";
  pendingKey = new Promise((resolve) => {
    form.addEventListener(
      "submit",
      () => {
        localStorage.setItem(KEY_STORAGE, input.value.trim());
        document.getElementById("key-button").hidden = false;
        pendingKey = null;
        resolve();
      },
      { once: true },
    );
  });
  // A dialog closed with Escape would leave every caller waiting: keep it open until answered.
  dialog.oncancel = (event) => event.preventDefault();
  if (!dialog.open) dialog.showModal();
  input.focus();
  return pendingKey;
}

export function changeKey() {
  return askForKey(false);
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: `HTTP ${response.status}` };
  }
}

// `body` may be a plain object (sent as JSON) or FormData (multipart, e.g. an upload). A 401
// asks for a key and sends the request again; FormData can be sent twice.
export async function request(path, { method = "GET", body, raw = false, root = false } = {}) {
  for (;;) {
    const headers = {};
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let payload = body;
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch((root ? "" : PREFIX) + path, { method, headers, body: payload });
    if (response.status === 401) {
      await askForKey(Boolean(key));
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
}

// A path under the API with every interpolated value encoded as one path segment (or one
// query value): ids come from the page's URL fragment, which anyone can craft, and an id such
// as "../../metrics?" must name a missing job, never another path the key would be sent to.
//   apiPath`/jobs/${jobId}/trials/${trialId}`
// "." and ".." cannot be escaped at all (a URL parser reads "%2e%2e" as ".." too): refused.
export function segment(value) {
  const text = String(value);
  if (text === "" || text === "." || text === "..") throw new Error(`Not a valid id: "${text}"`);
  return encodeURIComponent(text);
}

export function apiPath(strings, ...values) {
  return strings.reduce((path, text, i) => path + segment(values[i - 1]) + text);
}

export const get = (path) => request(path);
export const post = (path, body) => request(path, { method: "POST", body });
export const patch = (path, body) => request(path, { method: "PATCH", body });
export const del = (path) => request(path, { method: "DELETE" });

// Every item of a list endpoint, page by page (the API's pages hold at most 500 jobs or
// datasets, 1000 trials): a view never silently stops at the first page.
export async function getAll(path, pageSize = 500) {
  const items = [];
  const joiner = path.includes("?") ? "&" : "?";
  for (;;) {
    const page = await get(`${path}${joiner}limit=${pageSize}&offset=${items.length}`);
    items.push(...page.items);
    // An empty page ends it too: rows deleted meanwhile must not loop forever.
    if (!page.items.length || items.length >= page.total) return items;
  }
}

// A download through fetch, not a plain link: a link could not send the Authorization header.
export async function download(path, fallbackName) {
  const response = await request(path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
