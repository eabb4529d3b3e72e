"""OCR character error rate and pages per second on tests/fixtures/ocr, written to docs/results/ocr.json.

Usage: PYTHONPATH=lambdas .venv/bin/python scripts/bench_ocr.py [--out docs/results/ocr.json] [--dpi 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from lectern.adapters.local.tesseract_ocr import TesseractOcr
from lectern.domain.extraction import ExtractionLimits
from lectern.evaluation.ocr import evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/ocr.json")
    ap.add_argument("--dpi", type=int, nargs="*", default=[200])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    runs = []
    for dpi in args.dpi:
        limits = replace(ExtractionLimits(), ocr=TesseractOcr(), ocr_dpi=dpi)
        runs.append(evaluate(ROOT / "tests/fixtures/ocr", limits, args.repeats))
    result = {
        "command": "PYTHONPATH=lambdas .venv/bin/python " + " ".join(["scripts/bench_ocr.py", *sys.argv[1:]]),
        "tesseract": version,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({r["dpi"]: [r["cer_ocr_pages"], r["ocr_pages_per_second"]] for r in runs}))


if __name__ == "__main__":
    main()
