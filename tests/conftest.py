"""Shared fixtures. Servers started by tests listen on 127.0.0.1 only."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LECTERN_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED}; set LECTERN_SHARED_DIR")
    return SHARED


@pytest.fixture(scope="session")
def embedder():
    from lectern.adapters.local.onnx_embedder import OnnxMiniLMEmbedder

    return OnnxMiniLMEmbedder(threads=2)


class RunningLectern:
    def __init__(self, lectern, server) -> None:
        self.lectern = lectern
        self.server = server
        self.url = server.url


@pytest.fixture
def local_lectern(tmp_path: Path, embedder):
    """A full local Lectern with the extractive test model (no language model), not served over HTTP."""
    from lectern.adapters.local.extractive_model import ExtractiveChatModel
    from lectern.local.container import build_local
    from lectern.settings import LocalSettings

    # auth "none": these tests exercise everything but sign-in (tests/integration/test_auth_limits.py does that)
    settings = LocalSettings.from_env({}, data_dir=tmp_path / "data", llm="fake", port=0, auth="none")
    lectern = build_local(settings, embedder=embedder, model=ExtractiveChatModel())
    yield lectern
    lectern.close()


@pytest.fixture
def served(local_lectern) -> Iterator[RunningLectern]:
    """The same, served on an ephemeral loopback port by the real local HTTP server."""
    from lectern.local.container import frontend_dir
    from lectern.local.server import LocalServer

    server = LocalServer("127.0.0.1", 0, local_lectern.make_app, frontend_dir(), 60 * 1024 * 1024)
    local_lectern.signer.base_url = server.url
    local_lectern.worker.run_forever()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield RunningLectern(local_lectern, server)
    server.shutdown()
    server.server_close()
