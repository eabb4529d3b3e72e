"""The local `SearchIndex`: chunks, an FTS5 BM25 index and the vectors in one SQLite file.

Chunks, their full-text rows and their vectors are written in the same transaction, so a kill at any moment
leaves all three consistent (decision 2026-11-22 in docs/decisions.md). k-NN is exact: the vectors are held in
a numpy matrix loaded from the database, reloaded when the database's generation counter moves (a write by
this process or another one). The matrix is grouped by tenant, so a query scans one contiguous view (no copy),
and only the best k rows are sorted. BM25 lets FTS5 rank alone and reads the best k rows afterwards.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

import numpy as np

from lectern.adapters.local.sqlite_bm25 import Bm25Postings, QueryTokenizer, load_postings
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.domain.layout import decode_boxes, encode_boxes
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
    boxes TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (tenant_id, document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts
    USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO index_meta (key, value) VALUES ('generation', '0');
"""

_COLUMNS = (
    "c.rowid, c.tenant_id, c.chunk_id, c.document_id, c.filename, c.page, c.ordinal, c.heading, c.text,"
    " c.token_count, c.boxes"
)
# Columns added after the first release: (name, definition) - an older database gets them by ALTER TABLE, which
# keeps every row (SQLite adds the column with its default without rewriting the table).
_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("boxes", "TEXT NOT NULL DEFAULT ''"),)


def _migrate(conn: sqlite3.Connection) -> None:
    have = {str(r[1]) for r in conn.execute("PRAGMA table_info(chunks)")}
    for name, definition in _ADDED_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE chunks ADD COLUMN {name} {definition}")


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
        boxes=decode_boxes(str(row[10] or "")),
    )


def fts_match_expression(query: str) -> str:
    """An FTS5 MATCH expression: the query's content terms, each quoted, joined by OR (BM25 ranks them)."""
    return " OR ".join(f'"{t}"' for t in query_terms(query))


class _VectorCache:
    """The vectors of one generation of the database, grouped by tenant.

    Rows are sorted by (tenant, rowid), so one tenant's vectors are one contiguous slice of `matrix`: a query
    multiplies a view, never a copy. Documents and filenames are small integer codes, so filters compare
    integers, not strings. Everything here is derived from the `chunks` table and rebuilt from it whenever the
    generation moves; nothing is written back.
    """

    def __init__(self, dimension: int) -> None:
        self.generation = -1
        self.rowids = np.zeros(0, dtype=np.int64)
        self.matrix = np.zeros((0, dimension), dtype=np.float32)
        self.tenants: dict[str, tuple[int, int]] = {}  # tenant -> [start, stop) in rowids/matrix
        self.documents = np.zeros(0, dtype=np.int32)
        self.document_codes: dict[str, int] = {}
        self.filenames = np.zeros(0, dtype=np.int32)
        self.filename_codes: dict[str, int] = {}


def _codes(values: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    vocab: dict[str, int] = {}
    codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), dtype=np.int32, count=len(values))
    return codes, vocab


def _load_vectors(rows: Sequence[Sequence[object]], dimension: int, generation: int) -> _VectorCache:
    """A `_VectorCache` from (rowid, tenant_id, document_id, filename, vector) rows in rowid order."""
    cache = _VectorCache(dimension)
    cache.generation = generation
    if not rows:
        return cache
    n = len(rows)
    tenant_codes, tenant_vocab = _codes([str(r[1]) for r in rows])
    rowids = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=n)  # type: ignore[call-overload]
    matrix = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(n, dimension)  # type: ignore[misc]
    documents, cache.document_codes = _codes([str(r[2]) for r in rows])
    filenames, cache.filename_codes = _codes([str(r[3]) for r in rows])
    if len(tenant_vocab) > 1:
        order = np.argsort(tenant_codes, kind="stable")  # rowid order kept inside each tenant
        tenant_codes, rowids, matrix = tenant_codes[order], rowids[order], matrix[order]
        documents, filenames = documents[order], filenames[order]
    cache.rowids = rowids
    cache.matrix = np.ascontiguousarray(matrix)
    cache.documents, cache.filenames = documents, filenames
    bounds = np.searchsorted(tenant_codes, np.arange(len(tenant_vocab) + 1))
    cache.tenants = {t: (int(bounds[c]), int(bounds[c + 1])) for t, c in tenant_vocab.items()}
    return cache


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first; equal scores in index order (so the same as a full
    stable sort, without sorting everything)."""
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if n > k:
        part = np.argpartition(-scores, k - 1)[:k]
        kth = scores[part].min()
        # argpartition picks arbitrarily among scores equal to the k-th: take the lowest indices of those
        above = np.flatnonzero(scores > kth)
        ties = np.flatnonzero(scores == kth)[: k - len(above)]
        part = np.concatenate([above, ties])
    else:
        part = np.arange(n)
    return part[np.lexsort((part, -scores[part]))]


class SqliteSearchIndex:
    def __init__(
        self, db: SqliteDatabase, dimension: int, embedding_model: str, *, bm25_in_memory: bool = True
    ) -> None:
        self.db = db
        self.dimension = dimension
        self._cache = _VectorCache(dimension)
        self._cache_lock = threading.RLock()
        # BM25 from postings held in memory (sqlite_bm25), built in the background for the current
        # generation; FTS5 answers until they are ready and whenever the database has moved past them.
        self.bm25_in_memory = bm25_in_memory
        self._postings: tuple[Bm25Postings, _VectorCache] | None = None
        self._postings_thread: threading.Thread | None = None
        self._postings_lock = threading.Lock()
        self._tokenizer: QueryTokenizer | None = None
        self.db.connection().executescript(_SCHEMA)
        with self.db.transaction() as conn:
            _migrate(conn)
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
                    "INSERT INTO chunks (tenant_id, chunk_id, document_id, filename, page, ordinal, heading,"
                    " text, token_count, vector, boxes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        encode_boxes(c.boxes),
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
        sql, params = "", list[object]()
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
        fast = self._bm25_from_postings(tenant_id, query, k, filters)
        if fast is not None:
            return fast
        fsql, fparams = self._filter_sql(filters)
        conn = self.db.connection()
        # Fast path: FTS5 ranks on its own (no join, no chunk columns read per match) and only the best k rows
        # are read. When all k belong to the tenant and pass the filters, they are the tenant's best k, so
        # the answer is the same as the join below; otherwise the join, which filters before ranking.
        ranked = conn.execute(
            "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?", (expr, k)
        ).fetchall()
        if not ranked:
            return []
        rank_of = {int(r[0]): float(r[1]) for r in ranked}
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM chunks c WHERE c.rowid IN ({','.join('?' * len(ranked))})"  # noqa: S608
            f" AND c.tenant_id = ?{fsql}",
            [*rank_of, tenant_id, *fparams],
        ).fetchall()
        if len(rows) == len(ranked):
            by_id = {int(r[0]): r for r in rows}
            # FTS5's bm25() is negated so that smaller is better; flip it back to Lucene's orientation.
            return [ScoredChunk(_row_to_chunk(by_id[rid]), -s) for rid, s in rank_of.items()]
        rows = conn.execute(
            f"SELECT {_COLUMNS}, bm25(chunks_fts) AS s FROM chunks_fts"  # noqa: S608
            f" JOIN chunks c ON c.rowid = chunks_fts.rowid WHERE chunks_fts MATCH ? AND c.tenant_id = ?{fsql}"
            " ORDER BY s LIMIT ?",
            [expr, tenant_id, *fparams, k],
        ).fetchall()
        return [ScoredChunk(_row_to_chunk(r), -float(r[11])) for r in rows]

    def _rows_by_id(self, rowids: Sequence[int]) -> dict[int, Sequence[object]]:
        if not rowids:
            return {}
        rows = (
            self.db.connection()
            .execute(
                f"SELECT {_COLUMNS} FROM chunks c WHERE c.rowid IN ({','.join('?' * len(rowids))})",  # noqa: S608
                list(rowids),
            )
            .fetchall()
        )
        return {int(r[0]): r for r in rows}

    def _bm25_from_postings(
        self, tenant_id: str, query: str, k: int, filters: SearchFilters | None
    ) -> list[ScoredChunk] | None:
        """BM25 from the in-memory postings when they are at the database's generation, else None (and a
        background build is started)."""
        if not self.bm25_in_memory:
            return None
        current = self._postings
        gen = self._current_generation()
        if current is None or current[0].generation != gen:
            self._start_postings_build()
            return None
        postings, cache = current
        if self._tokenizer is None:
            self._tokenizer = QueryTokenizer()
        tokens = self._tokenizer.tokens(query_terms(query))
        if any(len(t) != 1 for t in tokens):
            return None  # a phrase (e.g. "il_6" is two tokens): FTS5 matches it by position
        bounds = cache.tenants.get(tenant_id)
        if bounds is None:
            return []
        lo, hi = bounds
        score, matched = postings.scores([t[0] for t in tokens])
        keep = matched[lo:hi]
        mask = self._filter_mask(cache, lo, hi, filters)
        if mask is not None:
            keep &= mask
        positions = np.flatnonzero(keep)
        sims = score[lo:hi][positions]
        top = top_k_indices(sims, k)
        rowids = [int(r) for r in cache.rowids[lo + positions[top]]]
        by_id = self._rows_by_id(rowids)
        return [
            ScoredChunk(_row_to_chunk(by_id[r]), float(sims[i]))
            for r, i in zip(rowids, top, strict=True)
            if r in by_id
        ]

    def _start_postings_build(self) -> None:
        with self._postings_lock:
            if self._postings_thread is not None and self._postings_thread.is_alive():
                return
            self._postings_thread = threading.Thread(
                target=self._build_postings_in_background, name="lectern-bm25-postings", daemon=True
            )
            self._postings_thread.start()

    def _build_postings_in_background(self) -> None:
        try:
            self._build_postings()
        except (sqlite3.Error, OSError):  # the database closed or went away: FTS5 keeps answering
            self._postings = None

    def _build_postings(self) -> bool:
        """Load the postings for the database's current generation. True when they are current."""
        conn = sqlite3.connect(self.db.path, timeout=30.0, check_same_thread=False)
        try:
            cache = self._vectors(conn)
        finally:
            conn.close()
        current = self._postings
        if current is not None and current[0].generation == cache.generation:
            return True
        postings = load_postings(self.db.path, cache.rowids, cache.generation)
        if postings is None:
            return False  # the database moved on while reading: the next query starts another build
        self._postings = (postings, cache)
        return True

    def warm(self, timeout_s: float = 600.0) -> None:
        """Bring the derived in-memory structures (vectors; BM25 postings) up to the database's generation
        now, instead of at the next queries."""
        self._vectors()
        if not self.bm25_in_memory:
            return
        thread = self._postings_thread
        if thread is not None:
            thread.join(timeout_s)
        for _ in range(5):
            if self._build_postings():
                return

    @staticmethod
    def _filter_mask(
        cache: _VectorCache, lo: int, hi: int, filters: SearchFilters | None
    ) -> np.ndarray | None:
        if not filters or not (filters.document_ids or filters.filenames):
            return None
        mask = np.ones(hi - lo, dtype=bool)
        if filters.document_ids:
            wanted = [cache.document_codes[d] for d in filters.document_ids if d in cache.document_codes]
            mask &= np.isin(cache.documents[lo:hi], wanted)
        if filters.filenames:
            wanted = [cache.filename_codes[f] for f in filters.filenames if f in cache.filename_codes]
            mask &= np.isin(cache.filenames[lo:hi], wanted)
        return mask

    def _current_generation(self, conn: sqlite3.Connection | None = None) -> int:
        conn = conn or self.db.connection()
        row = conn.execute("SELECT value FROM index_meta WHERE key='generation'").fetchone()
        return int(row[0])

    def _vectors(self, conn: sqlite3.Connection | None = None) -> _VectorCache:
        conn = conn or self.db.connection()
        gen = self._current_generation(conn)
        with self._cache_lock:
            if self._cache.generation != gen:
                own = not conn.in_transaction
                if own:
                    conn.execute("BEGIN")  # the rows and their generation from one snapshot
                try:
                    gen = self._current_generation(conn)
                    rows = conn.execute(
                        "SELECT rowid, tenant_id, document_id, filename, vector FROM chunks ORDER BY rowid"
                    ).fetchall()
                finally:
                    if own:
                        conn.execute("COMMIT")
                self._cache = _load_vectors(rows, self.dimension, gen)
            return self._cache

    def knn(
        self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[ScoredChunk]:
        cache = self._vectors()
        bounds = cache.tenants.get(tenant_id)
        if k <= 0 or bounds is None:
            return []
        lo, hi = bounds
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        block = cache.matrix[lo:hi]  # a view: one tenant's rows are contiguous
        mask = self._filter_mask(cache, lo, hi, filters)
        if mask is not None:
            positions = np.flatnonzero(mask)
            if not len(positions):
                return []
            sims = block[positions] @ q  # only the filtered rows are copied
        else:
            positions = None
            sims = block @ q
        top = top_k_indices(sims, k)
        picked = lo + (positions[top] if positions is not None else top)
        rowids = [int(r) for r in cache.rowids[picked]]
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
