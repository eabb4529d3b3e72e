"""Semantic answer cache in front of the Answerer: exact tier, then similarity tier, validated on every hit.

`SemanticCache` has the Answerer's `answer`/`stream` methods and wraps one. A lookup runs in two tiers:

1. **exact**: sha256 of (scope, normalised question) → one key read, no embedding needed;
2. **similar**: the question's embedding against the tenant's cached vectors in the same scope; the best
   candidate at cosine ≥ `threshold` whose *key terms* (numbers, named entities, negation, direction words)
   agree with the question's is the hit. Cosine alone cannot tell "reduce" from "increase" (0.99 with
   MiniLM): the measurement is in docs/results/cache-eval.json (`lectern eval cache`).

The scope is (prompt version, top_k, filters): an answer is reused only under the same prompt and retrieval
settings. Validity is checked per hit against the DocumentRepository: every document the answer cited or put
in its prompt must still exist, be INDEXED and have the same version (`updated_at` and sha256) as when the
answer was cached; otherwise the entry is deleted and the question is answered afresh. This costs one `get`
per distinct source document on a hit and nothing on a miss, needs no generation counter maintained by every
writer (the ingestion Lambdas, the local worker, deletes), and a new upload does not flush the tenant's
unrelated entries.
What it does not see is a *new* document that would now answer better: TTL bounds that staleness.

Not cached: abstentions of any kind. A retrieval-gate abstention is cheap (no model call) and, for an empty or
off-topic index, becomes wrong as soon as a document is uploaded; a model "I don't know" cites nothing, so no
document version could ever invalidate it — uploading the missing document would not cure a cached "I don't
know". Errors are never cached (they propagate before anything is stored).

A hit returns the cached text and citations with `cache_hit=True`, a new `query_id`, the lookup's latency,
no token usage and zero cost. The store's failures never fail a query: the cache then behaves as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from lectern.domain.models import Answer, Citation, Document, DocumentStatus, SearchFilters, Usage
from lectern.domain.pipeline import AnswerEvent, AnswerRequest, Citations, Done, Next, Token

log = logging.getLogger(__name__)

TIER_EXACT = "exact"
TIER_SIMILAR = "similar"


@dataclass(frozen=True)
class CacheConfig:
    # cosine similarity (L2-normalised embeddings) at or above which a cached question counts as the same one;
    # default chosen from `lectern eval cache` with the local MiniLM embedder (docs/results/cache-eval.json)
    threshold: float = 0.89
    key_terms_guard: bool = True  # numbers / entities / negation / direction words must agree too
    ttl_s: int = 24 * 3600
    max_entries: int = 1000  # per tenant; the oldest (AWS) / least recently used (local) go first
    candidates: int = 5  # similarity candidates checked, best first, before giving up


@dataclass
class CacheEntry:
    tenant_id: str
    key: str  # sha256 of scope + normalised question: the exact-tier key and the entry's id
    scope: str
    question: str
    vector: np.ndarray | None
    answer: dict[str, Any]  # answer_to_dict(...)
    sources: dict[str, str]  # document id -> document_version(...) when cached
    created_at: float
    expires_at: float


class CacheStore(Protocol):
    """Where entries live (SQLite table locally, the DynamoDB single table on AWS). Expired entries are never
    returned. `nearest` returns (entry, cosine) best first, only entries of `scope`, at most `k`; it may leave
    out those under `min_similarity` (and then need not fetch them)."""

    def get(self, tenant_id: str, key: str, *, now: float) -> CacheEntry | None: ...
    def nearest(
        self,
        tenant_id: str,
        scope: str,
        vector: np.ndarray,
        k: int,
        *,
        now: float,
        min_similarity: float = -1.0,
    ) -> list[tuple[CacheEntry, float]]: ...
    def put(self, entry: CacheEntry, *, max_entries: int) -> None: ...
    def touch(self, tenant_id: str, key: str, *, now: float) -> None: ...
    def delete(self, tenant_id: str, key: str) -> None: ...


class DocumentLookup(Protocol):
    def get(self, tenant_id: str, document_id: str) -> Document | None: ...


@dataclass(frozen=True)
class CacheLookup:
    """What one lookup found: the answer on a hit, and why (for metrics, logs and the evaluation)."""

    answer: Answer | None
    tier: str  # "exact" | "similar" | "" (miss)
    similarity: float = 0.0
    reason: str = ""  # on a miss: "no_match" (nothing cached at the threshold), "key_terms", "stale", "error"


# -- question normalisation and key terms ------------------------------------------------------------------
_SPACE_RE = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n?!.,;:'\"“”‘’()[]"


def normalise_question(question: str) -> str:
    """NFKC, case-folded, whitespace collapsed, surrounding punctuation dropped: the exact-tier form."""
    text = unicodedata.normalize("NFKC", question).casefold()
    text = text.replace("’", "'").replace("‘", "'")
    return _SPACE_RE.sub(" ", text).strip(_EDGE_PUNCT)


_SMALL_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
_NUMBER_WORDS = {w: str(i) for i, w in enumerate([*_SMALL_NUMBERS.split(), "sixteen", "seventeen", "eighteen"])}
_NUMBER_WORDS.update({"nineteen": "19", "twenty": "20"})
_SCALE_WORDS = {"hundred", "thousand", "million", "billion", "trillion"}
_NEGATIONS = {"not", "no", "never", "without", "none", "nor", "cannot", "non"}
_UP = {
    "increase", "increases", "increased", "increasing", "raise", "raises", "raised", "higher", "more",
    "greater", "above", "over", "rise", "rises", "improve", "improves", "improved", "promote", "promotes",
    "gain", "best", "most", "maximum", "max", "after", "later", "new", "newest", "first",
}  # fmt: skip
_DOWN = {
    "decrease", "decreases", "decreased", "decreasing", "reduce", "reduces", "reduced", "reducing", "lower",
    "lowers", "lowered", "less", "fewer", "below", "under", "drop", "drops", "decline", "declines", "fall",
    "impair", "impairs", "impaired", "inhibit", "inhibits", "suppress", "worst", "least", "minimum", "min",
    "before", "earlier", "old", "oldest", "last",
}  # fmt: skip
_QUESTION_WORDS = {
    "what", "who", "whom", "whose", "which", "when", "where", "why", "how", "is", "are", "was", "were",
    "do", "does", "did", "can", "could", "should", "would", "will", "has", "have", "had", "in", "on", "for",
    "the", "a", "an", "i", "under", "according", "please", "tell", "list", "give", "explain", "describe",
    "if", "and",
}  # fmt: skip
# numbers keep a parenthesised suffix: "586(b)" and "586(a)" are different sections
_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z0-9'’\-]*|\d[\d,.\-/]*(?:\([A-Za-z0-9]{1,4}\))*%?|\$|§|£|€")


def _number(token: str) -> str:
    return token.replace(",", "").rstrip(".").rstrip("-").casefold()


def key_terms(question: str) -> dict[str, frozenset[str]]:
    """The words a paraphrase must keep: numbers (digits and number words, with scale words), named entities
    (capitalised words past the first, acronyms, words with digits), negation, and the direction of comparison
    words ("reduce"/"lower" are one class, "increase"/"raise" the other)."""
    numbers: set[str] = set()
    entities: set[str] = set()
    polarity: set[str] = set()
    tokens = _TOKEN_RE.findall(unicodedata.normalize("NFKC", question))
    for i, tok in enumerate(tokens):
        low = tok.casefold().replace("’", "'")
        if tok[0].isdigit():
            numbers.add(_number(tok))
            for part in re.split(r"[-/()]", _number(tok)):
                if part:
                    numbers.add(part)
            continue
        if low in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[low])
        elif low in _SCALE_WORDS:
            numbers.add(low)
        polarity |= _polarity(low)
        has_digit = any(c.isdigit() for c in tok)
        is_acronym = len(tok) >= 2 and tok.isupper()
        capitalised = tok[0].isupper() and i > 0 and low not in _QUESTION_WORDS
        if has_digit or is_acronym or capitalised:
            entities.add(low.removesuffix("'s").rstrip("'"))
    return {"numbers": frozenset(numbers), "entities": frozenset(entities), "polarity": frozenset(polarity)}


def _polarity(low: str) -> set[str]:
    """NOT for a negation, UP/DOWN for the direction of a comparison word."""
    found = {"NOT"} if low in _NEGATIONS or low.endswith("n't") or low.startswith("non-") else set()
    if low in _UP:
        found.add("UP")
    elif low in _DOWN:
        found.add("DOWN")
    return found


def terms_agree(a: str, b: str) -> bool:
    """Numbers and polarity must match exactly; named entities of one question must be a subset of the other's
    ("Iwan Roberts" ~ "Roberts", but not "CEO of Acme" ~ "CFO of Acme")."""
    ta, tb = key_terms(a), key_terms(b)
    if ta["numbers"] != tb["numbers"] or ta["polarity"] != tb["polarity"]:
        return False
    ea, eb = ta["entities"], tb["entities"]
    return ea <= eb or eb <= ea


# Entries of an older format are not served (2: citations renumbered in the order cited, with support spans).
CACHE_FORMAT = 2


# -- entries -------------------------------------------------------------------------------------------------
def scope_of(prompt_version: str, top_k: int | None, filters: SearchFilters | None) -> str:
    f = filters or SearchFilters()
    raw = json.dumps(
        {
            "format": CACHE_FORMAT,
            "prompt": prompt_version,
            "top_k": top_k,
            "documents": sorted(f.document_ids),
            "filenames": sorted(f.filenames),
        },
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def exact_key(scope: str, question: str) -> str:
    return hashlib.sha256(f"{scope}\n{normalise_question(question)}".encode()).hexdigest()


def document_version(doc: Document) -> str:
    return f"{doc.updated_at}|{doc.sha256 or ''}"


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.answer,
        "citations": [asdict(c) for c in answer.citations],
        "model": answer.model,
        "prompt_version": answer.prompt_version,
        "route": answer.route,
        "cost_usd": answer.cost_usd,
    }


def answer_from_dict(data: dict[str, Any], *, latency_ms: int, tier: str) -> Answer:
    return Answer(
        answer=str(data["answer"]),
        citations=[
            Citation(**{**c, "boxes": tuple(tuple(b) for b in c.get("boxes", ()))}) for c in data.get("citations", [])
        ],
        model=str(data.get("model", "")),
        usage=Usage(),  # nothing was generated for this request
        latency_ms=latency_ms,
        prompt_version=str(data.get("prompt_version", "")),
        abstained=False,
        query_id=uuid.uuid4().hex,
        cost_usd=0.0,
        cache_hit=True,
        route=f"cache: {tier}",
    )


def cacheable(answer: Answer) -> bool:
    return not answer.abstained and bool(answer.citations) and bool(answer.answer.strip())


def vector_to_bytes(vector: np.ndarray, dtype: str = "<f4") -> bytes:
    return np.ascontiguousarray(vector, dtype=dtype).tobytes()


def vector_from_bytes(data: bytes, dtype: str = "<f4") -> np.ndarray:
    return np.frombuffer(data, dtype=dtype).astype(np.float32)


def best_matches(matrix: np.ndarray, vector: np.ndarray, k: int) -> list[tuple[int, float]]:  # (row, cosine) best first
    if not len(matrix):
        return []
    sims = matrix @ np.asarray(vector, dtype=np.float32)
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k]
    return [(int(i), float(sims[i])) for i in sorted(top, key=lambda i: -sims[i])]


# -- the stage ----------------------------------------------------------------------------------------------
@dataclass
class SemanticCache:
    """The answer pipeline's cache stage (lectern.domain.pipeline): a hit answers by itself, a miss goes on and
    the fresh answer is remembered. `on_lookup(hit, tier)` is told every lookup's outcome (EMF CacheHits and
    CacheMisses on AWS). It sits inside the question guard, so it only ever sees checked, masked questions."""

    store: CacheStore
    documents: DocumentLookup
    embed: Callable[[str], np.ndarray]  # the retriever's embedder (embed_query)
    prompt_version: Callable[[str | None], str]  # the prompt version a user gets (part of the cache scope)
    config: CacheConfig = field(default_factory=CacheConfig)
    on_lookup: Callable[[bool, str], None] | None = None
    clock: Callable[[], float] = time.time

    def run(self, request: AnswerRequest, next: Next) -> Iterator[AnswerEvent]:
        r = request
        found = self.lookup(r.tenant_id, r.question, top_k=r.top_k, filters=r.filters, user_id=r.user_id)
        if found.answer is not None:
            yield Token(found.answer.answer)
            yield Citations(list(found.answer.citations))
            yield Done(found.answer)
            return
        for event in next(request):
            if isinstance(event, Done):
                self.remember(r.tenant_id, r.question, event.answer, top_k=r.top_k, filters=r.filters)
            yield event

    def lookup(
        self,
        tenant_id: str,
        question: str,
        *,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
        **kwargs: Any,
    ) -> CacheLookup:
        started = time.perf_counter()
        if not question or not question.strip():
            return CacheLookup(None, "", reason="empty")  # the Answerer's validation reports it
        try:
            found = self._lookup(tenant_id, question.strip(), top_k, filters, kwargs.get("user_id"), started)
        except Exception:  # the cache is an optimisation: a broken store or embedder is a miss
            log.warning("answer cache lookup failed; answering without it", exc_info=True)
            found = CacheLookup(None, "", reason="error")
        if self.on_lookup is not None:
            self.on_lookup(found.answer is not None, found.tier or found.reason)
        return found

    def remember(
        self,
        tenant_id: str,
        question: str,
        answer: Answer,
        *,
        top_k: int | None = None,
        filters: SearchFilters | None = None,
    ) -> bool:
        """Store a freshly generated answer if it may be reused; False when it is not cacheable."""
        if answer.cache_hit or not cacheable(answer):
            return False
        try:
            sources = self._sources(tenant_id, answer)
            if sources is None:
                return False
            q = question.strip()
            scope = scope_of(answer.prompt_version, top_k, filters)
            now = self.clock()
            self.store.put(
                CacheEntry(
                    tenant_id=tenant_id,
                    key=exact_key(scope, q),
                    scope=scope,
                    question=q,
                    vector=np.asarray(self._embed(q), dtype=np.float32),
                    answer=answer_to_dict(answer),
                    sources=sources,
                    created_at=now,
                    expires_at=now + self.config.ttl_s,
                ),
                max_entries=self.config.max_entries,
            )
            return True
        except Exception:
            log.warning("answer cache write failed", exc_info=True)
            return False

    # -- internals -----------------------------------------------------------------------------------------
    def _embed(self, text: str) -> np.ndarray:
        return self.embed(text)

    def _prompt_version(self, user_id: str | None) -> str:
        return self.prompt_version(user_id)

    def _sources(self, tenant_id: str, answer: Answer) -> dict[str, str] | None:
        """Versions of every document cited or put in the prompt (None if one is not INDEXED now)."""
        ids = {c.document_id for c in answer.citations} | {p.chunk.document_id for p in answer.retrieved}
        sources: dict[str, str] = {}
        for doc_id in sorted(ids):
            doc = self.documents.get(tenant_id, doc_id)
            if doc is None or doc.status != DocumentStatus.INDEXED:
                return None
            sources[doc_id] = document_version(doc)
        return sources

    def _still_valid(self, entry: CacheEntry) -> bool:
        for doc_id, version in entry.sources.items():
            doc = self.documents.get(entry.tenant_id, doc_id)
            if doc is None or doc.status != DocumentStatus.INDEXED or document_version(doc) != version:
                return False
        return True

    def _hit(self, entry: CacheEntry, tier: str, similarity: float, started: float) -> CacheLookup | None:
        if not self._still_valid(entry):
            self.store.delete(entry.tenant_id, entry.key)
            return None
        self.store.touch(entry.tenant_id, entry.key, now=self.clock())
        latency = int((time.perf_counter() - started) * 1000)
        return CacheLookup(answer_from_dict(entry.answer, latency_ms=latency, tier=tier), tier, similarity)

    def _lookup(
        self,
        tenant_id: str,
        q: str,
        top_k: int | None,
        filters: SearchFilters | None,
        user_id: str | None,
        started: float,
    ) -> CacheLookup:
        now = self.clock()
        scope = scope_of(self._prompt_version(user_id), top_k, filters)
        stale = False
        entry = self.store.get(tenant_id, exact_key(scope, q), now=now)
        if entry is not None:
            found = self._hit(entry, TIER_EXACT, 1.0, started)
            if found is not None:
                return found
            stale = True
        threshold = self.config.threshold
        vector = self._embed(q)
        candidates = self.store.nearest(
            tenant_id, scope, vector, self.config.candidates, now=now, min_similarity=threshold
        )
        refused = False
        best = 0.0
        for cand, sim in candidates:
            best = max(best, sim)
            if sim < threshold:
                break
            if self.config.key_terms_guard and not terms_agree(q, cand.question):
                refused = True
                continue
            found = self._hit(cand, TIER_SIMILAR, sim, started)
            if found is not None:
                return found
            stale = True
        # why it missed, most telling first: an invalidated entry, the guard, or nothing close enough
        reason = "stale" if stale else "key_terms" if refused else "no_match"
        return CacheLookup(None, "", similarity=best, reason=reason)


def decide(a: str, b: str, similarity: float, *, threshold: float, guard: bool) -> bool:
    """Would a cached `a` answer `b`? The lookup's rule (exact, then similarity + key terms) on one pair."""
    if normalise_question(a) == normalise_question(b):
        return True
    return similarity >= threshold and (not guard or terms_agree(a, b))
