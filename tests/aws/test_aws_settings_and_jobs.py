"""Lambda settings fail readably at cold start; the ingestion job helpers round-trip the domain objects."""

from __future__ import annotations

import pytest

from lectern.aws import jobs
from lectern.aws.handlers.ingest import INTERNAL_ERROR, failure_reason
from lectern.aws.settings import AwsSettings
from lectern.domain.errors import NotFound, ValidationFailed
from lectern.domain.models import Block, Chunk, Document, DocumentStatus, ExtractedDocument, Page
from lectern.settings import SettingsError

REQUIRED = {
    "LECTERN_DOCUMENTS_BUCKET": "docs-bucket",
    "LECTERN_TABLE_NAME": "lectern",
    "LECTERN_OPENSEARCH_ENDPOINT": "https://search-lectern.us-east-1.es.amazonaws.com",
}


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LECTERN_EMBEDDING_DIMENSION", "512")
    s = AwsSettings.from_env()
    assert (s.documents_bucket, s.embedding_dimension, s.opensearch_kind) == ("docs-bucket", 512, "managed")


def test_misconfiguration_names_every_bad_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LECTERN_TABLE_NAME", "lectern")
    monkeypatch.setenv("LECTERN_EMBEDDING_DIMENSION", "768")
    with pytest.raises(SettingsError) as info:
        AwsSettings.from_env()
    message = str(info.value)
    assert "LECTERN_DOCUMENTS_BUCKET" in message and "LECTERN_OPENSEARCH_ENDPOINT" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LECTERN_EMBEDDING_DIMENSION", "768", "embedding_dimension"),
        ("LECTERN_GUARDRAIL_ID", "abc123", "GUARDRAIL_VERSION"),
        ("LECTERN_OPENSEARCH_ENDPOINT", "http://search.example.com", "https://"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str):
    for k, v in REQUIRED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=expected):
        AwsSettings.from_env()


def test_original_keys_parse_and_anything_else_is_refused():
    doc = "0" * 32
    assert jobs.parse_original_key(f"acme/{doc}/original") == ("acme", doc)
    with pytest.raises(ValidationFailed):
        jobs.parse_original_key(f"acme/{doc}/chunks.jsonl")
    with pytest.raises(ValidationFailed):
        jobs.parse_original_key(f"../{doc}/original")
    with pytest.raises(NotFound):
        jobs.parse_original_key("acme/not-a-doc-id/original")


def test_extracted_chunks_and_documents_round_trip():
    extracted = ExtractedDocument(
        pages=[Page(1, [Block("Title", "heading", 1), Block("Ünïcode text — ok")]), Page(2, [Block("x")])],
        title="T",
    )
    assert jobs.load_extracted(jobs.dump_extracted(extracted)) == extracted
    chunks = [Chunk("c1", "t", "d", "f.pdf", 1, 0, "line\nbreak", "H", 3), Chunk("c2", "t", "d", "f.pdf", 2, 1, "b")]
    assert jobs.load_chunks(jobs.dump_chunks(chunks)) == chunks
    document = Document("t", "d" * 32, "f.pdf", "application/pdf", 10, DocumentStatus.INDEXED, "a", "b", pages=2)
    assert jobs.load_document(jobs.dump_document(document)) == document


def test_batches_cover_every_chunk_once():
    assert jobs.batches(0, 32) == []
    got = jobs.batches(70, 32)
    assert got == [{"start": 0, "end": 32}, {"start": 32, "end": 64}, {"start": 64, "end": 70}]


def test_failure_reasons_show_extraction_messages_and_hide_everything_else():
    err = {"Error": "ExtractionError", "Cause": '{"errorMessage": "The PDF is encrypted.", "stackTrace": ["x"]}'}
    assert failure_reason(err) == "The PDF is encrypted."
    leaky = {"Error": "KeyError", "Cause": '{"errorMessage": "/var/task/lectern/x.py secret"}'}
    assert failure_reason(leaky) == INTERNAL_ERROR
    assert failure_reason(None) == INTERNAL_ERROR
    assert failure_reason({"Error": "ExtractionError", "Cause": "not json"}) == INTERNAL_ERROR
