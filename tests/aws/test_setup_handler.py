"""The search-setup custom resource (lectern.aws.handlers.setup) with only what its function is given: the
search settings of the Search stack (no bucket, no table), against the fake OpenSearch on loopback.

On a managed domain it creates the index and the hybrid search pipeline; on OpenSearch Serverless only the
index: the retriever fuses in the domain there, so the pipeline would be unused and a collection may reject it
(issue 13, item 6). Whether a real collection accepts `_search/pipeline` could not be checked here."""

from __future__ import annotations

import pytest

from lectern.aws.handlers import setup
from tests.aws.handler_env import FakeContext
from tests.fakes.opensearch_server import running_fake_opensearch

SEARCH_ONLY = {  # the Setup function's variables in the synthesized Search stack (tests/aws/deployment.py)
    "LECTERN_OPENSEARCH_INDEX": "lectern-chunks",
    "LECTERN_OPENSEARCH_PIPELINE": "lectern-hybrid",
    "LECTERN_EMBEDDING_DIMENSION": "1024",
    "POWERTOOLS_SERVICE_NAME": "lectern",
}


@pytest.mark.parametrize("kind", ["managed", "serverless"])
def test_setup_creates_the_index_and_only_on_a_domain_the_pipeline(kind, monkeypatch) -> None:
    for key in ("LECTERN_DOCUMENTS_BUCKET", "LECTERN_TABLE_NAME"):
        monkeypatch.delenv(key, raising=False)
    with running_fake_opensearch(serverless=kind == "serverless") as search:
        for k, v in {
            **SEARCH_ONLY,
            "LECTERN_OPENSEARCH_KIND": kind,
            "LECTERN_OPENSEARCH_ENDPOINT": search.url,
        }.items():
            monkeypatch.setenv(k, v)
        out = setup.on_event({"RequestType": "Create"}, FakeContext())
        assert out["Data"] == {"IndexName": "lectern-chunks"}
        setup.on_event({"RequestType": "Update"}, FakeContext())  # idempotent
        paths = [(r["method"], r["path"]) for r in search.fake.requests]
        assert ("PUT", "/lectern-chunks") in paths
        pipeline_calls = [p for p in paths if p[1].startswith("/_search/pipeline")]
        if kind == "managed":
            assert ("PUT", "/_search/pipeline/lectern-hybrid") in pipeline_calls
        else:
            assert pipeline_calls == []


def test_delete_touches_nothing(monkeypatch) -> None:
    with running_fake_opensearch() as search:
        for k, v in {**SEARCH_ONLY, "LECTERN_OPENSEARCH_ENDPOINT": search.url}.items():
            monkeypatch.setenv(k, v)
        setup.on_event({"RequestType": "Delete", "PhysicalResourceId": "x"}, FakeContext())
        assert search.fake.requests == []
