"""Layout metadata: chunk words -> page boxes (OCR and PDF text layers), page images, and storage of the boxes
in the local index (an index made before the column existed is migrated without losing a row)."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lectern.adapters.local.file_blobs import FileBlobStore
from lectern.adapters.local.sqlite_db import SqliteDatabase
from lectern.adapters.local.sqlite_index import SqliteSearchIndex
from lectern.adapters.local.tesseract_ocr import TesseractOcr
from lectern.domain.chunking import ChunkingConfig, chunk_document, whitespace_tokens
from lectern.domain.documents import blob_key, page_image_key
from lectern.domain.extraction import ExtractionLimits, extract
from lectern.domain.layout import align, attach_boxes, boxes_in_span, decode_boxes, encode_boxes
from lectern.domain.models import Chunk, Word
from tests.unit.conftest import build_pdf

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ocr"


def _words(text: str) -> list[Word]:
    return [Word(w, i / 10, 0.5, (i + 0.8) / 10, 0.6) for i, w in enumerate(text.split())]


def test_align_maps_each_chunk_word_to_its_page_box_despite_punctuation_and_case() -> None:
    page = _words("Region | Q3 sales: North 41, South 17.")
    text = "| Region | Q3 sales |\n| north | 41 |"
    boxes = align(text, page)
    got = {text[s:e]: (x0, y0) for s, e, x0, y0, _, _ in boxes}
    assert got["Region"] == (0.0, 0.5)
    assert got["north"] == (0.4, 0.5)  # case differs; "|" never matches
    assert got["41"] == (0.5, 0.5)  # "41," on the page
    assert "South" not in got and "|" not in got  # not in the chunk / not a word


def test_align_finds_the_repeated_words_where_the_longest_run_is() -> None:
    page = _words("the cat sat . the dog ran home")
    boxes = align("the dog ran", page)
    assert [b[2] for b in boxes] == [0.4, 0.5, 0.6]


def test_boxes_in_span_and_the_stored_form_round_trip() -> None:
    boxes = ((0, 3, 0.1, 0.2, 0.3, 0.4), (4, 9, 0.5, 0.2, 0.7, 0.4))
    assert boxes_in_span(boxes, 5, 7) == [boxes[1]]
    assert boxes_in_span(boxes, 0, 0) == list(boxes)
    assert decode_boxes(encode_boxes(boxes)) == boxes
    assert decode_boxes("1,2,x") == () and decode_boxes("") == ()


def _chunks(name: str) -> tuple[list[Chunk], dict[int, bytes]]:
    data = (FIXTURES / name).read_bytes()
    doc = extract(data, name, None, ExtractionLimits(ocr=TesseractOcr()))
    chunks = chunk_document(
        doc, tenant_id="t", document_id="d", filename=name, config=ChunkingConfig(), count=whitespace_tokens
    )
    return attach_boxes(chunks, doc), doc.page_images


def test_a_scanned_page_and_a_text_layer_page_both_give_boxes_and_an_image() -> None:
    chunks, images = _chunks("mixed.pdf")
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        words = [w for w in c.text.split() if any(ch.isalnum() for ch in w)]
        assert len(c.boxes) >= 0.9 * len(words), c.page
        for s, e, x0, y0, x1, y1 in c.boxes:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and 0 <= s < e <= len(c.text)
    # page 1 is a text layer (pdfium's boxes), the title sits in the top tenth of the page, left of centre
    title = next(b for b in chunks[0].boxes if chunks[0].text[b[0] : b[1]] == "Facilities")
    assert title[3] < 0.12 and title[2] < 0.5
    first, second = (Image.open(io.BytesIO(images[n])) for n in (1, 2))
    assert first.format == second.format == "PNG"
    assert first.size == (850, 1100)  # letter at 100 dpi; page 2 is a notice-sized scan at its own size
    assert second.size[0] < 850


def test_an_image_upload_keeps_its_boxes_and_a_page_image() -> None:
    chunks, images = _chunks("notice.png")
    words = chunks[0].text.split()
    assert len(chunks[0].boxes) >= 0.9 * len(words)
    assert Image.open(io.BytesIO(images[1])).format == "PNG"


def test_page_images_can_be_switched_off_and_flowing_formats_have_none() -> None:
    pdf = build_pdf(["Quarterly report for the east region, with enough words to count."])
    assert extract(pdf, "a.pdf", None, ExtractionLimits(max_page_images=0)).page_images == {}
    assert extract(b"# Title\n\nSome text here.", "a.md").page_images == {}


# -- storage ------------------------------------------------------------------------------------------------
_OLD_SCHEMA = """
CREATE TABLE chunks (rowid INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, chunk_id TEXT NOT NULL,
    document_id TEXT NOT NULL, filename TEXT NOT NULL, page INTEGER NOT NULL, ordinal INTEGER NOT NULL,
    heading TEXT NOT NULL, text TEXT NOT NULL, token_count INTEGER NOT NULL, vector BLOB NOT NULL,
    UNIQUE (tenant_id, chunk_id));
CREATE INDEX chunks_by_document ON chunks (tenant_id, document_id);
CREATE VIRTUAL TABLE chunks_fts USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TABLE index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO index_meta VALUES ('generation', '3'), ('embedding_model', 'm'), ('dimension', '4');
"""


def test_an_index_from_before_boxes_is_migrated_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    vec = np.array([1, 0, 0, 0], dtype=np.float32).tobytes()
    for i in range(3):
        conn.execute(
            "INSERT INTO chunks VALUES (?, 't', ?, 'old', 'a.txt', 1, ?, '', ?, 3, ?)",
            (i + 1, f"c{i}", i, f"old text number {i}", vec),
        )
        conn.execute("INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)", (i + 1, f"old text number {i}"))
    conn.commit()
    conn.close()

    index = SqliteSearchIndex(SqliteDatabase(path), 4, "m")
    old = index.get_chunks("t", ["c0", "c1", "c2"])
    assert [c.text for c in old] == [f"old text number {i}" for i in range(3)] and all(not c.boxes for c in old)
    assert [s.chunk.chunk_id for s in index.bm25("t", "number", 5)] != []
    new = Chunk("n1", "t", "new", "b.pdf", 2, 0, "North 41", boxes=((0, 5, 0.1, 0.2, 0.3, 0.25),))
    index.replace_document("t", "new", [new], np.array([[0, 1, 0, 0]], dtype=np.float32))
    assert index.get_chunks("t", ["n1"])[0].boxes == new.boxes
    assert index.count("t") == 4
    again = SqliteSearchIndex(SqliteDatabase(path), 4, "m")  # a second start: nothing to migrate, nothing lost
    assert again.count("t") == 4 and again.get_chunks("t", ["n1"])[0].boxes == new.boxes
    assert [s.chunk.boxes for s in again.knn("t", np.array([0, 1, 0, 0], dtype=np.float32), 1)] == [new.boxes]


def test_deleting_the_original_deletes_its_page_images(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path)
    blobs.put(blob_key("t", "d"), b"pdf")
    for n in (1, 2):
        blobs.put(page_image_key("t", "d", n), b"png")
    blobs.put(page_image_key("t", "other", 1), b"png")
    blobs.delete(blob_key("t", "d"))
    assert not blobs.exists(page_image_key("t", "d", 1)) and not blobs.exists(page_image_key("t", "d", 2))
    assert blobs.exists(page_image_key("t", "other", 1))


@pytest.mark.parametrize("bad", ["../x", "t/d/pages/../../x"])
def test_page_image_keys_cannot_escape(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        FileBlobStore(tmp_path).get(bad)
