// Test doubles for the page's browser dependencies: a Storage, and a fetch that records its calls and answers from
// a script. Responses are real WHATWG Response objects (node 20's), so status, headers and bodies behave as in a
// browser.

export function memoryStorage(initial = {}) {
  const items = new Map(Object.entries(initial));
  return {
    items,
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => void items.set(k, String(v)),
    removeItem: (k) => void items.delete(k),
  };
}

/** Storage the browser refuses (privacy settings): touching it throws, as window.sessionStorage does then. */
export function blockedStorage() {
  throw new DOMException("The operation is insecure.", "SecurityError");
}

/**
 * fetch(url, init) answering with replies in order; a reply is a Response, an Error (rejects), or a function of
 * (url, init) returning either. calls: [{url, init, headers}] with the headers as a plain lower-cased object.
 */
export function scriptedFetch(...replies) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const headers = Object.fromEntries(new Headers(init.headers || {}).entries());
    calls.push({ url, init, headers });
    if (!replies.length) throw new Error(`unexpected fetch ${url}`);
    let reply = replies.shift();
    if (typeof reply === "function") reply = await reply(url, init);
    if (reply instanceof Error) throw reply;
    return reply;
  };
  fetch.calls = calls;
  return fetch;
}

export const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
