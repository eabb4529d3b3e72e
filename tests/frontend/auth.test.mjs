// The auth seam (frontend/auth.js) under node with stubbed storage and fetch: which headers every API call carries
// (a local API key, or a Cognito ID token + the page's API key), the session kept in storage, Cognito's requests
// and refresh, and the seam together with the client (frontend/api.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient } from "../../frontend/api.js";
import { KEY_STORE, SESSION_STORE, cognitoFrom, createAuth } from "../../frontend/auth.js";
import { blockedStorage, json, memoryStorage, scriptedFetch } from "./stubs.mjs";

const COGNITO_CONFIG = {
  apiUrl: "https://api.example.com/prod",
  apiKey: "page-key",
  userPoolClientId: "client-1",
  region: "eu-west-1",
};
const noFetch = () => {
  throw new Error("no network expected");
};

test("local mode: no key, no header; a saved key is a Bearer token; sign-out forgets it", () => {
  const store = memoryStorage();
  const auth = createAuth({ config: {}, storage: () => store, fetch: noFetch });
  assert.equal(auth.mode, "key");
  assert.deepEqual(auth.headers(), {});
  assert.equal(auth.signedIn(), false);
  auth.saveKey("lk_secret");
  assert.equal(store.getItem(KEY_STORE), "lk_secret");
  assert.deepEqual(auth.headers(), { Authorization: "Bearer lk_secret" });
  assert.equal(auth.signedIn(), true);
  auth.signOut();
  assert.deepEqual(auth.headers(), {});
  assert.equal(auth.signedIn(), false);
});

test("local mode ignores a Cognito session left in storage, and the page's API key", () => {
  const store = memoryStorage({ [SESSION_STORE]: JSON.stringify({ idToken: "jwt" }) });
  const auth = createAuth({ config: { apiKey: "page-key" }, storage: () => store, fetch: noFetch });
  assert.deepEqual(auth.headers(), {});
  assert.equal(auth.signedIn(), false);
});

test("Cognito mode: the page's API key always, the raw ID token once signed in (no Bearer)", () => {
  const store = memoryStorage({ [KEY_STORE]: "lk_local" });
  const auth = createAuth({ config: COGNITO_CONFIG, storage: () => store, fetch: noFetch });
  assert.equal(auth.mode, "cognito");
  assert.deepEqual(auth.headers(), { "X-Api-Key": "page-key" }); // a local key in storage is not sent
  assert.equal(auth.signedIn(), false);
  auth.saveSession({ IdToken: "id.jwt", RefreshToken: "refresh-1" }, "ana@example.com");
  assert.deepEqual(auth.headers(), { "X-Api-Key": "page-key", Authorization: "id.jwt" });
  assert.deepEqual(JSON.parse(store.getItem(SESSION_STORE)), {
    email: "ana@example.com",
    idToken: "id.jwt",
    refreshToken: "refresh-1",
  });
  assert.equal(auth.signedIn(), true);
  const noPageKey = createAuth({ config: { ...COGNITO_CONFIG, apiKey: "" }, storage: () => store, fetch: noFetch });
  assert.deepEqual(noPageKey.headers(), { Authorization: "id.jwt" });
  auth.signOut();
  assert.equal(store.getItem(SESSION_STORE), null);
  assert.equal(store.getItem(KEY_STORE), null);
  assert.deepEqual(auth.headers(), { "X-Api-Key": "page-key" });
});

test("a saved session keeps the previous email and refresh token when the new result lacks them", () => {
  const store = memoryStorage();
  const auth = createAuth({ config: COGNITO_CONFIG, storage: () => store, fetch: noFetch });
  auth.saveSession({ IdToken: "t1", RefreshToken: "r1" }, "ana@example.com");
  auth.saveSession({ IdToken: "t2" });
  assert.deepEqual(auth.session(), { email: "ana@example.com", idToken: "t2", refreshToken: "r1" });
});

test("blocked or corrupted storage: no headers, no exception, nothing signed in", () => {
  for (const config of [{}, COGNITO_CONFIG]) {
    const auth = createAuth({ config, storage: blockedStorage, fetch: noFetch });
    assert.deepEqual(auth.headers(), config.apiKey ? { "X-Api-Key": "page-key" } : {});
    assert.equal(auth.signedIn(), false);
    auth.saveKey("k");
    auth.saveSession({ IdToken: "t" }, "a@b.c");
    auth.signOut();
  }
  for (const stored of ["{not json", "null", '"a string"']) {
    const store = memoryStorage({ [SESSION_STORE]: stored });
    const auth = createAuth({ config: COGNITO_CONFIG, storage: () => store, fetch: noFetch });
    assert.deepEqual(auth.session(), {}, stored);
    assert.deepEqual(auth.headers(), { "X-Api-Key": "page-key" }, stored);
  }
});

test("cognitoFrom: the regional endpoint unless the config names one; null without a client id", () => {
  assert.deepEqual(cognitoFrom(COGNITO_CONFIG), {
    clientId: "client-1",
    endpoint: "https://cognito-idp.eu-west-1.amazonaws.com/",
  });
  assert.equal(cognitoFrom({ ...COGNITO_CONFIG, cognitoEndpoint: "http://127.0.0.1:9229/" }).endpoint, "http://127.0.0.1:9229/");
  assert.equal(cognitoFrom({}), null);
  assert.equal(cognitoFrom(undefined), null);
});

test("a Cognito call is the SDK's JSON request; its errors become sign-in messages", async () => {
  const fetch = scriptedFetch(
    json(200, { AuthenticationResult: { IdToken: "t" } }),
    json(400, { __type: "com.amazonaws#NotAuthorizedException", message: "Incorrect username or password." }),
    json(400, { __type: "InvalidPasswordException", message: "Password must have symbols." }),
    json(400, { __type: "SomethingNew", message: "A new problem." }),
    new Response("<html>502</html>", { status: 502 }),
  );
  const auth = createAuth({ config: COGNITO_CONFIG, storage: () => memoryStorage(), fetch });
  const params = { AuthFlow: "USER_PASSWORD_AUTH", AuthParameters: { USERNAME: "ana", PASSWORD: "pw" } };
  assert.deepEqual(await auth.cognito("InitiateAuth", params), { AuthenticationResult: { IdToken: "t" } });
  const call = fetch.calls[0];
  assert.equal(call.url, "https://cognito-idp.eu-west-1.amazonaws.com/");
  assert.equal(call.init.method, "POST");
  assert.equal(call.headers["content-type"], "application/x-amz-json-1.1");
  assert.equal(call.headers["x-amz-target"], "AWSCognitoIdentityProviderService.InitiateAuth");
  assert.deepEqual(JSON.parse(call.init.body), { ClientId: "client-1", ...params });
  for (const message of [
    "Wrong email or password.",
    "Password must have symbols.",
    "A new problem.",
    "Sign-in failed.",
  ]) {
    await assert.rejects(auth.cognito("InitiateAuth", params), { message });
  }
});

test("refresh: a new ID token is saved; a refused refresh leaves the session and says false", async () => {
  const store = memoryStorage();
  const fetch = scriptedFetch(
    json(200, { AuthenticationResult: { IdToken: "fresh" } }),
    json(400, { __type: "NotAuthorizedException", message: "Refresh Token has expired" }),
    json(200, { ChallengeName: "SOMETHING" }),
  );
  const auth = createAuth({ config: COGNITO_CONFIG, storage: () => store, fetch });
  assert.equal(await auth.refresh(), false); // no session yet: no request
  assert.equal(fetch.calls.length, 0);
  auth.saveSession({ IdToken: "stale", RefreshToken: "r1" }, "ana@example.com");
  assert.equal(await auth.refresh(), true);
  assert.deepEqual(JSON.parse(fetch.calls[0].init.body), {
    ClientId: "client-1",
    AuthFlow: "REFRESH_TOKEN_AUTH",
    AuthParameters: { REFRESH_TOKEN: "r1" },
  });
  assert.deepEqual(auth.session(), { email: "ana@example.com", idToken: "fresh", refreshToken: "r1" });
  assert.equal(await auth.refresh(), false);
  assert.equal(await auth.refresh(), false);
  assert.equal(auth.session().idToken, "fresh");
  const local = createAuth({ config: {}, storage: () => memoryStorage(), fetch: noFetch });
  assert.equal(await local.refresh(), false);
});

test("the seam and the client together: every call carries the seam's headers; a 401 refreshes once", async () => {
  const store = memoryStorage();
  const cognitoFetch = scriptedFetch(json(200, { AuthenticationResult: { IdToken: "fresh" } }));
  const auth = createAuth({ config: COGNITO_CONFIG, storage: () => store, fetch: cognitoFetch });
  auth.saveSession({ IdToken: "stale", RefreshToken: "r1" }, "ana@example.com");
  const apiFetch = scriptedFetch(
    json(401, { message: "Unauthorized" }),
    json(200, { documents: [] }),
  );
  let signInShown = 0;
  const { api } = createClient({
    base: "https://api.example.com/prod",
    fetch: apiFetch,
    headers: () => auth.headers(),
    clientId: "browser-1",
    reauthenticate: async () => {
      if (!(await auth.refresh())) signInShown++;
    },
  });
  assert.deepEqual(await api("/v1/documents"), { documents: [] });
  assert.equal(signInShown, 0);
  const sent = apiFetch.calls.map((c) => [c.headers.authorization, c.headers["x-api-key"], c.headers["x-lectern-client"]]);
  assert.deepEqual(sent, [
    ["stale", "page-key", undefined],
    ["fresh", "page-key", undefined],
  ]);
});
