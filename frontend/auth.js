// The auth seam: the one place that decides which extra headers every API call carries, and the sign-in state
// behind them. Locally a Lectern API key (the one `lectern up` printed, or `lectern keys create`), kept for this tab;
// on AWS the Cognito ID token (+ the page's API key for API Gateway's usage plan) from Cognito's JSON API (the same
// requests the AWS SDK makes). It takes its storage and fetch, so it runs under node with stubs
// (tests/frontend/auth.test.mjs). No DOM.

export const KEY_STORE = "lectern-api-key";
export const SESSION_STORE = "lectern-session";

/** The Cognito user pool client from the runtime config, or null (sign in with a Lectern API key). */
export function cognitoFrom(config) {
  return config?.userPoolClientId
    ? {
        clientId: config.userPoolClientId,
        endpoint: config.cognitoEndpoint || `https://cognito-idp.${config.region}.amazonaws.com/`,
      }
    : null;
}

/**
 * config: the runtime config (userPoolClientId, cognitoEndpoint, region, apiKey); storage(): the tab's storage
 * (sessionStorage; called inside a try, since touching blocked storage throws); fetch: for Cognito's API.
 */
export function createAuth({ config = {}, storage, fetch }) {
  const cognito = cognitoFrom(config);

  function read(name) {
    try {
      return storage().getItem(name) || "";
    } catch {
      return "";
    }
  }
  function write(name, value) {
    try {
      storage().setItem(name, value);
    } catch {
      /* storage blocked: the sign-in lives until the page reloads */
    }
  }

  function storedKey() {
    return read(KEY_STORE);
  }
  function session() {
    try {
      const s = JSON.parse(read(SESSION_STORE) || "{}");
      return s && typeof s === "object" ? s : {};
    } catch {
      return {};
    }
  }
  function saveSession(result, email) {
    const prev = session();
    const s = {
      email: email || prev.email,
      idToken: result.IdToken,
      refreshToken: result.RefreshToken || prev.refreshToken,
    };
    write(SESSION_STORE, JSON.stringify(s));
  }
  function saveKey(key) {
    write(KEY_STORE, key);
  }
  function signOut() {
    try {
      storage().removeItem(KEY_STORE);
      storage().removeItem(SESSION_STORE);
    } catch {
      /* nothing stored */
    }
  }
  function signedIn() {
    return cognito ? Boolean(session().idToken) : Boolean(storedKey());
  }

  /** @returns {Record<string, string>} the headers every API call carries */
  function headers() {
    if (cognito) {
      const s = session();
      const h = config.apiKey ? { "X-Api-Key": config.apiKey } : {};
      return s.idToken ? { ...h, Authorization: s.idToken } : h;
    }
    const key = storedKey();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  /** One call to Cognito's JSON API; throws an Error with a message fit for the sign-in dialog. */
  async function callCognito(target, body) {
    const res = await fetch(cognito.endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
      },
      body: JSON.stringify({ ClientId: cognito.clientId, ...body }),
    });
    const data = (await res.json().catch(() => ({}))) || {};
    if (!res.ok) {
      const type = String(data.__type || "").split("#").pop();
      const friendly = {
        NotAuthorizedException: "Wrong email or password.",
        UserNotFoundException: "Wrong email or password.",
        PasswordResetRequiredException: "Your password must be reset by an administrator.",
        InvalidPasswordException: data.message || "That password does not meet the policy.",
        TooManyRequestsException: "Too many attempts; wait a minute and try again.",
      };
      throw new Error(friendly[type] || data.message || "Sign-in failed.");
    }
    return data;
  }

  /** On a 401 with a Cognito session: try the refresh token once; true when a new ID token was saved. */
  async function refresh() {
    const s = session();
    if (!cognito || !s.refreshToken) return false;
    try {
      const out = await callCognito("InitiateAuth", {
        AuthFlow: "REFRESH_TOKEN_AUTH",
        AuthParameters: { REFRESH_TOKEN: s.refreshToken },
      });
      if (!out.AuthenticationResult?.IdToken) return false;
      saveSession(out.AuthenticationResult, s.email);
      return true;
    } catch {
      return false;
    }
  }

  return {
    mode: cognito ? "cognito" : "key",
    headers,
    signedIn,
    session,
    storedKey,
    saveSession,
    saveKey,
    signOut,
    cognito: callCognito,
    refresh,
  };
}
