"""A deterministic bag-of-words embedder for unit tests (hashing trick): texts sharing words are similar."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from lectern.domain.text import query_terms


class HashEmbedder:
    model_id = "hash-test-embedder"
    dimension = 64

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dimension, dtype=np.float32)
        for term in query_terms(text):
            h = int(hashlib.md5(term.encode()).hexdigest(), 16)
            v[h % self.dimension] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vec(text)

    def count_tokens(self, text: str) -> int:
        return len(text.split())
