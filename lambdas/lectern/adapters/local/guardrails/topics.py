"""Denied topics by example sentences (needs the embedder)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lectern.adapters.local.guardrails.grounding import content_tokens
from lectern.domain.guardrails import (
    DeniedTopic,
)
from lectern.domain.ports import Embedder


class ExampleTopicDetector:
    """A denied topic matches when the question is close to one of its examples (or its definition) in the
    embedding space; with no embedder, when it shares most content words with an example."""

    def __init__(self, embedder: Embedder | None = None, min_similarity: float = 0.72) -> None:
        self.embedder = embedder
        self.min_similarity = min_similarity
        self._cache: dict[tuple[DeniedTopic, ...], np.ndarray] = {}

    def matches(self, text: str, topics: Sequence[DeniedTopic]) -> bool:
        examples = [e for t in topics for e in (*t.examples, t.definition) if e]
        if not examples:
            return False
        if self.embedder is None:
            words = content_tokens(text)
            return bool(words) and any(
                len(words & content_tokens(e)) / max(1, len(content_tokens(e))) >= 0.8 for e in examples
            )
        key = tuple(topics)
        if key not in self._cache:
            self._cache[key] = self.embedder.embed_documents(examples)
        sims = self._cache[key] @ self.embedder.embed_query(text)
        return float(np.max(sims)) >= self.min_similarity
