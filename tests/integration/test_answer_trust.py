"""Answers that are never withdrawn after showing, over the real server (loopback HTTP, real extraction, ONNX
embedder, SQLite index, the local guard): the model's tokens stream as provisional, an unsupported draft's `done`
withholds it with the reason and the closest passages, a supported answer's citations are the passages it cites
in the order cited with their supporting sentence, and a cached answer says so."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence

import httpx
import pytest

from lectern.domain.models import ChatMessage, Generation
from tests.conftest import RunningLectern
from tests.integration.helpers import parse_sse, upload, wait_status

HANDBOOK = b"""# Staff handbook

## Travel
Book trains for trips under 500 km. The daily meal allowance is 55 EUR per day abroad.
Hotels are reimbursed up to 120 EUR a night.

## Phone extensions

| Department | Extension |
|---|---|
| Travel desk | 4410 |
| Payroll | 4420 |

## Leave
Full-time staff get 27 days of paid time off a year.
"""

DESKS = b"""# Front desks

The security desk is on the ground floor; visitors sign in at the security desk. The help desk answers
calls about laptops and travel bookings made through the portal.
"""

HALLUCINATION = "The travel desk phones are ultramarine blue, painted in 1999 by volunteers"


class TwoFacedModel:
    """Cites the passages holding the facts the question asks for (in the order asked, by their prompt numbers);
    for a question about colours it writes a claim no passage supports."""

    model_id = "two-faced-test-model"

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        prompt = messages[-1].content
        context, _, question = prompt.rpartition("Question:")
        if "colour" in question:
            return f"{HALLUCINATION} [1]."
        numbers = {}
        for block in context.split("\n\n["):
            head, _, body = block.partition(")\n")
            n = int(head.lstrip("[").split("]")[0])
            for fact in ("4410", "55 EUR"):
                if fact in body:
                    numbers.setdefault(fact, n)
        desk, meals = numbers["4410"], numbers["55 EUR"]
        return f"The travel desk is on extension 4410 [{desk}]. Meals abroad are 55 EUR a day [{meals}]."

    def generate(self, messages, *, max_tokens, temperature) -> Generation:
        from lectern.domain.models import Usage

        return Generation(self._reply(messages), self.model_id, Usage(10, 10))

    def stream(self, messages, *, max_tokens, temperature) -> Iterator[str | Generation]:
        gen = self.generate(messages, max_tokens=max_tokens, temperature=temperature)
        yield from (gen.text[i : i + 3] for i in range(0, len(gen.text), 3))  # markers cut across tokens
        yield gen


@pytest.fixture
def served(tmp_path, embedder) -> Iterator[RunningLectern]:
    from lectern.local.container import build_local, frontend_dir
    from lectern.local.server import LocalServer
    from lectern.settings import LocalSettings

    settings = LocalSettings.from_env(
        {},
        data_dir=tmp_path / "data",
        llm="fake",
        port=0,
        min_relative_score=0.0,
        auth="none",
        chunk_size=48,
        chunk_overlap=8,
    )
    lectern = build_local(settings, embedder=embedder, model=TwoFacedModel())
    server = LocalServer("127.0.0.1", 0, lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    lectern.signer.base_url = server.url
    lectern.worker.run_forever()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield RunningLectern(lectern, server)
    server.shutdown()
    server.server_close()
    lectern.close()


def _sse(base: str, question: str) -> list[tuple[str, dict]]:
    r = httpx.post(f"{base}/v1/query", json={"question": question}, headers={"Accept": "text/event-stream"}, timeout=60)
    assert r.status_code == 200, r.text
    return [(k, json.loads(d)) for k, d in parse_sse(r.text)]


def _span(c: dict) -> str:
    return c["text"][c["support_start"] : c["support_end"]]


def test_drafts_are_provisional_withheld_answers_say_why_and_sources_are_what_is_cited(served) -> None:
    base = served.url
    for name, data in (("handbook.md", HANDBOOK), ("desks.md", DESKS)):
        assert wait_status(base, upload(base, name, data), {"INDEXED", "FAILED"})["status"] == "INDEXED"
    question = "What is the travel desk extension and the daily meal allowance?"
    hits = httpx.post(f"{base}/v1/search", json={"query": question, "top_k": 5}).json()["results"]
    assert "desks.md" in {h["filename"] for h in hits}  # retrieved, so "only the cited ones" means something

    # --- an unsupported draft: streamed as provisional, then withheld with the reason and the closest passages
    events = _sse(base, "What colour are the travel desk phones?")
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"status", "token"}, kinds
    tokens = [d for k, d in events if k == "token"]
    assert tokens and all(t["provisional"] is True for t in tokens)
    assert "".join(t["text"] for t in tokens).startswith(HALLUCINATION)  # what the page showed as a draft
    done = events[-1][1]
    assert done["abstained"] is True and done["citations"] == [] and events[-2][1]["citations"] == []
    assert HALLUCINATION not in done["answer"]
    assert done["withheld"] == "not_supported" and "not supported" in done["withheld_reason"]
    best = done["best_passages"]
    assert best and [b["n"] for b in best] == list(range(1, len(best) + 1))
    assert any("Travel desk" in _span(b) for b in best), [_span(b) for b in best]

    # --- a supported answer: the draft is the answer; citations are the cited passages, renumbered in order cited
    events = _sse(base, question)
    tokens = [d for k, d in events if k == "token"]
    assert tokens and all(t["provisional"] for t in tokens)
    done = events[-1][1]
    assert not done["abstained"] and done["withheld"] is None and done["withheld_reason"] is None
    assert "".join(t["text"] for t in tokens) == done["answer"]  # the same numbers in the draft and the answer
    cited = done["citations"]
    assert [c["n"] for c in cited] == list(range(1, len(cited) + 1))
    assert "4410 [1]" in done["answer"] and cited and "4410" in _span(cited[0])
    assert any("55 EUR" in _span(c) for c in cited)
    assert "desks.md" not in {c["filename"] for c in cited}  # retrieved, not cited: not a source
    # every citation is cited in the text, and nothing else is listed
    assert {int(n) for n in re.findall(r"\[(\d+)\]", done["answer"])} == {c["n"] for c in cited}
    assert "Travel desk | 4410" in cited[0]["text"] and "\n" in cited[0]["text"]  # the whole passage, rows kept

    # --- asked again: a cached answer, labelled, its final text streamed as non-provisional
    again = _sse(base, question)
    assert [d["provisional"] for k, d in again if k == "token"] == [False]
    assert again[-1][1]["cache_hit"] is True and again[-1][1]["citations"] == cited
