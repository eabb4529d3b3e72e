"""What the ingestion state machine carries between steps, and where the large parts live in S3.

Step Functions passes at most 256 KB between states, so extracted text, chunks and vectors go to the documents
bucket next to the original and the state holds only keys:

    {tenant}/{doc}/original          the upload (the EventBridge rule matches this suffix)
    {tenant}/{doc}/extracted.json    pages and blocks (and the pages' word boxes)
    {tenant}/{doc}/chunks.jsonl      one chunk per line (with its word boxes)
    {tenant}/{doc}/pages/{n}.png     page images for the passage view (rendered at ingest)
    {tenant}/{doc}/textract/...      Textract's results (lectern.adapters.aws.textract_ocr): a rebuild reuses them
    {tenant}/{doc}/embeddings/...    vectors (S3VectorStore), reused by the rebuild workflow after a pause
    {tenant}/{doc}/document.json     the document record as last INDEXED (lets a rebuild restore metadata)
    lectern.rebuild/{run}/documents.json   the rebuild's document list (its Distributed Map's ItemReader)
    lectern.rebuild/results/{map run}/...  the rebuild's per-document results (its ResultWriter)

`lectern.rebuild/` can never be a tenant's prefix: a tenant id has no dot.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from lectern.domain.documents import check_document_id, check_tenant
from lectern.domain.errors import ValidationFailed
from lectern.domain.models import Block, Chunk, Document, DocumentStatus, ExtractedDocument, Page, Word

_ORIGINAL = re.compile(r"^(?P<tenant>[^/]+)/(?P<doc>[^/]+)/original$")


def prefix(tenant_id: str, document_id: str) -> str:
    return f"{tenant_id}/{document_id}/"


def extracted_key(tenant_id: str, document_id: str) -> str:
    return prefix(tenant_id, document_id) + "extracted.json"


def chunks_key(tenant_id: str, document_id: str) -> str:
    return prefix(tenant_id, document_id) + "chunks.jsonl"


def manifest_key(tenant_id: str, document_id: str) -> str:
    return prefix(tenant_id, document_id) + "document.json"


REBUILD_PREFIX = "lectern.rebuild/"
_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")  # a Step Functions execution name's safe subset


def rebuild_list_key(run: str) -> str:
    """Where the rebuild run `run` (its execution name) writes its document list."""
    if not _RUN.match(run):
        raise ValidationFailed(f"Not a usable rebuild run name: {run[:100]!r}")
    return f"{REBUILD_PREFIX}{run}/documents.json"


def rebuild_summary(s3: Any, output: dict[str, Any]) -> dict[str, Any]:
    """What a rebuild run did, from its output and the results its Distributed Map wrote to S3.

    `output` is the execution's output (`documents`, `results`: the ResultWriter's manifest location); the
    manifest lists the SUCCEEDED_n.json files, whose records carry each child execution's Output (a
    document's reindex result). Returns {documents, counts: {status: n}, failed: [results]}. Used by
    scripts/resume."""
    where = output["results"]
    manifest = json.loads(s3.get_object(Bucket=where["Bucket"], Key=where["Key"])["Body"].read())
    counts: dict[str, int] = {}
    failed: list[dict[str, Any]] = []
    for part in manifest["ResultFiles"]["SUCCEEDED"]:
        records = json.loads(s3.get_object(Bucket=where["Bucket"], Key=part["Key"])["Body"].read())
        for record in records:
            result = json.loads(record["Output"])
            counts[result["status"]] = counts.get(result["status"], 0) + 1
            if result["status"] == "FAILED":
                failed.append(result)
    return {"documents": output["documents"], "counts": counts, "failed": failed}


def stage_metric(stage: str) -> str:
    """The CloudWatch metric (EMF, namespace Lectern, dimension service) of one ingestion stage's time in ms; the
    dashboard (cdk/constructs/observability.py) graphs one per `lectern.domain.ingest.TIMED_STEPS`."""
    return f"Ingest{stage.capitalize()}Ms"


def parse_original_key(key: str) -> tuple[str, str]:
    """`{tenant}/{doc}/original` -> (tenant, doc); anything else is not an upload of ours."""
    m = _ORIGINAL.match(key)
    if not m:
        raise ValidationFailed(f"Not a Lectern upload key: {key[:200]!r}")
    return check_tenant(m["tenant"]), check_document_id(m["doc"])


# -- (de)serialisation --------------------------------------------------------------------------------------
def dump_extracted(doc: ExtractedDocument) -> bytes:
    """Pages, blocks and word boxes; page images are stored as their own objects by the extract step."""
    raw = dataclasses.asdict(dataclasses.replace(doc, page_images={}))
    raw.pop("page_images", None)
    return json.dumps(raw, ensure_ascii=False).encode()


def load_extracted(data: bytes) -> ExtractedDocument:
    raw = json.loads(data)
    pages = [
        Page(
            number=p["number"],
            blocks=[Block(**b) for b in p["blocks"]],
            words=tuple(Word(**w) for w in p.get("words", ())),  # layout (word boxes), from issue 18 on
            ocr=bool(p.get("ocr", False)),
        )
        for p in raw["pages"]
    ]
    return ExtractedDocument(pages=pages, title=raw.get("title"))


def dump_chunks(chunks: list[Chunk]) -> bytes:
    return "".join(json.dumps(dataclasses.asdict(c), ensure_ascii=False) + "\n" for c in chunks).encode()


def load_chunks(data: bytes) -> list[Chunk]:
    out = []
    for line in data.decode().splitlines():
        if line.strip():
            raw = json.loads(line)
            raw["boxes"] = tuple(tuple(b) for b in raw.get("boxes", ()))  # JSON arrays back to WordBox tuples
            out.append(Chunk(**raw))
    return out


def dump_document(doc: Document) -> bytes:
    return json.dumps(dataclasses.asdict(doc) | {"status": doc.status.value}).encode()


def load_document(data: bytes) -> Document:
    raw: dict[str, Any] = json.loads(data)
    raw["status"] = DocumentStatus(raw["status"])
    fields = {f.name for f in dataclasses.fields(Document)}
    return Document(**{k: v for k, v in raw.items() if k in fields})


def batches(count: int, size: int) -> list[dict[str, int]]:
    return [{"start": s, "end": min(s + size, count)} for s in range(0, count, size)]
