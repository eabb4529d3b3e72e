// The page's API client: runtime configuration, ApiError, the mapping of error bodies to it, and every call to the
// Lectern API. It takes its browser dependencies (fetch, storage, the auth headers, what to do on a 401), so it runs
// under node with stubs (tests/frontend/api.test.mjs). No DOM.

export class ApiError extends Error {
  constructor(message, { code = "error", status = 0 } = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

/**
 * Runtime configuration. On AWS the Web stack writes /config.json next to the page: the API's URL, the page's API
 * key (metering only) and the Cognito user pool client the page signs in with. `lectern up` has no config.json:
 * the page then calls its own origin and signs in with a Lectern API key. {} when absent, unreadable or not an object.
 */
export async function loadConfig(fetch) {
  try {
    const res = await fetch("/config.json", { cache: "no-store", headers: { Accept: "application/json" } });
    if (!res.ok) return {};
    const data = await res.json();
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

/** Base URL of the API, without a trailing slash; empty = same origin as the page (what `lectern up` serves). */
export function apiBaseFrom(config, metaBase) {
  return (config?.apiUrl || metaBase || "").trim().replace(/\/+$/, "");
}

/**
 * A stable id for this browser: the local server buckets prompt versions (A/B) by it. Kept in `getStorage()`
 * (localStorage; read inside the try, since touching blocked storage throws); "" when storage is blocked.
 */
export function stableClientId(getStorage, newId = randomId) {
  try {
    const store = getStorage();
    let id = store.getItem("lectern-client-id");
    if (!id) {
      id = newId();
      store.setItem("lectern-client-id", id);
    }
    return id;
  } catch {
    return "";
  }
}

function randomId() {
  return globalThis.crypto?.randomUUID?.() || `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

const XML_ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** The text of the first <tag>…</tag> of an XML error body (S3's <Error><Code/><Message/>), entities decoded. */
function xmlText(text, tag) {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(text);
  if (!m) return "";
  return m[1].replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (all, e) => {
    if (e[0] !== "#") return XML_ENTITIES[e] ?? all;
    const code = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
  });
}

/**
 * The ApiError for a failed response's body: the API's {"error": {"code", "message"}} (or {"error": "..."},
 * {"message": "..."}), S3's XML <Error>, else a generic message with the HTTP status.
 */
export function errorFromBody(text, status, statusText = "") {
  try {
    const data = JSON.parse(text);
    const e = data?.error;
    if (e && typeof e === "object" && e.message) return new ApiError(String(e.message), { code: e.code, status });
    if (typeof e === "string") return new ApiError(e, { status });
    if (typeof data?.message === "string") return new ApiError(data.message, { status });
  } catch {
    /* not JSON: S3 answers XML, a proxy may answer HTML */
  }
  if (text && text.trimStart().startsWith("<")) {
    const msg = xmlText(text, "Message");
    if (msg) return new ApiError(msg, { code: xmlText(text, "Code") || "error", status });
  }
  const reason = statusText ? ` ${statusText}` : "";
  return new ApiError(`The request failed (HTTP ${status}${reason}).`, { status });
}

export async function errorFromResponse(res) {
  let text = "";
  try {
    text = await res.text();
  } catch {
    /* body unreadable: fall through to the generic message */
  }
  return errorFromBody(text, res.status, res.statusText);
}

/**
 * The client every call to the Lectern API goes through.
 * - base: the API's URL ("" = the page's origin); fetch: the fetch to use;
 * - headers(): the auth seam's headers (may return a promise); clientId: sent as X-Lectern-Client to a same-origin
 *   API only (the local server; on AWS the user is the Cognito identity and no extra header crosses origins);
 * - reauthenticate(): called once on a 401 from the API itself (not from an absolute URL), then the call is retried.
 */
export function createClient({ base = "", fetch, headers = () => ({}), clientId = "", reauthenticate = null }) {
  const absolute = (path) => /^https?:\/\//i.test(path);
  function apiUrl(path) {
    return absolute(path) ? path : base + path;
  }

  /**
   * options: method, json (body to send as JSON), headers, signal, stream (return the Response unread).
   * Returns the parsed JSON body (null for 204 or an empty body), or the Response when `stream` is set.
   * Throws ApiError with the server's {"error":{"code","message"}} when the status is not 2xx.
   */
  async function api(path, options = {}) {
    try {
      return await callApi(path, options);
    } catch (err) {
      const ours = !absolute(path); // a 401 from elsewhere (a full URL) is not the API asking for sign-in
      if (!(err instanceof ApiError) || err.status !== 401 || options.retried || !reauthenticate || !ours) throw err;
      await reauthenticate();
      return callApi(path, { ...options, retried: true });
    }
  }

  async function callApi(path, { method = "GET", json, headers: extra = {}, signal, stream = false } = {}) {
    const h = new Headers({ Accept: "application/json" });
    for (const [k, v] of Object.entries(await headers())) h.set(k, v);
    for (const [k, v] of Object.entries(extra)) h.set(k, v);
    if (!base && clientId) h.set("X-Lectern-Client", clientId);
    let body;
    if (json !== undefined) {
      h.set("Content-Type", "application/json");
      body = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(apiUrl(path), { method, headers: h, body, signal });
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      throw new ApiError("Cannot reach the Lectern API. Check that it is running and try again.", {
        code: "network_error",
      });
    }
    if (!res.ok) throw await errorFromResponse(res);
    if (stream) return res;
    if (res.status === 204) return null;
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError("The API sent a response that is not JSON.", { code: "bad_response", status: res.status });
    }
  }

  return { api, callApi, apiUrl };
}
