"""TitanEmbedder over the fake Bedrock runtime (real boto3 client, real HTTP, SigV4-signed requests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lectern.adapters.aws import clients
from lectern.adapters.aws.bedrock import TitanEmbedder
from lectern.domain.errors import ModelUnavailable
from tests.fakes.bedrock_server import TITAN_MAX_CHARS, fake_embedding

pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture


def test_batch_is_ordered_normalised_and_counts_tokens(fake_bedrock) -> None:
    texts = [f"document number {i} about annual leave policy" for i in range(20)]
    texts[7] = "Paris is the capital of France"
    embedder = TitanEmbedder(dimension=256, max_workers=4)
    try:
        matrix = embedder.embed_documents(texts)
    finally:
        embedder.close()
    assert matrix.shape == (20, 256) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    # Row i is the embedding of text i, whatever order the concurrent calls finished in.
    for i in (0, 7, 19):
        np.testing.assert_allclose(matrix[i], fake_embedding(texts[i], 256), rtol=1e-5, atol=1e-6)
    calls = fake_bedrock.of("invoke")
    assert len(calls) == 20
    assert {c.params["model"] for c in calls} == {"amazon.titan-embed-text-v2:0"}
    assert calls[0].body["dimensions"] == 256 and calls[0].body["normalize"] is True
    assert sorted(c.body["inputText"] for c in calls) == sorted(texts)
    assert embedder.input_tokens == sum(len(t.split()) for t in texts)


def test_query_similarity(fake_bedrock) -> None:
    embedder = TitanEmbedder(dimension=512)
    q = embedder.embed_query("how many days of annual leave")
    same = embedder.embed_query("how many days of annual leave")
    near = embedder.embed_query("annual leave days")
    far = embedder.embed_query("quarterly revenue forecast spreadsheet")
    assert q.shape == (512,)
    assert float(q @ same) == pytest.approx(1.0, abs=1e-6)
    assert float(q @ near) > float(q @ far) + 0.3


def test_empty_batch_makes_no_call(fake_bedrock) -> None:
    out = TitanEmbedder(dimension=1024).embed_documents([])
    assert out.shape == (0, 1024)
    assert fake_bedrock.requests == []


@pytest.mark.parametrize("dimension", [128, 384, 1536])
def test_only_titan_v2_dimensions(dimension: int) -> None:
    with pytest.raises(ValueError, match="256, 512 or 1024"):
        TitanEmbedder(dimension=dimension, client=object())


def test_overlong_text_is_truncated_not_refused(fake_bedrock) -> None:
    # 60,000 characters (over the character limit); 12,000 tokens for the fake (over the token limit).
    long_text = "word " * 12_000
    embedder = TitanEmbedder(dimension=256)
    vec = embedder.embed_query(long_text)
    assert vec.shape == (256,)
    sent = [len(c.body["inputText"]) for c in fake_bedrock.of("invoke")]
    assert sent[0] == TITAN_MAX_CHARS  # first cut: the character limit
    assert len(sent) >= 2 and sent[-1] < sent[0]  # then cut again after the service's token-count refusal
    assert embedder.input_tokens <= 8192


def test_throttling_exhausted_is_retryable_unavailable(fake_bedrock) -> None:
    fake_bedrock.throttle_next(10)
    client = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=1))
    embedder = TitanEmbedder(dimension=256, client=client)
    with pytest.raises(ModelUnavailable) as exc:
        embedder.embed_documents(["a"])
    assert exc.value.retryable is True and exc.value.reason == "throttled"
    assert len(fake_bedrock.of("invoke")) == 2  # botocore retried once (max_attempts=1 retry), then gave up


def test_throttling_recovered_by_botocore_retry(fake_bedrock) -> None:
    fake_bedrock.throttle_next(1)
    client = clients.client("bedrock-runtime", config=clients.client_config(max_attempts=2))
    vec = TitanEmbedder(dimension=256, client=client).embed_query("hello world")
    assert vec.shape == (256,)
    assert len(fake_bedrock.of("invoke")) == 2


def test_wrong_vector_size_is_not_retryable(fake_bedrock) -> None:
    from botocore.stub import Stubber

    client = clients.client("bedrock-runtime")
    embedder = TitanEmbedder(dimension=256, client=client)
    with Stubber(client) as stub:
        import io

        from botocore.response import StreamingBody

        payload = json.dumps({"embedding": [0.1] * 8, "inputTextTokenCount": 2}).encode()
        stub.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(payload), len(payload)), "contentType": "application/json"},
        )
        with pytest.raises(ModelUnavailable) as exc:
            embedder.embed_query("hi")
    assert exc.value.retryable is False and "8 dimensions" in exc.value.message
