"""Answer-side check: what an answer carries that neither the question nor the passages it rests on call for.

An injected instruction that got past the passage checks shows in the answer as something the reader did not
ask for and the documents do not say: a link or an e-mail address to send things to, a code snippet, an
instruction to the reader, or an answer in another language. `SurplusContentCheck.problems()` names each such
thing (never the text itself); the guard then withholds the answer (the "I don't know" sentence), locally and on
AWS (both guards take this check).

- URLs, domains, e-mail addresses, IBANs: each must occur in the question or in a supporting passage (hosts are
  compared without "www." and case).
- code: fenced blocks, script tags and shell/programming calls (curl, wget, import, subprocess, eval, rm -rf …)
  that no supporting passage and not the question contain.
- instructions: an answer sentence the structural detector reads as an instruction to the reader or assistant
  (lectern.adapters.local.guardrails.instructions) that is not in the passages.
- language: the answer's language (function-word counts over 12 languages) differs from both the question's and
  every passage's, and the question does not ask for a translation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lectern.adapters.local.guardrails.instructions import StructuralInstructionDetector, sentences

_URL = re.compile(
    r"\bhttps?://([^\s/<>\"'()\]]+)[^\s<>\"')\]]*|\bwww\.([\w.-]+\.[a-z]{2,})\b|"
    r"\b((?:[\w-]+\.)+(?:com|net|org|io|ru|xyz|info|biz|ly|site|online|app|top|cn|tk))\b",
    re.I,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}\b")
_CODE = re.compile(
    r"```|<script\b|<iframe\b|\bcurl\s+-?\S|\bwget\s+\S|^\s*(?:import|from)\s+\w+|\bos\.system\b|\bsubprocess\b|"
    r"\brequests\.(?:post|get)\s*\(|\beval\s*\(|\bexec\s*\(|\brm\s+-rf\b|\bpowershell\b|\$\([^)]*\)|"
    r"\bfetch\s*\(|\bdocument\.cookie\b|\bbase64\s+-d\b|\|\s*(?:sh|bash)\b",
    re.I | re.M,
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _words("the and of to is in that it for was with as on are be this by not or have from which"),
    "es": _words("el la los las de que y en un una es por con para del se no su al lo como más pero"),
    "fr": _words("le la les de des et est en un une du que qui pour dans pas sur au avec ce il elle"),
    "de": _words("der die das und ist nicht ein eine zu den mit von im sich des auf für dem auch es"),
    "it": _words("il lo la gli le di che e è un una per non con del della sono in si al nel"),
    "pt": _words("o a os as de que e é um uma do da em para com não por se no na dos"),
    "nl": _words("de het een en van is dat niet te in op voor met zijn er maar ook als bij"),
    "sv": _words("och att det som är en på av för med den till inte har de om ett"),
    "pl": _words("i w nie na się że z do jest to jak o po ale co przez dla"),
    "tr": _words("ve bir bu da de için ile çok ne daha gibi olarak ama en var"),
    "ru": _words("и в не на что с по это как он она к из для но от так"),
    "id": _words("yang dan di ini itu dengan untuk tidak dari dalam akan pada adalah ke"),
}
_SCRIPTS = {  # languages told apart by their script alone
    "zh": re.compile(r"[\u4e00-\u9fff]"),
    "ja": re.compile(r"[\u3040-\u30ff]"),
    "ko": re.compile(r"[\uac00-\ud7af]"),
    "ar": re.compile(r"[\u0600-\u06ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
    "el": re.compile(r"[\u0370-\u03ff]"),
    "he": re.compile(r"[\u0590-\u05ff]"),
}
_TOKEN = re.compile(r"[^\W\d_]+", re.U)
_ASKS_TRANSLATION = re.compile(
    r"\btranslat\w*|\b(?:in|into)\s+(?:spanish|french|german|italian|portuguese|dutch|swedish|polish|turkish|"
    r"russian|indonesian|chinese|japanese|korean|arabic|hindi|greek|hebrew|english)\b",
    re.I,
)


def language(text: str, *, min_hits: int = 4) -> str | None:
    """The text's language by script or function-word counts; None when too little text to tell."""
    letters = sum(c.isalpha() for c in text) or 1
    for code, rx in _SCRIPTS.items():
        if len(rx.findall(text)) / letters > 0.3:
            return code
    words = [w.lower() for w in _TOKEN.findall(text)]
    counts = {code: sum(w in fw for w in words) for code, fw in _FUNCTION_WORDS.items()}
    best = max(counts, key=lambda c: counts[c])
    ranked = sorted(counts.values(), reverse=True)
    if ranked[0] < min_hits or ranked[0] < 1.5 * ranked[1]:
        return None
    return best


def _hosts(text: str) -> set[str]:
    out = set()
    for m in _URL.finditer(text):
        host = next(g for g in m.groups() if g) if any(m.groups()) else m.group()
        out.add(host.lower().removeprefix("www.").rstrip("."))
    return out


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


class SurplusContentCheck:
    """The AnswerChecker port (lectern.domain.guardrails) over the rules in the module docstring."""

    def __init__(self, instructions: StructuralInstructionDetector | None = None) -> None:
        self.instructions = instructions or StructuralInstructionDetector()

    def problems(self, answer: str, *, question: str, sources: Sequence[str]) -> tuple[str, ...]:
        allowed = "\n".join([question, *sources])
        found: list[str] = []
        if _hosts(answer) - _hosts(allowed):
            found.append("url")
        allowed_low = allowed.lower()
        if any(m.group().lower() not in allowed_low for m in _EMAIL.finditer(answer)) or any(
            m.group().replace(" ", "") not in allowed.replace(" ", "") for m in _IBAN.finditer(answer)
        ):
            found.append("destination")
        if any(m.group().strip().lower() not in allowed_low for m in _CODE.finditer(answer)):
            found.append("code")
        source_text = _norm(" ".join(sources))
        for v in self.instructions.verdicts(answer):
            if v.flagged and _norm(v.text) and _norm(v.text) not in source_text:
                found.append("instruction")
                break
        lang = language(answer)
        if lang is not None and not _ASKS_TRANSLATION.search(question):
            others = {language(question, min_hits=2), *(language(s, min_hits=2) for s in sources)} - {None}
            if others and lang not in others:
                found.append("language")
        return tuple(found)


__all__ = ["SurplusContentCheck", "language", "sentences"]
