"""Embeddings stored beside their document in S3 (moto): exact round trip, staleness, Map-state batches,
deletion, and the document listing the rebuild workflow starts from."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from moto import mock_aws

from lectern.adapters.aws import clients
from lectern.adapters.aws.s3_blobs import S3BlobStore
from lectern.adapters.aws.s3_vectors import S3VectorStore, safe_model_id
from lectern.domain.chunking import chunk_id

BUCKET = "lectern-docs"
DOC = "0123456789abcdef0123456789abcdef"
MODEL = "amazon.titan-embed-text-v2:0"


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = clients.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def store(s3) -> S3VectorStore:
    return S3VectorStore(BUCKET, client=s3)


def matrix(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def chunks(n: int, doc: str = DOC) -> tuple[list[str], list[str]]:
    texts = [f"passage {i} of the handbook" for i in range(n)]
    return [chunk_id(doc, i, t) for i, t in enumerate(texts)], texts


def test_round_trip_is_bit_exact_float32(store: S3VectorStore, s3) -> None:
    ids, texts = chunks(7)
    vectors = matrix(7, 256)
    key = store.put("acme", DOC, MODEL, 256, ids, vectors, texts=texts)
    assert key == f"acme/{DOC}/embeddings/amazon.titan-embed-text-v2_0-256.npz"
    got = store.get("acme", DOC, MODEL, 256, expected_chunk_ids=ids, expected_texts=texts)
    assert got is not None and got.dtype == np.float32
    assert np.array_equal(got, vectors)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    # a plain npz that numpy reads without pickle
    raw = S3BlobStore(BUCKET, client=s3).get(key)
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        assert list(npz["chunk_ids"]) == ids


def test_absent_or_stale_is_none(store: S3VectorStore) -> None:
    ids, texts = chunks(3)
    assert store.get("acme", DOC, MODEL, 256) is None
    store.put("acme", DOC, MODEL, 256, ids, matrix(3, 256), texts=texts)
    assert store.get("acme", DOC, MODEL, 256) is not None
    assert store.get("acme", DOC, MODEL, 256, expected_chunk_ids=ids[:2]) is None  # a chunk was removed
    assert store.get("acme", DOC, MODEL, 256, expected_chunk_ids=list(reversed(ids))) is None  # order matters
    new_ids, _ = chunks(3, doc="f" * 32)
    assert store.get("acme", DOC, MODEL, 256, expected_chunk_ids=new_ids) is None
    assert store.get("acme", DOC, MODEL, 256, expected_texts=[*texts[:2], "edited"]) is None
    assert store.get("acme", DOC, MODEL, 1024) is None  # other dimension
    assert store.get("acme", DOC, "cohere.embed-english-v3", 256) is None  # other model
    assert store.get("globex", DOC, MODEL, 256) is None  # other tenant


def test_an_unreadable_object_counts_as_absent(store: S3VectorStore, s3) -> None:
    ids, _ = chunks(2)
    key = store.put("acme", DOC, MODEL, 8, ids, matrix(2, 8))
    blobs = S3BlobStore(BUCKET, client=s3)
    blobs.put(key, blobs.get(key)[:100])  # truncated
    assert store.get("acme", DOC, MODEL, 8) is None
    blobs.put(key, b"not a zip at all")
    assert store.get("acme", DOC, MODEL, 8) is None


def test_model_ids_that_share_a_safe_name_do_not_read_each_other(store: S3VectorStore) -> None:
    assert safe_model_id("a:b") == safe_model_id("a_b")
    ids, _ = chunks(2)
    store.put("acme", DOC, "a:b", 8, ids, matrix(2, 8))
    assert store.get("acme", DOC, "a_b", 8) is None
    assert store.get("acme", DOC, "a:b", 8) is not None


def test_shape_mismatches_are_refused(store: S3VectorStore) -> None:
    ids, texts = chunks(3)
    with pytest.raises(ValueError):
        store.put("acme", DOC, MODEL, 256, ids, matrix(2, 256))
    with pytest.raises(ValueError):
        store.put("acme", DOC, MODEL, 256, ids, matrix(3, 128))
    with pytest.raises(ValueError):
        store.put("acme", DOC, MODEL, 256, ids, matrix(3, 256), texts=texts[:2])
    with pytest.raises(ValueError):
        safe_model_id("::")


def test_batches_round_trip_and_gather_in_order(store: S3VectorStore) -> None:
    ids, _ = chunks(25)
    vectors = matrix(25, 16)
    starts = [20, 0, 10]  # Map iterations finish in any order
    for start in starts:
        store.put_batch("acme", DOC, MODEL, 16, start, ids[start : start + 10], vectors[start : start + 10])
    got_ids, got = store.get_batch("acme", DOC, MODEL, 16, 10)
    assert got_ids == ids[10:20] and np.array_equal(got, vectors[10:20])
    assert store.get_batch("acme", DOC, MODEL, 16, 5) is None
    gathered = store.gather_batches("acme", DOC, MODEL, 16, ids)
    assert gathered is not None and np.array_equal(gathered, vectors)
    assert store.gather_batches("acme", DOC, MODEL, 16, ids[:-1]) is None  # not exactly the expected chunks
    # the whole-document object is separate from the batches
    assert store.get("acme", DOC, MODEL, 16) is None
    assert store.delete_batches("acme", DOC, MODEL, 16) == 3
    assert store.gather_batches("acme", DOC, MODEL, 16, ids) is None


def test_a_missing_batch_means_nothing_is_gathered(store: S3VectorStore) -> None:
    ids, _ = chunks(20)
    vectors = matrix(20, 16)
    store.put_batch("acme", DOC, MODEL, 16, 0, ids[:10], vectors[:10])
    assert store.gather_batches("acme", DOC, MODEL, 16, ids) is None


def test_delete_removes_every_embedding_of_the_document_only(store: S3VectorStore, s3) -> None:
    blobs = S3BlobStore(BUCKET, client=s3)
    blobs.put(f"acme/{DOC}/original", b"%PDF")
    ids, _ = chunks(2)
    store.put("acme", DOC, MODEL, 8, ids, matrix(2, 8))
    store.put("acme", DOC, "other-model", 4, ids, matrix(2, 4))
    store.put_batch("acme", DOC, MODEL, 8, 0, ids, matrix(2, 8))
    other = "e" * 32
    store.put("acme", other, MODEL, 8, ids, matrix(2, 8))
    assert store.delete("acme", DOC) == 3
    assert store.get("acme", DOC, MODEL, 8) is None
    assert blobs.exists(f"acme/{DOC}/original")
    assert store.get("acme", other, MODEL, 8) is not None


def test_list_documents_finds_originals_only(store: S3VectorStore, s3) -> None:
    blobs = S3BlobStore(BUCKET, client=s3)
    docs = [("acme", "a" * 32), ("acme", "b" * 32), ("globex", "c" * 32), ("acme10", "d" * 32)]
    for tenant, doc in docs:
        blobs.put(f"{tenant}/{doc}/original", b"x")
        blobs.put(f"{tenant}/{doc}/chunks.jsonl", b"{}")
    ids, _ = chunks(1)
    store.put("acme", "f" * 32, MODEL, 4, ids, matrix(1, 4))  # embeddings without an original: not a document

    def small_pages(params, **_):
        params["MaxKeys"] = 3

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    assert sorted(store.list_documents()) == sorted(docs)
    assert list(store.list_documents("acme")) == [("acme", "a" * 32), ("acme", "b" * 32)]
    assert list(store.list_documents("initech")) == []
