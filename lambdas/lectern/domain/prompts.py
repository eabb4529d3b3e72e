"""Prompt templates are files with a version id (the file name); every answer records the version used."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from lectern.domain.models import ChatMessage

_SECTION_RE = re.compile(r"^\[(system|user)\]\s*$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str

    def render(self, *, context: str, question: str) -> list[ChatMessage]:
        # Plain replacement, not str.format: passages and questions may contain braces.
        user = self.user.replace("{{context}}", context).replace("{{question}}", question)
        return [ChatMessage("system", self.system), ChatMessage("user", user)]


def parse_template(version: str, text: str) -> PromptTemplate:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if current is None and (line.startswith("#") or not line.strip()):
            continue
        m = _SECTION_RE.match(line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if set(sections) != {"system", "user"}:
        raise ValueError(f"prompt {version!r} needs exactly a [system] and a [user] section")
    user = "\n".join(sections["user"]).strip()
    if "{{context}}" not in user or "{{question}}" not in user:
        raise ValueError(f"prompt {version!r}: the [user] section must contain {{{{context}}}} and {{{{question}}}}")
    return PromptTemplate(version, "\n".join(sections["system"]).strip(), user)


def load_template(version: str) -> PromptTemplate:
    if not _ID_RE.match(version):
        raise ValueError(f"invalid prompt version {version!r}")
    path = resources.files("lectern.prompts").joinpath(f"{version}.txt")
    if not path.is_file():
        raise ValueError(f"unknown prompt version {version!r}")
    return parse_template(version, path.read_text(encoding="utf-8"))
