"""Embeddings kept next to their document in the documents bucket, so the search index can be rebuilt
(after the OpenSearch collection was paused or replaced) without paying for the embeddings again.

Layout, per document and per (model, dimension):
    {tenant}/{doc}/embeddings/{safe model id}-{dim}.npz                the whole document
    {tenant}/{doc}/embeddings/{safe model id}-{dim}/batch-{start}.npz  a Map-state batch (start: 1st chunk #)

Each object is an `.npz` (numpy's zip of arrays, read with allow_pickle=False) holding `vectors` (float32,
rows × dim), `chunk_ids` (unicode) and `meta` (a JSON string: model id, dimension, count, sha256 of the chunk
ids and, when given, of the chunk texts). An object is *stale* when the chunk ids (which already hash each
chunk's text, see `domain.chunking.chunk_id`) or the texts it was made from differ from what the caller
expects; `get` then answers None and the caller embeds again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lectern.adapters.aws.s3_blobs import S3BlobStore

FORMAT = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_model_id(model_id: str) -> str:
    """A key segment for a model id (`amazon.titan-embed-text-v2:0` → `amazon.titan-embed-text-v2_0`).

    Distinct ids could map to one segment; the full id is stored in the object and checked on read."""
    safe = _UNSAFE.sub("_", model_id).lstrip("._-")
    if not safe:
        raise ValueError(f"invalid model id {model_id!r}")
    return safe[:100]


def _sha256_lines(items: Sequence[str]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode())
        h.update(b"\x1e")
    return h.hexdigest()


def _encode(
    model_id: str, dimension: int, chunk_ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None
) -> bytes:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape != (len(chunk_ids), dimension):
        raise ValueError(
            f"vectors have shape {matrix.shape}; expected ({len(chunk_ids)}, {dimension}) for these chunk ids"
        )
    if texts is not None and len(texts) != len(chunk_ids):
        raise ValueError("texts and chunk_ids differ in length")
    meta = {
        "format": FORMAT,
        "model_id": model_id,
        "dimension": dimension,
        "count": len(chunk_ids),
        "chunk_ids_sha256": _sha256_lines(chunk_ids),
        "texts_sha256": _sha256_lines(texts) if texts is not None else None,
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        vectors=matrix,
        chunk_ids=np.array(list(chunk_ids), dtype=np.str_),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    return buf.getvalue()


def _decode(data: bytes) -> tuple[dict[str, Any], list[str], np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        chunk_ids = [str(c) for c in npz["chunk_ids"]]
        vectors = np.asarray(npz["vectors"], dtype=np.float32)
    return meta, chunk_ids, vectors


class S3VectorStore:
    def __init__(self, bucket: str, *, client: Any = None, kms_key_id: str | None = None) -> None:
        self.blobs = S3BlobStore(bucket, client=client, kms_key_id=kms_key_id)
        self.bucket = bucket

    # -- keys ------------------------------------------------------------------------------------------------
    @staticmethod
    def document_prefix(tenant_id: str, document_id: str) -> str:
        return f"{tenant_id}/{document_id}/embeddings/"

    def key(self, tenant_id: str, document_id: str, model_id: str, dimension: int) -> str:
        return f"{self.document_prefix(tenant_id, document_id)}{safe_model_id(model_id)}-{int(dimension)}.npz"

    def batch_prefix(self, tenant_id: str, document_id: str, model_id: str, dimension: int) -> str:
        return f"{self.document_prefix(tenant_id, document_id)}{safe_model_id(model_id)}-{int(dimension)}/"

    def batch_key(
        self, tenant_id: str, document_id: str, model_id: str, dimension: int, batch_start: int
    ) -> str:
        if batch_start < 0:
            raise ValueError("batch_start must be >= 0")
        return f"{self.batch_prefix(tenant_id, document_id, model_id, dimension)}batch-{batch_start:08d}.npz"

    # -- whole document --------------------------------------------------------------------------------------
    def put(
        self,
        tenant_id: str,
        document_id: str,
        model_id: str,
        dimension: int,
        chunk_ids: Sequence[str],
        vectors: np.ndarray,
        *,
        texts: Sequence[str] | None = None,
    ) -> str:
        """Store the document's embeddings (one object, replaced atomically); returns its key."""
        key = self.key(tenant_id, document_id, model_id, dimension)
        self.blobs.put(key, _encode(model_id, dimension, chunk_ids, vectors, texts))
        return key

    def get(
        self,
        tenant_id: str,
        document_id: str,
        model_id: str,
        dimension: int,
        expected_chunk_ids: Sequence[str] | None = None,
        *,
        expected_texts: Sequence[str] | None = None,
    ) -> np.ndarray | None:
        """The float32 matrix (rows in the stored chunk order), or None when absent or stale."""
        found = self._read(self.key(tenant_id, document_id, model_id, dimension), model_id, dimension)
        if found is None:
            return None
        meta, chunk_ids, vectors = found
        if expected_chunk_ids is not None and list(expected_chunk_ids) != chunk_ids:
            return None
        if expected_texts is not None and meta.get("texts_sha256") != _sha256_lines(expected_texts):
            return None
        return vectors

    def get_with_ids(
        self, tenant_id: str, document_id: str, model_id: str, dimension: int
    ) -> tuple[list[str], np.ndarray] | None:
        """The stored chunk ids and matrix (for a rebuild that takes the chunks from elsewhere), or None."""
        found = self._read(self.key(tenant_id, document_id, model_id, dimension), model_id, dimension)
        return (found[1], found[2]) if found else None

    # -- Map-state batches -----------------------------------------------------------------------------------
    def put_batch(
        self,
        tenant_id: str,
        document_id: str,
        model_id: str,
        dimension: int,
        batch_start: int,
        chunk_ids: Sequence[str],
        vectors: np.ndarray,
    ) -> str:
        key = self.batch_key(tenant_id, document_id, model_id, dimension, batch_start)
        self.blobs.put(key, _encode(model_id, dimension, chunk_ids, vectors, None))
        return key

    def get_batch(
        self, tenant_id: str, document_id: str, model_id: str, dimension: int, batch_start: int
    ) -> tuple[list[str], np.ndarray] | None:
        found = self._read(
            self.batch_key(tenant_id, document_id, model_id, dimension, batch_start), model_id, dimension
        )
        return (found[1], found[2]) if found else None

    def gather_batches(
        self,
        tenant_id: str,
        document_id: str,
        model_id: str,
        dimension: int,
        expected_chunk_ids: Sequence[str],
    ) -> np.ndarray | None:
        """Concatenate every batch in start order; None unless they cover exactly `expected_chunk_ids`."""
        ids: list[str] = []
        parts: list[np.ndarray] = []
        for key in self.blobs.keys(self.batch_prefix(tenant_id, document_id, model_id, dimension)):
            found = self._read(key, model_id, dimension)
            if found is None:
                return None
            ids.extend(found[1])
            parts.append(found[2])
        if ids != list(expected_chunk_ids):
            return None
        return np.concatenate(parts) if parts else np.zeros((0, dimension), dtype=np.float32)

    def delete_batches(self, tenant_id: str, document_id: str, model_id: str, dimension: int) -> int:
        return self.blobs.delete_prefix(self.batch_prefix(tenant_id, document_id, model_id, dimension))

    # -- housekeeping ----------------------------------------------------------------------------------------
    def delete(self, tenant_id: str, document_id: str) -> int:
        """Delete every embeddings object of the document (all models, whole and batches)."""
        return self.blobs.delete_prefix(self.document_prefix(tenant_id, document_id))

    def list_documents(self, tenant_id: str | None = None) -> Iterator[tuple[str, str]]:
        """(tenant, document) for every `{tenant}/{doc}/original` in the bucket (or of one tenant): the
        input of the rebuild workflow. Key order, every page."""
        paginator = self.blobs.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if tenant_id is not None:
            kwargs["Prefix"] = f"{tenant_id}/"
        for page in paginator.paginate(**kwargs):
            for obj in page.get("Contents", []):
                parts = obj["Key"].split("/")
                if len(parts) == 3 and parts[2] == "original":
                    yield parts[0], parts[1]

    def _read(
        self, key: str, model_id: str, dimension: int
    ) -> tuple[dict[str, Any], list[str], np.ndarray] | None:
        try:
            data = self.blobs.get(key)
        except KeyError:
            return None
        try:
            meta, chunk_ids, vectors = _decode(data)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile):
            return None  # unreadable (truncated, another format): as if absent, the caller embeds again
        if (
            meta.get("format") != FORMAT
            or meta.get("model_id") != model_id
            or meta.get("dimension") != dimension
            or vectors.shape != (len(chunk_ids), dimension)
        ):
            return None
        return meta, chunk_ids, vectors
