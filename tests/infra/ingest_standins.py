"""Stand-in Lambda handlers that honour the ingestion I/O contract (issue 3), over an in-memory world.

They exist so the ASL can be executed before the real handlers land; `handlers()` returns the mapping
substitution name -> callable that `asl_harness.harness` dispatches to. The real ones replace them one for one
(`asl_harness.INGEST_FUNCTIONS` names their import paths).

The error classes raised are the domain's own (`lectern.domain.errors`): Step Functions names a Python error
by its class name, and the ASL retries/catches by those names.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lectern.domain.errors import ExtractionError

BATCH = 2  # chunks per embedding batch (small, so a few words make several batches)


@dataclass
class World:
    max_bytes: int = 1000
    bucket: str = "lectern-documents"  # the documents bucket in moto (the rebuild's list goes there)
    blobs: dict[str, bytes] = field(default_factory=dict)  # the documents bucket
    status: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # the table
    search_index: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # the search index
    # planned failures: substitution name -> exceptions raised by successive calls (then success)
    failures: dict[str, list[Exception]] = field(default_factory=lambda: defaultdict(list))
    # a side effect to run at the start of a step (e.g. "the user deleted the document now")
    on_step: dict[str, Any] = field(default_factory=dict)

    def upload(self, tenant: str, doc: str, text: str) -> str:
        key = f"{tenant}/{doc}/original"
        self.blobs[key] = text.encode()
        self.status[(tenant, doc)] = {"status": "PROCESSING"}
        return key

    def delete(self, tenant: str, doc: str) -> None:
        """What DELETE /v1/documents/{id} does: the record goes, the chunks go."""
        self.status.pop((tenant, doc), None)
        self.search_index.pop((tenant, doc), None)
        for key in [k for k in self.blobs if k.startswith(f"{tenant}/{doc}/")]:
            del self.blobs[key]

    # -- the handlers -------------------------------------------------------------------------------------

    def _enter(self, name: str, event: dict[str, Any]) -> None:
        if name in self.on_step:
            self.on_step.pop(name)(event)
        if self.failures[name]:
            raise self.failures[name].pop(0)

    def validate(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("ValidateFunctionArn", event)
        obj = event["detail"]["object"]
        tenant, doc, leaf = obj["key"].split("/")
        assert leaf == "original", "the EventBridge rule only forwards .../original"
        if obj["size"] > self.max_bytes:
            raise ExtractionError(
                f"The file is {obj['size']:,} bytes; the limit is {self.max_bytes:,} bytes."
            )
        return {"tenant_id": tenant, "document_id": doc, "key": obj["key"], "size_bytes": obj["size"]}

    def extract(self, job: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("ExtractFunctionArn", job)
        text = self.blobs[job["key"]].decode()
        key = f"{job['tenant_id']}/{job['document_id']}/extracted.json"
        self.blobs[key] = json.dumps({"pages": [text]}).encode()
        return job | {"extracted_key": key, "pages": 1}

    def chunk(self, job: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("ChunkFunctionArn", job)
        words = json.loads(self.blobs[job["extracted_key"]])["pages"][0].split()
        if not words:
            raise ExtractionError("The document contains no text to index.")
        key = f"{job['tenant_id']}/{job['document_id']}/chunks.jsonl"
        self.blobs[key] = "\n".join(json.dumps({"i": i, "text": w}) for i, w in enumerate(words)).encode()
        batches = [{"start": s, "end": min(s + BATCH, len(words))} for s in range(0, len(words), BATCH)]
        return job | {"chunks_key": key, "chunk_count": len(words), "batches": batches}

    def embed_batch(self, item: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("EmbedBatchFunctionArn", item)
        assert set(item) == {"tenant_id", "document_id", "chunks_key", "batch"}, item
        start, end = item["batch"]["start"], item["batch"]["end"]
        key = f"{item['tenant_id']}/{item['document_id']}/embeddings/{start:06d}-{end:06d}.npy"
        self.blobs[key] = b"vectors"
        return {"start": start, "end": end, "vectors_key": key}

    def index(self, job: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("IndexFunctionArn", job)
        covered = sorted((e["start"], e["end"]) for e in job["embedded"])
        assert covered[0][0] == 0 and covered[-1][1] == job["chunk_count"], covered
        assert all(a[1] == b[0] for a, b in itertools.pairwise(covered)), covered
        ids = [f"{job['document_id']}#{i}" for i in range(job["chunk_count"])]
        self.search_index[(job["tenant_id"], job["document_id"])] = ids  # replace-by-document
        return job | {"indexed": len(ids)}

    def mark_indexed(self, job: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("MarkIndexedFunctionArn", job)
        ident = (job["tenant_id"], job["document_id"])
        out = {"tenant_id": job["tenant_id"], "document_id": job["document_id"]}
        if ident not in self.status:  # deleted while we worked: withdraw what we indexed
            self.search_index.pop(ident, None)
            return out | {"status": "WITHDRAWN"}
        self.status[ident] = {"status": "INDEXED", "chunks": job["indexed"]}
        return out | {"status": "INDEXED"}

    def mark_failed(self, job: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("MarkFailedFunctionArn", job)
        if "tenant_id" in job:
            tenant, doc = job["tenant_id"], job["document_id"]
        else:  # failed in validate: the input is still the S3 event
            tenant, doc, _ = job["detail"]["object"]["key"].split("/")
        try:
            reason = json.loads(job["error"]["Cause"])["errorMessage"]
        except (ValueError, KeyError):
            reason = "Lectern could not process this document (internal error)."
        self.search_index.pop((tenant, doc), None)
        if (tenant, doc) in self.status:
            self.status[(tenant, doc)] = {"status": "FAILED", "reason": reason}
        return {"tenant_id": tenant, "document_id": doc, "status": "FAILED", "reason": reason}

    # -- rebuild ------------------------------------------------------------------------------------------

    def list_documents(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """{run} -> {bucket, key, count}: the list is written to (moto's) S3, as the real handler does."""
        import boto3

        self._enter("ListDocumentsFunctionArn", event)
        docs = [
            {"tenant_id": t, "document_id": d}
            for (t, d), s in self.status.items()
            if s["status"] == "INDEXED"
        ]
        key = f"lectern.rebuild/{event['run']}/documents.json"
        boto3.client("s3", region_name="us-east-1").put_object(
            Bucket=self.bucket, Key=key, Body=json.dumps(docs, separators=(",", ":")).encode()
        )
        return {"bucket": self.bucket, "key": key, "count": len(docs)}

    def reindex_document(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._enter("ReindexDocumentFunctionArn", event)
        t, d = event["tenant_id"], event["document_id"]
        stored = [k for k in self.blobs if k.startswith(f"{t}/{d}/embeddings/")]
        self.search_index[(t, d)] = [f"{d}#{i}" for i in range(self.status[(t, d)]["chunks"])]
        return {"tenant_id": t, "document_id": d, "status": "INDEXED", "reused_batches": len(stored)}

    def handlers(self) -> dict[str, Any]:
        return {
            "ValidateFunctionArn": self.validate,
            "ExtractFunctionArn": self.extract,
            "ChunkFunctionArn": self.chunk,
            "EmbedBatchFunctionArn": self.embed_batch,
            "IndexFunctionArn": self.index,
            "MarkIndexedFunctionArn": self.mark_indexed,
            "MarkFailedFunctionArn": self.mark_failed,
            "ListDocumentsFunctionArn": self.list_documents,
            "ReindexDocumentFunctionArn": self.reindex_document,
        }
