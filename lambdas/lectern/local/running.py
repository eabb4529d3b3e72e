"""A running `lectern up`, found by the CLI through its data directory.

`lectern up` writes `run/up.json` in its data dir (mode 0600): its loopback URL, its process id and an API key
made for this run (tenant: the configured one), revoked and the file removed when it stops. `lectern ask` on the
same data dir reads it and, when that process is alive and answers /v1/health, sends the question to the running
server (its model is already loaded) instead of starting a model of its own. The key gives nothing the reader of
the data dir does not already have: it can open lectern.db and the documents themselves.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lectern.domain.auth import hash_key, new_key

RUN_FILE = Path("run") / "up.json"
RUN_KEY_NAME = "lectern ask (this lectern up run)"


@dataclass(frozen=True)
class RunningUp:
    url: str
    pid: int
    key: str | None  # None when the server runs with auth=none


class Announcement:
    """What `lectern up` leaves in its data dir while it runs; `withdraw` removes it (and revokes the key)."""

    def __init__(self, data_dir: Path, url: str, keys: Any | None, tenant_id: str) -> None:
        self.path = data_dir / RUN_FILE
        self.keys = keys
        self.key_id: str | None = None
        key = None
        if keys is not None:
            key = new_key()
            self.key_id = keys.add(hash_key(key), tenant_id, RUN_KEY_NAME).key_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"url": url, "pid": os.getpid(), "key": key}, f)
        os.replace(tmp, self.path)

    def withdraw(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("pid") == os.getpid():  # not a newer run's file
                self.path.unlink()
        except (OSError, ValueError):
            pass
        if self.keys is not None and self.key_id is not None:
            self.keys.revoke(self.key_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running(data_dir: Path, timeout_s: float = 2.0) -> tuple[RunningUp | None, str]:
    """The `lectern up` serving this data dir, or None, and in both cases a sentence saying why."""
    path = data_dir / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = RunningUp(str(data["url"]), int(data["pid"]), data.get("key"))
    except FileNotFoundError:
        return None, "no `lectern up` is serving this data dir"
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{path} is unreadable"
    if not found.url.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:")):
        return None, f"the `lectern up` of this data dir listens on {found.url}, not on loopback"
    if not _alive(found.pid):
        return None, f"the `lectern up` recorded in {path} (pid {found.pid}) is no longer running"
    try:
        with urllib.request.urlopen(f"{found.url}/v1/health", timeout=timeout_s) as resp:  # noqa: S310 - loopback
            resp.read()
    except (urllib.error.URLError, OSError) as exc:
        return None, f"the `lectern up` at {found.url} does not answer ({exc})"
    return found, f"using the running `lectern up` at {found.url} (pid {found.pid})"


def stream_query(
    running: RunningUp,
    question: str,
    top_k: int | None = None,
    timeout_s: float = 600.0,
    conversation_id: str | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """POST /v1/query as server-sent events: (event, data) pairs as they come."""
    body: dict[str, Any] = {"question": question}
    if top_k is not None:
        body["top_k"] = top_k
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if running.key:
        headers["Authorization"] = f"Bearer {running.key}"
    req = urllib.request.Request(  # noqa: S310 - loopback http only (find_running checked the URL)
        f"{running.url}/v1/query", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - loopback only (checked)
        event, lines = "message", list[str]()
        for raw in resp:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if lines:
                    yield event, json.loads("\n".join(lines))
                event, lines = "message", list[str]()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                lines.append(line[5:].lstrip())
        if lines:
            yield event, json.loads("\n".join(lines))


def recent_conversation(running: RunningUp, timeout_s: float = 10.0) -> str | None:
    """The id of the caller's most recent conversation on the running server (GET /v1/conversations), or None."""
    headers = {"Accept": "application/json"}
    if running.key:
        headers["Authorization"] = f"Bearer {running.key}"
    req = urllib.request.Request(f"{running.url}/v1/conversations", headers=headers)  # noqa: S310 - loopback only
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - loopback only (checked)
        found = json.loads(resp.read().decode("utf-8")).get("conversations") or []
    return str(found[0]["conversation_id"]) if found else None
