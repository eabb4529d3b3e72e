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
    chunk = "Roberts has the UEFA A Licence for football coaching and, speaking in 2007, had not ruled it out."
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
        QuestionResult("b", True, "", True, hit_at_k=0.0, reciprocal_rank=0.0, exact_match=0.0, f1=0.0, contains=0.0),
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


def test_citation_precision_recall_and_span_hit():
    from lectern.domain.models import Answer, Chunk, Citation, ScoredChunk, Usage
    from lectern.evaluation.answers import DevQuestion, citation_scores

    q = DevQuestion("q", "What is the meal allowance?", ("55 EUR",), "policy.md", "The meal allowance is 55 EUR")
    gold = "Trains first. The meal allowance is 55 EUR a day."
    texts = {"g1": gold, "g2": f"Again: {gold}", "x": "Hotels cost 120 EUR."}
    names = {"g1": "policy.md", "g2": "policy.md", "x": "policy.md"}
    retrieved = [ScoredChunk(Chunk(i, "t", "d", names[i], 1, 0, t), 0.5) for i, t in texts.items()]

    def cite(i: str, n: int, span: str) -> Citation:
        start = texts[i].find(span)
        return Citation(n, "d", names[i], 1, "", 0.5, i, texts[i], start, start + len(span))

    def answer(*citations: Citation) -> Answer:
        return Answer("a", list(citations), "m", Usage(), 0, "v", retrieved=retrieved)

    # one supporting passage of two cited, its sentence marked; one of the two supporting passages given cited
    assert citation_scores(answer(cite("g1", 1, "The meal allowance is 55 EUR a day."), cite("x", 2, "Hotels")), q) == (
        0.5,
        0.5,
        1.0,
    )
    # both supporting passages cited, but one with the wrong sentence marked
    both = answer(cite("g1", 1, "Trains first."), cite("g2", 2, "The meal allowance is 55 EUR a day."))
    assert citation_scores(both, q) == (1.0, 1.0, 0.5)
    assert citation_scores(answer(), q) == (None, 0.0, None)  # nothing cited: precision undefined, recall 0
