// The sign-in dialog: a Lectern API key locally, email and password (with Cognito's new-password challenge) on AWS.
//
// Safety rule for this file: text that comes from the server or from files (filenames, answers, snippets,
// error messages) is only ever put into the page with textContent / text nodes, never with innerHTML.

/**
 * auth: the auth seam (auth.js); apiUrl: the client's URL builder, to try a key before keeping it; fetch: for that
 * try. Returns requireSignIn(), which shows the dialog once (concurrent 401s share it) and resolves when the API
 * accepts the caller.
 */
export function createSignIn({ auth, apiUrl, fetch }) {
  const cognitoMode = auth.mode === "cognito";
  let signingIn = null;

  return function requireSignIn() {
    if (!signingIn) {
      signingIn = new Promise((resolve) => {
        const dialog = document.getElementById("signin");
        const form = document.getElementById("signin-form");
        const input = document.getElementById("signin-key");
        const error = document.getElementById("signin-error");
        const email = document.getElementById("signin-email");
        const newPassword = document.getElementById("signin-new-password");
        let challenge = null; // Cognito NEW_PASSWORD_REQUIRED: {Session, USERNAME}
        for (const n of document.querySelectorAll("[data-signin-mode]")) {
          n.hidden = n.dataset.signinMode !== (cognitoMode ? "cognito" : "key");
        }
        document.getElementById("signin-key-label").textContent = cognitoMode ? "Password" : "API key";
        error.textContent = auth.signedIn() ? "Your sign-in was not accepted. Sign in again." : "";
        const done = () => {
          form.removeEventListener("submit", submit);
          dialog.close();
          input.value = "";
          newPassword.value = "";
          document.getElementById("signout").hidden = false;
          signingIn = null;
          resolve();
        };
        const submitKey = async () => {
          const key = input.value.trim();
          if (!key) return;
          const res = await fetch(apiUrl("/v1/documents"), { headers: { Authorization: `Bearer ${key}` } }).catch(
            () => null,
          );
          if (!res || res.status === 401) {
            error.textContent = res ? "That key was not accepted." : "Cannot reach the Lectern API.";
            return;
          }
          auth.saveKey(key);
          done();
        };
        const submitCognito = async () => {
          let out;
          if (challenge) {
            out = await auth.cognito("RespondToAuthChallenge", {
              ChallengeName: "NEW_PASSWORD_REQUIRED",
              Session: challenge.Session,
              ChallengeResponses: { USERNAME: challenge.USERNAME, NEW_PASSWORD: newPassword.value },
            });
          } else {
            out = await auth.cognito("InitiateAuth", {
              AuthFlow: "USER_PASSWORD_AUTH",
              AuthParameters: { USERNAME: email.value.trim(), PASSWORD: input.value },
            });
          }
          if (out.ChallengeName === "NEW_PASSWORD_REQUIRED") {
            challenge = {
              Session: out.Session,
              USERNAME: out.ChallengeParameters?.USER_ID_FOR_SRP || email.value.trim(),
            };
            document.getElementById("signin-new").hidden = false;
            newPassword.required = true;
            error.textContent = "Choose a new password to finish signing in.";
            newPassword.focus();
            return;
          }
          if (!out.AuthenticationResult?.IdToken) {
            error.textContent =
              "This account needs a sign-in step the page does not support (ask your administrator).";
            return;
          }
          auth.saveSession(out.AuthenticationResult, email.value.trim());
          done();
        };
        const submit = async (e) => {
          e.preventDefault();
          error.textContent = "";
          try {
            await (cognitoMode ? submitCognito() : submitKey());
          } catch (err) {
            error.textContent = err?.message || "Sign-in failed.";
          }
        };
        form.addEventListener("submit", submit);
        dialog.addEventListener("cancel", (e) => e.preventDefault(), { once: true }); // no way round it
        if (!dialog.open) dialog.showModal();
        (cognitoMode ? email : input).focus();
      });
    }
    return signingIn;
  };
}
