"""The AWS OCR engine: Amazon Textract's text detection, behind the domain's `OcrEngine` port.

* Images (a PNG page, a frame of a TIFF, a JPEG) go to the synchronous `DetectDocumentText` as bytes.
* PDF pages without a usable text layer: the whole original is read by the asynchronous
  `StartDocumentTextDetection` from its S3 object (Textract reads PDFs only asynchronously, and the PDF is already
  in the documents bucket), then `GetDocumentTextDetection` is polled and paged (NextToken) to the end; the words
  of the pages that need OCR are taken (`recognize_document`, which `lectern.domain.ocr.ocr_pdf_pages` prefers
  when an engine has it).
* Paid once: every result is stored next to the document (`{tenant}/{doc}/textract/...json`), and the
  asynchronous job's id is stored as soon as it starts, so a retried or rebuilt extract step reads the result (or
  resumes the job) instead of paying Textract again. `StartDocumentTextDetection` also gets a ClientRequestToken
  derived from the document, which makes a repeated start return the same job. The results go when the document
  goes (the blob store deletes `{tenant}/{doc}/` with the original).

Textract gives boxes as fractions of the page; they are handed to the domain as `OcrWord`s on a 10,000-unit page
(`UNIT`). Textract has no paragraphs in text detection: consecutive lines are one paragraph unless the gap
between them is larger than `PARAGRAPH_GAP` times the line height.

The engine is bound to a document by `for_document` (the ingestion pipeline calls it) and creates its clients
lazily, so it pickles without them. It has never been run against the real Textract service here: the tests use
botocore's Stubber, which checks every request and response against Textract's service model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lectern.domain.documents import blob_key
from lectern.domain.ocr import OcrFailure, OcrWord

log = logging.getLogger(__name__)

UNIT = 10_000  # Textract's fractions of the page, as integer "pixels" of a UNIT x UNIT page
PARAGRAPH_GAP = 0.8  # a gap above a line larger than this many line heights starts a new paragraph
MIN_CONFIDENCE = 10.0
MAX_SYNC_BYTES = 10 * 1024 * 1024  # DetectDocumentText's limit for a document passed as bytes


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (the domain hands the engine PNG pages)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        raise OcrFailure("the page image is not a PNG (internal error).")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _scaled(words: list[OcrWord], width: int, height: int) -> list[OcrWord]:
    """Words on a UNIT x UNIT page -> on the page image's pixels (what `OcrEngine.recognize` returns)."""
    return [
        replace(
            w,
            left=round(w.left * width / UNIT),
            top=round(w.top * height / UNIT),
            width=max(1, round(w.width * width / UNIT)),
            height=max(1, round(w.height * height / UNIT)),
        )
        for w in words
    ]


def _words_of(blocks: Sequence[dict[str, Any]]) -> dict[int, list[OcrWord]]:
    """Textract blocks (one page or many; `Page` defaults to 1) -> each page's words in reading order, on a
    UNIT x UNIT page."""
    by_id = {b["Id"]: b for b in blocks if "Id" in b}
    pages: dict[int, list[OcrWord]] = {}
    state: dict[int, tuple[int, float, float]] = {}  # page -> (paragraph, last line's bottom, its height)
    line_no: dict[int, int] = {}
    for block in blocks:
        if block.get("BlockType") != "LINE":
            continue
        page = int(block.get("Page", 1))
        box = block.get("Geometry", {}).get("BoundingBox", {})
        top, height = float(box.get("Top", 0.0)), float(box.get("Height", 0.0))
        para, bottom, last_h = state.get(page, (0, -1.0, 0.0))
        if bottom < 0 or top - bottom > PARAGRAPH_GAP * max(last_h, height):
            para += 1
        state[page] = (para, top + height, height)
        line_no[page] = line_no.get(page, 0) + 1
        ids = [i for rel in block.get("Relationships", ()) if rel.get("Type") == "CHILD" for i in rel.get("Ids", ())]
        for word_id in ids:
            word = by_id.get(word_id)
            if not word or word.get("BlockType") != "WORD" or not str(word.get("Text", "")).strip():
                continue
            confidence = float(word.get("Confidence", 100.0))
            if confidence < MIN_CONFIDENCE:
                continue
            wb = word.get("Geometry", {}).get("BoundingBox", {})
            left, wtop = float(wb.get("Left", 0.0)), float(wb.get("Top", 0.0))
            pages.setdefault(page, []).append(
                OcrWord(
                    text=str(word["Text"]).strip(),
                    left=round(left * UNIT),
                    top=round(wtop * UNIT),
                    width=max(1, round(float(wb.get("Width", 0.0)) * UNIT)),
                    height=max(1, round(float(wb.get("Height", 0.0)) * UNIT)),
                    confidence=confidence,
                    line=(1, para, line_no[page]),
                )
            )
    return pages


def _dump(pages: dict[int, list[OcrWord]]) -> bytes:
    rows = {
        str(n): [[w.text, w.left, w.top, w.width, w.height, w.confidence, *w.line] for w in words]
        for n, words in pages.items()
    }
    return json.dumps({"unit": UNIT, "pages": rows}, ensure_ascii=False, separators=(",", ":")).encode()


def _load(data: bytes) -> dict[int, list[OcrWord]]:
    raw = json.loads(data)
    return {
        int(n): [OcrWord(r[0], r[1], r[2], r[3], r[4], r[5], (r[6], r[7], r[8])) for r in rows]
        for n, rows in raw["pages"].items()
    }


def _client_error(exc: Exception) -> OcrFailure:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    reasons = {
        "ProvisionedThroughputExceededException": "Textract is busy (throughput exceeded); the upload is retried",
        "ThrottlingException": "Textract is busy (throttled); try the upload again later",
        "UnsupportedDocumentException": "Textract cannot read this file (unsupported or damaged image)",
        "BadDocumentException": "Textract cannot read this file (unsupported or damaged image)",
        "DocumentTooLargeException": "the page is too large for Textract",
        "AccessDeniedException": "Lectern is not allowed to call Textract here (IAM)",
    }
    return OcrFailure(f"{reasons.get(code, f'Textract refused the page ({code})')}.")


@dataclass(frozen=True)
class TextractOcr:
    bucket: str
    tenant_id: str = ""
    document_id: str = ""
    poll_interval_s: float = 2.0
    max_wait_s: float = 240.0  # within the extract Lambda's 300 s; a retry resumes the stored job
    name: str = "textract"
    client: Any = field(default=None, repr=False, compare=False)
    blobs: Any = field(default=None, repr=False, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # clients do not travel to a child process
        return {**self.__dict__, "client": None, "blobs": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- wiring --------------------------------------------------------------------------------------------
    def for_document(self, tenant_id: str, document_id: str) -> TextractOcr:
        """This engine for one document: where its original is, and where its results are kept."""
        return replace(self, tenant_id=tenant_id, document_id=document_id)

    def _textract(self) -> Any:
        if self.client is None:
            from lectern.adapters.aws import clients

            object.__setattr__(
                self, "client", clients.client("textract", config=clients.client_config(read_timeout=60))
            )
        return self.client

    def _blobs(self) -> Any:
        if self.blobs is None:
            from lectern.adapters.aws.s3_blobs import S3BlobStore

            object.__setattr__(self, "blobs", S3BlobStore(self.bucket))
        return self.blobs

    def _key(self, name: str) -> str | None:
        if not (self.tenant_id and self.document_id):
            return None  # not bound to a document: nothing is cached
        return f"{self.tenant_id}/{self.document_id}/textract/{name}.json"

    def _cached(self, key: str | None) -> bytes | None:
        if key is None:
            return None
        try:
            data: bytes = self._blobs().get(key)
            return data
        except KeyError:
            return None

    # -- OcrEngine ------------------------------------------------------------------------------------------
    def recognize(self, png: bytes) -> list[OcrWord]:
        """One page image by the synchronous DetectDocumentText (its result cached by the image's hash)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if len(png) > MAX_SYNC_BYTES:
            raise OcrFailure("the page image is larger than Textract accepts (10 MB); scale it down.")
        width, height = _png_size(png)
        key = self._key("image-" + hashlib.sha256(png).hexdigest()[:32])
        cached = self._cached(key)
        if cached is not None:
            return _scaled(_load(cached).get(1, []), width, height)
        try:
            resp = self._textract().detect_document_text(Document={"Bytes": png})
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(exc) from exc
        pages = _words_of(resp.get("Blocks", []))
        words = pages.get(1, [])
        if key is not None:
            self._blobs().put(key, _dump({1: words}))
        return _scaled(words, width, height)

    def recognize_document(self, pages: Sequence[int]) -> dict[int, list[OcrWord]]:
        """The words of `pages` of the bound document's PDF, read by one asynchronous Textract job."""
        if not (self.tenant_id and self.document_id):
            raise OcrFailure("the OCR engine was not given the document (internal error).")
        key = self._key("document")
        cached = self._cached(key)
        if cached is None:
            result = self._run_job()
            self._blobs().put(key, _dump(result))
        else:
            result = _load(cached)
        return {n: result.get(n, []) for n in pages}

    def _run_job(self) -> dict[int, list[OcrWord]]:
        from botocore.exceptions import BotoCoreError, ClientError

        job_key = self._key("job")
        assert job_key is not None
        marker = self._cached(job_key)
        textract = self._textract()
        try:
            job_id = json.loads(marker).get("JobId") if marker is not None else None
            if not job_id:  # none yet, or the last one failed: start one
                job_id = textract.start_document_text_detection(
                    DocumentLocation={
                        "S3Object": {"Bucket": self.bucket, "Name": blob_key(self.tenant_id, self.document_id)}
                    },
                    ClientRequestToken=self._token(marker),
                    JobTag="lectern-extract",
                )["JobId"]
                self._blobs().put(job_key, json.dumps({"JobId": job_id}).encode())
            blocks = self._wait(textract, job_id)
        except (ClientError, BotoCoreError) as exc:
            raise _client_error(exc) from exc
        return _words_of(blocks)

    def _token(self, marker: bytes | None) -> str:
        """The same token for every start of this document (a repeated start returns the same job), a new one
        after a failed job (the same token would return the failed job again)."""
        failed = int(json.loads(marker).get("failures", 0)) if marker is not None else 0
        return hashlib.sha256(f"{self.tenant_id}/{self.document_id}/{failed}".encode()).hexdigest()[:64]

    def _wait(self, textract: Any, job_id: str) -> list[dict[str, Any]]:
        waited = 0.0
        while True:
            resp = textract.get_document_text_detection(JobId=job_id, MaxResults=1000)
            status = resp.get("JobStatus")
            if status != "IN_PROGRESS":
                break
            if waited >= self.max_wait_s:
                raise OcrFailure(
                    f"Textract had not finished the document after {self.max_wait_s:g} s; its job continues and "
                    "the next try reads its result."
                )
            self.sleep(self.poll_interval_s)
            waited += self.poll_interval_s
        if status == "FAILED":
            job_key = self._key("job")
            if job_key is not None:  # a failed job is not resumed: the next try starts a new one
                marker = self._cached(job_key)
                failures = int(json.loads(marker).get("failures", 0)) if marker is not None else 0
                self._blobs().put(job_key, json.dumps({"JobId": None, "failures": failures + 1}).encode())
            message = str(resp.get("StatusMessage") or "no reason given")
            raise OcrFailure(f"Textract could not read the document ({message[:200]}).")
        if status == "PARTIAL_SUCCESS":
            log.warning("textract job %s partly succeeded: %s", job_id, resp.get("Warnings"))
        blocks = list(resp.get("Blocks", []))
        token = resp.get("NextToken")
        while token:
            resp = textract.get_document_text_detection(JobId=job_id, MaxResults=1000, NextToken=token)
            blocks.extend(resp.get("Blocks", []))
            token = resp.get("NextToken")
        return blocks
