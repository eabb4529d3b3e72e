import itertools

import pytest

from lectern.domain.chunking import ChunkingConfig, chunk_document, chunk_id, whitespace_tokens
from lectern.domain.models import Block, ExtractedDocument, Page


def _doc(*pages: list[Block]) -> ExtractedDocument:
    return ExtractedDocument(pages=[Page(i + 1, list(b)) for i, b in enumerate(pages)])


def _chunks(doc, size=40, overlap=8):
    return chunk_document(
        doc,
        tenant_id="t",
        document_id="d1",
        filename="f.pdf",
        config=ChunkingConfig(size=size, overlap=overlap, min_size=4),
        count=whitespace_tokens,
    )


def test_chunks_respect_size_and_never_cross_pages():
    para = " ".join(f"word{i}." for i in range(100))
    chunks = _chunks(_doc([Block(para)], [Block(para)]), size=40, overlap=8)
    assert all(c.token_count <= 40 + 8 for c in chunks)
    assert {c.page for c in chunks} == {1, 2}
    for c in chunks:
        # a chunk from page 2 holds no text that exists only on page 1 — each page has its own word sequence here
        assert c.text.strip()
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_every_word_is_kept_in_order():
    words = [f"w{i}" for i in range(300)]
    chunks = _chunks(_doc([Block(" ".join(words[:150])), Block(" ".join(words[150:]))]), size=50, overlap=0)
    seen = " ".join(c.text for c in chunks).split()
    assert seen == words


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    sentences = [Block(f"Sentence number {i} is here.") for i in range(30)]
    chunks = _chunks(_doc(sentences), size=30, overlap=8)
    assert len(chunks) > 2
    for a, b in itertools.pairwise(chunks):
        assert a.text.splitlines()[-1] in b.text


def test_heading_trail_is_kept():
    doc = _doc(
        [
            Block("Guide", "heading", 1),
            Block("Intro text."),
            Block("Install", "heading", 2),
            Block("Run make up."),
            Block("Usage", "heading", 2),
            Block("Ask questions. " * 30),
        ]
    )
    chunks = _chunks(doc, size=30, overlap=0)
    assert chunks[0].heading == "Guide"
    assert any(c.heading == "Guide > Usage" for c in chunks)
    assert all(
        "Install" not in c.heading for c in chunks if "Ask questions" in c.text and "Run make" not in c.text
    )


def test_ids_are_deterministic_and_distinct():
    doc = _doc([Block("alpha beta gamma. " * 40)])
    a, b = _chunks(doc), _chunks(doc)
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert len({c.chunk_id for c in a}) == len(a)
    assert chunk_id("d1", 0, "x") != chunk_id("d2", 0, "x")


def test_a_single_huge_word_run_is_split():
    chunks = _chunks(_doc([Block("x" * 5 + " y" * 500)]), size=40, overlap=0)
    assert all(c.token_count <= 40 for c in chunks)


def test_empty_blocks_give_no_chunks():
    assert _chunks(_doc([Block("   "), Block("")])) == []


@pytest.mark.parametrize("size,overlap", [(8, 0), (100, 50), (100, -1)])
def test_bad_config(size, overlap):
    with pytest.raises(ValueError):
        ChunkingConfig(size=size, overlap=overlap)
