"""The API function's cold start loads no ingestion-only library (issue 13, item 7): pypdf, python-docx and
lxml are imported by lectern.domain.extraction only when a PDF or DOCX is extracted, which only the ingestion
functions do. Checked in a fresh interpreter (this test process has imported them already)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INGESTION_ONLY = ("pypdf", "docx", "lxml")
# lectern's own ingestion-only modules (issue 19): extraction and its readers, the ingestion pipeline
INGESTION_MODULES = ("lectern.domain.extraction", "lectern.domain.ingest")

PROBE = """
import json, sys
import lectern.aws.handlers.api as api
from lectern.api.app import build_app
from lectern.aws.container import AwsLectern
from lectern.aws.settings import AwsSettings
build_app(AwsLectern(AwsSettings.from_env()).api_services())  # what the first request builds
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def _loaded(code: str) -> list[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'lambdas'}{os.pathsep}{ROOT}",
        "LECTERN_DOCUMENTS_BUCKET": "docs-bucket",
        "LECTERN_TABLE_NAME": "lectern-table",
        "LECTERN_OPENSEARCH_ENDPOINT": "https://search.example.com",
        "LECTERN_GUARDRAIL_ID": "gr-1",
        "LECTERN_GUARDRAIL_VERSION": "1",
        "LECTERN_FALLBACK_ENDPOINT_NAME": "lectern-fallback",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_api_cold_start_imports_no_pdf_or_docx_library() -> None:
    assert _loaded(PROBE.replace("%r", repr(INGESTION_ONLY))) == []


def test_api_cold_start_imports_no_lectern_ingestion_module() -> None:
    """The import graph of the API function, not a timing: wiring builds the ingestion pipeline lazily."""
    probe = PROBE.replace(
        "m.split(\".\")[0] in %r",
        f"any(m == p or m.startswith(p + '.') for p in {INGESTION_MODULES!r})",
    )
    assert _loaded(probe) == []


def test_an_ingestion_function_loads_the_pipeline() -> None:
    """The same probe sees the modules where they are used (so the check above can fail)."""
    code = "\n".join(
        [
            "import json, sys",
            "from lectern.aws.container import AwsLectern",
            "from lectern.aws.settings import AwsSettings",
            "AwsLectern(AwsSettings.from_env()).pipeline",
            f"print(json.dumps(sorted(m for m in sys.modules if m in {INGESTION_MODULES!r})))",
        ]
    )
    assert _loaded(code) == sorted(INGESTION_MODULES)


def test_extraction_still_loads_them_when_it_needs_them() -> None:
    code = "\n".join(
        [
            "import json, sys",
            "from lectern.domain.extraction import ExtractionLimits, extract",
            "try:",
            "    extract(b'%PDF-1.7 broken', 'a.pdf', 'application/pdf', ExtractionLimits())",
            "except Exception:",
            "    pass",
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {INGESTION_ONLY!r})))",
        ]
    )
    assert "pypdf" in _loaded(code)


def test_docx_namespace_helper_matches_python_docx() -> None:
    from docx.oxml.ns import qn as docx_qn

    from lectern.domain.extraction import qn

    for tag in ("w:p", "w:tbl", "w:tr", "w:tc", "w:t", "w:tab", "w:br", "w:cr", "w:sdt", "w:sdtContent"):
        assert qn(tag) == docx_qn(tag)
