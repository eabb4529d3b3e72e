"""The Textract adapter (lectern.adapters.aws.textract_ocr) against botocore's Stubber: every request is checked
against Textract's service model (parameter names, types, required fields) and every canned response is written
in Textract's wire format (Blocks with Geometry and CHILD relationships, JobStatus, NextToken) and checked against
the model's output shape too. moto's Textract was not used: it returns one canned block list for every call,
ignores ClientRequestToken and pagination and never reads the S3 object (moto 5.2.5, moto/textract/models.py).

Nothing here reached the real Textract service: the shapes are the service model's, the behaviour (a job that
is IN_PROGRESS for a while, pages in several NextToken parts) is as documented, not observed.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image

from lectern.adapters.aws.textract_ocr import TextractOcr
from lectern.domain.errors import ExtractionError
from lectern.domain.extraction import ExtractionLimits, extract
from lectern.domain.ocr import OcrFailure
from tests.unit.conftest import build_pdf


class MemoryBlobs:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.data[key] = data

    def get(self, key: str) -> bytes:
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data


def _word(i: str, text: str, left: float, top: float, page: int | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "BlockType": "WORD",
        "Id": i,
        "Text": text,
        "TextType": "PRINTED",
        "Confidence": 99.1,
        "Geometry": {"BoundingBox": {"Width": 0.08, "Height": 0.03, "Left": left, "Top": top}},
    }
    if page is not None:
        b["Page"] = page
    return b


def _line(i: str, words: list[dict[str, Any]], top: float, page: int | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "BlockType": "LINE",
        "Id": i,
        "Text": " ".join(w["Text"] for w in words),
        "Confidence": 99.0,
        "Geometry": {"BoundingBox": {"Width": 0.5, "Height": 0.03, "Left": 0.1, "Top": top}},
        "Relationships": [{"Type": "CHILD", "Ids": [w["Id"] for w in words]}],
    }
    if page is not None:
        b["Page"] = page
    return b


def _page_blocks(page: int | None, lines: list[str], prefix: str, start_top: float = 0.1) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"BlockType": "PAGE", "Id": f"{prefix}p", **({"Page": page} if page else {})}]
    top = start_top
    for n, text in enumerate(lines):
        if text == "":
            top += 0.06  # a blank line: the next one starts a paragraph
            continue
        words = [_word(f"{prefix}{n}w{k}", t, 0.1 + 0.1 * k, top, page) for k, t in enumerate(text.split())]
        blocks.append(_line(f"{prefix}{n}", words, top, page))
        blocks.extend(words)
        top += 0.04
    return blocks


def _engine(**kw: Any) -> tuple[TextractOcr, Stubber, MemoryBlobs]:
    client = boto3.client("textract", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    blobs = MemoryBlobs()
    engine = TextractOcr(bucket="docs-bucket", client=client, blobs=blobs, sleep=lambda s: None, **kw)
    return engine, Stubber(client), blobs


def _png(w: int = 400, h: int = 300, text: bool = True) -> bytes:
    img = Image.new("L", (w, h), 255)
    if text:
        for x in range(40, 200):
            img.putpixel((x, 50), 0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_an_image_is_read_by_detect_document_text_and_cached_next_to_the_document() -> None:
    engine, stub, blobs = _engine()
    engine = engine.for_document("acme", "doc1")
    png = _png()
    blocks = _page_blocks(None, ["Brennan Pipeworks job 4471-B", "", "Call the parish office"], "a")
    stub.add_response(
        "detect_document_text",
        {"Blocks": blocks, "DocumentMetadata": {"Pages": 1}, "DetectDocumentTextModelVersion": "1.0"},
        {"Document": {"Bytes": png}},
    )
    with stub:
        words = engine.recognize(png)
        again = engine.recognize(png)  # the cache answers: a second call would find no stubbed response
    stub.assert_no_pending_responses()
    assert [w.text for w in words] == ["Brennan", "Pipeworks", "job", "4471-B", "Call", "the", "parish", "office"]
    assert again == words
    assert words[0].left == 40 and words[0].width == 32 and words[0].top == 30  # 0.1, 0.08, 0.1 of 400 x 300
    assert words[0].line[:2] != words[4].line[:2]  # the blank line's gap starts a second paragraph
    assert [k for k in blobs.data if k.startswith("acme/doc1/textract/image-")]


def test_an_image_upload_through_extraction_becomes_a_page_with_boxes() -> None:
    engine, stub, _ = _engine()
    blocks = _page_blocks(None, ["NOTICE OF WORKS", "The contractor is Brennan Pipeworks."], "b")
    stub.add_response("detect_document_text", {"Blocks": blocks}, {"Document": {"Bytes": ANY}})
    with stub:
        doc = extract(_png(), "scan.png", None, ExtractionLimits(ocr=engine.for_document("acme", "d2")))
    page = doc.pages[0]
    assert page.ocr and [b.text for b in page.blocks] == ["NOTICE OF WORKS The contractor is Brennan Pipeworks."]
    assert abs(page.words[0].x0 - 0.1) < 1e-9 and abs(page.words[0].y1 - 0.13) < 1e-9


def _scanned_pdf() -> bytes:
    """Page 1 a text layer, page 2 without one (an image-only page: no text operators at all)."""
    return build_pdf(["Facilities Handbook. Chapter 4 covers safety procedures for the east wing.", ""])


def test_a_scanned_pdf_is_read_by_one_async_job_paged_to_the_end_and_paid_once() -> None:
    engine, stub, blobs = _engine()
    token = ANY
    start_params = {
        "DocumentLocation": {"S3Object": {"Bucket": "docs-bucket", "Name": "acme/doc3/original"}},
        "ClientRequestToken": token,
        "JobTag": "lectern-extract",
    }
    stub.add_response("start_document_text_detection", {"JobId": "job-1"}, start_params)
    stub.add_response(
        "get_document_text_detection", {"JobStatus": "IN_PROGRESS"}, {"JobId": "job-1", "MaxResults": 1000}
    )
    part1 = _page_blocks(1, ["Facilities Handbook"], "p1") + _page_blocks(2, ["APPENDIX B FIRE DRILL"], "p2a")
    part2 = _page_blocks(2, ["Assembly point C is the car park"], "p2b", start_top=0.15)
    stub.add_response(
        "get_document_text_detection",
        {"JobStatus": "SUCCEEDED", "Blocks": part1, "NextToken": "t2", "DocumentMetadata": {"Pages": 2}},
        {"JobId": "job-1", "MaxResults": 1000},
    )
    stub.add_response(
        "get_document_text_detection",
        {"JobStatus": "SUCCEEDED", "Blocks": part2},
        {"JobId": "job-1", "MaxResults": 1000, "NextToken": "t2"},
    )
    limits = ExtractionLimits(ocr=engine.for_document("acme", "doc3"), max_page_images=0)
    with stub:
        doc = extract(_scanned_pdf(), "handbook.pdf", None, limits)
        again = extract(_scanned_pdf(), "handbook.pdf", None, limits)  # a rebuild: read from S3, no call
    stub.assert_no_pending_responses()
    assert doc.pages[0].ocr is False  # the text layer stood
    assert doc.pages[1].ocr and " ".join(b.text for b in doc.pages[1].blocks) == (
        "APPENDIX B FIRE DRILL Assembly point C is the car park"
    )
    assert again.pages == doc.pages
    assert json.loads(blobs.data["acme/doc3/textract/job.json"]) == {"JobId": "job-1"}
    assert set(json.loads(blobs.data["acme/doc3/textract/document.json"])["pages"]) == {"1", "2"}


def test_a_retry_after_a_timeout_resumes_the_stored_job_instead_of_starting_another() -> None:
    engine, stub, blobs = _engine(max_wait_s=4, poll_interval_s=2)
    engine = engine.for_document("acme", "doc4")
    stub.add_response("start_document_text_detection", {"JobId": "job-9"}, {
        "DocumentLocation": ANY, "ClientRequestToken": ANY, "JobTag": ANY})  # fmt: skip
    for _ in range(3):
        stub.add_response(
            "get_document_text_detection", {"JobStatus": "IN_PROGRESS"}, {"JobId": "job-9", "MaxResults": 1000}
        )
    with stub, pytest.raises(OcrFailure, match="had not finished"):
        engine.recognize_document([1])
    assert "acme/doc4/textract/job.json" in blobs.data and "acme/doc4/textract/document.json" not in blobs.data
    done = _page_blocks(1, ["late but here"], "z")
    stub.add_response(
        "get_document_text_detection",
        {"JobStatus": "SUCCEEDED", "Blocks": done},
        {"JobId": "job-9", "MaxResults": 1000},
    )
    with stub:  # no start_document_text_detection stubbed: a second start would fail the test
        words = engine.recognize_document([1])
    stub.assert_no_pending_responses()
    assert [w.text for w in words[1]] == ["late", "but", "here"]


def test_a_failed_job_and_refused_calls_fail_the_document_with_the_reason() -> None:
    engine, stub, blobs = _engine()
    stub.add_response("start_document_text_detection", {"JobId": "job-x"}, {
        "DocumentLocation": ANY, "ClientRequestToken": ANY, "JobTag": ANY})  # fmt: skip
    stub.add_response(
        "get_document_text_detection",
        {"JobStatus": "FAILED", "StatusMessage": "Request has unsupported document format"},
        {"JobId": "job-x", "MaxResults": 1000},
    )
    limits = ExtractionLimits(ocr=engine.for_document("acme", "doc5"), max_page_images=0)
    with stub, pytest.raises(ExtractionError) as err:
        extract(_scanned_pdf(), "x.pdf", None, limits)
    assert str(err.value) == (
        "OCR of the PDF failed: Textract could not read the document (Request has unsupported document format)."
    )
    assert json.loads(blobs.data["acme/doc5/textract/job.json"]) == {"JobId": None, "failures": 1}
    seen: list[str] = []  # a new try starts a new job, under a new token
    stub.add_response("start_document_text_detection", {"JobId": "job-y"}, {
        "DocumentLocation": ANY, "ClientRequestToken": ANY, "JobTag": ANY})  # fmt: skip
    done = {"JobStatus": "SUCCEEDED", "Blocks": _page_blocks(2, ["ok now"], "y")}
    stub.add_response("get_document_text_detection", done, {"JobId": "job-y", "MaxResults": 1000})
    engine.client.meta.events.register(
        "provide-client-params.textract.StartDocumentTextDetection",
        lambda params, **kw: seen.append(params["ClientRequestToken"]),
    )
    with stub:
        retried = extract(_scanned_pdf(), "x.pdf", None, limits)
    assert " ".join(b.text for b in retried.pages[1].blocks) == "ok now"
    assert len(seen) == 1 and seen[0] != engine.for_document("acme", "doc5")._token(None)

    engine2, stub2, _ = _engine()
    stub2.add_client_error("detect_document_text", "UnsupportedDocumentException", "bad", 400)
    with stub2, pytest.raises(ExtractionError, match=r"^OCR of page 1 failed: Textract cannot read this file"):
        extract(_png(), "scan.png", None, ExtractionLimits(ocr=engine2.for_document("acme", "doc6")))


def test_the_engine_pickles_without_its_clients_and_is_the_aws_default() -> None:
    import pickle

    from lectern.aws.settings import AwsSettings

    engine, _, _ = _engine()
    engine = TextractOcr("docs-bucket", client=engine.client, blobs=engine.blobs)  # time.sleep pickles
    back = pickle.loads(pickle.dumps(engine.for_document("t", "d")))
    assert back.client is None and back.blobs is None and (back.tenant_id, back.document_id) == ("t", "d")
    base = {"documents_bucket": "docs-bucket", "table_name": "table", "opensearch_endpoint": "https://search.example"}
    s = AwsSettings.from_env({}, **base)
    assert isinstance(s.extraction_limits().ocr, TextractOcr) and s.extraction_limits().ocr.bucket == "docs-bucket"
    assert AwsSettings.from_env({"LECTERN_OCR": "none"}, **base).extraction_limits().ocr is None
