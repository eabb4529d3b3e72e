"""The grounding check's causes of false abstention (issue 16), marker reattribution, the draft cache and the
calibration's choice of setting."""

from __future__ import annotations

from lectern.adapters.local.guardrails.grounding import OverlapGroundingChecker, claim_terms
from lectern.domain.citations import reattribute
from lectern.domain.models import ChatMessage, Chunk, Generation, ScoredChunk, Usage
from lectern.evaluation.draft_cache import RecordingChatModel, prompt_key
from lectern.evaluation.grounding import GroundingSetting, choose

FEE = "Norwich City manager Mike Walker paid Wolverhampton Wanderers £850,000 for the forward in 1997."
CAPS = "He won a total of 15 caps for his country over a 12-year period."
OTHER = "The club then signed Frank Stapleton, who helped the young Roberts develop awareness in the box."


def passages(*texts: str) -> list[ScoredChunk]:
    return [ScoredChunk(Chunk(f"c{i}", "t", "d", "f.txt", 1, i, t), 1.0 - i / 10) for i, t in enumerate(texts)]


def test_question_words_are_the_premise_not_claims():
    checker = OverlapGroundingChecker()
    answer = "Iwan Roberts won fifteen caps for Wales."
    # "iwan", "wales" are not in the passage: without the question they sink the sentence
    assert checker.support(answer, [CAPS]) == 0.0
    assert checker.support(answer, [CAPS], question="How many caps did Iwan Roberts win for Wales?") == 1.0


def test_an_answer_restating_an_off_topic_question_is_not_supported():
    checker = OverlapGroundingChecker()
    q = "What programming language is the Linux kernel written in?"
    assert checker.support("The Linux kernel is written in C. [1]", [CAPS, OTHER], question=q) == 0.0


def test_a_number_the_passages_do_not_state_sinks_the_sentence():
    checker = OverlapGroundingChecker()
    q = "How many caps did Iwan Roberts win for Wales?"
    assert checker.support("Iwan Roberts won 15 caps for his country.", [CAPS], question=q) == 1.0
    assert checker.support("Iwan Roberts won 17 caps for his country.", [CAPS], question=q) == 0.0


def test_number_words_hyphens_and_stems_meet():
    assert "15" in claim_terms("fifteen caps")
    assert claim_terms("day-to-day") == claim_terms("daytoday") == claim_terms("day- today")
    assert claim_terms("delivery") == claim_terms("delivered") and claim_terms("banned") == claim_terms("ban")
    assert "2500" in claim_terms("£2,500")


def test_a_wrong_marker_moves_to_the_passage_holding_the_claim():
    ps = passages(FEE, OTHER)
    text = "Norwich City paid £850,000 to Wolves to secure the services of Iwan Roberts. [2]"
    assert reattribute(text, ps, "How much did Norwich City pay Wolves?").endswith("Roberts. [1]")
    right = "Norwich City paid £850,000 for him. [1]"
    assert reattribute(right, ps, "How much did Norwich City pay Wolves?") == right
    # a meta sentence's marker is judged on the claim before it
    meta = "Walker paid £850,000 for the forward. This information is found in passage [2]."
    assert reattribute(meta, ps).endswith("passage [1].")


def test_a_passage_stating_the_same_fact_is_cited_beside_the_one_cited():
    overlap = "Roberts retired in 2005. " + CAPS  # the next chunk repeats the sentence (chunk overlap)
    ps = passages(CAPS, OTHER, overlap)
    out = reattribute("He won a total of 15 caps for his country. [1]", ps)
    assert out.endswith("[1][3]")


def test_draft_cache_replays_a_prompt_whatever_its_spotlight_marker(tmp_path):
    calls = []

    class Model:
        model_id = "m"

        def generate(self, messages, *, max_tokens, temperature):
            calls.append(messages)
            return Generation("It is 4410. [1]", "m", Usage(10, 5))

        def stream(self, messages, *, max_tokens, temperature):
            calls.append(messages)
            yield "It is "
            yield "4410. [1]"
            yield Generation("It is 4410. [1]", "m", Usage(10, 5))

    def prompt(marker: str) -> list[ChatMessage]:
        return [ChatMessage("user", f"[1] (a, page 1)\n<data-{marker}>\nThe desk is 4410.\n</data-{marker}>\nQ")]

    assert prompt_key("m", prompt("0123456789abcdef")) == prompt_key("m", prompt("fedcba9876543210"))
    path = tmp_path / "drafts.jsonl"
    first = RecordingChatModel(Model(), path)
    assert "".join(
        x for x in first.stream(prompt("0123456789abcdef"), max_tokens=9, temperature=0) if isinstance(x, str)
    )
    again = RecordingChatModel(Model(), path)  # a new run reads the file
    g = again.generate(prompt("fedcba9876543210"), max_tokens=9, temperature=0)
    assert g.text == "It is 4410. [1]" and g.usage == Usage(10, 5) and len(calls) == 1
    other = [ChatMessage("user", "another question")]
    again.generate(other, max_tokens=9, temperature=0)
    assert len(calls) == 2 and (again.hits, again.misses) == (1, 1)


def test_choose_takes_the_lowest_false_abstention_meeting_the_target():
    a, b, c = GroundingSetting(0.5, 0.6, 0.6), GroundingSetting(0.3, 0.5, 0.6), GroundingSetting(0.7, 0.7, 0.8)
    scores = {
        a: {"abstention_on_unanswerable": 0.96, "false_abstention_on_answerable": 0.10},
        b: {"abstention_on_unanswerable": 0.90, "false_abstention_on_answerable": 0.00},  # misses the target
        c: {"abstention_on_unanswerable": 1.00, "false_abstention_on_answerable": 0.05},
    }
    assert choose(scores, 0.95) == c
    assert choose({b: scores[b]}, 0.95) == b  # none meets it: the highest abstention
