"""The local `SearchIndex`: chunks, an FTS5 BM25 index and the vectors in one SQLite file.

Chunks, their full-text rows and their vectors are written in the same transaction, so a kill at any moment
leaves all three consistent (decision 2026-11-22 in docs/decisions.md). k-NN is exact: the vectors are held in
a numpy matrix loaded from the database, reloaded when the database's generation counter moves (a write by
this process or another one).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.models import Chunk, ScoredChunk, SearchFilters
from lectern.domain.text import query_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    page INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (tenant_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (tenant_id, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO index_meta (key, value) VALUES ('generation', '0');
"""

_COLUMNS = "c.rowid, c.tenant_id, c.chunk_id, c.document_id, c.filename, c.page, c.ordinal, c.heading, c.text, c.token_count"


def _row_to_chunk(row: Sequence[object]) -> Chunk:
    return Chunk(
        tenant_id=str(row[1]),
        chunk_id=str(row[2]),
        document_id=str(row[3]),
        filename=str(row[4]),
        page=int(row[5]),  # type: ignore[call-overload]
        ordinal=int(row[6]),  # type: ignore[call-overload]
        heading=str(row[7]),
        text=str(row[8]),
        token_count=int(row[9]),  # type: ignore[call-overload]
    )


def fts_match_expression(query: str) -> str:
    """An FTS5 MATCH expression: the query's content terms, each quoted, joined by OR (BM25 ranks them)."""
    return " OR ".join(f'"{t}"' for t in query_terms(query))


class _VectorCache:
    def __init__(self, dimension: int) -> None:
        self.generation = -1
        self.rowids = np.zeros(0, dtype=np.int64)
        self.tenants = np.zeros(0, dtype=object)
        self.documents = np.zeros(0, dtype=object)
        self.filenames = np.zeros(0, dtype=object)
        self.matrix = np.zeros((0, dimension), dtype=np.float32)


class SqliteSearchIndex:
    def __init__(self, db: SqliteDatabase, dimension: int, embedding_model: str) -> None:
        self.db = db
        self.dimension = dimension
        self._cache = _VectorCache(dimension)
        self._cache_lock = threading.Lock()
        self.db.connection().executescript(_SCHEMA)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT value FROM index_meta WHERE key='embedding_model'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO index_meta (key, value) VALUES ('embedding_model', ?), ('dimension', ?)",
                    (embedding_model, str(dimension)),
                )
            elif row[0] != embedding_model:
                raise RuntimeError(
                    f"The index was built with the embedding model {row[0]!r}, but {embedding_model!r} is "
                    "configured. Re-index (`lectern reindex`) or configure the original model."
                )

    # -- writes --------------------------------------------------------------------------------------------
    def _bump_generation(self, conn: object) -> None:
        conn.execute("UPDATE index_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")  # type: ignore[attr-defined]

    def _delete_rows(self, conn: object, tenant_id: str, document_id: str) -> int:
        rows = conn.execute(  # type: ignore[attr-defined]
            "SELECT rowid FROM chunks WHERE tenant_id = ? AND document_id = ?", (tenant_id, document_id)
        ).fetchall()
        ids = [(r[0],) for r in rows]
        conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", ids)  # type: ignore[attr-defined]
        conn.executemany("DELETE FROM chunks WHERE rowid = ?", ids)  # type: ignore[attr-defined]
        return len(ids)

    def replace_document(
        self, tenant_id: str, document_id: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk is required")
        if len(chunks) and vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors must have dimension {self.dimension}")
        for c in chunks:
            if c.tenant_id != tenant_id or c.document_id != document_id:
                raise ValueError("every chunk must belong to the document being replaced")
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.db.transaction() as conn:
            self._delete_rows(conn, tenant_id, document_id)
            for c, v in zip(chunks, vecs, strict=True):
                cur = conn.execute(
                    "INSERT INTO chunks (tenant_id, chunk_id, document_id, filename, page, ordinal, heading, text,"
                    " token_count, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant_id,
                        c.chunk_id,
                        document_id,
                        c.filename,
                        c.page,
                        c.ordinal,
                        c.heading,
                        c.text,
                        c.token_count,
                        v.tobytes(),
                    ),
                )
                conn.execute(
                    "INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)", (cur.lastrowid, c.search_text)
                )
            self._bump_generation(conn)

    def delete_document(self, tenant_id: str, document_id: str) -> int:
        with self.db.transaction() as conn:
            n = self._delete_rows(conn, tenant_id, document_id)
            if n:
                self._bump_generation(conn)
        return n

    # -- reads ---------------------------------------------------------------------------------------------
    def count(self, tenant_id: str, document_id: str | None = None) -> int:
        conn = self.db.connection()
        if document_id is None:
            row = conn.execute("SELECT COUNT(*) FROM chunks WHERE tenant_id = ?", (tenant_id,)).fetchone()
        else:
            row = conn.execute(
                "SELECT COUNT(*) FROM chunks WHERE tenant_id = ? AND document_id = ?",
                (tenant_id, document_id),
            ).fetchone()
        return int(row[0])

    def get_chunks(self, tenant_id: str, chunk_ids: Sequence[str]) -> list[Chunk]:
        conn = self.db.connection()
        out = []
        for cid in chunk_ids:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM chunks c WHERE c.tenant_id = ? AND c.chunk_id = ?",  # noqa: S608
                (tenant_id, cid),
            ).fetchone()
            if row is not None:
                out.append(_row_to_chunk(row))
        return out

    @staticmethod
    def _filter_sql(filters: SearchFilters | None) -> tuple[str, list[object]]:
        sql, params = "", []
        if filters and filters.document_ids:
            sql += f" AND c.document_id IN ({','.join('?' * len(filters.document_ids))})"
            params += list(filters.document_ids)
        if filters and filters.filenames:
            sql += f" AND c.filename IN ({','.join('?' * len(filters.filenames))})"
            params += list(filters.filenames)
        return sql, params

    def bm25(
        self, tenant_id: str, query: str, k: int, filters: SearchFilters | None = None
    ) -> list[ScoredChunk]:
        expr = fts_match_expression(query)
        if not expr or k <= 0:
            return []
        fsql, fparams = self._filter_sql(filters)
        rows = (
            self.db.connection()
            .execute(
                f"SELECT {_COLUMNS}, bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid"  # noqa: S608
                f" WHERE chunks_fts MATCH ? AND c.tenant_id = ?{fsql} ORDER BY s LIMIT ?",
                [expr, tenant_id, *fparams, k],
            )
            .fetchall()
        )
        # FTS5's bm25() is negated so that smaller is better; flip it back to Lucene's orientation.
        return [ScoredChunk(_row_to_chunk(r), -float(r[10])) for r in rows]

    def _current_generation(self) -> int:
        row = self.db.connection().execute("SELECT value FROM index_meta WHERE key='generation'").fetchone()
        return int(row[0])

    def _vectors(self) -> _VectorCache:
        gen = self._current_generation()
        with self._cache_lock:
            if self._cache.generation != gen:
                rows = (
                    self.db.connection()
                    .execute(
                        "SELECT rowid, tenant_id, document_id, filename, vector FROM chunks ORDER BY rowid"
                    )
                    .fetchall()
                )
                cache = _VectorCache(self.dimension)
                cache.generation = gen
                if rows:
                    cache.rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                    cache.tenants = np.array([r[1] for r in rows], dtype=object)
                    cache.documents = np.array([r[2] for r in rows], dtype=object)
                    cache.filenames = np.array([r[3] for r in rows], dtype=object)
                    cache.matrix = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(
                        len(rows), self.dimension
                    )
                self._cache = cache
            return self._cache

    def knn(
        self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[ScoredChunk]:
        cache = self._vectors()
        if k <= 0 or not len(cache.rowids):
            return []
        mask = cache.tenants == tenant_id
        if filters and filters.document_ids:
            mask &= np.isin(cache.documents, list(filters.document_ids))
        if filters and filters.filenames:
            mask &= np.isin(cache.filenames, list(filters.filenames))
        idx = np.flatnonzero(mask)
        if not len(idx):
            return []
        sims = cache.matrix[idx] @ np.asarray(vector, dtype=np.float32)
        top = np.argpartition(-sims, min(k, len(sims)) - 1)[:k] if len(sims) > k else np.arange(len(sims))
        top = top[np.argsort(-sims[top], kind="stable")]
        rowids = [int(cache.rowids[idx[i]]) for i in top]
        scores = {rid: float(sims[i]) for rid, i in zip(rowids, top, strict=True)}
        conn = self.db.connection()
        placeholders = ",".join("?" * len(rowids))
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM chunks c WHERE c.rowid IN ({placeholders})",  # noqa: S608
            rowids,
        ).fetchall()
        by_id = {int(r[0]): r for r in rows}
        # Cosine similarity of unit vectors; OpenSearch's cosinesimil space reports (1 + cos) / 2.
        return [ScoredChunk(_row_to_chunk(by_id[r]), scores[r]) for r in rowids if r in by_id]
