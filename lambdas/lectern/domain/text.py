"""Small text utilities shared by the retrieval code (query terms, snippets)."""

from __future__ import annotations

import re
import unicodedata

# A common English stop list (the union of Lucene's default set and the usual function words). Removing
# these from *queries* only keeps BM25's OR-queries fast; documents are indexed whole.
STOPWORDS = frozenset(
    [
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be",
        "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
        "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having",
        "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it",
        "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
        "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should",
        "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there",
        "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were",
        "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your",
        "yours", "yourself", "yourselves", "also", "may", "might", "must", "shall", "s", "t", "d", "ll", "m", "o",
        "re", "ve", "y",
    ]
)

_WORD_RE = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Lower-cased word terms of a query, de-duplicated in order, stop words removed when others remain."""
    norm = unicodedata.normalize("NFKC", text).lower()
    words = [w for w in _WORD_RE.findall(norm) if w.strip("_")]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    terms = list(seen)
    if keep_stopwords:
        return terms
    content = [t for t in terms if t not in STOPWORDS]
    return content or terms


def snippet(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit] + "…"
