"""Citations: renumbering in the order cited, the supporting sentence span, markers for uncited answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lectern.domain.citations import (
    StreamRenumberer,
    answer_sentences,
    attribute,
    best_support,
    cite,
    renumber,
    sentence_spans,
)
from lectern.domain.models import Chunk, ScoredChunk

TRAVEL = (
    "Travel policy\n"
    "Employees book trains for trips under 500 km. The daily meal allowance is 55 EUR per day abroad.\n"
    "Hotels are reimbursed up to 120 EUR a night."
)
PHONES = "Department | Extension\nTravel desk | 4410\nPayroll | 4420"
HEADS = "Finance is led by Ana Lopes. Human resources is led by Omar Haddad."


def passage(text: str, n: int, score: float = 0.5) -> ScoredChunk:
    chunk = Chunk(f"c{n}", "t", f"d{n}", f"doc{n}.md", n, 0, text)
    return ScoredChunk(chunk, score)


PASSAGES = [passage(TRAVEL, 1), passage(PHONES, 2), passage(HEADS, 3)]


@pytest.mark.parametrize(
    "text,available,expected,order",
    [
        ("Extension 4410 [2]. Meals 55 EUR [1].", 3, "Extension 4410 [1]. Meals 55 EUR [2].", [2, 1]),
        ("A [3]. B [3][1]. C [1, 3].", 3, "A [1]. B [1][2]. C [2][1].", [3, 1]),
        ("A [1]. B [9].", 3, "A [1]. B.", [1]),  # a marker naming no passage is dropped
        ("No markers.", 3, "No markers.", []),
    ],
)
def test_renumbering_is_in_the_order_first_cited(text, available, expected, order):
    assert renumber(text, available) == (expected, order)


def test_the_stream_is_renumbered_like_the_final_text_even_when_a_marker_is_cut():
    text = "The extension is 4410 [2]. The allowance is 55 EUR [1] [2]."
    pieces = ["The extension is 4410 [", "2", "]. The allowance is 55 EUR [", "1] [", "2]."]
    r = StreamRenumberer(3)
    streamed = "".join(r.push(p) for p in pieces) + r.flush()
    assert streamed == renumber(text, 3)[0] == "The extension is 4410 [1]. The allowance is 55 EUR [2] [1]."


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before_it():
    sentences = answer_sentences("The desk is on 4410. [2] Meals are 55 EUR [1].\nHotels [1, 3]")
    assert [(s.text, s.numbers) for s in sentences] == [
        ("The desk is on 4410.", (2,)),
        ("Meals are 55 EUR .", (1,)),
        ("Hotels", (1, 3)),
    ]


def test_sentence_spans_keep_lines_and_table_rows_apart():
    assert [PHONES[s:e] for s, e in sentence_spans(PHONES)] == [
        "Department | Extension",
        "Travel desk | 4410",
        "Payroll | 4420",
    ]


@pytest.mark.parametrize(
    "text,claim,expected",
    [
        (TRAVEL, "The daily meal allowance is 55 EUR.", "The daily meal allowance is 55 EUR per day abroad."),
        (TRAVEL, "Hotels are paid up to 120 EUR.", "Hotels are reimbursed up to 120 EUR a night."),
        (PHONES, "The travel desk's extension is 4410.", "Travel desk | 4410"),
        (HEADS, "Omar Haddad leads human resources.", "Human resources is led by Omar Haddad."),
    ],
)
def test_the_supporting_span_is_the_sentence_that_best_supports_the_claim(text, claim, expected):
    start, end = best_support(text, claim)
    assert text[start:end] == expected


def test_no_shared_word_means_no_span():
    assert best_support(HEADS, "Zebras graze quietly.") == (0, 0)


def test_code_point_offsets_survive_astral_characters():
    text = "Emoji 🎉 first line.\nThe allowance is 55 EUR."
    start, end = best_support(text, "allowance 55 EUR")
    assert text[start:end] == "The allowance is 55 EUR."  # Python str offsets are code points, as documented


def test_cite_lists_only_cited_passages_in_the_order_cited_with_spans():
    answer = "The travel desk is on extension 4410 [2]. Meals abroad are 55 EUR a day [1]."
    shown, citations = cite(answer, PASSAGES, "What is the travel desk extension and the meal allowance?")
    assert shown == "The travel desk is on extension 4410 [1]. Meals abroad are 55 EUR a day [2]."
    assert [(c.n, c.filename) for c in citations] == [(1, "doc2.md"), (2, "doc1.md")]  # doc3 is not a source
    spans = [c.text[c.support_start : c.support_end] for c in citations]
    assert spans == ["Travel desk | 4410", "The daily meal allowance is 55 EUR per day abroad."]
    assert citations[0].text == PHONES  # the whole passage, line breaks kept


def test_an_answer_without_markers_cites_what_supports_each_sentence():
    text = attribute("Ana Lopes leads finance. The daily allowance is 55 EUR.", PASSAGES)
    assert text == "Ana Lopes leads finance [3]. The daily allowance is 55 EUR [1]."
    assert attribute("Nothing in common here.", PASSAGES) == "Nothing in common here."
    law = [passage("The duties are set out in 11 U.S.C. § 1302 of the Code.", 1)]
    assert attribute("The duties are in 11 U.S.C. § 1302 of the Code.", law) == (
        "The duties are in 11 U.S.C. § 1302 of the Code [1]."  # not "U.S.C [1]. § 1302"
    )
    assert attribute("Already cited [2].", PASSAGES) == "Already cited [2]."


def test_markers_that_name_no_passage_count_as_none():
    shown, citations = cite("Ana Lopes leads finance [7].", PASSAGES)
    assert shown == "Ana Lopes leads finance [1]." and [c.filename for c in citations] == ["doc3.md"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40))
def test_stream_renumbering_equals_renumbering_the_whole(cuts: list[int]) -> None:
    text = "It is 4410 [3]. Meals are 55 EUR [1] [3]; hotels 120 EUR [2, 3]. See [see above] and [12] too [1]."
    pieces, pos = [], 0
    for c in cuts:
        pieces.append(text[pos : pos + c])
        pos += c
    pieces.append(text[pos:])
    r = StreamRenumberer(3)
    streamed = "".join(r.push(p) for p in pieces if p) + r.flush()
    # the same numbers as the final text; the final text also tidies the space a dropped marker leaves
    assert streamed.replace("  ", " ").replace(" .", ".") == renumber(text, 3)[0]
