"""The OpenSearch adapter's request bodies equal the golden files, and realistic responses parse correctly.

The bodies are recorded as they cross HTTP (opensearch-py's own serialisation, to the fake server), not taken
from the adapter's helpers, so a change anywhere on the way shows up here. Each golden file cites the
OpenSearch documentation page its shape comes from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

from lectern.adapters.aws.opensearch_index import (
    OpenSearchIndex,
    SearchIndexUnavailable,
    knn_score_to_cosine,
    parse_bulk_response,
)
from lectern.domain.errors import IndexWriteFailed
from lectern.domain.models import Chunk, SearchFilters
from tests.fakes.opensearch_server import running_fake_opensearch

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "opensearch"
TENANT = "tenant-a"
VEC = np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32)


def load_jsonc(name: str) -> Any:
    """JSON with whole-line `//` comments (only whole lines, so URLs inside strings are safe)."""
    text = (GOLDEN / f"{name}.jsonc").read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not re.match(r"\s*//", line)))


def chunks() -> tuple[list[Chunk], np.ndarray]:
    cs = [
        Chunk(
            "doc-1:0000",
            TENANT,
            "doc-1",
            "handbook.pdf",
            1,
            0,
            "Annual leave is 25 days.",
            "Leave",
            6,
            boxes=((0, 6, 0.1, 0.2, 0.18, 0.22), (7, 12, 0.19, 0.2, 0.25, 0.22)),
        ),
        Chunk("doc-1:0001", TENANT, "doc-1", "handbook.pdf", 2, 1, "Sick leave needs a note.", "", 6),
    ]
    return cs, np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)


def build_requests() -> dict[str, Any]:
    """{golden name: body as the fake server received it} for one run of every adapter call."""
    with running_fake_opensearch() as srv:
        fake = srv.fake
        idx = OpenSearchIndex(OpenSearch(hosts=[srv.url]), dimension=4)

        def last(method: str, suffix: str) -> dict[str, Any]:
            return next(
                r for r in reversed(fake.requests) if r["method"] == method and r["path"].endswith(suffix)
            )

        idx.ensure_index()
        idx.ensure_pipeline()
        out = {
            "mapping": last("PUT", "/lectern-chunks")["body"],
            "pipeline_min_max": last("PUT", "/lectern-hybrid"),
        }
        out["pipeline_min_max"] = out["pipeline_min_max"]["body"]
        rrf = OpenSearchIndex(
            OpenSearch(hosts=[srv.url]), dimension=4, fusion="rrf", pipeline_name="lectern-rrf"
        )
        rrf.ensure_pipeline()
        out["pipeline_rrf"] = last("PUT", "/lectern-rrf")["body"]
        cs, vs = chunks()
        idx.replace_document(TENANT, "doc-1", cs, vs)
        bulk = last("POST", "/_bulk")
        out["bulk_request"] = {"params": bulk["params"], "lines": bulk["body"]}
        dbq = last("POST", "/_delete_by_query")
        out["replace_stale_delete"] = {"params": dbq["params"], "body": dbq["body"]}
        flt = SearchFilters(document_ids=("doc-1",))
        idx.bm25(TENANT, "annual leave", 100, flt)
        out["bm25_query"] = last("POST", "/_search")["body"]
        idx.knn(TENANT, VEC, 100, flt)
        out["knn_query"] = last("POST", "/_search")["body"]
        idx.hybrid(TENANT, "annual leave", VEC, 10, None, 100)
        out["hybrid_query"] = last("POST", "/_msearch")["body"]
        idx.count(TENANT, "doc-1")
        out["count_query"] = last("POST", "/_count")["body"]
    return out


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return build_requests()


@pytest.mark.parametrize(
    "name",
    [
        "mapping",
        "pipeline_min_max",
        "pipeline_rrf",
        "bulk_request",
        "replace_stale_delete",
        "bm25_query",
        "knn_query",
        "hybrid_query",
        "count_query",
    ],
)
def test_request_body_equals_golden(recorded: dict[str, Any], name: str) -> None:
    assert recorded[name] == load_jsonc(name)


def test_lucene_engine_changes_only_the_engine() -> None:
    faiss = OpenSearchIndex(None, dimension=4).index_body()
    lucene = OpenSearchIndex(None, dimension=4, engine="lucene").index_body()
    assert lucene["mappings"]["properties"]["embedding"]["method"]["engine"] == "lucene"
    lucene["mappings"]["properties"]["embedding"]["method"]["engine"] = "faiss"
    assert lucene == faiss


def test_weights_follow_bm25_weight() -> None:
    body = OpenSearchIndex(None, bm25_weight=0.3).pipeline_body()
    weights = body["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"]
    assert weights == {"weights": [0.3, 0.7]}


def test_bulk_partial_failure_response_is_parsed_item_by_item() -> None:
    resp = load_jsonc("bulk_partial_failure_response")
    failed, retryable, reasons = parse_bulk_response(resp)
    assert failed == 2
    assert retryable is False  # one of the two is a mapping error: retrying cannot help
    assert sorted(reasons) == ["400 mapper_parsing_exception", "429 es_rejected_execution_exception"]


def test_bulk_throttled_only_response_is_retryable() -> None:
    resp = load_jsonc("bulk_partial_failure_response")
    resp["items"] = [i for i in resp["items"] if next(iter(i.values()))["status"] != 400]
    assert parse_bulk_response(resp)[:2] == (1, True)
    assert parse_bulk_response({"errors": False, "items": resp["items"]}) == (0, True, [])


class _StubClient:
    """Returns recorded responses; only for parsing tests (behaviour is tested against the fake server)."""

    def __init__(self, **responses: Any) -> None:
        self.responses = responses

    def msearch(self, **_: Any) -> Any:
        return self.responses["msearch"]

    def search(self, **_: Any) -> Any:
        return self.responses["search"]


def test_msearch_response_is_parsed_into_hits_gate_and_match() -> None:
    idx = OpenSearchIndex(_StubClient(msearch=load_jsonc("msearch_response")), dimension=4)
    hits, best, matched = idx.hybrid(TENANT, "annual leave", VEC, 1)
    assert [h.chunk.chunk_id for h in hits] == ["doc-1:0000"]  # cut to k
    assert hits[0].score == pytest.approx(0.9995)
    assert hits[0].chunk.heading == "Leave" and hits[0].chunk.page == 1
    assert best == pytest.approx(2 * 0.9330127 - 1)  # the k-NN probe's (1 + cos) / 2 turned back into cos
    assert matched is False  # the BM25 probe found nothing


def test_msearch_item_error_raises() -> None:
    resp = load_jsonc("msearch_response")
    resp["responses"][0] = {"error": {"type": "illegal_argument_exception", "reason": "x"}, "status": 400}
    with pytest.raises(SearchIndexUnavailable, match="illegal_argument_exception"):
        OpenSearchIndex(_StubClient(msearch=resp), dimension=4).hybrid(TENANT, "leave", VEC, 5)


def test_knn_search_response_scores_become_cosine() -> None:
    idx = OpenSearchIndex(_StubClient(search=load_jsonc("knn_search_response")), dimension=4)
    hits = idx.knn(TENANT, VEC, 3)
    assert [round(h.score, 6) for h in hits] == [1.0, 0.0, -1.0]
    assert knn_score_to_cosine(1.0000001) == 1.0


def test_index_write_failed_carries_counts_from_a_real_bulk_round_trip() -> None:
    with running_fake_opensearch() as srv:
        idx = OpenSearchIndex(OpenSearch(hosts=[srv.url]), dimension=4)
        idx.ensure_index()
        srv.fake.fail_chunk_ids = {"doc-1:0001": 429}
        cs, vs = chunks()
        with pytest.raises(IndexWriteFailed) as err:
            idx.replace_document(TENANT, "doc-1", cs, vs)
        assert (err.value.failed, err.value.total, err.value.retryable) == (1, 2, True)
