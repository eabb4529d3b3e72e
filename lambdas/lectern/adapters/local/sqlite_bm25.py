"""FTS5's BM25 computed in numpy from postings read out of the FTS5 index: the same scores, without FTS5
scoring every matching row through its auxiliary-function interface (issue 19: ~80-280 ms at 100k chunks for
a SciFact claim, whose OR of ten terms matches most rows).

Exactness: the postings (term, row, term frequency) and the row lengths are read from FTS5 itself
(`fts5vocab ... instance`), query terms are tokenized by an FTS5 table with the same tokenizer, and the
score is FTS5's `fts5Bm25Function` (k1 = 1.2, b = 0.75, IDF log((N - n + 0.5) / (n + 0.5)) floored at 1e-6,
N and the average length over the whole table) evaluated in the same order in float64, so the figures are
bit-identical. A query term that FTS5 would treat as a phrase of several tokens is not handled here: the
caller falls back to FTS5.

Crash safety: nothing here is written anywhere. `Bm25Postings` is a snapshot of the database at one
generation, read in one read transaction; the index uses it only while the database is still at that
generation, and answers through FTS5 meanwhile.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

K1 = 1.2
B = 0.75
TOKENIZER = "porter unicode61 remove_diacritics 2"


class QueryTokenizer:
    """Query terms as FTS5 tokenizes them: an in-memory FTS5 table with the index's tokenizer."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f"CREATE VIRTUAL TABLE q USING fts5(body, tokenize = '{TOKENIZER}')")
        self._conn.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance')")
        self._lock = threading.Lock()

    def tokens(self, terms: Sequence[str]) -> list[list[str]]:
        """The token list of each term, in order."""
        with self._lock:
            self._conn.execute("DELETE FROM q")
            self._conn.executemany("INSERT INTO q (rowid, body) VALUES (?, ?)", list(enumerate(terms, 1)))
            rows = self._conn.execute("SELECT doc, term FROM qv ORDER BY doc, offset").fetchall()
        out: list[list[str]] = [[] for _ in terms]
        for doc, term in rows:
            out[int(doc) - 1].append(str(term))
        return out


class Bm25Postings:
    """Per term: the positions (in `rowids`) of the rows holding it (int32) and its frequency in each
    (uint16: a chunk holds at most a few hundred tokens)."""

    def __init__(
        self,
        generation: int,
        rowids: np.ndarray,
        postings: dict[str, tuple[np.ndarray, np.ndarray]],
        lengths: np.ndarray,
        total_rows: int,
    ) -> None:
        self.generation = generation
        self.rowids = rowids  # the positions' rowids, in the order of the vector cache (tenant, rowid)
        self.postings = postings
        self.lengths = lengths  # tokens per row (FTS5's xColumnSize(-1)), float64
        self.total_rows = total_rows
        total_tokens = float(lengths.sum())
        self.avgdl = total_tokens / float(total_rows) if total_rows else 0.0

    def scores(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(score per position, matched per position) for an OR of one-token phrases, in FTS5's arithmetic."""
        n = len(self.rowids)
        score = np.zeros(n, dtype=np.float64)
        matched = np.zeros(n, dtype=bool)
        norm = K1 * (1 - B + B * self.lengths / self.avgdl) if n else self.lengths
        nrow = self.total_rows
        for token in tokens:
            hit = self.postings.get(token)
            if hit is None:
                continue
            pos, counts = hit
            tf = counts.astype(np.float64)  # FTS5 sums 1.0 per instance: exact small integers
            nhit = len(pos)
            idf = math.log((nrow - nhit + 0.5) / (nhit + 0.5))
            if idf <= 0.0:
                idf = 1e-6
            score[pos] += idf * ((tf * (K1 + 1.0)) / (tf + norm[pos]))
            matched[pos] = True
        return score, matched


def load_postings(path: Path, rowids: np.ndarray, generation: int) -> Bm25Postings | None:
    """Read the postings of the database at `path`; None when it is no longer at `generation` or a row of
    the FTS table is not among `rowids` (the caller's snapshot is stale)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.bm25_instances USING fts5vocab(main, chunks_fts, instance)")
        conn.execute("BEGIN")
        row = conn.execute("SELECT value FROM index_meta WHERE key='generation'").fetchone()
        if row is None or int(row[0]) != generation:
            return None
        total_rows = int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        if total_rows != len(rowids):
            return None
        order = np.argsort(rowids, kind="stable")
        sorted_ids = rowids[order]
        lengths = np.zeros(len(rowids), dtype=np.float64)
        postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # The instance table is in (term, doc, offset) order, so GROUP BY term streams without a sorter.
        cur = conn.execute("SELECT term, group_concat(doc) FROM temp.bm25_instances GROUP BY term")
        for term, docs in cur:
            ids = np.fromstring(docs, dtype=np.int64, sep=",")
            ids.sort(kind="stable")
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            unique = ids[starts]
            tf = np.diff(np.r_[starts, len(ids)]).astype(np.uint16)
            at = np.searchsorted(sorted_ids, unique)
            if (at >= len(sorted_ids)).any() or (
                sorted_ids[np.minimum(at, len(sorted_ids) - 1)] != unique
            ).any():
                return None
            pos = order[at].astype(np.int32)
            lengths[pos] += tf
            postings[str(term)] = (pos, tf)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Bm25Postings(generation, rowids, postings, lengths, total_rows)
