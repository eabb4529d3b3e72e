"""Tables and reading order, measured on the evaluation set written by us (tests/fixtures/tables, made by
scripts/make_table_fixtures.py) and on the shared sample documents; results in docs/results/tables.json.

Run once per code version, under the `lectern` that PYTHONPATH imports, with a label: main's code as "before",
this branch as "after" (each run replaces its own label's entry and keeps the others):

  PYTHONPATH=/path/to/main/lambdas .venv/bin/python scripts/bench_tables.py --label before
  PYTHONPATH=lambdas .venv/bin/python scripts/bench_tables.py --label after [--libraries]
  PYTHONPATH=lambdas .venv/bin/python scripts/bench_tables.py --label after-llama --llm llama --max-questions 3

Measured: table cell accuracy (every cell of each true table, flattened header included, compared at its row and
column in the table read back: Markdown or "a | b" rows), row integrity (true rows whose cells stand on one line
in order), reading order on the two-column page (true lines found, consecutive pairs in order), answers on
questions whose answers sit in tables (lectern.evaluation.answers, --llm fake = the extractive test model), and
extraction + chunking time over the shared sample documents. --libraries also times pdfplumber's and PyMuPDF's
table finders on the same PDF pages and scores their cells (PyMuPDF only where it is importable: it is not a
dependency, being AGPL).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests/fixtures/tables"
SHARED_DOCS = Path(os.environ.get("LECTERN_SHARED_DIR", ROOT.parent / "shared")) / "data/docs"
PAPER_PHRASES = [  # sentences of multi-column-2p.pdf that run over several lines of one column
    "can we train a better dense embedding model using only pairs of questions and passages",
    "The problem of open-domain QA studied in this paper can be described as follows",
]


def _norm(s: str) -> str:
    return " ".join(s.replace("\\|", "|").split())


def _grids(text: str) -> list[list[list[str]]]:
    """Runs of lines with '|' as grids of cells (Markdown separators dropped)."""
    grids: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.split("\n"):
        if "|" in line:
            cells = [_norm(c) for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                current.append(cells)
            continue
        if current:
            grids.append(current)
            current = []
    if current:
        grids.append(current)
    return grids


def _cell_score(truth: list[list[str]], grids: list[list[list[str]]]) -> float:
    total = sum(len(r) for r in truth)
    best = 0
    for grid in grids:
        hit = sum(
            1
            for i, row in enumerate(truth)
            for j, cell in enumerate(row)
            if i < len(grid) and j < len(grid[i]) and grid[i][j] == _norm(cell)
        )
        best = max(best, hit)
    return best / total


def _row_integrity(truth: list[list[str]], text: str) -> float:
    lines = [_norm(line.replace("|", " ")) for line in text.split("\n")]
    ok = 0
    for row in truth[1:]:
        pattern = re.compile(r"(?:^|\s)" + r"\s+".join(re.escape(_norm(c)) for c in row) + r"(?:\s|$)")
        ok += any(pattern.search(line) for line in lines)
    return ok / (len(truth) - 1)


def _doc_text(name: str, data: bytes, page: int | None = None) -> str:
    from lectern.domain.extraction import extract

    doc = extract(data, name)
    return "\n\n".join(b.text for p in doc.pages if page in (None, p.number) for b in p.blocks)


def tables_quality(truth: dict) -> dict:
    out = {}
    for key, grid in truth["tables"].items():
        name, _, page = key.partition("#")
        page_no = int(page) if name.endswith(".pdf") else None
        text = _doc_text(name, (FIXTURES / name).read_bytes(), page_no)
        out[key] = {
            "cells": sum(len(r) for r in grid),
            "cell_accuracy": round(_cell_score(grid, _grids(text)), 3),
            "row_integrity": round(_row_integrity(grid, text), 3),
        }
    cells = sum(v["cells"] for v in out.values())
    out["all"] = {
        "cells": cells,
        "cell_accuracy": round(sum(v["cell_accuracy"] * v["cells"] for v in out.values()) / cells, 3),
        "row_integrity": round(sum(v["row_integrity"] for v in out.values()) / len(out), 3),
    }
    return out


def reading_order(truth: dict) -> dict:
    out: dict[str, object] = {}
    for name, order in truth["reading_order"].items():
        text = _norm(_doc_text(name, (FIXTURES / name).read_bytes()))
        pos = [text.find(_norm(line)) for line in order]
        pairs = [(a, b) for a, b in itertools.pairwise(pos) if a >= 0 and b >= 0]
        lines = [_norm(line) for line in order]
        # a line directly followed by the next line of the truth (a space at most between them)
        follows = [
            a >= 0 and b >= 0 and 0 <= b - (a + len(line)) <= 1 for a, b, line in zip(pos, pos[1:], lines, strict=False)
        ]
        found = [p for p in pos if p >= 0]
        all_pairs = [(i, j) for i in range(len(found)) for j in range(i + 1, len(found))]
        out[name] = {
            "lines": len(order),
            "lines_found_whole": round(len(found) / len(order), 3),
            "next_line_follows_directly": round(sum(follows) / max(1, len(follows)), 3),
            "all_line_pairs_in_order": round(sum(found[i] < found[j] for i, j in all_pairs) / len(all_pairs), 3),
            "consecutive_pairs_in_order": round(sum(a < b for a, b in pairs) / max(1, len(order) - 1), 3),
        }
    paper = SHARED_DOCS / "multi-column-2p.pdf"
    if paper.is_file():
        text = _norm(_doc_text(paper.name, paper.read_bytes()))
        out["multi-column-2p.pdf (sentences across lines of a column, found whole)"] = {
            p: p in text for p in PAPER_PHRASES
        }
    return out


def ingestion_time(repeats: int) -> dict:
    from lectern.domain.chunking import ChunkingConfig, chunk_document, whitespace_tokens
    from lectern.domain.errors import ExtractionError
    from lectern.domain.extraction import extract

    files = sorted(p for p in SHARED_DOCS.iterdir() if p.is_file() and p.name != "README.md")
    per_file: dict[str, float] = {}
    for path in files:
        data = path.read_bytes()
        best = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                doc = extract(data, path.name)
                chunk_document(
                    doc,
                    tenant_id="t",
                    document_id="d",
                    filename=path.name,
                    config=ChunkingConfig(),
                    count=whitespace_tokens,
                )
            except ExtractionError:
                pass
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        per_file[path.name] = round(best or 0.0, 3)
    return {
        "what": f"extraction + chunking of every file of shared/data/docs ({len(files)}), best of {repeats}, "
        "one process, OCR as configured by default",
        "total_s": round(sum(per_file.values()), 2),
        "pdf_total_s": round(sum(v for k, v in per_file.items() if k.endswith(".pdf")), 2),
        "per_file_s": per_file,
    }


def answers(llm: str, max_questions: int | None) -> dict:
    from lectern.evaluation.answers import run_answers_eval
    from lectern.settings import LocalSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = LocalSettings.from_env(data_dir=Path(tmp), llm=llm)
        report = run_answers_eval(settings, FIXTURES / "devset.json", FIXTURES, max_questions=max_questions)
    return {
        "model": report.model,
        "questions": len(report.questions),
        "summary": report.summary,
        "ingestion": report.ingestion,
        "per_question": [
            {"id": q.id, "contains": q.contains, "hit_at_k": q.hit_at_k, "answer": q.answer[:200]}
            for q in report.questions
        ],
    }


def libraries(truth: dict) -> dict:
    """Both table finders on the same pages: cells found and seconds per page."""
    pages = [
        (FIXTURES / "tables-merged.pdf", 1, "tables-merged.pdf#1"),
        (FIXTURES / "tables-merged.pdf", 2, "tables-merged.pdf#2"),
        (SHARED_DOCS / "embedded-images-tables.pdf", 1, None),
        (SHARED_DOCS / "multi-column-2p.pdf", 1, None),
        (SHARED_DOCS / "multi-column-2p.pdf", 2, None),
    ]
    from lectern.domain.extraction.text import _table_block

    def score(key: str | None, rows_list: list) -> float | None:
        if key is None:
            return None
        grids = [_grids(b.text) for rows in rows_list if (b := _table_block(rows)) is not None]
        return round(max((_cell_score(truth["tables"][key], g) for g in grids), default=0.0), 3)

    out: dict[str, object] = {}
    import pdfplumber

    res = []
    for path, page, key in pages:
        with pdfplumber.open(path) as pdf:
            t0 = time.perf_counter()
            found = [t.extract() for t in pdf.pages[page - 1].find_tables()]
            dt = time.perf_counter() - t0
        res.append(
            {
                "page": f"{path.name}#{page}",
                "tables": len(found),
                "seconds": round(dt, 3),
                "cell_accuracy": score(key, found),
            }
        )
    out["pdfplumber " + pdfplumber.__version__ + " (MIT)"] = res
    try:
        import pymupdf
    except ImportError:
        out["pymupdf"] = "not importable here (not a dependency: AGPL)"
        return out
    res = []
    for path, page, key in pages:
        doc = pymupdf.open(path)
        t0 = time.perf_counter()
        found = [t.extract() for t in doc[page - 1].find_tables().tables]
        dt = time.perf_counter() - t0
        res.append(
            {
                "page": f"{path.name}#{page}",
                "tables": len(found),
                "seconds": round(dt, 3),
                "cell_accuracy": score(key, found),
            }
        )
    out["pymupdf " + pymupdf.VersionBind + " (AGPL-3.0)"] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/tables.json")
    ap.add_argument("--llm", default="fake")
    ap.add_argument("--max-questions", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--libraries", action="store_true")
    ap.add_argument("--skip-answers", action="store_true")
    ap.add_argument("--skip-ingestion", action="store_true")
    args = ap.parse_args()
    import lectern

    truth = json.loads((FIXTURES / "truth.json").read_text())
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    run: dict[str, object] = {
        "command": f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} python scripts/bench_tables.py "
        + " ".join(sys.argv[1:]),
        "lectern": str(Path(lectern.__file__).parents[1]),
        "tables": tables_quality(truth),
        "reading_order": reading_order(truth),
    }
    if not args.skip_answers:
        run[f"answers_{args.llm}"] = answers(args.llm, args.max_questions)
    if not args.skip_ingestion:
        run["ingestion"] = ingestion_time(args.repeats)
    if args.libraries:
        run["libraries"] = libraries(truth)
    run["loadavg_start_end"] = [load_start, Path("/proc/loadavg").read_text().split()[:3]]
    run["machine"] = f"{os.cpu_count()} cores, shared with other agents' runs"
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result["data"] = "evaluation set written by us: tests/fixtures/tables (scripts/make_table_fixtures.py)"
    result[args.label] = run
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: run[k] for k in ("tables", "reading_order")}, indent=1))


if __name__ == "__main__":
    main()
