"""A file of model drafts per prompt, so evaluation reruns and grounding-threshold sweeps do not regenerate.

The local model needs 30-60 s per answer on a loaded 2-core machine; the grounding check is deterministic given
the draft and the passages. `RecordingChatModel` wraps a chat model: a prompt it has seen (same model id, same
messages, the per-request spotlighting marker normalised) is answered from the file, any other one is generated
and appended (one JSON line each, so an interrupted run keeps what it had). For evaluation only: the service
never replays a stored draft.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from lectern.domain.models import ChatMessage, Generation, Usage
from lectern.domain.ports import ChatModel

_MARKER = re.compile(r"<data-([0-9a-f]{16})>")


def prompt_key(model_id: str, messages: Sequence[ChatMessage]) -> str:
    """A stable key for one prompt: the random spotlighting marker of the request is replaced by a constant."""
    text = "\n\x00".join(f"{m.role}\x01{m.content}" for m in messages)
    m = _MARKER.search(text)
    if m:
        text = text.replace(m.group(1), "MARKER")
    return hashlib.sha256(f"{model_id}\x02{text}".encode()).hexdigest()


class RecordingChatModel:
    def __init__(self, model: ChatModel, path: Path) -> None:
        self.model = model
        self.model_id = model.model_id
        self.path = path
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._drafts: dict[str, dict[str, object]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._drafts[row["key"]] = row

    def __len__(self) -> int:
        return len(self._drafts)

    def _stored(self, messages: Sequence[ChatMessage]) -> tuple[str, Generation | None]:
        key = prompt_key(self.model_id, messages)
        row = self._drafts.get(key)
        if row is None:
            return key, None
        self.hits += 1
        usage = Usage(int(row.get("input_tokens", 0)), int(row.get("output_tokens", 0)))  # type: ignore[call-overload]
        return key, Generation(str(row["text"]), str(row.get("model", self.model_id)), usage)

    def _store(self, key: str, messages: Sequence[ChatMessage], g: Generation) -> None:
        self.misses += 1
        question = messages[-1].content[-300:] if messages else ""
        row = {
            "key": key,
            "model": g.model,
            "text": g.text,
            "input_tokens": g.usage.input_tokens,
            "output_tokens": g.usage.output_tokens,
            "prompt_tail": question,
        }
        with self._lock:
            self._drafts[key] = row
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        key, stored = self._stored(messages)
        if stored is not None:
            return stored
        g = self.model.generate(messages, max_tokens=max_tokens, temperature=temperature)
        self._store(key, messages, g)
        return g

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        key, stored = self._stored(messages)
        if stored is not None:
            yield stored.text
            yield stored
            return
        parts: list[str] = []
        final: Generation | None = None
        for item in self.model.stream(messages, max_tokens=max_tokens, temperature=temperature):
            if isinstance(item, Generation):
                final = item
            else:
                parts.append(item)
            yield item
        g = final if final is not None and final.text else Generation("".join(parts), self.model_id, Usage())
        if final is not None and not final.text:
            g = Generation("".join(parts), final.model, final.usage, final.finish_reason)
        self._store(key, messages, g)

    def __getattr__(self, name: str) -> object:  # warm, check_available, close of the wrapped model
        return getattr(self.model, name)
