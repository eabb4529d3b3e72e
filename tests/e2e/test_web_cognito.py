"""The page as deployed on AWS: it reads /config.json (written by the CDK Web stack), signs in against Cognito's
JSON API (USER_PASSWORD_AUTH, the NEW_PASSWORD_REQUIRED challenge of an invited user, REFRESH_TOKEN_AUTH when
the ID token expires) and calls API Gateway with the ID token and the page's API key.

Neither Cognito nor API Gateway exists here: Playwright answers those two hosts in the browser (page.route) with
the documented JSON shapes, while the page itself is served by the real local server. What is tested is the page's
own code, in Chromium. The local server's Content-Security-Policy (same origin only) is removed from the page's
response, as CloudFront serves it without that header.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser

API = "https://api.example.test/v1"
COGNITO = "https://cognito.example.test/"
CONFIG = {
    "apiUrl": f"{API}/",
    "apiKey": "web-page-key",
    "region": "us-east-1",
    "userPoolId": "us-east-1_test",
    "userPoolClientId": "client-123",
    "cognitoEndpoint": COGNITO,
}


def test_page_signs_in_with_cognito_and_calls_the_api_with_the_id_token(
    page: Page, lectern_server: Any
) -> None:
    cognito_calls: list[dict] = []
    api_auth: list[tuple[str, str | None, str | None]] = []
    valid = {"id-token-2"}  # the first token is "expired" by the time the documents are listed again

    def on_config(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(CONFIG))

    def on_cognito(route: Route) -> None:
        req = route.request
        target = req.headers.get("x-amz-target", "").split(".")[-1]
        body = json.loads(req.post_data or "{}")
        cognito_calls.append({"target": target, **body})
        assert body["ClientId"] == "client-123"
        if target == "InitiateAuth" and body["AuthFlow"] == "USER_PASSWORD_AUTH":
            if body["AuthParameters"]["PASSWORD"] != "Temp-pass-1!":
                route.fulfill(
                    status=400,
                    content_type="application/x-amz-json-1.1",
                    body=json.dumps({"__type": "NotAuthorizedException", "message": "Incorrect."}),
                )
                return
            out = {
                "ChallengeName": "NEW_PASSWORD_REQUIRED",
                "Session": "sess-1",
                "ChallengeParameters": {"USER_ID_FOR_SRP": "ada@example.com"},
            }
        elif target == "RespondToAuthChallenge":
            assert body["Session"] == "sess-1" and body["ChallengeResponses"]["NEW_PASSWORD"] == "New-pass-2!"
            out = {"AuthenticationResult": {"IdToken": "id-token-1", "RefreshToken": "refresh-1"}}
        elif target == "InitiateAuth" and body["AuthFlow"] == "REFRESH_TOKEN_AUTH":
            assert body["AuthParameters"]["REFRESH_TOKEN"] == "refresh-1"
            out = {"AuthenticationResult": {"IdToken": "id-token-2"}}
        else:
            raise AssertionError(f"unexpected Cognito call {target}")
        route.fulfill(status=200, content_type="application/x-amz-json-1.1", body=json.dumps(out))

    def on_api(route: Route) -> None:
        req = route.request
        if req.method == "OPTIONS":
            route.fulfill(
                status=200, headers={"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "*"}
            )
            return
        token, key = req.headers.get("authorization"), req.headers.get("x-api-key")
        path = req.url.removeprefix(API)
        api_auth.append((path, token, key))
        cors = {"Access-Control-Allow-Origin": "*"}
        if path == "/v1/health":
            route.fulfill(
                status=200,
                content_type="application/json",
                headers=cors,
                body=json.dumps({"status": "ok", "version": "t", "components": {}}),
            )
        elif path == "/v1/formats" and token in {"id-token-1", *valid}:  # read once signed in; not the test here
            route.fulfill(status=200, content_type="application/json", headers=cors, body='{"formats": []}')
        elif token == "id-token-1" and [a for a in api_auth if a[1] == "id-token-1" and a[0] != "/v1/formats"] == [
            (path, token, key)
        ]:
            route.fulfill(status=200, content_type="application/json", headers=cors, body='{"documents": []}')
        elif token not in valid:
            route.fulfill(
                status=401, content_type="application/json", headers=cors, body='{"message": "Unauthorized"}'
            )
        else:
            route.fulfill(status=200, content_type="application/json", headers=cors, body='{"documents": []}')

    def on_page(route: Route) -> None:
        # The local server's CSP allows only its own origin (connect-src 'self'); on AWS the page comes from
        # CloudFront and talks to API Gateway and Cognito, so that header is dropped here.
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-security-policy"}
        route.fulfill(response=response, headers=headers)

    page.route(f"{lectern_server.url}/", on_page)
    page.route("**/config.json", on_config)
    page.route(f"{COGNITO}**", on_cognito)
    page.route(f"{API}/**", on_api)
    page.goto(f"{lectern_server.url}/")

    dialog = page.get_by_test_id("signin")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("signin-email")).to_be_visible()
    page.get_by_test_id("signin-email").fill("ada@example.com")
    page.get_by_test_id("signin-key").fill("wrong")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_have_text("Wrong email or password.")
    page.get_by_test_id("signin-key").fill("Temp-pass-1!")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-new-password")).to_be_visible()
    page.get_by_test_id("signin-new-password").fill("New-pass-2!")
    page.get_by_test_id("signin-submit").click()
    expect(dialog).to_be_hidden()

    # a later call finds id-token-1 expired: the page refreshes the session without asking the user again
    page.evaluate("() => import('/static/app.js').then((m) => m.api('/v1/documents'))")
    expect(page.get_by_test_id("signin")).to_be_hidden()
    targets = [c["target"] + ":" + c.get("AuthFlow", "") for c in cognito_calls]
    assert targets == [
        "InitiateAuth:USER_PASSWORD_AUTH",
        "InitiateAuth:USER_PASSWORD_AUTH",
        "RespondToAuthChallenge:",
        "InitiateAuth:REFRESH_TOKEN_AUTH",
    ], targets
    authed = [(t, k) for p, t, k in api_auth if p != "/v1/health" and t]
    assert ("id-token-1", "web-page-key") in authed and ("id-token-2", "web-page-key") in authed
    assert all(k == "web-page-key" for _, _, k in api_auth if _ != "/v1/health")
