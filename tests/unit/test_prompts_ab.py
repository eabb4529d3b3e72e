"""Prompt versions as files and the A/B split by a stable hash of the user."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lectern.domain.answering import Answerer
from lectern.domain.models import Generation, Usage
from lectern.domain.prompts import PromptSplit, bucket, load_template
from lectern.domain.retrieval import RetrievalResult

A, B = load_template("answer-v3"), load_template("answer-v2")


def test_split_is_stable_and_close_to_the_share():
    split = PromptSplit(A, B, 0.3)
    users = [f"tenant/user-{i}" for i in range(4000)]
    first = [split.choose(u).version for u in users]
    assert first == [split.choose(u).version for u in users]  # same user, same arm, every time
    share_b = first.count("answer-v2") / len(users)
    assert 0.27 < share_b < 0.33, share_b


def test_bucket_does_not_depend_on_the_process():
    # Python's hash() is salted per process; the split must not be
    code = "from lectern.domain.prompts import bucket; print(repr(bucket('a|b', 'tenant/alice')))"
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)
    }
    assert outs == {repr(bucket("a|b", "tenant/alice")) + "\n"}


def test_anonymous_users_no_split_and_edge_shares_get_version_a():
    assert PromptSplit(A, B, 1.0).choose(None) is A
    assert PromptSplit(A, B, 0.0).choose("u") is A
    assert PromptSplit(A).choose("u") is A
    assert PromptSplit(A, B, 1.0).choose("u") is B


def test_a_new_experiment_reshuffles_users():
    users = [f"u{i}" for i in range(400)]
    ab = [PromptSplit(A, B, 0.5).choose(u).version == "answer-v2" for u in users]
    ac = [PromptSplit(A, load_template("answer-v1"), 0.5).choose(u).version == "answer-v1" for u in users]
    assert ab != ac


def test_bad_splits_are_refused():
    with pytest.raises(ValueError):
        PromptSplit(A, B, 1.5)
    with pytest.raises(ValueError):
        PromptSplit(A, A, 0.5)
    with pytest.raises(ValueError):
        PromptSplit.load("answer-v3", "no-such-version", 0.5)


class _Retriever:
    def retrieve(self, tenant_id, query, *, top_k, filters=None):
        from lectern.domain.models import Chunk, ScoredChunk

        chunk = Chunk("c1", tenant_id, "d1", "guide.pdf", 1, 0, "Coolant pressure must stay below 14 bar.")
        return RetrievalResult([ScoredChunk(chunk, 0.9)], 0.9, True)


class _Model:
    model_id = "m"

    def __init__(self) -> None:
        self.systems: list[str] = []

    def generate(self, messages, *, max_tokens, temperature):
        self.systems.append(messages[0].content)
        return Generation("Below 14 bar [1].", "m", Usage(10, 3))


def test_answerer_renders_and_records_the_users_version():
    model = _Model()
    answerer = Answerer(
        retriever=_Retriever(),  # type: ignore[arg-type]
        model=model,
        template=A,
        prompt_b=B,
        prompt_b_share=0.5,
        token_counter=lambda s: len(s.split()),
    )
    users = [f"t/u{i}" for i in range(40)]
    versions = {
        u: answerer.answer("t", "What must coolant pressure stay below?", user_id=u).prompt_version
        for u in users
    }
    assert set(versions.values()) == {"answer-v2", "answer-v3"}
    for u, v in versions.items():
        assert v == answerer.prompt_for(u).version
    # the prompt that went to the model is the recorded version's
    by_version = {"answer-v3": A.system, "answer-v2": B.system}
    assert model.systems == [by_version[versions[u]] for u in users]
    assert answerer.answer("t", "What must coolant pressure stay below?").prompt_version == "answer-v3"
