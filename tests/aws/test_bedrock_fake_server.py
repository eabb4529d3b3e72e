"""The fakes themselves: the event stream encoder against botocore's own decoder, and the fake Bedrock server
against plain boto3 clients (so the adapters' tests rest on a wire format botocore accepts)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tests.fakes import eventstream

pytest_plugins = ["tests.fakes.bedrock_server"]  # the fake_bedrock fixture


def test_frames_decode_with_botocores_parser() -> None:
    data = eventstream.event("contentBlockDelta", {"delta": {"text": "héllo"}, "contentBlockIndex": 0})
    data += eventstream.exception("throttlingException", "slow down")
    buf = EventStreamBuffer()
    buf.add_data(data[:7])  # split inside the prelude: the buffer must wait for the rest
    assert list(buf) == []
    buf.add_data(data[7:])
    first, second = list(buf)
    assert first.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"delta": {"text": "héllo"}, "contentBlockIndex": 0}
    assert second.headers[":message-type"] == "exception"
    assert second.headers[":exception-type"] == "throttlingException"
    assert json.loads(second.payload) == {"message": "slow down"}


def test_corrupted_frame_fails_the_crc_check() -> None:
    data = bytearray(eventstream.event("messageStop", {"stopReason": "end_turn"}))
    data[-6] ^= 0xFF  # a payload byte
    buf = EventStreamBuffer()
    buf.add_data(bytes(data))
    with pytest.raises(ChecksumMismatch):
        list(buf)


def test_bytes_header_round_trips() -> None:
    frame = eventstream.encode_frame({":event-type": "PayloadPart", "blob": b"\x00\x01"}, b"payload")
    buf = EventStreamBuffer()
    buf.add_data(frame)
    (message,) = list(buf)
    assert message.headers["blob"] == b"\x00\x01"
    assert message.payload == b"payload"


def test_fake_server_speaks_converse_stream_to_boto3(fake_bedrock) -> None:
    fake_bedrock.answer = "one two three"
    client = boto3.client("bedrock-runtime")
    response = client.converse_stream(
        modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "count"}]}]
    )
    events = list(response["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * 3 + [
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:4]) == "one two three"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 3
    (req,) = fake_bedrock.of("converse-stream")
    assert req.params["model"] == "amazon.nova-lite-v1:0"  # the colon arrived percent-encoded
    assert req.headers["Authorization"].startswith("AWS4-HMAC-SHA256")


def test_fake_server_errors_parse_as_client_errors(fake_bedrock) -> None:
    from botocore.config import Config

    fake_bedrock.throttle_next(1)
    client = boto3.client(
        "bedrock-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    with pytest.raises(client.exceptions.ThrottlingException) as exc:
        client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "Too many requests" in exc.value.response["Error"]["Message"]
