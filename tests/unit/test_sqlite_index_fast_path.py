"""The local index's fast paths (issue 19) against brute-force references on random data: k-NN over one
tenant's contiguous block of the vector matrix, top-k without a full sort, BM25 ranked by FTS5 alone."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex, fts_match_expression, top_k_indices
from lectern.domain.models import Chunk, SearchFilters

DIM = 16
WORDS = [
    "cell",
    "gene",
    "protein",
    "tumor",
    "blood",
    "virus",
    "heart",
    "brain",
    "lung",
    "liver",
    "drug",
    "dose",
    "trial",
    "risk",
    "mouse",
    "rat",
]


def _build(
    tmp_path: Path, n_docs: int, seed: int = 3, **options: bool
) -> tuple[SqliteSearchIndex, dict[str, np.ndarray]]:
    """Documents of three tenants, interleaved in rowid order; some vectors repeated so scores tie."""
    rng = np.random.default_rng(seed)
    index = SqliteSearchIndex(SqliteDatabase(tmp_path / "i.db"), DIM, "m", **options)
    vec_of: dict[str, np.ndarray] = {}
    shared = rng.normal(size=DIM).astype(np.float32)
    for d in range(n_docs):
        tenant = ("t1", "t2", "t3")[d % 3] if d % 7 else "t1"
        doc = f"d{d:03d}"
        n = int(rng.integers(1, 6))
        vecs = rng.normal(size=(n, DIM)).astype(np.float32)
        if d % 5 == 0:
            vecs[0] = shared
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        chunks = []
        for i in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
            chunks.append(Chunk(f"{doc}:{i}", tenant, doc, f"{doc}.txt", 1, i, text, token_count=3))
            vec_of[f"{doc}:{i}"] = vecs[i]
        index.replace_document(tenant, doc, chunks, vecs)
    return index, vec_of


def _brute_knn(db: Path, tenant: str, q: np.ndarray, k: int, filters: SearchFilters | None) -> list[tuple]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT rowid, chunk_id, document_id, filename, vector FROM chunks WHERE tenant_id = ?"
        " ORDER BY rowid",
        (tenant,),
    ).fetchall()
    conn.close()
    if filters and filters.document_ids:
        rows = [r for r in rows if r[2] in filters.document_ids]
    if filters and filters.filenames:
        rows = [r for r in rows if r[3] in filters.filenames]
    scored = [(float(np.frombuffer(r[4], dtype=np.float32) @ q), r[0], r[1]) for r in rows]
    scored.sort(key=lambda s: (-s[0], s[1]))  # best first, ties in rowid order
    return [(cid, s) for s, _, cid in scored[:k]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_equals_a_brute_force_scan(tmp_path: Path, seed: int):
    index, vec_of = _build(tmp_path, 60, seed)
    rng = np.random.default_rng(100 + seed)
    queries = [rng.normal(size=DIM).astype(np.float32) for _ in range(10)] + [vec_of["d000:0"]]
    cases = [
        None,
        SearchFilters(document_ids=("d001", "d004", "d010", "d000", "missing")),
        SearchFilters(filenames=("d002.txt", "d005.txt", "d000.txt")),
        SearchFilters(document_ids=("d003", "d006"), filenames=("d003.txt",)),
    ]
    for tenant in ("t1", "t2", "t3", "nobody"):
        for q in queries:
            q = q / np.linalg.norm(q)
            for filters in cases:
                for k in (1, 3, 10, 1000):
                    got = [(h.chunk.chunk_id, h.score) for h in index.knn(tenant, q, k, filters)]
                    want = _brute_knn(tmp_path / "i.db", tenant, q, k, filters)
                    assert [g[0] for g in got] == [w[0] for w in want], (tenant, filters, k)
                    np.testing.assert_allclose(
                        [g[1] for g in got], [w[1] for w in want], rtol=1e-5, atol=1e-6
                    )
                    assert all(h.chunk.tenant_id == tenant for h in index.knn(tenant, q, k, filters))


def test_knn_sees_writes_and_deletes_of_any_tenant(tmp_path: Path):
    index, vec_of = _build(tmp_path, 30)
    q = vec_of["d001:0"]
    assert index.knn("t2", q, 1)[0].chunk.chunk_id == "d001:0"
    index.delete_document("t2", "d001")
    assert all(h.chunk.document_id != "d001" for h in index.knn("t2", q, 100))
    chunk = Chunk("new:0", "t4", "new", "new.txt", 1, 0, "cell", token_count=1)
    index.replace_document("t4", "new", [chunk], q[None, :])
    assert [h.chunk.chunk_id for h in index.knn("t4", q, 5)] == ["new:0"]
    assert _brute_knn(tmp_path / "i.db", "t2", q, 5, None) == [
        (h.chunk.chunk_id, pytest.approx(h.score, abs=1e-6)) for h in index.knn("t2", q, 5)
    ]


def test_knn_does_not_copy_the_vector_matrix(tmp_path: Path):
    """The scan multiplies a view of the tenant's rows: a query allocates far less than the matrix holds
    (the old `matrix[idx] @ q` copied every row on every query)."""
    n, dim = 20_000, 64
    rng = np.random.default_rng(0)
    index = SqliteSearchIndex(SqliteDatabase(tmp_path / "big.db"), dim, "m")
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    for start in range(0, n, 2000):
        chunks = [
            Chunk(f"c{i}", "t", f"doc{start}", "f.txt", 1, i, "x", token_count=1)
            for i in range(start, start + 2000)
        ]
        index.replace_document("t", f"doc{start}", chunks, vecs[start : start + 2000])
    q = vecs[5] / np.linalg.norm(vecs[5])
    index.knn("t", q, 10)  # loads the matrix
    tracemalloc.start()
    index.knn("t", q, 10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < vecs.nbytes / 10, f"a query allocated {peak} bytes; the matrix is {vecs.nbytes}"


def test_top_k_indices_equals_a_stable_full_sort():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 6, size=n).astype(np.float32)  # many ties
        k = int(rng.integers(1, n + 3))
        want = np.argsort(-scores, kind="stable")[:k]
        np.testing.assert_array_equal(top_k_indices(scores, k), want)
    assert len(top_k_indices(np.zeros(0, np.float32), 5)) == 0


def _reference_bm25(db: Path, tenant: str, query: str, k: int, filters: SearchFilters | None) -> list[tuple]:
    """The index's BM25 before the fast path: join, filter, rank by bm25(), all in one statement."""
    sql, params = SqliteSearchIndex._filter_sql(filters)
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT c.chunk_id, bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid"
        f" WHERE chunks_fts MATCH ? AND c.tenant_id = ?{sql} ORDER BY s LIMIT ?",
        [fts_match_expression(query), tenant, *params, k],
    ).fetchall()
    conn.close()
    return [(cid, -s) for cid, s in rows]


def _same_ranking(got: list[tuple], want: list[tuple]) -> None:
    """Same scores in the same order; among equal scores SQLite's order is unspecified in both."""
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-9)
    by_score: dict[float, set] = {}
    for cid, s in want:
        by_score.setdefault(round(s, 9), set()).add(cid)
    last = round(want[-1][1], 9) if want else None
    for cid, s in got:
        if round(s, 9) != last:  # the last score's group may be cut differently by LIMIT
            assert cid in by_score[round(s, 9)]


def _traced(index: SqliteSearchIndex, fn):
    statements: list[str] = []
    index.db.connection().set_trace_callback(statements.append)
    try:
        return fn(), statements
    finally:
        index.db.connection().set_trace_callback(None)


@pytest.mark.parametrize(("seed", "in_memory"), [(0, True), (1, True), (0, False)])
def test_bm25_equals_the_join_query(tmp_path: Path, seed: int, in_memory: bool):
    index, _ = _build(tmp_path, 80, seed, bm25_in_memory=in_memory)
    index.warm()
    rng = np.random.default_rng(seed)
    filters = [
        None,
        SearchFilters(document_ids=("d001", "d002", "d004")),
        SearchFilters(filenames=("d000.txt",)),
    ]
    for tenant in ("t1", "t2", "t3", "nobody"):
        for _ in range(15):
            query = " ".join(rng.choice([*WORDS, "Cells", "tumors", "unseen"], size=int(rng.integers(1, 6))))
            for f in filters:
                for k in (1, 5, 50, 500):
                    got, sql = _traced(index, lambda t=tenant, q=query, k=k, f=f: index.bm25(t, q, k, f))
                    want = _reference_bm25(tmp_path / "i.db", tenant, query, k, f)
                    _same_ranking([(h.chunk.chunk_id, h.score) for h in got], want)
                    assert any("MATCH" in q for q in sql) != in_memory, sql


def test_in_memory_bm25_scores_are_fts5s_own_to_the_bit(tmp_path: Path):
    index, _ = _build(tmp_path, 120, 4)
    index.warm()
    for query in ("cell gene", "tumor tumors Tumor", "rat mouse heart brain lung liver", "dose"):
        got = {h.chunk.chunk_id: h.score for h in index.bm25("t1", query, 1000)}
        want = dict(_reference_bm25(tmp_path / "i.db", "t1", query, 1000, None))
        assert got == want  # exact equality: same formula, same float64 operations, same order


def test_in_memory_bm25_is_used_only_at_the_current_generation(tmp_path: Path):
    index, _ = _build(tmp_path, 30, 5)
    index.warm()
    chunk = Chunk("new:0", "t1", "new", "new.txt", 1, 0, "zebra cell", token_count=2)
    index.replace_document("t1", "new", [chunk], np.ones((1, DIM), np.float32) / np.sqrt(DIM))
    index._start_postings_build = lambda: None  # hold back the background rebuild
    hits, sql = _traced(index, lambda: index.bm25("t1", "zebra", 5))
    assert [h.chunk.chunk_id for h in hits] == ["new:0"]  # the write is seen at once, through FTS5
    assert any("MATCH" in q for q in sql)
    del index._start_postings_build
    index.warm()
    hits, sql = _traced(index, lambda: index.bm25("t1", "zebra cell", 50))
    assert hits[0].chunk.chunk_id == "new:0" and not any("MATCH" in q for q in sql)
    _same_ranking(
        [(h.chunk.chunk_id, h.score) for h in hits],
        _reference_bm25(tmp_path / "i.db", "t1", "zebra cell", 50, None),
    )
    index.delete_document("t1", "new")
    assert all(h.chunk.chunk_id != "new:0" for h in index.bm25("t1", "zebra cell", 50))


def test_a_phrase_term_goes_to_fts5(tmp_path: Path):
    """`il_6` is one query term but two FTS5 tokens, a phrase matched by position: FTS5 answers it."""
    index = SqliteSearchIndex(SqliteDatabase(tmp_path / "p.db"), DIM, "m")
    texts = ["il 6 levels rise", "6 il levels", "il levels of 6"]
    chunks = [Chunk(f"c{i}", "t", "d", "d.txt", 1, i, t, token_count=3) for i, t in enumerate(texts)]
    index.replace_document("t", "d", chunks, np.eye(3, DIM, dtype=np.float32))
    index.warm()
    hits, sql = _traced(index, lambda: index.bm25("t", "il_6", 10))
    assert [h.chunk.chunk_id for h in hits] == ["c0"] and any("MATCH" in q for q in sql)


def test_bm25_of_a_single_tenant_ranks_in_fts5_alone(tmp_path: Path):
    """Without the in-memory postings, one tenant, no filters: one FTS5 statement ranks and one reads the
    best k rows; the join that reads every matching row's columns is not run."""
    db = SqliteDatabase(tmp_path / "one.db")
    index = SqliteSearchIndex(db, DIM, "m", bm25_in_memory=False)
    rng = np.random.default_rng(1)
    chunks = [
        Chunk(f"c{i}", "t", "d", "d.txt", 1, i, " ".join(rng.choice(WORDS, size=8)), token_count=8)
        for i in range(300)
    ]
    vecs = rng.normal(size=(300, DIM)).astype(np.float32)
    index.replace_document("t", "d", chunks, vecs)
    statements: list[str] = []
    db.connection().set_trace_callback(statements.append)
    hits = index.bm25("t", "cell tumor", 10)
    db.connection().set_trace_callback(None)
    assert len(hits) == 10
    assert not any("JOIN" in s for s in statements), statements
    _same_ranking(
        [(h.chunk.chunk_id, h.score) for h in hits],
        _reference_bm25(tmp_path / "one.db", "t", "cell tumor", 10, None),
    )
