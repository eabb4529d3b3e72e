"""The local OCR engine: Debian's `tesseract` program (tesseract-ocr + tesseract-ocr-LANG, installed by
`make venv`'s `ocr-deps`), run once per page image with a time limit.

The page goes in on stdin as PNG, words come out as Tesseract's TSV (text, box, confidence, block/paragraph/
line numbers). A page that takes longer than `page_timeout_s` is killed; a crash (a signal), a failing exit or a
missing program is an `OcrFailure` whose reason is shown to the user. `OMP_THREAD_LIMIT=1`: the ingestion
workers already run one document per core, and Tesseract's own threads would only compete with them.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
from dataclasses import dataclass

from lectern.domain.ocr import OcrFailure, OcrWord

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with `make venv` (Debian packages tesseract-ocr and tesseract-ocr-eng)"
MIN_CONFIDENCE = 10.0  # words below this are speckles read as letters


@dataclass(frozen=True)
class TesseractOcr:
    languages: str = "eng"
    page_timeout_s: float = 60.0
    binary: str = "tesseract"
    psm: int = 3  # automatic page segmentation (no orientation detection)
    name: str = "tesseract"

    def recognize(self, png: bytes) -> list[OcrWord]:
        cmd = [self.binary, "stdin", "stdout", "-l", self.languages, "--psm", str(self.psm), "tsv"]
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            proc = subprocess.run(  # noqa: S603 - a fixed program, arguments from settings, input on stdin
                cmd, input=png, capture_output=True, timeout=self.page_timeout_s, env=env, check=False
            )
        except FileNotFoundError as exc:
            raise OcrFailure(f"the OCR program ({self.binary}) is not installed; {INSTALL_HINT}.") from exc
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
            raise OcrFailure(
                f"the OCR engine took longer than {self.page_timeout_s:g} s on the page and was stopped."
            ) from exc
        if proc.returncode < 0:
            sig = -proc.returncode
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            raise OcrFailure(f"the OCR engine crashed ({name}); the page image may be damaged.")
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            log.warning("tesseract exited %d: %s", proc.returncode, " / ".join(detail[-3:]))
            if any("Failed loading language" in d for d in detail):
                raise OcrFailure(f"the OCR language data '{self.languages}' is not installed; {INSTALL_HINT}.")
            raise OcrFailure(f"the OCR engine failed (exit code {proc.returncode}).")
        return parse_tsv(proc.stdout.decode("utf-8", "replace"))


def parse_tsv(tsv: str) -> list[OcrWord]:
    """Tesseract's TSV (level 5 rows are words) -> words in its reading order."""
    words = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        try:
            if row.get("level") != "5" or not (row.get("text") or "").strip():
                continue
            conf = float(row["conf"])
            if conf < MIN_CONFIDENCE:
                continue
            words.append(
                OcrWord(
                    text=row["text"].strip(),
                    left=int(row["left"]),
                    top=int(row["top"]),
                    width=int(row["width"]),
                    height=int(row["height"]),
                    confidence=conf,
                    line=(int(row["block_num"]), int(row["par_num"]), int(row["line_num"])),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return words
