"""What the ingestion state machine stores between steps keeps the layout: pages' word boxes in extracted.json,
chunks' boxes in chunks.jsonl (so the chunk step on AWS gives the same boxes as locally), and never page images
(those are their own S3 objects)."""

from __future__ import annotations

import json

from lectern.aws import jobs
from lectern.domain.models import Block, Chunk, ExtractedDocument, Page, Word


def test_extracted_and_chunks_round_trip_with_their_layout() -> None:
    doc = ExtractedDocument(
        [Page(1, [Block("North 41")], words=(Word("North", 0.1, 0.2, 0.3, 0.25), Word("41", 0.31, 0.2, 0.4, 0.25)),
              ocr=True), Page(2, [Block("plain")])],
        "T",
        page_images={1: b"\x89PNG..."},
    )  # fmt: skip
    raw = jobs.dump_extracted(doc)
    assert "page_images" not in json.loads(raw)
    back = jobs.load_extracted(raw)
    assert back.pages == doc.pages and back.title == "T" and back.page_images == {}

    chunk = Chunk("c", "t", "d", "f.pdf", 1, 0, "North 41", boxes=((0, 5, 0.1, 0.2, 0.3, 0.25),))
    assert jobs.load_chunks(jobs.dump_chunks([chunk])) == [chunk]


def test_extracted_json_written_before_layout_still_loads() -> None:
    old = json.dumps({"pages": [{"number": 1, "blocks": [{"text": "a", "kind": "paragraph", "level": 0}]}]})
    assert jobs.load_extracted(old.encode()).pages == [Page(1, [Block("a")])]
    old_chunk = json.dumps({"chunk_id": "c", "tenant_id": "t", "document_id": "d", "filename": "f", "page": 1,
                            "ordinal": 0, "text": "x", "heading": "", "token_count": 1})  # fmt: skip
    assert jobs.load_chunks(old_chunk.encode()) == [Chunk("c", "t", "d", "f", 1, 0, "x", "", 1)]
