"""An encoder for the AWS event stream binary framing (`application/vnd.amazon.eventstream`).

Frame layout (big-endian), as botocore's `botocore.eventstream.EventStreamBuffer` reads it:

    total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the first 8 bytes)
    headers (headers_length bytes) | payload | message_crc u32 (CRC32 of every byte before it)

A header is `name_len u8 | name | type u8 | value`; only the types our fakes need are written: 7 (string,
`len u16 | utf-8`) and 6 (bytes, `len u16 | bytes`).
https://docs.aws.amazon.com/transcribe/latest/dg/streaming-setting-up.html (event stream encoding)
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping

_STRING = 7
_BYTES = 6


def _header(name: str, value: str | bytes) -> bytes:
    raw_name = name.encode("utf-8")
    if isinstance(value, bytes):
        kind, raw = _BYTES, value
    else:
        kind, raw = _STRING, value.encode("utf-8")
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", kind, len(raw)) + raw


def encode_frame(headers: Mapping[str, str | bytes], payload: bytes) -> bytes:
    """One event stream message with the given headers and payload."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, body: object, *, content_type: str = "application/json") -> bytes:
    """An `event` message: `:event-type` names the member of the stream union, the payload is its JSON."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return encode_frame(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}, payload
    )


def exception(exception_type: str, message: str | Mapping[str, object]) -> bytes:
    """An `exception` message (a modelled error raised in the middle of a stream). `message` is the error's
    text (sent as `{"message": ...}`, Bedrock's casing) or the whole JSON body (SageMaker uses `Message`)."""
    body = {"message": message} if isinstance(message, str) else dict(message)
    return encode_frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps(body).encode("utf-8"),
    )
