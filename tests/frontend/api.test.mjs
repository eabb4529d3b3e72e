// The page's API client (frontend/api.js) under node, with a scripted fetch: error mapping, bodies, the 401 retry,
// the runtime config and the browser id.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError,
  apiBaseFrom,
  createClient,
  errorFromBody,
  errorFromResponse,
  loadConfig,
  stableClientId,
} from "../../frontend/api.js";
import { blockedStorage, json, memoryStorage, scriptedFetch } from "./stubs.mjs";

function assertApiError(err, { message, code, status }) {
  assert.ok(err instanceof ApiError, `not an ApiError: ${err}`);
  assert.ok(err instanceof Error);
  assert.equal(err.name, "ApiError");
  if (message instanceof RegExp) assert.match(err.message, message);
  else assert.equal(err.message, message);
  assert.equal(err.code, code);
  assert.equal(err.status, status);
}

// -- error bodies ------------------------------------------------------------------------------------------------

test("the API's JSON error body gives its code and message", () => {
  const body = JSON.stringify({ error: { code: "payload_too_large", message: "The file is over 50 MB." } });
  assertApiError(errorFromBody(body, 413, "Payload Too Large"), {
    message: "The file is over 50 MB.",
    code: "payload_too_large",
    status: 413,
  });
});

test("other JSON shapes: an error string, a top-level message (API Gateway), an error object without message", () => {
  assertApiError(errorFromBody('{"error": "Unauthorized"}', 401), { message: "Unauthorized", code: "error", status: 401 });
  assertApiError(errorFromBody('{"message": "Forbidden"}', 403), { message: "Forbidden", code: "error", status: 403 });
  assertApiError(errorFromBody('{"error": {"code": "x"}}', 400, "Bad Request"), {
    message: "The request failed (HTTP 400 Bad Request).",
    code: "error",
    status: 400,
  });
  assertApiError(errorFromBody("null", 500), { message: "The request failed (HTTP 500).", code: "error", status: 500 });
});

test("non-JSON bodies: plain text, an HTML error page, an empty body give the status", () => {
  for (const text of ["Internal Server Error", "<html><body><h1>502 Bad Gateway</h1></body></html>", ""]) {
    assertApiError(errorFromBody(text, 502, "Bad Gateway"), {
      message: "The request failed (HTTP 502 Bad Gateway).",
      code: "error",
      status: 502,
    });
  }
});

test("S3's XML error body gives its Code and Message, entities decoded", () => {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>' +
    "<Message>Invalid according to Policy: Policy Condition failed: [&quot;eq&quot;, &quot;$Content-Type&quot;, " +
    "&quot;a&amp;b&quot;] &#233;&#x1F642;</Message><RequestId>R1</RequestId></Error>";
  assertApiError(errorFromBody(xml, 403, "Forbidden"), {
    message: 'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "a&b"] é🙂',
    code: "AccessDenied",
    status: 403,
  });
  assertApiError(errorFromBody("<Error><Message>Slow down</Message></Error>", 503), {
    message: "Slow down",
    code: "error",
    status: 503,
  });
});

test("errorFromResponse reads the body, and survives one that cannot be read", async () => {
  assertApiError(await errorFromResponse(json(404, { error: { code: "not_found", message: "No such document." } })), {
    message: "No such document.",
    code: "not_found",
    status: 404,
  });
  const broken = { status: 500, statusText: "Internal Server Error", text: async () => Promise.reject(new Error("x")) };
  assertApiError(await errorFromResponse(broken), {
    message: "The request failed (HTTP 500 Internal Server Error).",
    code: "error",
    status: 500,
  });
});

// -- the client ----------------------------------------------------------------------------------------------------

test("a 2xx JSON body is parsed; 204 and an empty body are null", async () => {
  const fetch = scriptedFetch(json(200, { documents: [] }), new Response(null, { status: 204 }), new Response(""));
  const { api } = createClient({ fetch });
  assert.deepEqual(await api("/v1/documents"), { documents: [] });
  assert.equal(await api("/v1/documents/d1", { method: "DELETE" }), null);
  assert.equal(await api("/v1/x"), null);
  assert.equal(fetch.calls[0].url, "/v1/documents");
  assert.equal(fetch.calls[0].init.method, "GET");
  assert.equal(fetch.calls[0].headers.accept, "application/json");
  assert.equal(fetch.calls[1].init.method, "DELETE");
});

test("a 2xx body that is not JSON is an ApiError, not a crash", async () => {
  const { api } = createClient({ fetch: scriptedFetch(new Response("<html>hi</html>", { status: 200 })) });
  await assert.rejects(api("/v1/health"), (err) => {
    assertApiError(err, { message: "The API sent a response that is not JSON.", code: "bad_response", status: 200 });
    return true;
  });
});

test("error statuses map to ApiError with the server's code and message", async () => {
  const { api } = createClient({
    fetch: scriptedFetch(
      json(415, { error: { code: "unsupported_media_type", message: "Supported: PDF, DOCX." } }),
      new Response("upstream timed out", { status: 504, statusText: "Gateway Timeout" }),
    ),
  });
  await assert.rejects(api("/v1/documents", { method: "POST", json: {} }), (err) => {
    assertApiError(err, { message: "Supported: PDF, DOCX.", code: "unsupported_media_type", status: 415 });
    return true;
  });
  await assert.rejects(api("/v1/query"), (err) => {
    assertApiError(err, { message: "The request failed (HTTP 504 Gateway Timeout).", code: "error", status: 504 });
    return true;
  });
});

test("a network failure is an ApiError network_error; an abort stays an AbortError", async () => {
  const aborted = new DOMException("The operation was aborted.", "AbortError");
  const { api } = createClient({ fetch: scriptedFetch(new TypeError("Failed to fetch"), aborted) });
  await assert.rejects(api("/v1/health"), (err) => {
    assertApiError(err, {
      message: "Cannot reach the Lectern API. Check that it is running and try again.",
      code: "network_error",
      status: 0,
    });
    return true;
  });
  await assert.rejects(api("/v1/query"), (err) => err === aborted);
});

test("json is sent as a JSON body, extra headers win, stream returns the Response unread", async () => {
  const stream = new Response("event: done\ndata: {}\n\n", { headers: { "Content-Type": "text/event-stream" } });
  const fetch = scriptedFetch(stream);
  const controller = new AbortController();
  const { api } = createClient({ base: "https://api.example.com/prod", fetch });
  const res = await api("/v1/query", {
    method: "POST",
    json: { question: "Why?", top_k: 5 },
    headers: { Accept: "text/event-stream" },
    signal: controller.signal,
    stream: true,
  });
  assert.equal(res, stream);
  assert.equal(res.bodyUsed, false);
  const call = fetch.calls[0];
  assert.equal(call.url, "https://api.example.com/prod/v1/query");
  assert.equal(call.init.body, '{"question":"Why?","top_k":5}');
  assert.equal(call.headers["content-type"], "application/json");
  assert.equal(call.headers.accept, "text/event-stream");
  assert.equal(call.init.signal, controller.signal);
});

test("the browser id goes to a same-origin API only", async () => {
  const local = scriptedFetch(json(200, {}));
  await createClient({ fetch: local, clientId: "b-1" }).api("/v1/health");
  assert.equal(local.calls[0].headers["x-lectern-client"], "b-1");
  const remote = scriptedFetch(json(200, {}));
  await createClient({ base: "https://api.example.com", fetch: remote, clientId: "b-1" }).api("/v1/health");
  assert.equal(remote.calls[0].headers["x-lectern-client"], undefined);
});

test("a 401 asks for sign-in once, then retries with the new headers; a second 401 is thrown", async () => {
  let token = "old";
  let asked = 0;
  const fetch = scriptedFetch(
    json(401, { error: { code: "unauthorized", message: "Sign in." } }),
    json(200, { ok: true }),
    json(401, { error: { code: "unauthorized", message: "Sign in." } }),
    json(401, { error: { code: "unauthorized", message: "Still no." } }),
  );
  const { api } = createClient({
    fetch,
    headers: async () => ({ Authorization: `Bearer ${token}` }),
    reauthenticate: async () => {
      asked++;
      token = "new";
    },
  });
  assert.deepEqual(await api("/v1/documents"), { ok: true });
  assert.equal(asked, 1);
  assert.deepEqual(
    fetch.calls.map((c) => c.headers.authorization),
    ["Bearer old", "Bearer new"],
  );
  await assert.rejects(api("/v1/documents"), (err) => {
    assertApiError(err, { message: "Still no.", code: "unauthorized", status: 401 });
    return true;
  });
  assert.equal(asked, 2);
  assert.equal(fetch.calls.length, 4);
});

test("a 401 from an absolute URL (not the API) or another error status does not ask for sign-in", async () => {
  let asked = 0;
  const reauthenticate = async () => void asked++;
  const fetch = scriptedFetch(json(401, { message: "no" }), json(403, { message: "no" }));
  const { api, apiUrl } = createClient({ fetch, reauthenticate });
  await assert.rejects(api("https://bucket.s3.amazonaws.com/"), (err) => err.status === 401);
  await assert.rejects(api("/v1/documents"), (err) => err.status === 403);
  assert.equal(asked, 0);
  assert.equal(apiUrl("HTTPS://elsewhere/x"), "HTTPS://elsewhere/x");
  assert.equal(apiUrl("/v1/x"), "/v1/x");
});

// -- configuration and the browser id -----------------------------------------------------------------------------

test("loadConfig: the object, else {} for a missing, unreachable or non-object config", async () => {
  const fetch = scriptedFetch(
    json(200, { apiUrl: "https://api.example.com/prod/", userPoolClientId: "c1" }),
    new Response("Not found", { status: 404 }),
    new TypeError("Failed to fetch"),
    new Response("null", { status: 200 }),
    new Response("<html>", { status: 200 }),
  );
  assert.deepEqual(await loadConfig(fetch), { apiUrl: "https://api.example.com/prod/", userPoolClientId: "c1" });
  for (let i = 0; i < 4; i++) assert.deepEqual(await loadConfig(fetch), {});
  assert.equal(fetch.calls[0].url, "/config.json");
  assert.equal(fetch.calls[0].init.cache, "no-store");
});

test("apiBaseFrom: the config's URL, else the page's meta tag, without trailing slashes", () => {
  assert.equal(apiBaseFrom({ apiUrl: " https://api.example.com/prod// " }, "/ignored"), "https://api.example.com/prod");
  assert.equal(apiBaseFrom({}, "http://127.0.0.1:9000/"), "http://127.0.0.1:9000");
  assert.equal(apiBaseFrom({}, undefined), "");
});

test("stableClientId is created once and kept; blocked storage gives no id", () => {
  const store = memoryStorage();
  let n = 0;
  const first = stableClientId(() => store, () => `id-${++n}`);
  assert.equal(first, "id-1");
  assert.equal(stableClientId(() => store, () => `id-${++n}`), "id-1");
  assert.equal(store.getItem("lectern-client-id"), "id-1");
  assert.equal(stableClientId(blockedStorage), "");
  assert.match(stableClientId(() => memoryStorage()), /^[0-9a-z-]{8,}$/);
});
