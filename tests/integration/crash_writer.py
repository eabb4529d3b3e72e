"""Child process for the kill -9 test: replaces documents in the local index forever, printing ACK after commits."""

import sys
from pathlib import Path

import numpy as np

from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.domain.models import Chunk

DIM = 16


def expected_chunks(doc: int) -> int:
    return 5 + doc % 17


def make(doc: int) -> tuple[list[Chunk], np.ndarray]:
    n = expected_chunks(doc)
    chunks = [
        Chunk(
            chunk_id=f"d{doc}-c{i}",
            tenant_id="t",
            document_id=f"d{doc}",
            filename=f"d{doc}.txt",
            page=1,
            ordinal=i,
            text=f"document {doc} chunk {i} " + "lorem ipsum dolor " * 40,
        )
        for i in range(n)
    ]
    rng = np.random.default_rng(doc)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return chunks, v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    index = SqliteSearchIndex(SqliteDatabase(Path(sys.argv[1])), DIM, "test-model")
    start = int(sys.argv[2])
    doc = start
    while True:
        chunks, vectors = make(doc % 40)  # re-writes of the same documents exercise replace, too
        index.replace_document("t", f"d{doc % 40}", chunks, vectors)
        print(f"ACK {doc % 40}", flush=True)
        doc += 1


if __name__ == "__main__":
    main()
