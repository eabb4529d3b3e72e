"""Calibration and held-out text for quantization: the user's own chunks, a file, or the bundled default.

GPTQ and AWQ fit the 4-bit weights to the activations the calibration text produces, so the closer it is to
what the endpoint will see the better: Lectern's prompts are a system instruction, numbered passages from the
user's documents and a question, rendered with the model's chat template. `render` builds exactly that (with
`lectern.domain.answering.format_context` and a Lectern prompt template) when the tokenizer has a chat
template, and falls back to the plain passage text otherwise. The perplexity check uses plain held-out
passages.

The bundled set (data/calibration_default.jsonl) is 40 short passages written for this repository in the kinds
of documents Lectern is used for (policies, manuals, filings, contracts, papers, minutes; a few in French,
German and Spanish), each with a question. It is a fallback: calibrating on a few hundred chunks of the user's
own index is better.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_QUESTION = "What do these passages say?"
BUNDLED = "bundled"


@dataclass(frozen=True)
class Passage:
    text: str
    question: str = ""
    source: str = ""  # file name (and page) shown in the rendered context


def bundled_passages() -> list[Passage]:
    data = resources.files("sagemaker_endpoints").joinpath("data/calibration_default.jsonl")
    return _jsonl_passages(data.read_text(encoding="utf-8"), "calibration_default.jsonl")


def _jsonl_passages(text: str, name: str) -> list[Passage]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{name} line {n}: not JSON ({exc})") from None
        if not isinstance(row, dict) or not str(row.get("text", "")).strip():
            raise ValueError(f'{name} line {n}: expected an object with a non-empty "text"')
        out.append(
            Passage(
                str(row["text"]).strip(), str(row.get("question", "")).strip(), str(row.get("source", name))
            )
        )
    return out


def file_passages(path: Path) -> list[Passage]:
    """A .jsonl file ({"text", "question"?, "source"?} per line), a .txt/.md file (passages separated by blank
    lines), or a folder of such files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".txt", ".md"))
        return [p for f in files for p in file_passages(f)]
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return _jsonl_passages(text, path.name)
    blocks = [" ".join(b.split()) for b in text.split("\n\n")]
    return [Passage(b, source=path.name) for b in blocks if len(b) >= 40]


def index_passages(db_path: Path, *, tenant_id: str | None = None, limit: int = 2000) -> list[Passage]:
    """Chunks of a local Lectern index (DATA_DIR/lectern.db), opened read-only, spread over all documents."""
    db_path = Path(db_path)
    if db_path.is_dir():
        db_path = db_path / "lectern.db"
    if not db_path.is_file():
        raise FileNotFoundError(f"no Lectern index at {db_path}")
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        sql = "SELECT filename, page, heading, text FROM chunks"
        args: list[Any] = []
        if tenant_id:
            sql += " WHERE tenant_id = ?"
            args.append(tenant_id)
        # ordinal-major order takes the first chunks of every document before the second ones
        sql += " ORDER BY ordinal, document_id LIMIT ?"
        rows = conn.execute(sql, [*args, limit]).fetchall()
    finally:
        conn.close()
    return [
        Passage(f"{heading}\n{text}".strip() if heading else text, source=f"{filename}, page {page}")
        for filename, page, heading, text in rows
        if text and text.strip()
    ]


def load_passages(spec: str) -> list[Passage]:
    """`bundled`, `index:PATH` (a Lectern data dir or its lectern.db), or a file or folder path."""
    if spec == BUNDLED:
        return bundled_passages()
    if spec.startswith("index:"):
        return index_passages(Path(spec[len("index:") :]))
    return file_passages(Path(spec))


def split(
    passages: Sequence[Passage], heldout_fraction: float, seed: int
) -> tuple[list[Passage], list[Passage]]:
    """A deterministic shuffle, then at least one held-out passage and at least one for calibration."""
    if len(passages) < 2:
        raise ValueError("need at least two passages (one to calibrate on, one held out)")
    if not 0 < heldout_fraction < 1:
        raise ValueError("heldout_fraction must be between 0 and 1")
    shuffled = list(passages)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 - a reproducible split, not a secret
    n_heldout = min(len(shuffled) - 1, max(1, round(len(shuffled) * heldout_fraction)))
    return shuffled[n_heldout:], shuffled[:n_heldout]


def _chat_messages(group: Sequence[Passage], prompt_version: str) -> list[dict[str, str]]:
    from lectern.domain.answering import format_context
    from lectern.domain.models import Chunk, ScoredChunk
    from lectern.domain.prompts import load_template

    hits = [
        ScoredChunk(Chunk(f"c{i}", "t", "d", p.source or "document", 1, i, p.text), 1.0)
        for i, p in enumerate(group)
    ]
    question = next((p.question for p in group if p.question), DEFAULT_QUESTION)
    template = load_template(prompt_version)
    # a spotlighting prompt (answer-v4) marks its passages; a marker from the question keeps calibration text
    # reproducible (served requests get a random one per request)
    marker = hashlib.sha256(question.encode()).hexdigest()[:16] if template.spotlight else None
    messages = template.render(context=format_context(hits, marker), question=question, marker=marker)
    return [{"role": m.role, "content": m.content} for m in messages]


def render(
    passages: Sequence[Passage],
    tokenizer: Any,
    *,
    mode: str = "auto",
    prompt_version: str = "answer-v2",
    passages_per_prompt: int = 3,
    num_samples: int | None = None,
) -> tuple[list[str], str]:
    """Calibration texts and the mode used ('chat' or 'plain').

    'chat' groups `passages_per_prompt` passages into one Lectern prompt, rotating through the passages so
    that each prompt starts from a different passage. One sample per passage at most.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "auto":
        mode = "chat" if has_template else "plain"
    if mode == "chat" and not has_template:
        raise ValueError("the tokenizer has no chat template; use --render plain")
    if mode not in ("chat", "plain"):
        raise ValueError(f"unknown render mode {mode!r}")
    n = min(num_samples or len(passages), len(passages))
    if mode == "plain":
        return [p.text for p in passages[:n]], mode
    k = max(1, min(passages_per_prompt, len(passages)))
    texts = []
    for i in range(n):
        group = [passages[(i + j) % len(passages)] for j in range(k)]
        messages = _chat_messages(group, prompt_version)
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return texts, mode
