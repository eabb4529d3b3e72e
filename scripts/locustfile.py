"""Locust users for `scripts/load_test.py`: a mix of questions (JSON and SSE), searches, listings, document
lookups and uploads against one Lectern. Every response is counted by status code into the JSON file named by
LECTERN_LOAD_STATUS_OUT when locust quits; a 5xx or a transport error is a locust failure.

Run through scripts/load_test.py, or by hand:
    locust -f scripts/locustfile.py --headless -u 50 -r 10 -t 120s --host http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from collections import Counter

from locust import HttpUser, between, events, task

STATUS: Counter[str] = Counter()
SAMPLES: list[str] = []  # the first few 4xx answers, to say why
_LOCK = threading.Lock()
QUESTIONS = [
    "What was the measured value for item {i}-{j}?",
    "Which station recorded item {i}-{j}?",
    "Under which protocol was item {i}-{j} recorded?",
    "When was the Zorblax reactor commissioned?",
    "How often are the valves checked?",
    "What is the capital of Peru?",  # unanswerable: the retrieval gate abstains
]


@events.request.add_listener
def _count(request_type, name, response_time, response_length, response=None, exception=None, **kw) -> None:
    status = getattr(response, "status_code", 0)
    key = f"{name} {status or 'transport-error'}"
    with _LOCK:
        STATUS[key] += 1


@events.quitting.add_listener
def _write(environment, **kw) -> None:
    out = os.environ.get("LECTERN_LOAD_STATUS_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(
                {"status": dict(sorted(STATUS.items())), "client_error_samples": SAMPLES[:20]}, f, indent=1
            )


def _question() -> str:
    return random.choice(QUESTIONS).format(i=random.randrange(6), j=random.randrange(40))


class LecternUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def _check(self, r) -> None:
        if r.status_code >= 500 or r.status_code == 0:
            r.failure(f"{r.status_code}: {r.error!r} {r.text[:200]}")
        else:
            r.success()  # 4xx are answers, not failures; the first few are kept to say why
            if r.status_code >= 400 and len(SAMPLES) < 20:
                with _LOCK:
                    SAMPLES.append(f"{r.request.method} {r.request.path_url} {r.status_code}: {r.text[:300]}")

    @task(4)
    def query(self) -> None:
        with self.client.post(
            "/v1/query", json={"question": _question()}, name="POST /v1/query", catch_response=True
        ) as r:
            self._check(r)

    @task(1)
    def query_stream(self) -> None:
        with self.client.post(
            "/v1/query",
            json={"question": _question()},
            headers={"Accept": "text/event-stream"},
            name="POST /v1/query (SSE)",
            catch_response=True,
        ) as r:
            self._check(r)
            if r.status_code == 200 and "event: done" not in r.text:
                r.failure(f"stream without a done event: ...{r.text[-300:]!r}")

    @task(4)
    def search(self) -> None:
        body = {"query": _question(), "mode": random.choice(["hybrid", "bm25", "vector"])}
        with self.client.post("/v1/search", json=body, name="POST /v1/search", catch_response=True) as r:
            self._check(r)

    @task(2)
    def list_and_get(self) -> None:
        with self.client.get("/v1/documents", name="GET /v1/documents", catch_response=True) as r:
            self._check(r)
            docs = r.json().get("documents", []) if r.status_code == 200 else []
        if docs:
            doc = random.choice(docs)["document_id"]
            with self.client.get(
                f"/v1/documents/{doc}", name="GET /v1/documents/{id}", catch_response=True
            ) as r:
                self._check(r)

    @task(1)
    def upload(self) -> None:
        note = uuid.uuid4().hex[:8]
        text = f"# Load note {note}\n\nThe load test wrote value {random.randrange(10**6)}.\n"
        data = text.encode()
        # a new name per note: the same name would be a new version that replaces the last one (issue 17), and a
        # user listing documents meanwhile would then find one gone (404)
        name = f"load-note-{note}.md"
        with self.client.post(
            "/v1/documents",
            json={"filename": name, "size_bytes": len(data)},
            name="POST /v1/documents",
            catch_response=True,
        ) as r:
            self._check(r)
            slot = r.json() if r.status_code == 201 else None
        if slot:
            with self.client.post(
                slot["upload"]["url"],
                data=slot["upload"]["fields"],
                files={"file": (name, data)},
                name="POST /v1/uploads/{id}",
                catch_response=True,
            ) as r:
                self._check(r)

    @task(1)
    def health(self) -> None:
        with self.client.get("/v1/health", name="GET /v1/health", catch_response=True) as r:
            self._check(r)
