"""Citations: the passages an answer cites, numbered in the order first cited, each with its supporting sentence.

The model cites the prompt's passages by their prompt number (`[3]`). The answer the user sees numbers them again
1..n in the order they are first cited, in the text and in the citation list alike; markers naming no passage are
dropped; a passage the answer does not cite is not a citation. `StreamRenumberer` applies the same numbering to the
token stream as it goes, so the draft the page shows and the final answer carry the same numbers.

Each citation names the sentence of its passage that best supports the answer sentence(s) citing it
(`support_start`/`support_end`: offsets in Unicode code points into the passage text the citation carries), chosen
by weighted content-word overlap (numbers count triple: "55 EUR" is what a claim about an allowance rests on).
An answer without any marker gets one: each sentence cites the passage that supports it best, if one shares
enough of its words; failing that the passage sharing most words with the answer and the question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lectern.domain.models import Citation, ScoredChunk
from lectern.domain.text import STOPWORDS, snippet

# one marker group: [3], [1, 2], [1;2]
MARKER_RE = re.compile(r"\[(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\]")
# a sentence ends at . ! ? (with any markers right after it) followed by space and a capital, digit or quote
# (not "11 U.S.C. § 1302"), or at a line break
_ANSWER_BOUNDARY = re.compile(r"(?<=[.!?])((?:\s*\[\d{1,2}(?:\s*[,;]\s*\d{1,2})*\])*)\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_PASSAGE_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_OPEN_MARKER = re.compile(r"\[[\d\s,;]{0,12}$")
MAX_BEST_PASSAGES = 3


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """Content words of a text, lower-cased and lightly stemmed; numbers lose thousands separators."""
    out = set()
    for t in _TOKEN.findall(text.lower()):
        if t in STOPWORDS or (len(t) < 2 and not t.isdigit()):
            continue
        out.add(t.replace(",", "") if t[0].isdigit() else _stem(t))
    return out


def _weight(words: set[str]) -> float:
    return sum(3.0 if any(ch.isdigit() for ch in w) else 1.0 for w in words)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of a passage, surrounding whitespace excluded."""
    spans, pos = [], 0
    for m in _PASSAGE_BOUNDARY.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def best_support(passage: str, claim: str, question: str = "") -> tuple[int, int]:
    """The span of the passage sentence that best supports `claim` (ties: the shorter sentence); the question's
    words break a tie of claims that share nothing. (0, 0) when no sentence shares a word with either."""
    claim_terms, question_terms = terms(claim), terms(question)
    best: tuple[float, float, int, int] | None = None
    for start, end in sentence_spans(passage):
        words = terms(passage[start:end])
        if not words:
            continue
        score = _weight(claim_terms & words) + 0.25 * _weight(question_terms & words)
        if score <= 0:
            continue
        key = (score, -len(words), start, end)
        if best is None or key[:2] > best[:2]:
            best = key
    return (best[2], best[3]) if best else (0, 0)


def marker_numbers(group: str) -> list[int]:
    return [int(p) for p in re.split(r"\s*[,;]\s*", group.strip()) if p]


@dataclass(frozen=True)
class CitedSentence:
    text: str  # without markers
    numbers: tuple[int, ...]  # the passages it cites, as written


def answer_sentences(text: str) -> list[CitedSentence]:
    """The answer's sentences with the markers each one carries (a marker after the full stop belongs to the
    sentence before it: "It is 4410. [3]")."""
    out, pos = [], 0
    pieces = []
    for m in _ANSWER_BOUNDARY.finditer(text):
        pieces.append(text[pos : m.start()] + (m.group(1) or ""))
        pos = m.end()
    pieces.append(text[pos:])
    for piece in pieces:
        numbers: list[int] = []
        for m in MARKER_RE.finditer(piece):
            numbers += [n for n in marker_numbers(m.group(1)) if n not in numbers]
        plain = " ".join(MARKER_RE.sub("", piece).split())
        if plain or numbers:
            out.append(CitedSentence(plain, tuple(numbers)))
    return out


class _Numbering:
    """Prompt passage number -> number shown, in the order first cited."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.order: list[int] = []  # prompt numbers, first cited first
        self.dropped = False  # a marker named no passage and was removed

    def group(self, m: re.Match[str]) -> str:
        shown: list[int] = []
        for n in marker_numbers(m.group(1)):
            if not 1 <= n <= self.available:
                continue
            if n not in self.order:
                self.order.append(n)
            k = self.order.index(n) + 1
            if k not in shown:
                shown.append(k)
        self.dropped = self.dropped or not shown
        return "".join(f"[{k}]" for k in shown)

    def apply(self, text: str) -> str:
        return MARKER_RE.sub(self.group, text)


def _tidy(text: str) -> str:
    """Spaces left by dropped markers: none before punctuation, one between words."""
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def renumber(text: str, available: int) -> tuple[str, list[int]]:
    """`text` with its markers numbered 1..n in the order first cited (markers naming no passage dropped), and the
    prompt passage numbers in that order."""
    numbering = _Numbering(available)
    out = numbering.apply(text)
    return (_tidy(out) if numbering.dropped else out), numbering.order


class StreamRenumberer:
    """`renumber` over a token stream: a possible marker cut across tokens ("[", "3]") is held back until it is
    complete. `push` returns what may go out now, `flush` the rest."""

    def __init__(self, available: int) -> None:
        self._numbering = _Numbering(available)
        self._pending = ""

    def push(self, token: str) -> str:
        self._pending += token
        m = _OPEN_MARKER.search(self._pending)
        cut = m.start() if m else len(self._pending)
        head, self._pending = self._pending[:cut], self._pending[cut:]
        return self._numbering.apply(head)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return self._numbering.apply(rest)


def attribute(text: str, passages: Sequence[ScoredChunk], question: str = "") -> str:
    """Markers for an answer that has none: each sentence cites the passage holding its best support when that
    sentence shares at least two content words (or one number) and half its words; otherwise the one passage that
    shares most words with the answer and the question is cited at the end. Unchanged when nothing is shared."""
    if not passages or MARKER_RE.search(text):
        return text
    passage_terms = [[terms(p.chunk.text[s:e]) for s, e in sentence_spans(p.chunk.text)] for p in passages]
    out, pos, cited = [], 0, False
    bounds = [m.start() for m in _ANSWER_BOUNDARY.finditer(text)] + [len(text)]
    for end in bounds:
        sentence = text[pos:end]
        claim = terms(sentence)
        best_n, best_w = 0, 0.0
        for n, sentences in enumerate(passage_terms, start=1):
            w = max((_weight(claim & s) for s in sentences), default=0.0)
            if w > best_w:
                best_n, best_w = n, w
        shared = best_w >= 2 and best_w >= 0.5 * _weight(claim)
        if shared:
            stripped = sentence.rstrip()
            if stripped and stripped[-1] in ".!?":
                sentence = f"{stripped[:-1]} [{best_n}]{stripped[-1]}{sentence[len(stripped) :]}"
            else:
                sentence = f"{stripped} [{best_n}]{sentence[len(stripped) :]}"
            cited = True
        out.append(sentence)
        pos = end
    out.append(text[pos:])
    if cited:
        return "".join(out)
    wanted = terms(text) | terms(question)
    scores = [_weight(wanted & terms(p.chunk.text)) for p in passages]
    best = max(range(len(scores)), key=lambda i: scores[i])
    if scores[best] <= 0:
        return text
    stripped = text.rstrip()
    if stripped and stripped[-1] in ".!?":
        return f"{stripped[:-1]} [{best + 1}]{stripped[-1]}"
    return f"{stripped} [{best + 1}]"


def citation(n: int, passage: ScoredChunk, span: tuple[int, int]) -> Citation:
    c = passage.chunk
    return Citation(
        n=n,
        document_id=c.document_id,
        filename=c.filename,
        page=c.page,
        snippet=snippet(c.text),
        score=round(passage.score, 6),
        chunk_id=c.chunk_id,
        text=c.text,
        support_start=span[0],
        support_end=span[1],
        boxes=c.boxes,
    )


def cite(text: str, passages: Sequence[ScoredChunk], question: str = "") -> tuple[str, list[Citation]]:
    """The answer as shown (markers renumbered, one added where the model wrote none) and its citations, in
    the order first cited, each with the span of its best supporting sentence. Markers that all name no passage
    count as none."""
    valid = [n for m in MARKER_RE.finditer(text) for n in marker_numbers(m.group(1)) if 1 <= n <= len(passages)]
    if not valid:
        text = attribute(_tidy(MARKER_RE.sub("", text)) if MARKER_RE.search(text) else text, passages, question)
    claims: dict[int, list[str]] = {}
    for sentence in answer_sentences(text):
        for n in sentence.numbers:
            claims.setdefault(n, []).append(sentence.text)
    shown, order = renumber(text, len(passages))
    citations = []
    for k, n in enumerate(order, start=1):
        passage = passages[n - 1]
        span = best_support(passage.chunk.text, " ".join(claims.get(n, [])), question)
        citations.append(citation(k, passage, span))
    return shown, citations


def best_passages(passages: Sequence[ScoredChunk], question: str, limit: int = MAX_BEST_PASSAGES) -> list[Citation]:
    """For an answer that was withheld: the closest passages (as ranked), each with the sentence closest to the
    question marked."""
    return [citation(k, p, best_support(p.chunk.text, question)) for k, p in enumerate(list(passages)[:limit], start=1)]


# Words an answer uses to point at its sources ("This is found in passage [3] on page 1"): not part of a claim.
_REFERENCE = {
    _stem(w)
    for w in [
        "passage",
        "passages",
        "document",
        "documents",
        "information",
        "provided",
        "found",
        "page",
        "according",
        "based",
        "mentioned",
        "states",
        "stated",
        "text",
        "section",
        "source",
        "first",
        "second",
        "third",
        "specifically",
    ]
}
_REATTRIBUTE_MARGIN = 0.25  # another passage must cover this much more of the claim than the cited ones
_MIN_COVER = 0.5  # ... and at least half of it
_CO_SUPPORT = 0.8  # an uncited passage covering this much of the claim, and no less than the cited one, is cited


def _cover(claim: set[str], passage: set[str]) -> float:
    total = _weight(claim)
    return _weight(claim & passage) / total if total else 0.0


def reattribute(text: str, passages: Sequence[ScoredChunk], question: str = "") -> str:
    """Markers moved to the passages that hold the claim. A small model often cites the wrong passage number
    ("paid £850,000 [2]" when passage 1 says it): a claim is the text of a marked sentence together with the
    unmarked sentences before it, less the question's words (the premise every retrieved passage shares). When
    another passage covers clearly more of the claim (by `_REATTRIBUTE_MARGIN`, and at least half) than every
    passage the sentence cites, the sentence cites that passage instead; of several cited passages, those
    covering under half as much as the best cited one are dropped; an uncited passage covering at least
    `_CO_SUPPORT` of the claim and no less than the cited ones is cited beside them. Markers naming no passage
    are left for
    `cite` to drop; an answer without markers is left for `attribute`."""
    if not passages or not MARKER_RE.search(text):
        return text
    passage_terms = [terms(p.chunk.text) for p in passages]
    premise = terms(question)
    pieces, pos = [], 0
    for m in _ANSWER_BOUNDARY.finditer(text):
        end = m.end(1) if m.group(1) else m.start()
        pieces.append(text[pos:end])
        pos = end
    pieces.append(text[pos:])
    out, pending = [], ""
    for piece in pieces:
        cited = [n for m in MARKER_RE.finditer(piece) for n in marker_numbers(m.group(1)) if 1 <= n <= len(passages)]
        if not cited:
            out.append(piece)
            pending += " " + piece
            continue
        claim = terms(pending + " " + MARKER_RE.sub("", piece)) - _REFERENCE
        claim = (claim - premise) or claim
        pending = ""
        if not claim:
            out.append(piece)
            continue
        covers = [_cover(claim, t) for t in passage_terms]
        cited = list(dict.fromkeys(cited))
        best_cited = max(covers[n - 1] for n in cited)
        best = max(range(len(covers)), key=lambda i: (covers[i], -i)) + 1
        if covers[best - 1] >= _MIN_COVER and covers[best - 1] >= best_cited + _REATTRIBUTE_MARGIN:
            keep = [best]
        else:
            keep = [n for n in cited if covers[n - 1] >= 0.5 * best_cited] or cited
        # a passage holding the claim as fully as the cited one (chunks overlap; a fact stated twice) supports it
        # too: it is cited beside it
        top = max(covers[n - 1] for n in keep)
        keep += [
            n
            for n in range(1, len(passages) + 1)
            if n not in keep and covers[n - 1] >= _CO_SUPPORT and covers[n - 1] >= top
        ]
        if keep == cited:
            out.append(piece)
            continue
        out.append(_tidy_inline(_with_markers(piece, keep)))
    return "".join(out)


def _with_markers(piece: str, numbers: list[int]) -> str:
    """`piece` with its first marker group replaced by `numbers` and its other groups removed."""
    first = MARKER_RE.search(piece)
    if first is None:
        return piece
    group = "".join(f"[{n}]" for n in numbers)
    rest = MARKER_RE.sub("", piece[first.end() :])
    return piece[: first.start()] + group + rest


def _tidy_inline(text: str) -> str:
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
