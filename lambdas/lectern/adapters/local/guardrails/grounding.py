"""The grounding check: is each sentence of an answer supported by the passages it cites?"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from lectern.domain.ports import Embedder

_STOP_WORDS = (
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those there their they them he she his her we our you your i me my not no so than then which who "
    "whom what when where why how all any each can could would should will shall may might must do does did "
    "done has have had into about over under also only such very more most other some per via "
    # words about the sources rather than from them ("according to the passage, ...")
    "according accord passage passages document documents provided provid information text context based "
    "mentioned mention stated state found section page specifically specifical answer question"
)


_STOP = frozenset(_STOP_WORDS.split())


# sentences about where the answer is rather than what it is
_META = re.compile(
    r"^(this|the|that) (information|answer|detail|fact)s? (can be|is|are|was) (found|mentioned|stated|given|located)"
    r"|^(see|refer to|as (stated|mentioned) in) |^(i hope|let me know|note:)",
    re.I,
)


_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_tokens(text: str) -> set[str]:
    return {_stem(t) for t in _TOKEN.findall(text.lower()) if t not in _STOP and (len(t) > 1 or t.isdigit())}


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


_MARKER = re.compile(r"\[\d{1,2}\]")


def answer_sentences(answer: str) -> list[str]:
    parts = [_MARKER.sub("", s).strip(" -*•\t") for s in _SENTENCE.split(answer)]
    return [p for p in parts if p]


# Words an answer uses to point at its sources ("This can be found in passage [3] of the document", "According to
# the information provided in the essay"): they are not claims, so they neither support nor sink a sentence. The
# 1.5B local model writes such sentences in about a third of its answers; counted as claims they turned correct
# answers into "I don't know" (docs-dev: 11 of 29 answerable questions).
_REFERENCE_WORDS = {
    _stem(w)
    for w in [
        "passage",
        "passages",
        "document",
        "documents",
        "information",
        "provided",
        "found",
        "find",
        "according",
        "based",
        "mentioned",
        "mention",
        "stated",
        "states",
        "state",
        "section",
        "context",
        "text",
        "source",
        "sources",
        "essay",
        "article",
        "paper",
        "report",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "given",
        "shown",
        "described",
        "describes",
        "refer",
        "refers",
        "reference",
        "quoted",
        "quote",
    ]
}


_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"}
_HYPHEN = re.compile(r"(?<=[A-Za-z])-\s?(?=[A-Za-z])")  # "day-to-day", a line-wrapped "Lucene- BM25"


def _claim_stem(word: str) -> str:
    """A little more than `_stem`: "delivery"/"delivered", "banned"/"ban", "responsibilities"/"responsibility"
    meet. Only for the grounding check (the topic detector keeps `content_tokens`)."""
    if word[0].isdigit():
        return word.replace(",", "")  # "2,500" and "2500"
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    for suffix in ("ing", "ed", "es", "s", "ly", "y"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 4 and word.endswith("i"):
        word = word[:-1]
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def claim_terms(text: str) -> set[str]:
    """Content words for the grounding check: hyphenated compounds joined, number words as digits, numbers
    without thousands separators, a broader stem."""
    joined = _HYPHEN.sub("", text.lower())
    return {
        _claim_stem(t)
        for t in _TOKEN.findall(joined)
        if (t not in _STOP or t in _NUMBER_WORDS) and (len(t) > 1 or t.isdigit())
    }


def _is_number(term: str) -> bool:
    return any(ch.isdigit() for ch in term)


_CLAIM_REFERENCE_WORDS = {_claim_stem(w) for w in _REFERENCE_WORDS} | _REFERENCE_WORDS


class OverlapGroundingChecker:
    """A sentence is supported when most of its content words appear in the passages, or (with an embedder)
    when it is close to one of the passages' sentences; in both cases every number it states must appear in the
    passages. Words of the question are the premise, not a claim: they neither support nor sink a sentence, so
    "Roberts' fee was £850,000" is judged on "fee"
    and "850000", not on the "Iwan" the passage leaves out (a sentence with nothing beyond the question is judged on
    all its words). Sentences with fewer than `min_tokens` content words
    ("Yes.", "See below.") are not judged. Returns the supported fraction of the judged sentences.

    Calibrated on the dev split of tests/fixtures/answers/docs-dev.json with the local model's stored drafts
    (`lectern eval grounding`; docs/results/grounding-calibration.json)."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        min_overlap: float = 0.6,
        min_similarity: float = 0.6,
        min_tokens: int = 3,
    ) -> None:
        self.embedder = embedder
        self.min_overlap = min_overlap
        self.min_similarity = min_similarity
        self.min_tokens = min_tokens

    def support(self, answer: str, passages: Sequence[str], question: str | None = None) -> float:
        vocabulary: set[str] = set()
        for p in passages:
            vocabulary |= claim_terms(p)
        premise = claim_terms(question or "")
        judged, supported, doubtful = 0, 0, []
        for sentence in answer_sentences(answer):
            if _META.match(sentence):
                continue
            words = claim_terms(sentence) - _CLAIM_REFERENCE_WORDS
            if len(words) < self.min_tokens:
                continue
            judged += 1
            # a sentence that only restates the question ("The Linux kernel is written in C": "c" is too short
            # to count) is judged on all its words: the passages must at least be about the question
            claims = (words - premise) or words
            if any(_is_number(w) and w not in vocabulary for w in claims):
                continue  # a number the passages do not state: unsupported, however close the wording
            if len(claims & vocabulary) / len(claims) >= self.min_overlap:
                supported += 1
            else:
                doubtful.append(sentence)
        if judged == 0:
            return 1.0
        if doubtful and self.embedder is not None:
            units = [s for p in passages for s in answer_sentences(p) if len(s) > 20] or list(passages)
            sims = self.embedder.embed_documents(doubtful) @ self.embedder.embed_documents(units).T
            supported += int(np.sum(sims.max(axis=1) >= self.min_similarity))
        return supported / judged
