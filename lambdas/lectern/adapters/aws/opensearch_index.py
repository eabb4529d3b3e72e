"""The AWS `SearchIndex`: chunks, their BM25 text and their vectors in one OpenSearch index.

Same contract as `lectern.adapters.local.sqlite_index.SqliteSearchIndex`: every call is scoped to one tenant,
`knn` scores are cosine similarities in [-1, 1], `replace_document` is idempotent and leaves the document with
exactly the new chunks. OpenSearch 2.19 or later is assumed (Faiss `cosinesimil`, `search_pipeline` inside
`_msearch` bodies, the `score-ranker-processor`).

Request shapes and where they come from (the golden files in tests/golden/opensearch/ hold the exact bodies):
  * mapping: https://docs.opensearch.org/latest/mappings/supported-field-types/knn-vector/ and
    https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
  * cosinesimil score = (2 - d) / 2 with d = 1 - cos, i.e. (1 + cos) / 2:
    https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/
  * k-NN with `filter` inside the clause (efficient filtering, Lucene and Faiss HNSW):
    https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/
  * hybrid query and the normalization / score-ranker processors:
    https://docs.opensearch.org/latest/query-dsl/compound/hybrid/
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/score-ranker-processor/
  * `search_pipeline` in an `_msearch` body line (2.18+):
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/using-search-pipeline/
  * bulk NDJSON and its per-item response:
    https://docs.opensearch.org/latest/api-reference/document-apis/bulk/

Text analysis: the `english` analyzer (lower-casing, English stop words, possessive removal, Porter stemming).
The local index stems with Porter and drops stop words from queries, so `english` keeps the two BM25s close in
behaviour; the `standard` analyzer would let "the"/"of" match nearly every chunk and would not match
"policies" to "policy". `heading` and `text` are copied into `search_text`, the one field BM25 runs on (the
local index also indexes heading + text together).

Serverless (`serverless=True`, an OpenSearch Serverless VECTORSEARCH collection) differs in what it accepts:
  * no client-chosen `_id` on index/create ("Document ID is not supported in create/index operation
    request"): chunks are written without `_id`, `chunk_id` lives in the source, and a replace deletes the
    document's previous chunks by their server-assigned `_id` after the new ones are written;
  * no `_refresh`, no `refresh` parameter and no `_delete_by_query` (not in the collection's supported
    operations): deletes are a search for the `_id`s followed by bulk `delete`s; writes become searchable
    after the collection's own refresh (about 10 s), not when the call returns;
  * SigV4 service name `aoss` instead of `es`.
Search pipelines and the `hybrid` query on Serverless could not be checked here; keep
`RetrievalConfig.engine_fusion` False on Serverless until they are (the domain's fusion then runs instead).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from lectern.domain.errors import IndexWriteFailed, SearchUnavailable
from lectern.domain.layout import decode_boxes, encode_boxes
from lectern.domain.models import Chunk, ScoredChunk, SearchFilters
from lectern.domain.text import query_terms

log = logging.getLogger(__name__)

Engine = Literal["faiss", "lucene"]
Fusion = Literal["min_max", "rrf"]

VECTOR_FIELD = "embedding"
BM25_FIELD = "search_text"
# the chunk's word boxes (lectern.domain.layout.encode_boxes): stored in _source only, never searched
BOXES_FIELD = "boxes"
BOXES_MAPPING: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}
MAX_BULK_BYTES = 5 * 1024 * 1024  # per _bulk request; well under the 10 MiB (and Serverless) request limits
MAX_CHUNKS_PER_DOCUMENT = 10_000  # one search page (index.max_result_window) lists a document's chunks
RRF_RANK_CONSTANT = 60
_SOURCE = {"excludes": [VECTOR_FIELD]}


class SearchIndexUnavailable(SearchUnavailable):
    """OpenSearch did not answer a read (down, throttled, or rejected the request)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _retryable_status(status: int | None) -> bool:
    return status is None or status == 429 or status >= 500


def knn_score_to_cosine(score: float) -> float:
    """OpenSearch reports (1 + cos) / 2 for `cosinesimil` (both Lucene and Faiss); return cos, clipped."""
    return max(-1.0, min(1.0, 2.0 * float(score) - 1.0))


class OpenSearchIndex:
    def __init__(
        self,
        client: Any,
        *,
        index_name: str = "lectern-chunks",
        pipeline_name: str = "lectern-hybrid",
        dimension: int = 1024,
        engine: Engine = "faiss",
        serverless: bool = False,
        bm25_weight: float = 0.5,
        fusion: Fusion = "min_max",
        refresh: bool = True,
        max_bulk_bytes: int = MAX_BULK_BYTES,
    ) -> None:
        if engine not in ("faiss", "lucene"):
            raise ValueError("engine must be 'faiss' or 'lucene'")
        if fusion not in ("min_max", "rrf"):
            raise ValueError("fusion must be 'min_max' or 'rrf'")
        if not 0.0 <= bm25_weight <= 1.0:
            raise ValueError("bm25_weight must lie in [0, 1]")
        self.client = client
        self.index_name = index_name
        self.pipeline_name = pipeline_name
        self.dimension = dimension
        self.engine = engine
        self.serverless = serverless
        self.bm25_weight = bm25_weight
        self.fusion = fusion
        # Managed: a write returns once searchable (refresh=wait_for), so INDEXED means findable.
        self.refresh = refresh and not serverless
        self.max_bulk_bytes = max_bulk_bytes

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls,
        endpoint: str,
        region: str,
        kind: Literal["managed", "serverless"] = "managed",
        **options: Any,
    ) -> OpenSearchIndex:
        """An index on an OpenSearch Service domain (`managed`) or Serverless collection, SigV4-signed."""
        from opensearchpy import AWSV4SignerAuth, OpenSearch, RequestsHttpConnection

        from lectern.adapters.aws import clients

        if kind not in ("managed", "serverless"):
            raise ValueError("kind must be 'managed' or 'serverless'")
        url = endpoint if "://" in endpoint else f"https://{endpoint}"
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"not an OpenSearch endpoint: {endpoint!r}")
        https = parts.scheme == "https"
        credentials = clients.session(region).get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found to sign OpenSearch requests")
        auth = AWSV4SignerAuth(credentials, region, "aoss" if kind == "serverless" else "es")
        client = OpenSearch(
            hosts=[{"host": parts.hostname, "port": parts.port or (443 if https else 80)}],
            http_auth=auth,
            use_ssl=https,
            verify_certs=https,
            connection_class=RequestsHttpConnection,
            pool_maxsize=16,
            timeout=30,
            max_retries=2,
            retry_on_timeout=True,
        )
        return cls(client, serverless=kind == "serverless", **options)

    # -- request bodies (pure; the golden tests compare these) -----------------------------------------------
    def index_body(self) -> dict[str, Any]:
        text = {"type": "text", "analyzer": "english", "copy_to": BM25_FIELD}
        return {
            "settings": {"index": {"knn": True}},
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "tenant_id": {"type": "keyword"},
                    "document_id": {"type": "keyword"},
                    "chunk_id": {"type": "keyword"},
                    "filename": {"type": "keyword"},
                    "page": {"type": "integer"},
                    "ordinal": {"type": "integer"},
                    "token_count": {"type": "integer"},
                    BOXES_FIELD: dict(BOXES_MAPPING),
                    "heading": dict(text),
                    "text": dict(text),
                    BM25_FIELD: {"type": "text", "analyzer": "english"},
                    VECTOR_FIELD: {
                        "type": "knn_vector",
                        "dimension": self.dimension,
                        "method": {
                            "name": "hnsw",
                            "space_type": "cosinesimil",
                            "engine": self.engine,
                            "parameters": {"ef_construction": 128, "m": 16},
                        },
                    },
                },
            },
        }

    def pipeline_body(self) -> dict[str, Any]:
        if self.fusion == "rrf":
            # No weights: each sub-query counts 1/(rank_constant + rank), as lectern.domain.fusion's RRF does.
            processor: dict[str, Any] = {
                "score-ranker-processor": {
                    "combination": {"technique": "rrf", "rank_constant": RRF_RANK_CONSTANT}
                }
            }
        else:
            processor = {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {
                        "technique": "arithmetic_mean",
                        "parameters": {"weights": [self.bm25_weight, round(1.0 - self.bm25_weight, 10)]},
                    },
                }
            }
        return {"description": "Lectern hybrid search: BM25 + k-NN", "phase_results_processors": [processor]}

    @staticmethod
    def tenant_filter(
        tenant_id: str, filters: SearchFilters | None = None, document_id: str | None = None
    ) -> dict:
        clauses: list[dict[str, Any]] = [{"term": {"tenant_id": tenant_id}}]
        if document_id is not None:
            clauses.append({"term": {"document_id": document_id}})
        if filters and filters.document_ids:
            clauses.append({"terms": {"document_id": list(filters.document_ids)}})
        if filters and filters.filenames:
            clauses.append({"terms": {"filename": list(filters.filenames)}})
        return {"bool": {"filter": clauses}}

    def _match_query(self, tenant_id: str, query: str, filters: SearchFilters | None) -> dict[str, Any]:
        flt = self.tenant_filter(tenant_id, filters)["bool"]["filter"]
        return {"bool": {"must": [{"match": {BM25_FIELD: {"query": query}}}], "filter": flt}}

    def _knn_query(self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None) -> dict:
        vec = [float(x) for x in np.asarray(vector, dtype=np.float32)]
        return {VECTOR_FIELD: {"vector": vec, "k": k, "filter": self.tenant_filter(tenant_id, filters)}}

    def bm25_body(self, tenant_id: str, query: str, k: int, filters: SearchFilters | None = None) -> dict:
        return {"size": k, "_source": _SOURCE, "query": self._match_query(tenant_id, query, filters)}

    def knn_body(
        self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> dict:
        return {
            "size": k,
            "_source": _SOURCE,
            "query": {"knn": self._knn_query(tenant_id, vector, k, filters)},
        }

    def hybrid_bodies(
        self,
        tenant_id: str,
        query: str,
        vector: np.ndarray,
        filters: SearchFilters | None = None,
        candidates: int = 100,
    ) -> list[dict[str, Any]]:
        """The `_msearch` lines: the hybrid query, then a size-1 k-NN and a size-1 BM25 probe for the gate."""
        n = candidates
        hybrid = {
            "size": n,  # each sub-query contributes its top n, as the domain fusion's candidates
            "_source": _SOURCE,
            "search_pipeline": self.pipeline_name,
            "query": {
                "hybrid": {
                    "queries": [
                        self._match_query(tenant_id, query, filters),
                        {"knn": self._knn_query(tenant_id, vector, n, filters)},
                    ]
                }
            },
        }
        knn_probe = {
            "size": 1,
            "_source": False,
            "query": {"knn": self._knn_query(tenant_id, vector, n, filters)},
        }
        bm25_probe = {"size": 1, "_source": False, "query": self._match_query(tenant_id, query, filters)}
        header = {"index": self.index_name}
        return [header, hybrid, header, knn_probe, header, bm25_probe]

    def _source_of(self, chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
        return {
            "tenant_id": chunk.tenant_id,
            "document_id": chunk.document_id,
            "chunk_id": chunk.chunk_id,
            "filename": chunk.filename,
            "page": chunk.page,
            "ordinal": chunk.ordinal,
            "token_count": chunk.token_count,
            "heading": chunk.heading,
            "text": chunk.text,
            BOXES_FIELD: encode_boxes(chunk.boxes),
            VECTOR_FIELD: [float(x) for x in vector],
        }

    def bulk_batches(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[bytes]:
        """NDJSON `_bulk` bodies of index actions, each at most `max_bulk_bytes` (or one chunk)."""
        batches: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for c, v in zip(chunks, vectors, strict=True):
            action: dict[str, Any] = {"_index": self.index_name}
            if not self.serverless:
                action["_id"] = os_doc_id(
                    c.tenant_id, c.chunk_id
                )  # a retried write overwrites, never duplicates
            pair = (
                json.dumps({"index": action}, separators=(",", ":"))
                + "\n"
                + json.dumps(self._source_of(c, v), separators=(",", ":"), ensure_ascii=False)
                + "\n"
            ).encode()
            if current and size + len(pair) > self.max_bulk_bytes:
                batches.append(b"".join(current))
                current, size = [], 0
            current.append(pair)
            size += len(pair)
        if current:
            batches.append(b"".join(current))
        return batches

    # -- set-up ----------------------------------------------------------------------------------------------
    def ensure_index(self) -> None:
        """Create the index if missing (a concurrent creation is fine); check an existing one's dimension."""
        from opensearchpy.exceptions import RequestError

        if not self.client.indices.exists(index=self.index_name):
            try:
                self.client.indices.create(index=self.index_name, body=self.index_body())
                return
            except RequestError as exc:
                if _error_type(exc) != "resource_already_exists_exception":
                    raise
        mapping = self.client.indices.get_mapping(index=self.index_name)
        first: dict[str, Any] = next(iter(mapping.values()), {})
        props = first.get("mappings", {}).get("properties", {})
        if BOXES_FIELD not in props:  # an index made before word boxes: adding a field keeps every document
            self.client.indices.put_mapping(
                index=self.index_name, body={"properties": {BOXES_FIELD: dict(BOXES_MAPPING)}}
            )
        dim = props.get(VECTOR_FIELD, {}).get("dimension")
        if dim is not None and int(dim) != self.dimension:
            raise RuntimeError(
                f"The OpenSearch index {self.index_name!r} holds {dim}-dimensional vectors but the embedder "
                f"gives {self.dimension}. Re-index into a new index or configure the original model."
            )

    def ensure_pipeline(self) -> None:
        """Create or update the search pipeline (PUT is an upsert, so repeating it or racing is harmless)."""
        self.client.search_pipeline.put(id=self.pipeline_name, body=self.pipeline_body())

    # -- writes ----------------------------------------------------------------------------------------------
    def replace_document(
        self, tenant_id: str, document_id: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Write the new chunks, then remove the document's chunks that are not among them.

        New before old, so a reader never sees the document empty. If any chunk is rejected, the document's
        chunks are removed (best effort) and IndexWriteFailed is raised: the caller marks the document FAILED
        or retries, and a document that is not INDEXED must not leave half of its chunks searchable.
        """
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk is required")
        if len(chunks) and vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors must have dimension {self.dimension}")
        for c in chunks:
            if c.tenant_id != tenant_id or c.document_id != document_id:
                raise ValueError("every chunk must belong to the document being replaced")
        previous = self._document_ids(tenant_id, document_id) if self.serverless else []
        vecs = np.asarray(vectors, dtype=np.float32)
        try:
            self._bulk_write(self.bulk_batches(chunks, vecs), total=len(chunks))
        except IndexWriteFailed:
            self._cleanup_after_failure(tenant_id, document_id)
            raise
        if self.serverless:
            self._bulk_delete_ids(previous)
        else:
            keep = [os_doc_id(tenant_id, c.chunk_id) for c in chunks]
            query = self.tenant_filter(tenant_id, document_id=document_id)
            if keep:
                query["bool"]["must_not"] = [{"ids": {"values": keep}}]
            self._delete_by_query(query)

    def _cleanup_after_failure(self, tenant_id: str, document_id: str) -> None:
        try:
            self.delete_document(tenant_id, document_id)
        except Exception:  # the write error is what the caller must see; this one is only logged
            log.exception("could not remove the partly written chunks of %s/%s", tenant_id, document_id)

    def _bulk_write(self, batches: Sequence[bytes], *, total: int) -> None:
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import TransportError

        failed, retryable, reasons = 0, True, []
        for i, body in enumerate(batches):
            params = {"refresh": "wait_for"} if self.refresh and i == len(batches) - 1 else {}
            try:
                resp = self.client.bulk(body=body, params=params)
            except OSConnectionError as exc:
                raise IndexWriteFailed(
                    f"OpenSearch could not be reached: {exc}", failed=total, total=total, retryable=True
                ) from exc
            except TransportError as exc:
                status = _status(exc)
                raise IndexWriteFailed(
                    f"OpenSearch rejected the bulk request ({status}: {_error_type(exc)})",
                    failed=total,
                    total=total,
                    retryable=_retryable_status(status),
                ) from exc
            f, r, why = parse_bulk_response(resp)
            failed += f
            retryable = retryable and r
            reasons += why
        if failed:
            raise IndexWriteFailed(
                f"{failed} of {total} chunks were not indexed ({'; '.join(sorted(set(reasons))[:3])})",
                failed=failed,
                total=total,
                retryable=retryable,
            )

    def _delete_by_query(self, query: dict[str, Any]) -> int:
        from opensearchpy.exceptions import TransportError

        params = {"conflicts": "proceed"}
        if self.refresh:
            params["refresh"] = "true"
        try:
            resp = self.client.delete_by_query(index=self.index_name, body={"query": query}, params=params)
        except TransportError as exc:
            status = _status(exc)
            raise IndexWriteFailed(
                f"OpenSearch could not delete chunks ({status}: {_error_type(exc)})",
                retryable=_retryable_status(status),
            ) from exc
        if resp.get("failures"):
            raise IndexWriteFailed(
                f"{len(resp['failures'])} chunks could not be deleted",
                failed=len(resp["failures"]),
                retryable=True,
            )
        return int(resp.get("deleted", 0))

    def _document_ids(self, tenant_id: str, document_id: str) -> list[str]:
        """The `_id`s of a document's chunks (Serverless assigns them, so they must be looked up)."""
        body = {
            "size": MAX_CHUNKS_PER_DOCUMENT,
            "_source": False,
            "query": self.tenant_filter(tenant_id, document_id=document_id),
        }
        resp = self._search(body)
        hits = resp["hits"]["hits"]
        if len(hits) >= MAX_CHUNKS_PER_DOCUMENT:
            raise IndexWriteFailed(
                f"the document has more than {MAX_CHUNKS_PER_DOCUMENT} chunks", retryable=False
            )
        return [h["_id"] for h in hits]

    def _bulk_delete_ids(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        body = "".join(json.dumps({"delete": {"_index": self.index_name, "_id": i}}) + "\n" for i in ids)
        resp = self.client.bulk(body=body.encode(), params={"refresh": "wait_for"} if self.refresh else {})
        deleted = 0
        for item in resp.get("items", []):
            op = next(iter(item.values()))
            if op.get("result") == "deleted":
                deleted += 1
            elif int(op.get("status", 500)) not in (200, 404):
                raise IndexWriteFailed("some chunks could not be deleted", retryable=True)
        return deleted

    def delete_document(self, tenant_id: str, document_id: str) -> int:
        if self.serverless:
            return self._bulk_delete_ids(self._document_ids(tenant_id, document_id))
        return self._delete_by_query(self.tenant_filter(tenant_id, document_id=document_id))

    # -- reads -----------------------------------------------------------------------------------------------
    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        from opensearchpy.exceptions import TransportError

        try:
            return self.client.search(index=self.index_name, body=body)
        except TransportError as exc:
            raise SearchIndexUnavailable(
                f"OpenSearch search failed ({_status(exc)}: {_error_type(exc)})", status=_status(exc)
            ) from exc

    def count(self, tenant_id: str, document_id: str | None = None) -> int:
        from opensearchpy.exceptions import TransportError

        body = {"query": self.tenant_filter(tenant_id, document_id=document_id)}
        try:
            return int(self.client.count(index=self.index_name, body=body)["count"])
        except TransportError as exc:
            raise SearchIndexUnavailable(
                f"OpenSearch count failed ({_status(exc)})", status=_status(exc)
            ) from exc

    def bm25(
        self, tenant_id: str, query: str, k: int, filters: SearchFilters | None = None
    ) -> list[ScoredChunk]:
        if k <= 0 or not query_terms(query):
            return []
        resp = self._search(self.bm25_body(tenant_id, query, k, filters))
        return [ScoredChunk(hit_to_chunk(h), float(h["_score"])) for h in resp["hits"]["hits"]]

    def knn(
        self, tenant_id: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[ScoredChunk]:
        if k <= 0:
            return []
        resp = self._search(self.knn_body(tenant_id, vector, k, filters))
        return [ScoredChunk(hit_to_chunk(h), knn_score_to_cosine(h["_score"])) for h in resp["hits"]["hits"]]

    def hybrid(
        self,
        tenant_id: str,
        query: str,
        vector: np.ndarray,
        k: int,
        filters: SearchFilters | None = None,
        candidates: int = 100,
    ) -> tuple[list[ScoredChunk], float, bool]:
        """Fused hits (best first, at most k), the best cosine similarity (-1 if none), whether BM25 matched.

        One `_msearch` round trip: the hybrid query (fused by the search pipeline) and two size-1 probes.
        """
        from opensearchpy.exceptions import TransportError

        n = max(candidates, k)
        if not query_terms(query):  # nothing for BM25: the domain's retrieval returns no lexical hits either
            sem = self.knn(tenant_id, vector, n, filters)
            return [], max((h.score for h in sem), default=-1.0), False
        try:
            resp = self.client.msearch(body=self.hybrid_bodies(tenant_id, query, vector, filters, n))
        except TransportError as exc:
            raise SearchIndexUnavailable(
                f"OpenSearch msearch failed ({_status(exc)})", status=_status(exc)
            ) from exc
        results = resp.get("responses", [])
        if len(results) != 3:
            raise SearchIndexUnavailable(f"OpenSearch returned {len(results)} of 3 msearch responses")
        for r in results:
            if "error" in r:
                err = r["error"]
                kind = err.get("type") if isinstance(err, dict) else str(err)
                raise SearchIndexUnavailable(
                    f"OpenSearch hybrid search failed: {kind}", status=r.get("status")
                )
        fused, knn_probe, bm25_probe = (r["hits"]["hits"] for r in results)
        hits = [ScoredChunk(hit_to_chunk(h), float(h["_score"])) for h in fused[:k]]
        best = knn_score_to_cosine(knn_probe[0]["_score"]) if knn_probe else -1.0
        return hits, best, bool(bm25_probe)

    def refresh_now(self) -> None:
        """Make every write searchable now (managed domains only; tests and the bulk re-index use it)."""
        if not self.serverless:
            self.client.indices.refresh(index=self.index_name)


def os_doc_id(tenant_id: str, chunk_id: str) -> str:
    """The `_id` of a chunk: chunk ids are unique within a tenant only, so the tenant is part of it."""
    return f"{tenant_id}/{chunk_id}"


def hit_to_chunk(hit: dict[str, Any]) -> Chunk:
    s = hit["_source"]
    return Chunk(
        chunk_id=str(s["chunk_id"]),
        tenant_id=str(s["tenant_id"]),
        document_id=str(s["document_id"]),
        filename=str(s["filename"]),
        page=int(s["page"]),
        ordinal=int(s["ordinal"]),
        text=str(s["text"]),
        heading=str(s.get("heading") or ""),
        token_count=int(s.get("token_count") or 0),
        boxes=decode_boxes(s.get(BOXES_FIELD)),
    )


def parse_bulk_response(resp: dict[str, Any]) -> tuple[int, bool, list[str]]:
    """(failed items, whether every failure is retryable, failure reasons) of one `_bulk` response.

    Retryable: 429 (es_rejected_execution_exception: the write queue is full) and 5xx. Anything else (a
    mapping error, a strict-mapping violation, a wrong vector dimension) fails the same way on every retry.
    """
    if not resp.get("errors"):
        return 0, True, []
    failed, retryable, reasons = 0, True, []
    for item in resp.get("items", []):
        op = next(iter(item.values()))
        status = int(op.get("status", 500))
        if status < 300:
            continue
        failed += 1
        err = op.get("error") or {}
        reasons.append(f"{status} {err.get('type', 'error') if isinstance(err, dict) else err}")
        retryable = retryable and _retryable_status(status)
    return failed, retryable, reasons


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _error_type(exc: Exception) -> str:
    info = getattr(exc, "info", None)
    if isinstance(info, dict):
        err = info.get("error")
        if isinstance(err, dict):
            return str(err.get("type", "error"))
    return str(getattr(exc, "error", "error"))
