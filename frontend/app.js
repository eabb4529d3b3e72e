// Lectern web page: the UI (documents, uploads, ask and answer, dialogs, health). Plain ES modules, no build step,
// no dependencies. Beside it in frontend/ (served flat as /static/<name>): the pure parts, unit-tested under node
// (tests/frontend/) — api.js (runtime config, ApiError, the API client), auth.js (the auth seam), sse.js (event
// streams), text.js (text helpers) — and dom.js (element helpers) and signin.js (the sign-in dialog).
//
// Safety rule for this file: text that comes from the server or from files (filenames, answers, snippets,
// error messages) is only ever put into the page with textContent / text nodes, never with innerHTML.

import { ApiError, apiBaseFrom, createClient, errorFromBody, loadConfig, stableClientId } from "./api.js";
import { createAuth } from "./auth.js";
import { $, el, icon, ICON_CLOSE, ICON_TRASH } from "./dom.js";
import { citationRegions, hasLayout, pageImagePath, rectStyle } from "./layout.js";
import { createSignIn } from "./signin.js";
import { readEventStream } from "./sse.js";
import { createThread, queryBody, recordTurn, resetThread, searchedNote } from "./thread.js";
import { createBody, loadDuplicateChoice, replacesNotice, saveDuplicateChoice } from "./uploads.js";
import { answerParts, extensionOf, formatLatency, healthSummary, highlightTerms, plural, supportText, timeAgo } from "./text.js";

// What code and tests import from /static/app.js.
export { ApiError } from "./api.js";
export { SSEParser, readEventStream } from "./sse.js";

// ---------------------------------------------------------------------------------------------------------
// Wiring: configuration, the auth seam, the API client
// ---------------------------------------------------------------------------------------------------------

const browserFetch = (...args) => fetch(...args);
const CONFIG = await loadConfig(browserFetch);
/** Base URL of the API; empty = same origin as the page (what `lectern up` serves). */
const API_BASE = apiBaseFrom(CONFIG, document.querySelector('meta[name="lectern-api-base"]')?.content);

/** The headers every API call carries: a Cognito ID token (+ the page's API key) on AWS, a Lectern API key locally. */
export const auth = createAuth({ config: CONFIG, storage: () => sessionStorage, fetch: browserFetch });
const client = createClient({
  base: API_BASE,
  fetch: browserFetch,
  headers: () => auth.headers(),
  clientId: stableClientId(() => localStorage),
  // a 401 from the API: a Cognito session tries its refresh token once before asking the user again
  reauthenticate: async () => {
    if (!(await auth.refresh())) await requireSignIn();
  },
});
const requireSignIn = createSignIn({ auth, apiUrl: client.apiUrl, fetch: browserFetch });
const { apiUrl } = client;

/**
 * Every call to the Lectern API goes through here (api.js createClient): options method, json, headers, signal,
 * stream. Returns the parsed JSON body (null for 204), or the Response when `stream` is set; throws ApiError.
 */
export const api = client.api;

// extension (no dot) -> MIME type; the server's table (GET /v1/formats) replaces this default once signed in
let SUPPORTED = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  html: "text/html",
  htm: "text/html",
  xhtml: "text/html",
  md: "text/markdown",
  markdown: "text/markdown",
  txt: "text/plain",
  text: "text/plain",
  csv: "text/plain",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  tif: "image/tiff",
  tiff: "image/tiff",
};
let SUPPORTED_TEXT = "PDF, DOCX, HTML, Markdown, plain text, PNG, JPEG and TIFF files";
const TOP_K = 5;
const POLL_BUSY_MS = 1000;
const POLL_IDLE_MS = 10000;
const POLL_HIDDEN_MS = 30000;
const HEALTH_MS = 15000;
const MAX_PARALLEL_UPLOADS = 3;

// ---------------------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------------------

const alertsEl = $("alerts");

/** Shows a dismissible message. The same message again does not pile up: the existing one flashes. */
export function showAlert(message, { title = "Something went wrong", kind = "error" } = {}) {
  const existing = [...alertsEl.children].find((a) => a.dataset.message === message);
  if (existing) {
    existing.classList.remove("alert--flash");
    void existing.offsetWidth; // restart the animation
    existing.classList.add("alert--flash");
    return existing;
  }
  const node = el("div", { class: `alert alert--${kind}`, "data-testid": "alert", dataset: { message } }, [
    el("div", { class: "alert__text" }, [el("strong", { text: title }), el("span", { text: message })]),
    el("button", { class: "icon-button alert__close", type: "button", "aria-label": "Dismiss", onclick: () => node.remove() }, [
      icon(ICON_CLOSE),
    ]),
  ]);
  alertsEl.append(node);
  while (alertsEl.children.length > 4) alertsEl.firstElementChild.remove();
  return node;
}

function alertFor(err, title) {
  if (err?.name === "AbortError") return null;
  console.error(err);
  return showAlert(err instanceof ApiError ? err.message : "An unexpected error happened in the page.", { title });
}

// ---------------------------------------------------------------------------------------------------------
// API health
// ---------------------------------------------------------------------------------------------------------

const health = { el: $("health"), label: $("health-label"), state: "unknown" };

async function checkHealth() {
  let state = "down";
  let text = "API unreachable";
  try {
    const data = await api("/v1/health");
    if (data?.status === "ok") {
      state = "ok";
      text = "API online";
    } else {
      state = "degraded";
      text = healthSummary(data);
    }
  } catch (err) {
    if (err instanceof ApiError && err.message) text = `API unreachable: ${err.message}`;
  }
  const wasDown = health.state === "down";
  health.state = state;
  health.el.dataset.state = state;
  health.el.title = text;
  health.label.textContent = state === "down" ? "API unreachable" : text;
  if (wasDown && state === "ok") refreshDocs();
  setTimeout(checkHealth, HEALTH_MS);
}

// ---------------------------------------------------------------------------------------------------------
// Documents: state, list rendering, polling
// ---------------------------------------------------------------------------------------------------------

/** Server view: document_id -> document from GET /v1/documents. */
const docs = new Map();
/** Local uploads: key (document_id once created, a temporary id before) -> upload state. */
const uploads = new Map();
const rows = new Map(); // key -> <li>

const listEl = $("doc-list");
const emptyEl = $("doc-empty");
const countEl = $("doc-count");

const STATUS_LABEL = { UPLOADING: "Uploading", PROCESSING: "Processing", INDEXED: "Indexed", FAILED: "Failed" };

function entries() {
  const out = [];
  for (const d of docs.values()) out.push({ key: d.document_id, doc: d, upload: uploads.get(d.document_id) });
  for (const [key, u] of uploads) {
    if (docs.has(key)) continue;
    out.push({
      key,
      upload: u,
      doc: { document_id: key, filename: u.filename, status: "UPLOADING", created_at: u.createdAt, local: true },
    });
  }
  out.sort((a, b) => String(b.doc.created_at || "").localeCompare(String(a.doc.created_at || "")));
  return out;
}

function renderDocs() {
  const list = entries();
  const seen = new Set();
  list.forEach(({ key, doc, upload }, i) => {
    seen.add(key);
    let row = rows.get(key);
    if (!row) {
      row = createRow(key);
      rows.set(key, row);
    }
    updateRow(row, doc, upload);
    if (listEl.children[i] !== row) listEl.insertBefore(row, listEl.children[i] || null);
  });
  for (const [key, row] of rows) {
    if (!seen.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
  emptyEl.hidden = list.length > 0;
  const indexed = list.filter((e) => e.doc.status === "INDEXED").length;
  countEl.textContent = list.length ? `${indexed} of ${list.length} ready` : "";
}

function createRow(key) {
  const parts = {
    type: el("span", { class: "doc__type", "aria-hidden": "true" }),
    name: el("p", { class: "doc__name", "data-testid": "doc-name" }),
    meta: el("p", { class: "doc__meta", "data-testid": "doc-meta" }),
    bar: el("span", { class: "progress__bar" }),
    error: el("p", { class: "doc__error", "data-testid": "doc-error", hidden: true }),
    badge: el("span", { class: "badge", "data-testid": "doc-status" }),
    del: el("button", { class: "icon-button doc__delete", type: "button", "data-testid": "doc-delete" }, [
      icon(ICON_TRASH),
    ]),
  };
  parts.progress = el(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", hidden: true },
    [parts.bar],
  );
  const row = el("li", { class: "doc", "data-testid": "doc-row" }, [
    parts.type,
    el("div", { class: "doc__main" }, [parts.name, parts.meta, parts.progress, parts.error]),
    parts.badge,
    parts.del,
  ]);
  parts.del.addEventListener("click", () => deleteDocument(key, row));
  row._parts = parts;
  return row;
}

function updateRow(row, doc, upload) {
  const p = row._parts;
  const status = doc.status || "UPLOADING";
  row.dataset.status = status;
  row.dataset.documentId = doc.document_id;
  row.dataset.filename = doc.filename;
  row.classList.toggle("doc--local", Boolean(doc.local));

  const ext = extensionOf(doc.filename || "");
  p.type.textContent = (ext === "markdown" ? "md" : ext === "htm" ? "html" : ext || "file").slice(0, 4);
  p.type.dataset.ext = ext;
  p.name.textContent = doc.filename;
  p.name.title = doc.filename;

  const uploading = upload && !upload.done && !upload.error;
  const pct = upload ? Math.round(upload.progress * 100) : 0;
  p.badge.className = `badge badge--${status.toLowerCase()}`;
  p.badge.textContent = uploading && status === "UPLOADING" ? `Uploading ${pct}%` : STATUS_LABEL[status] || status;

  const meta = [];
  if (doc.pages != null) meta.push(plural(doc.pages, "page"));
  if (doc.chunks != null) meta.push(plural(doc.chunks, "chunk"));
  if (status === "PROCESSING") meta.push("Reading and indexing…");
  if (status === "UPLOADING" && !uploading && !upload?.error) {
    meta.push(upload?.done ? "Uploaded, waiting to be processed…" : "Waiting for the upload…");
  }
  p.meta.textContent = meta.join(" · ");
  p.meta.hidden = meta.length === 0;
  row.title = doc.created_at && !doc.local ? `Added ${timeAgo(doc.created_at)}` : "";

  p.progress.hidden = !uploading;
  p.progress.setAttribute("aria-valuenow", String(pct));
  p.progress.setAttribute("aria-label", `Uploading ${doc.filename}`);
  p.bar.style.width = `${pct}%`;

  const reason = status === "FAILED" ? doc.error || "The document could not be processed." : upload?.error;
  p.error.hidden = !reason;
  p.error.textContent = reason ? (status === "FAILED" ? reason : `Upload failed: ${reason}`) : "";

  p.del.setAttribute("aria-label", `Delete ${doc.filename}`);
  p.del.title = "Delete";
  p.del.disabled = Boolean(doc.local) || row.dataset.deleting === "1";
}

let pollTimer = 0;
let refreshing = null;
let refreshAgain = false;
let pollAlert = null; // the alert shown while the list cannot be loaded; removed once it loads again

function busy() {
  for (const d of docs.values()) if (d.status === "UPLOADING" || d.status === "PROCESSING") return true;
  for (const u of uploads.values()) if (!u.error) return true;
  return false;
}

function schedulePoll() {
  clearTimeout(pollTimer);
  const ms = busy() ? POLL_BUSY_MS : document.hidden ? POLL_HIDDEN_MS : POLL_IDLE_MS;
  pollTimer = setTimeout(refreshDocs, ms);
}

/** Fetches the list now (coalescing concurrent calls), then schedules the next poll. */
function refreshDocs() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  clearTimeout(pollTimer);
  refreshing = (async () => {
    try {
      const data = await api("/v1/documents");
      docs.clear();
      for (const d of data?.documents || []) docs.set(d.document_id, d);
      // A finished upload stops being "ours" once the server has moved the document on.
      for (const [key, u] of uploads) {
        const d = docs.get(key);
        if (u.done && (!d || d.status !== "UPLOADING" || Date.now() - u.doneAt > 30000)) uploads.delete(key);
      }
      pollAlert?.remove();
      pollAlert = null;
      renderDocs();
    } catch (err) {
      if (!pollAlert?.isConnected) pollAlert = alertFor(err, "Could not load your documents");
    } finally {
      refreshing = null;
      if (refreshAgain) {
        refreshAgain = false;
        refreshDocs();
      } else {
        schedulePoll();
      }
    }
  })();
  return refreshing;
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refreshDocs();
});

// ---------------------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------------------

// what to do with a file named like one the user has (sent as on_duplicate; remembered in this browser)
const duplicateSelect = document.getElementById("on-duplicate");
if (duplicateSelect) {
  duplicateSelect.value = loadDuplicateChoice(() => localStorage);
  duplicateSelect.addEventListener("change", () => saveDuplicateChoice(() => localStorage, duplicateSelect.value));
}

let tempSeq = 0;
const queue = [];
let active = 0;

function addFiles(fileList) {
  const files = [...fileList];
  for (const file of files) {
    const ext = extensionOf(file.name);
    if (!(ext in SUPPORTED)) {
      showAlert(`“${file.name}” is not a supported file type. Lectern reads ${SUPPORTED_TEXT}.`, {
        title: "File skipped",
        kind: "warning",
      });
      continue;
    }
    if (file.size === 0) {
      showAlert(`“${file.name}” is empty.`, { title: "File skipped", kind: "warning" });
      continue;
    }
    const key = `local-${++tempSeq}`;
    uploads.set(key, { filename: file.name, progress: 0, createdAt: new Date().toISOString(), file });
    queue.push(key);
  }
  renderDocs();
  pump();
}

function pump() {
  while (active < MAX_PARALLEL_UPLOADS && queue.length) {
    const key = queue.shift();
    active++;
    uploadOne(key).finally(() => {
      active--;
      pump();
    });
  }
}

async function uploadOne(tempKey) {
  const u = uploads.get(tempKey);
  if (!u) return;
  const { file } = u;
  let created;
  try {
    const contentType = SUPPORTED[extensionOf(file.name)] || file.type || "application/octet-stream";
    created = await api("/v1/documents", {
      method: "POST",
      json: createBody(file, contentType, duplicateSelect?.value || loadDuplicateChoice(() => localStorage)),
    });
  } catch (err) {
    uploads.delete(tempKey);
    renderDocs();
    alertFor(err, `Could not add “${file.name}”`);
    return;
  }
  const notice = replacesNotice(file.name, created.replaces, docs);
  if (notice) showAlert(notice, { title: "New version", kind: "warning" });
  // From now on the upload is keyed by the server's id, so it merges with the server's row.
  const id = created.document_id;
  uploads.delete(tempKey);
  uploads.set(id, u);
  const known = docs.get(id);
  if (!known) {
    docs.set(id, {
      document_id: id,
      filename: file.name,
      status: "UPLOADING",
      created_at: u.createdAt,
      error: null,
      pages: null,
      chunks: null,
    });
  }
  const tempRow = rows.get(tempKey);
  rows.delete(tempKey);
  if (tempRow && !rows.has(id)) rows.set(id, tempRow); // keep the same <li> (and focus) across the key change
  else tempRow?.remove();
  renderDocs();

  try {
    await postForm(created.upload, file, (fraction) => {
      u.progress = fraction;
      renderDocs();
    }, u);
    u.progress = 1;
    u.done = true;
    u.doneAt = Date.now();
  } catch (err) {
    if (err?.name === "AbortError") return;
    u.error = err instanceof ApiError ? err.message : "network error";
    alertFor(err, `Could not upload “${file.name}”`);
  } finally {
    delete u.xhr;
    renderDocs();
    refreshDocs();
  }
}

/**
 * POSTs the file like a browser form to an S3 presigned POST: every field first, the file last as "file".
 * Uses XMLHttpRequest because fetch cannot report upload progress.
 */
function postForm(upload, file, onProgress, holder) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    const fields = upload?.fields || {};
    for (const [k, v] of Array.isArray(fields) ? fields : Object.entries(fields)) form.append(k, v);
    form.append("file", file, file.name);

    const xhr = new XMLHttpRequest();
    holder.xhr = xhr;
    xhr.open("POST", apiUrl(upload.url));
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(errorFromBody(xhr.responseText, xhr.status, xhr.statusText));
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError("The upload could not reach the storage server.", { code: "network_error" })),
    );
    xhr.addEventListener("abort", () => reject(new DOMException("Upload cancelled", "AbortError")));
    xhr.send(form);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Delete (with a confirmation dialog)
// ---------------------------------------------------------------------------------------------------------

const confirmEl = $("confirm");

function confirmDialog(text) {
  return new Promise((resolve) => {
    $("confirm-text").textContent = text;
    confirmEl.returnValue = "";
    confirmEl.addEventListener("close", () => resolve(confirmEl.returnValue === "ok"), { once: true });
    confirmEl.showModal();
  });
}

async function deleteDocument(key, row) {
  const id = row.dataset.documentId || key;
  const doc = docs.get(id);
  const name = doc?.filename || row.dataset.filename || "this document";
  const ok = await confirmDialog(`“${name}” and everything indexed from it will be removed. This cannot be undone.`);
  if (!ok) return;
  row.dataset.deleting = "1";
  row.classList.add("doc--deleting");
  renderDocs();
  try {
    await api(`/v1/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
    uploads.get(id)?.xhr?.abort();
    uploads.delete(id);
    docs.delete(id);
    renderDocs();
  } catch (err) {
    alertFor(err, `Could not delete “${name}”`);
  } finally {
    delete row.dataset.deleting;
    row.classList.remove("doc--deleting");
    renderDocs();
    refreshDocs();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Drag and drop, file picker
// ---------------------------------------------------------------------------------------------------------

const dropzone = $("dropzone");
const fileInput = $("file-input");

fileInput.addEventListener("change", () => {
  if (fileInput.files?.length) addFiles(fileInput.files);
  fileInput.value = ""; // choosing the same file again fires "change" again
});
dropzone.addEventListener("click", (e) => {
  if (e.target === dropzone || e.target.closest(".dropzone__icon, .dropzone__title, .dropzone__or, .dropzone__hint")) {
    fileInput.click();
  }
});

let dragDepth = 0;
const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
dropzone.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth++;
  dropzone.classList.add("dropzone--over");
});
dropzone.addEventListener("dragover", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = "copy";
});
dropzone.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) dropzone.classList.remove("dropzone--over");
});
dropzone.addEventListener("drop", (e) => {
  e.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("dropzone--over");
  if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
});
// A file dropped next to the zone must not make the browser navigate away from the page.
window.addEventListener("dragover", (e) => hasFiles(e) && e.preventDefault());
window.addEventListener("drop", (e) => hasFiles(e) && e.preventDefault());

// ---------------------------------------------------------------------------------------------------------
// Ask: streaming answer, citations, sources, passage dialog
// ---------------------------------------------------------------------------------------------------------

const form = $("ask-form");
const questionEl = $("question");
const askBtn = $("ask");
const stopBtn = $("stop");
const resultEl = $("result");
const answerEl = $("answer");
const sourcesWrap = $("sources-wrap");
const sourcesEl = $("sources");
const metaEl = $("answer-meta");
const placeholderEl = $("ask-placeholder");
const draftLabel = $("draft-label");
const withheldDraft = $("withheld-draft");

// The model's tokens arrive as a draft (`provisional: true`): shown as a draft, never as the answer, until the
// `done` event decides. A withheld answer says why (`withheld_reason`) and shows the closest passages; the draft
// it replaces stays one click away, labelled as withheld (docs/decisions.md, 2026-12-03).
const q = {
  question: "",
  text: "",
  provisional: false, // q.text is a draft the done event may still withhold
  citations: new Map(), // n -> citation (or, for a withheld answer, n -> closest passage)
  closest: false, // q.citations holds the closest passages of a withheld answer, not sources
  state: "idle", // idle | streaming | done | error | stopped
  stage: "", // the server's last status event while streaming: retrieving | generating | verifying
  startedAt: 0,
  final: null,
  controller: null,
};

function renderAnswer() {
  const nodes = answerParts(q.text).map((p) => ("n" in p ? markerButton(p.n) : document.createTextNode(p.text)));
  if (q.state === "streaming") {
    if (q.text) nodes.push(el("span", { class: "caret", "aria-hidden": "true" }));
    const waiting = stageText();
    if (waiting) nodes.push(el("span", { class: "thinking", "data-testid": "answer-stage", text: waiting }));
  }
  if (q.state === "stopped") nodes.push(el("span", { class: "stopped", text: " (stopped)" }));
  answerEl.replaceChildren(...nodes);
  const draft = q.provisional && Boolean(q.text);
  answerEl.dataset.provisional = String(draft);
  draftLabel.hidden = !draft;
  if (draft && q.state === "stopped") draftLabel.textContent = "Draft · stopped before it was checked";
  else if (draft && q.state === "error") draftLabel.textContent = "Draft · not checked: the answer could not be completed";
  else if (draft) draftLabel.textContent = "Draft · not yet checked against your documents";
}

const STAGES = {
  retrieving: "Searching your documents…",
  generating: "Writing the answer…",
  verifying: "Checking the answer against the sources…",
};

/** What the user waits for, with the seconds so far once it takes a while (a CPU model can take 10 s+). */
function stageText() {
  if (q.text && q.stage !== "verifying") return "";
  const label = STAGES[q.stage] || STAGES.retrieving;
  const seconds = Math.floor((Date.now() - q.startedAt) / 1000);
  return seconds >= 2 ? `${q.text ? " " : ""}${label} ${seconds} s` : `${q.text ? " " : ""}${label}`;
}

let stageTimer = null;
function tickStage(on) {
  clearInterval(stageTimer);
  stageTimer = on ? setInterval(() => q.state === "streaming" && renderAnswer(), 1000) : null;
}

function markerButton(n) {
  const c = q.citations.get(n);
  const label = c ? `Source ${n}: ${c.filename}, page ${c.page}` : `Source ${n}`;
  return el("button", {
    type: "button",
    class: "citation",
    "data-testid": "citation",
    "data-n": String(n),
    "aria-label": label,
    title: c ? `${c.filename}, p. ${c.page}` : undefined,
    disabled: !c && q.state !== "streaming" ? true : undefined,
    text: String(n),
    onclick: () => openPassage(n),
  });
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderAnswer();
  });
}

function renderSources() {
  const list = [...q.citations.values()].sort((a, b) => a.n - b.n);
  sourcesWrap.hidden = list.length === 0;
  sourcesWrap.dataset.kind = q.closest ? "closest" : "sources";
  $("sources-title").textContent = q.closest ? "Closest passages in your documents" : "Sources";
  sourcesEl.replaceChildren(
    ...list.map((c) =>
      el("li", { class: "source", "data-testid": "source", "data-n": String(c.n) }, [
        el("button", { type: "button", class: "source__button", onclick: () => openPassage(c.n) }, [
          el("span", { class: "source__n", "aria-hidden": "true", text: String(c.n) }),
          el("span", { class: "source__body" }, [
            el("span", { class: "source__title", text: `${c.filename}, p. ${c.page}` }),
            el("span", { class: "source__snippet", text: supportText(c) || c.snippet || "" }),
          ]),
        ]),
      ]),
    ),
  );
}

function renderMeta() {
  const f = q.final;
  if (!f) {
    metaEl.textContent = "";
    $("cache-label").hidden = true;
    return;
  }
  const parts = [];
  if (f.model) parts.push(f.model);
  if (f.usage) parts.push(`${f.usage.input_tokens ?? "?"} in / ${f.usage.output_tokens ?? "?"} out tokens`);
  if (f.latency_ms != null) parts.push(formatLatency(f.latency_ms));
  metaEl.textContent = parts.join(" · ");
  $("cache-label").hidden = !f.cache_hit;
  metaEl.title = f.prompt_version ? `Prompt ${f.prompt_version}${f.query_id ? ` · query ${f.query_id}` : ""}` : "";
}

// Thumbs up/down under each answer: POST /v1/feedback {query_id, rating}. A second click changes the rating.
const feedbackEl = $("feedback");
const feedbackStatus = $("feedback-status");

function renderFeedback() {
  const f = q.final;
  feedbackEl.hidden = !(f && f.query_id && q.state === "done");
  for (const b of feedbackEl.querySelectorAll(".feedback__button")) {
    b.setAttribute("aria-pressed", String(q.rating === b.dataset.rating));
  }
}

async function sendFeedback(rating) {
  const queryId = q.final?.query_id;
  if (!queryId) return;
  const previous = q.rating;
  q.rating = rating;
  renderFeedback();
  feedbackStatus.textContent = "Sending…";
  try {
    await api("/v1/feedback", { method: "POST", json: { query_id: queryId, rating } });
    if (q.final?.query_id === queryId) feedbackStatus.textContent = "Thanks for the feedback.";
  } catch (err) {
    if (q.final?.query_id !== queryId) return;
    q.rating = previous;
    renderFeedback();
    feedbackStatus.textContent = "";
    showAlert(err.message, { title: "Feedback not sent" });
  }
}

for (const b of feedbackEl.querySelectorAll(".feedback__button")) {
  b.addEventListener("click", () => sendFeedback(b.dataset.rating));
}

function setCitations(list, { closest = false } = {}) {
  q.closest = closest;
  q.citations = new Map((Array.isArray(list) ? list : []).map((c) => [Number(c.n), c]));
  renderSources();
}

const WITHHELD_TITLES = {
  no_relevant_passages: "Not found in your documents",
  no_answer_in_passages: "Not found in your documents",
  not_supported: "Answer withheld: not supported by your documents",
};

function setState(state) {
  q.state = state;
  answerEl.dataset.state = state;
  answerEl.setAttribute("aria-busy", String(state === "streaming"));
  const streaming = state === "streaming";
  askBtn.disabled = streaming;
  askBtn.classList.toggle("is-loading", streaming);
  askBtn.querySelector(".button__label").textContent = streaming ? "Answering…" : "Ask";
  stopBtn.hidden = !streaming;
  tickStage(streaming);
  resultEl.classList.toggle("result--error", state === "error");
}

// ----- the conversation: earlier turns above the current answer, follow-ups sent with its id

const thread = createThread();
const threadEl = $("thread");
const newConversationBtn = $("new-conversation");

function renderThread() {
  // every answered turn but the one shown below as the result
  const earlier = q.state === "done" ? thread.turns.slice(0, -1) : thread.turns;
  threadEl.replaceChildren(
    ...earlier.map((t, i) =>
      el("li", { class: "thread__turn", "data-testid": "thread-turn", "data-turn": String(i + 1) }, [
        el("p", { class: "thread__question", text: t.question }),
        el("p", {
          class: `thread__answer${t.abstained ? " thread__answer--abstained" : ""}`,
          text: t.answer || "(no answer)",
        }),
      ]),
    ),
  );
  threadEl.hidden = earlier.length === 0;
  newConversationBtn.hidden = !thread.conversationId;
}

newConversationBtn.addEventListener("click", () => {
  if (q.state === "streaming") q.controller?.abort();
  resetThread(thread);
  resultEl.hidden = true;
  placeholderEl.hidden = false;
  $("searched").hidden = true;
  q.state = "idle";
  renderThread();
  questionEl.value = "";
  questionEl.focus();
});

function onDone(data) {
  q.final = data || {};
  recordTurn(thread, q.question, q.final);
  const searched = $("searched");
  searched.textContent = searchedNote(q.final);
  searched.hidden = !searched.textContent;
  const abstained = Boolean(q.final.abstained);
  const draft = q.provisional ? q.text.trim() : "";
  // the draft is withdrawn in the open: the notice says why, and the draft stays readable, labelled as withheld
  const withdrawn = abstained && draft && draft !== q.final.answer;
  $("withheld-draft-text").textContent = withdrawn ? draft : "";
  withheldDraft.hidden = !withdrawn;
  withheldDraft.open = false;
  q.provisional = false;
  if (typeof q.final.answer === "string" && q.final.answer) q.text = q.final.answer;
  if (abstained) setCitations(q.final.best_passages, { closest: true });
  else if (Array.isArray(q.final.citations)) setCitations(q.final.citations);
  resultEl.classList.toggle("result--abstained", abstained);
  $("abstained-notice").hidden = !abstained;
  $("abstained-title").textContent = WITHHELD_TITLES[q.final.withheld] || "Not found in your documents";
  const reason = $("withheld-reason");
  reason.textContent = abstained ? q.final.withheld_reason || "" : "";
  reason.hidden = !reason.textContent;
  answerEl.dataset.abstained = String(abstained);
  answerEl.dataset.withheld = q.final.withheld || "";
  setState("done");
  renderThread();
  renderAnswer();
  renderMeta();
  renderFeedback();
}

function parseData(name, data) {
  try {
    return JSON.parse(data);
  } catch {
    console.warn(`Ignoring an SSE "${name}" event whose data is not JSON`, data);
    return null;
  }
}

async function ask(question) {
  q.controller?.abort();
  const controller = new AbortController();
  q.controller = controller;
  Object.assign(q, {
    question,
    text: "",
    provisional: false,
    final: null,
    rating: null,
    stage: "retrieving",
    startedAt: Date.now(),
  });
  feedbackStatus.textContent = "";
  renderFeedback();
  setCitations([]);
  $("result-question").textContent = question;
  $("searched").hidden = true;
  q.state = "asking";
  renderThread(); // the previous answer moves up into the thread
  $("abstained-notice").hidden = true;
  $("withheld-reason").hidden = true;
  withheldDraft.hidden = true;
  delete answerEl.dataset.withheld;
  resultEl.classList.remove("result--abstained");
  delete answerEl.dataset.abstained;
  resultEl.hidden = false;
  placeholderEl.hidden = true;
  renderMeta();
  setState("streaming");
  renderAnswer();

  let streamError = null;
  try {
    const res = await api("/v1/query", {
      method: "POST",
      json: queryBody(thread, question, TOP_K),
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
      stream: true,
    });
    const type = res.headers.get("Content-Type") || "";
    if (!type.includes("text/event-stream")) {
      onDone(await res.json()); // a server that does not stream answers with the full JSON response
      return;
    }
    await readEventStream(res, (name, raw) => {
      if (q.controller !== controller) return;
      const data = parseData(name, raw);
      if (data === null) return;
      if (name === "status") {
        q.stage = data.stage || q.stage;
        scheduleRender();
      } else if (name === "token") {
        if (data.provisional) q.provisional = true;
        q.text += data.text ?? "";
        scheduleRender();
      } else if (name === "citations") {
        setCitations(data.citations);
        scheduleRender();
      } else if (name === "done") {
        onDone(data);
      } else if (name === "error") {
        const e = data.error || {};
        streamError = new ApiError(e.message || "The answer could not be completed.", { code: e.code });
      }
    });
    if (q.controller !== controller) return;
    if (streamError) throw streamError;
    if (q.state === "streaming") throw new ApiError("The answer stream ended before it was complete.");
  } catch (err) {
    if (q.controller !== controller) return;
    if (err?.name === "AbortError") {
      setState("stopped");
    } else {
      setState("error");
      alertFor(err, "Could not answer the question");
      if (!q.text) resultEl.hidden = true;
      placeholderEl.hidden = !resultEl.hidden;
    }
    renderAnswer();
  } finally {
    if (q.controller === controller) q.controller = null;
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const question = questionEl.value.trim();
  if (!question) {
    questionEl.focus();
    return;
  }
  if (q.state === "streaming") return;
  ask(question);
});

questionEl.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!askBtn.disabled) form.requestSubmit();
  }
});

stopBtn.addEventListener("click", () => q.controller?.abort());

// ----- passage dialog

const passageEl = $("passage");

/** Puts text into node, wrapping the question's key words in <mark> (built with text nodes only). */
function fillHighlighted(node, text, terms) {
  if (!terms.length) {
    node.textContent = text;
    return;
  }
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${escaped.join("|")})`, "giu");
  const out = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    // extend to the end of the word so "reactor" also marks "reactors"
    let end = m.index + m[0].length;
    while (end < text.length && /[\p{L}\p{N}]/u.test(text[end])) end++;
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    out.push(el("mark", { text: text.slice(m.index, end) }));
    last = end;
    re.lastIndex = end;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  node.replaceChildren(...out);
}

/**
 * The whole passage, its line breaks and table rows kept (white-space: pre-wrap), with the sentence that supports
 * the answer in a <mark>. support_start/support_end count Unicode code points (Python's str offsets), so the text
 * is sliced as code points, not UTF-16 units. Without a span (or an older server) the question's words are marked.
 */
function fillPassage(node, c) {
  const text = c.text || c.snippet || "(no text)";
  const points = Array.from(text);
  const start = Number(c.support_start) || 0;
  const end = Math.min(Number(c.support_end) || 0, points.length);
  if (!c.text || !(end > start)) {
    fillHighlighted(node, text, highlightTerms(q.question));
    return null;
  }
  const mark = el("mark", {
    class: "support",
    "data-testid": "support",
    title: q.closest ? "The sentence closest to your question" : "The sentence that supports the answer",
    text: points.slice(start, end).join(""),
  });
  node.replaceChildren(
    document.createTextNode(points.slice(0, start).join("")),
    mark,
    document.createTextNode(points.slice(end).join("")),
  );
  return mark;
}

// The cited page: its image (rendered at ingest, GET /v1/documents/{id}/pages/{n}/image) with the passage's lines
// and, stronger, the supporting sentence's lines drawn over it (frontend/layout.js). The image is fetched through
// the API client (it needs the auth headers an <img src> cannot send) and shown from a blob: URL.
let pageUrl = null;
let pageRequest = 0;

function clearPage() {
  pageRequest++;
  $("passage-page").hidden = true;
  $("passage-page-marks").replaceChildren();
  $("passage-page-img").removeAttribute("src");
  if (pageUrl) URL.revokeObjectURL(pageUrl);
  pageUrl = null;
}

async function showPage(c) {
  clearPage();
  if (!hasLayout(c)) return;
  const mine = pageRequest;
  let blob;
  try {
    const res = await api(pageImagePath(c), { headers: { Accept: "image/png" }, stream: true });
    blob = await res.blob();
  } catch {
    return; // no image for this page (a flowing format, or ingested before page images): the text stands alone
  }
  if (mine !== pageRequest) return; // another passage was opened meanwhile
  pageUrl = URL.createObjectURL(blob);
  const { passage, support } = citationRegions(c);
  const marks = [
    ...passage.map((r) => ["page-mark page-mark--passage", r]),
    ...support.map((r) => ["page-mark page-mark--support", r]),
  ].map(([cls, r]) => {
    const node = el("div", { class: cls, "data-testid": cls.endsWith("support") ? "page-support" : "page-passage" });
    Object.assign(node.style, rectStyle(r));
    return node;
  });
  $("passage-page-marks").replaceChildren(...marks);
  const img = $("passage-page-img");
  img.alt = `Page ${c.page} of ${c.filename}, the cited region highlighted`;
  img.src = pageUrl;
  $("passage-page").hidden = false;
  const first = marks.find((m) => m.dataset.testid === "page-support");
  img.addEventListener("load", () => first?.scrollIntoView({ block: "center" }), { once: true });
}

function openPassage(n) {
  const c = q.citations.get(n);
  if (!c) return;
  showPage(c);
  $("passage-eyebrow").textContent = q.closest ? "Closest passage" : "Source";
  $("passage-n").textContent = String(n);
  $("passage-title").textContent = c.filename;
  const meta = [`Page ${c.page}`];
  if (typeof c.score === "number") meta.push(`relevance ${c.score <= 1 && c.score >= 0 ? `${Math.round(c.score * 100)}%` : c.score.toFixed(2)}`);
  $("passage-meta").textContent = meta.join(" · ");
  const mark = fillPassage($("passage-snippet"), c);
  passageEl.dataset.n = String(n);
  passageEl.dataset.kind = q.closest ? "closest" : "source";
  if (!passageEl.open) passageEl.showModal();
  mark?.scrollIntoView({ block: "center" });
}

$("passage-close").addEventListener("click", () => passageEl.close());
passageEl.addEventListener("close", clearPage);
for (const dialog of [passageEl, confirmEl]) {
  // A click on the backdrop (the dialog element itself, outside its padded body) closes it.
  dialog.addEventListener("click", (e) => {
    if (e.target === dialog) dialog.close(dialog === confirmEl ? "cancel" : undefined);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------------------

document.getElementById("signout").hidden = !auth.signedIn();
document.getElementById("signout").addEventListener("click", () => {
  auth.signOut();
  location.reload();
});

setInterval(() => rows.size && renderDocs(), 60000); // keep "Added N min ago" fresh
renderDocs();
/** The file picker, the drop check and the hint follow the server's format table (lectern.domain.formats). */
async function loadFormats() {
  try {
    const data = await api("/v1/formats");
    const formats = Array.isArray(data?.formats) ? data.formats : [];
    if (!formats.length) return;
    const table = {};
    for (const f of formats) for (const ext of f.extensions || []) table[ext.replace(/^\./, "")] = f.mime_types?.[0];
    SUPPORTED = table;
    const names = formats.map((f) => f.description || f.label);
    SUPPORTED_TEXT = `${names.slice(0, -1).join(", ")} and ${names.at(-1)} files`;
    fileInput.accept = Object.keys(table).map((e) => `.${e}`).join(",");
    $("file-hint").textContent = `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
  } catch {
    // keep the built-in table: the upload door still checks every file
  }
}

checkHealth();
Promise.resolve(refreshDocs()).catch(() => {}).then(loadFormats);
