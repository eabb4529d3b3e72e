"""An `Embedder` wrapper that remembers document vectors by text, for evaluation runs only.

Trying another chunking configuration re-embeds only the chunks whose text changed: a chunk that is the same
under both configurations (a short abstract, say) is looked up, not recomputed. The vectors are the wrapped
embedder's own, keyed by (model id, text), so a cached run ranks exactly as an uncached one. Queries are never
cached. This lives in `lectern.evaluation`, not in the product's wiring.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lectern.domain.ports import Embedder


class CachingEmbedder:
    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\x1f{text}".encode()).hexdigest()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)  # type: ignore[attr-defined]  # the ONNX embedder has it; the port does not

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",  # noqa: S608
                part,
            ).fetchall()
            found.update(rows)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self.inner.embed_documents([texts[i] for i in missing])
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)",
                    [(keys[i], fresh[j].astype(np.float32).tobytes()) for j, i in enumerate(missing)],
                )
            out[missing] = fresh
        for i, k in enumerate(keys):
            if k in found:
                out[i] = np.frombuffer(found[k], dtype=np.float32)
        return out

    def import_index(self, db_path: Path) -> int:
        """Seed the cache from an existing Lectern index (its chunks' search text and stored vectors)."""
        src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            model = src.execute("SELECT value FROM index_meta WHERE key='embedding_model'").fetchone()
            if model is None or model[0] != self.model_id:
                return 0
            n = 0
            cur = src.execute("SELECT heading, text, vector FROM chunks")
            while rows := cur.fetchmany(2000):
                with self._db:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)",
                        [(self._key(f"{h}\n{t}" if h else t), v) for h, t, v in rows],
                    )
                n += len(rows)
            return n
        finally:
            src.close()

    def close(self) -> None:
        self._db.close()
