"""The local `BlobStore`: files under the data directory, written atomically (tmp + fsync + rename).

Keys are made by Lectern from ids only (`{tenant}/{document_id}/original`, its page images
`{tenant}/{document_id}/pages/{n}.png`); an uploaded filename never becomes a
path. Each key segment is checked against a strict pattern anyway, so no key can escape the root.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not parts or any(not _SEGMENT.match(p) or p in {".", ".."} for p in parts):
            raise ValueError(f"invalid blob key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    def delete(self, key: str) -> None:
        """Deleting a document's original also deletes its page images (`{tenant}/{doc}/pages/`), as on AWS."""
        path = self._path(key)
        if path.name == "original":
            pages = path.parent / "pages"
            for image in pages.glob("*.png") if pages.is_dir() else ():
                image.unlink(missing_ok=True)
            if pages.is_dir():
                with contextlib.suppress(OSError):
                    pages.rmdir()
        path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
