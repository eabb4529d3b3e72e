"""Answer-evaluation scoring: SQuAD normalisation, EM/F1 by hand, support matching, the judge, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lectern.domain.models import Generation, Usage
from lectern.evaluation.answers import (
    QuestionResult,
    contains_answer,
    exact_match,
    judge_faithfulness,
    load_devset,
    normalize_answer,
    strip_citations,
    summarize,
    supports,
    token_f1,
)

DEVSET = Path(__file__).resolve().parents[1] / "fixtures" / "answers" / "docs-dev.json"


def test_normalisation_is_squads():
    assert normalize_answer("The  Bankruptcy Reform Act, of 1978!") == "bankruptcy reform act of 1978"


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Model Zoo.", ["Model Zoo"]) == 1.0
    assert exact_match("a Model Zoo repository", ["Model Zoo"]) == 0.0
    # prediction "model zoo repository" vs gold "model zoo": precision 2/3, recall 1 -> F1 0.8
    assert token_f1("a Model Zoo repository", ["Model Zoo"]) == pytest.approx(0.8)
    assert token_f1("nothing alike", ["Model Zoo"]) == 0.0
    assert token_f1("x", ["nope", "x"]) == 1.0  # the best gold counts


def test_containment_respects_word_boundaries():
    assert contains_answer("He won 15 caps [1].", ["15"]) == 1.0
    assert contains_answer("He won 150 caps.", ["15"]) == 0.0


def test_citation_marks_are_stripped():
    assert strip_citations("Nevada [1][2].") == "Nevada."


def test_support_by_substring_or_most_words():
    chunk = (
        "Roberts has the UEFA A Licence for football coaching and, speaking in 2007, had not ruled it out."
    )
    assert supports(chunk, "the UEFA A Licence for football coaching")
    # a chunk boundary cut the span: 5 of its 6 words are still there
    assert supports("...the UEFA A Licence for football", "the UEFA A Licence for football coaching")
    assert not supports("An unrelated passage about trucks.", "the UEFA A Licence for football coaching")


class _Judge:
    model_id = "judge-fake"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def generate(self, messages, *, max_tokens, temperature):
        self.prompts.append(messages[-1].content)
        return Generation(self.reply, self.model_id, Usage(1, 1))


def test_judge_reads_the_first_digit_and_sees_the_sources():
    judge = _Judge("4 - mostly supported")
    assert judge_faithfulness(judge, "Q?", "A.", ["source one"]) == 4.0
    assert "[1] source one" in judge.prompts[0]
    assert judge_faithfulness(_Judge("cannot say"), "Q?", "A.", []) is None


def test_summary_separates_answerable_and_unanswerable():
    rows = [
        QuestionResult(
            "a",
            True,
            "x",
            False,
            hit_at_k=1.0,
            reciprocal_rank=1.0,
            exact_match=1.0,
            f1=1.0,
            contains=1.0,
            citation_precision=1.0,
        ),
        QuestionResult(
            "b", True, "", True, hit_at_k=0.0, reciprocal_rank=0.0, exact_match=0.0, f1=0.0, contains=0.0
        ),
        QuestionResult("u1", False, "", True),
        QuestionResult("u2", False, "y", False),
    ]
    s = summarize(rows)
    assert s["retrieval_hit_at_k"] == 0.5
    assert s["exact_match"] == 0.5
    assert s["citation_precision"] == 1.0  # only answered questions have citations to judge
    assert s["abstention_on_unanswerable"] == 0.5
    assert s["false_abstention_on_answerable"] == 0.5


def test_the_dev_set_is_well_formed():
    dev = load_devset(DEVSET)
    answerable = [q for q in dev.questions if q.answerable]
    assert len(answerable) >= 25 and len(dev.questions) - len(answerable) >= 6
    assert len({q.id for q in dev.questions}) == len(dev.questions)
    assert {q.file for q in answerable} <= set(dev.documents)


def test_an_answerable_question_without_support_is_rejected(tmp_path: Path):
    bad = {
        "documents": ["a.txt"],
        "questions": [{"id": "x", "question": "q?", "answers": ["y"], "file": "a.txt"}],
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="support"):
        load_devset(tmp_path / "bad.json")
