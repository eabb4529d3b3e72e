"""Prompt templates are files with a version id (the file name); every answer records the version used.

A deployment may split traffic between two versions (`PromptSplit`) by a stable hash of the user id.

Spotlighting (answer-v4): a template that contains `{{marker}}` gets a fresh random marker per request
(`new_marker`); `lectern.domain.answering.format_context` encloses each retrieved passage in
`<data-MARKER>` … `</data-MARKER>` and the system prompt tells the model that text inside is untrusted data
whose instructions it never follows. A document's author cannot know the marker, and a passage that contains
it or a data tag anyway has them neutralised (`escape_passage`), so no passage can close its own delimiter."""

from __future__ import annotations

import hashlib
import re
import secrets
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

    @property
    def spotlight(self) -> bool:
        """Whether passages enter this prompt as marked, untrusted data (the template uses {{marker}})."""
        return "{{marker}}" in self.system or "{{marker}}" in self.user

    def new_marker(self) -> str | None:
        """A fresh random marker for one request (None when the template does not spotlight)."""
        return secrets.token_hex(8) if self.spotlight else None

    def render(self, *, context: str, question: str, marker: str | None = None) -> list[ChatMessage]:
        # Plain replacement, not str.format: passages and questions may contain braces. The marker goes in last,
        # and only into the template's own text (a question containing "{{marker}}" stays as it is).
        if self.spotlight and not marker:
            raise ValueError(f"prompt {self.version!r} marks passages: render it with a marker")
        system, user = self.system, self.user
        if marker:
            system, user = system.replace("{{marker}}", marker), user.replace("{{marker}}", marker)
        user = user.replace("{{context}}", context).replace("{{question}}", question)
        return [ChatMessage("system", system), ChatMessage("user", user)]


_DATA_TAG = re.compile(r"<\s*/?\s*data\b", re.I)


def escape_passage(text: str, marker: str) -> str:
    """A passage as it goes between its data tags: the request's marker and anything shaped like a data tag
    are neutralised, so the passage can neither close its delimiter nor open a fake one."""
    text = re.sub(re.escape(marker), "[marker removed]", text, flags=re.I)
    return _DATA_TAG.sub(lambda m: "\u2039" + m.group()[1:], text)  # "<" -> "‹"


def mark_passage(n: int, header: str, text: str, marker: str) -> str:
    return f"[{n}] {escape_passage(header, marker)}\n<data-{marker}>\n{escape_passage(text, marker)}\n</data-{marker}>"


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


def bucket(experiment: str, user_id: str) -> float:
    """A stable number in [0, 1) for (experiment, user): the same user lands in the same arm on every request,
    every process and every deployment (sha256, not Python's salted hash())."""
    digest = hashlib.sha256(f"{experiment}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class PromptSplit:
    """Version A for everyone, or A/B: a `b_share` fraction of users (by a stable hash of the user id) get B.

    The experiment name is the pair of versions, so starting a new experiment reshuffles users. Requests with
    no user id always get A (an anonymous caller must not flip between versions).
    """

    a: PromptTemplate
    b: PromptTemplate | None = None
    b_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.b_share <= 1.0:
            raise ValueError("prompt_b_share must be between 0 and 1")
        if self.b is not None and self.b.version == self.a.version:
            raise ValueError("prompt_version_b must differ from prompt_version")

    @property
    def experiment(self) -> str:
        return f"{self.a.version}|{self.b.version}" if self.b else self.a.version

    def choose(self, user_id: str | None) -> PromptTemplate:
        if self.b is None or not user_id or self.b_share <= 0.0:
            return self.a
        return self.b if bucket(self.experiment, user_id) < self.b_share else self.a

    @classmethod
    def load(cls, version: str, version_b: str | None = None, b_share: float = 0.0) -> PromptSplit:
        return cls(load_template(version), load_template(version_b) if version_b else None, b_share)
