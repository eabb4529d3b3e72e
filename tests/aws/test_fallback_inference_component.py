"""The fallback model is invoked through its inference component (issue 13, item 2): the setting reaches the
SageMaker adapter from the Lambda environment, and both InvokeEndpoint and InvokeEndpointWithResponseStream
carry InferenceComponentName (botocore Stubber asserts the parameters). With the default scale-to-zero
deployment an InvokeEndpoint without it is rejected by SageMaker, which only an AWS account can show."""

from __future__ import annotations

import io
import json

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from lectern.aws.container import AwsLectern
from lectern.aws.settings import AwsSettings
from lectern.domain.errors import ModelUnavailable
from lectern.domain.models import ChatMessage

MESSAGES = [ChatMessage("user", "How many days of leave?")]
ENV = {
    "LECTERN_DOCUMENTS_BUCKET": "docs-bucket",
    "LECTERN_TABLE_NAME": "lectern-table",
    "LECTERN_OPENSEARCH_ENDPOINT": "https://search.example.com",
    "LECTERN_FALLBACK_ENDPOINT_NAME": "lectern-fallback",
    "LECTERN_FALLBACK_INFERENCE_COMPONENT": "lectern-fallback-ic",
}


@pytest.fixture
def fallback(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return AwsLectern(AwsSettings.from_env()).fallback_model


def test_invoke_endpoint_names_the_inference_component(fallback) -> None:
    body = json.dumps(
        {"choices": [{"message": {"content": "25 days [1]."}, "finish_reason": "stop"}], "usage": {}}
    ).encode()
    with Stubber(fallback._client) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
            expected_params={
                "EndpointName": "lectern-fallback",
                "InferenceComponentName": "lectern-fallback-ic",
                "Body": ANY,
                "ContentType": "application/json",
                "Accept": "application/json",
            },
        )
        assert fallback.generate(MESSAGES, max_tokens=32, temperature=0.0).text == "25 days [1]."
        stub.assert_no_pending_responses()


def test_streamed_invocation_names_the_inference_component(fallback) -> None:
    with Stubber(fallback._client) as stub:
        # Stubber cannot carry an event stream: the parameters are the point, the error ends the call
        stub.add_client_error(
            "invoke_endpoint_with_response_stream",
            service_error_code="ModelNotReadyException",
            http_status_code=424,
            expected_params={
                "EndpointName": "lectern-fallback",
                "InferenceComponentName": "lectern-fallback-ic",
                "Body": ANY,
                "ContentType": "application/json",
            },
        )
        with pytest.raises(ModelUnavailable):
            list(fallback.stream(MESSAGES, max_tokens=32, temperature=0.0))
        stub.assert_no_pending_responses()


def test_without_a_component_the_endpoint_is_invoked_directly(monkeypatch) -> None:
    for k, v in {**ENV, "LECTERN_FALLBACK_INFERENCE_COMPONENT": ""}.items():
        monkeypatch.setenv(k, v)
    model = AwsLectern(AwsSettings.from_env()).fallback_model
    assert "InferenceComponentName" not in model._params(MESSAGES, 8, 0.0, False)
