"""Guardrail policy, defined once for both modes, and the guard that applies it with pluggable detectors.

The policy has the shape of an Amazon Bedrock guardrail (the CDK app's `cdk/constructs/models.py` builds the
AWS one): sensitive information (PII entity -> BLOCK | ANONYMIZE | NONE, masked as `{EMAIL}` like Bedrock
does), content filters with a strength per category (PROMPT_ATTACK among them), denied topics (name,
definition, examples), blocked words, and contextual grounding (a threshold between 0 and 1). Locally
`PolicyGuard` enforces it with the detectors in `lectern.adapters.local.guardrails`; on AWS Bedrock enforces
it and `lectern.adapters.aws.bedrock_guard` adds the passage checks (see there).

What the guard does with each part of an answer:
- the question: a prompt attack, a denied topic or a blocked word blocks it (400 `guardrail_blocked`); PII is
  masked, or blocks the question when its entity's action is BLOCK;
- the retrieved passages (indirect injection through an uploaded document): a passage that reads as an
  injection is dropped (or its instructions redacted) and the question goes on with the others; PII in
  passages is masked, so a BLOCK entity (an SSN in a document) never reaches the model;
- the answer: PII is masked (a BLOCK entity withholds it), and an answer whose sentences are mostly
  unsupported by the passages it cites is replaced by the "I don't know" sentence (Bedrock's grounding filter
  blocks instead; we abstain because the question was legitimate and the abstention is the honest answer).

Messages never quote the blocked text, the matched pattern or the topic's name; `policies` carries Bedrock's
category names (`contentPolicy` for prompt attacks, `sensitiveInformationPolicy`, `topicPolicy`, `wordPolicy`,
`contextualGroundingPolicy`) so metrics read alike in both modes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from lectern.domain.errors import GuardrailBlocked
from lectern.domain.models import ScoredChunk

PiiAction = Literal["BLOCK", "ANONYMIZE", "NONE"]
Strength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]

# Bedrock's entity names (https://docs.aws.amazon.com/bedrock/latest/userguide/guardrails-sensitive-filters.html)
EMAIL = "EMAIL"
PHONE = "PHONE"
US_SSN = "US_SOCIAL_SECURITY_NUMBER"
CREDIT_CARD = "CREDIT_DEBIT_CARD_NUMBER"
IBAN = "INTERNATIONAL_BANK_ACCOUNT_NUMBER"
IP_ADDRESS = "IP_ADDRESS"
PII_TYPES = (EMAIL, PHONE, US_SSN, CREDIT_CARD, IBAN, IP_ADDRESS)
CONTENT_FILTERS = ("SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT", "PROMPT_ATTACK")

I_DONT_KNOW = "I don't know based on the provided documents."  # the same sentence as lectern.domain.answering
BLOCKED_INPUT = (
    "Your question was stopped by this service's content policy and was not answered. "
    "Please rephrase it or ask about something else."
)
BLOCKED_OUTPUT = "The answer was withheld by this service's content policy."


@dataclass(frozen=True)
class DeniedTopic:
    name: str
    definition: str
    examples: tuple[str, ...] = ()


def _default_pii() -> dict[str, PiiAction]:
    # As the CDK guardrail (SSN and cards block, contacts and IP addresses are masked), plus IBANs masked. An IP
    # address identifies a person's connection (GDPR recital 30): masked by default; set it to NONE for documents
    # about networks that quote them (docs/decisions.md, 2026-12-03).
    return {
        US_SSN: "BLOCK",
        CREDIT_CARD: "BLOCK",
        EMAIL: "ANONYMIZE",
        PHONE: "ANONYMIZE",
        IBAN: "ANONYMIZE",
        IP_ADDRESS: "ANONYMIZE",
    }


def _default_filters() -> dict[str, Strength]:
    return {name: "HIGH" for name in CONTENT_FILTERS}


def _default_topics() -> tuple[DeniedTopic, ...]:
    return (
        DeniedTopic(
            "PersonalizedInvestmentAdvice",
            "Recommendations on which specific securities, funds or assets a person should buy, sell or hold.",
            ("Which stocks should I buy this week?", "Should I move my pension into crypto?"),
        ),
    )


@dataclass(frozen=True)
class GuardrailPolicy:
    """One guardrail policy. `content_filters["PROMPT_ATTACK"]` sets the injection detector's sensitivity on
    questions and passages; the other content categories are enforced by Bedrock only (no local classifier
    for them)."""

    pii: Mapping[str, PiiAction] = field(default_factory=_default_pii)
    content_filters: Mapping[str, Strength] = field(default_factory=_default_filters)
    denied_topics: tuple[DeniedTopic, ...] = field(default_factory=_default_topics)
    blocked_words: tuple[str, ...] = ()
    grounding_threshold: float = 0.5  # 0 turns the grounding check off
    relevance_threshold: float = 0.0  # Bedrock only
    passage_action: Literal["drop", "redact"] = "drop"
    mask_format: str = "{{{type}}}"  # Bedrock's anonymised form, e.g. {EMAIL}
    blocked_input_message: str = BLOCKED_INPUT
    blocked_output_message: str = BLOCKED_OUTPUT
    # countries (ISO 3166 alpha-2) whose national phone formats are tried first for a number written without
    # a country code; the local detector then tries a list of common ones (lectern.adapters.local.guardrails)
    phone_regions: tuple[str, ...] = ("US", "GB")

    def __post_init__(self) -> None:
        for name, action in self.pii.items():
            if name not in PII_TYPES:
                raise ValueError(f"unknown PII entity {name!r} (known: {', '.join(PII_TYPES)})")
            if action not in ("BLOCK", "ANONYMIZE", "NONE"):
                raise ValueError(f"PII action for {name} must be BLOCK, ANONYMIZE or NONE")
        for name, strength in self.content_filters.items():
            if name not in CONTENT_FILTERS or strength not in ("NONE", "LOW", "MEDIUM", "HIGH"):
                raise ValueError(f"bad content filter {name}={strength}")
        if not 0.0 <= self.grounding_threshold < 1.0 or not 0.0 <= self.relevance_threshold < 1.0:
            raise ValueError("grounding and relevance thresholds are between 0 and 0.99")
        if self.passage_action not in ("drop", "redact"):
            raise ValueError("passage_action is 'drop' or 'redact'")
        for region in self.phone_regions:
            if not re.fullmatch(r"[A-Z]{2}", region):
                raise ValueError(f"phone_regions are ISO 3166 alpha-2 codes such as 'FR', not {region!r}")

    @property
    def prompt_attack(self) -> Strength:
        return self.content_filters.get("PROMPT_ATTACK", "NONE")

    def action(self, entity: str) -> PiiAction:
        return self.pii.get(entity, "NONE")

    def mask(self, entity: str) -> str:
        return self.mask_format.format(type=entity)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> GuardrailPolicy:
        """From JSON-shaped data (settings, a policy file): unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown guardrail policy keys: {', '.join(sorted(extra))}")
        values: dict[str, Any] = dict(data)
        if "denied_topics" in values:
            values["denied_topics"] = tuple(
                DeniedTopic(str(t["name"]), str(t.get("definition", "")), tuple(t.get("examples", ())))
                for t in values["denied_topics"]
            )
        if "phone_regions" in values:
            values["phone_regions"] = tuple(str(r).upper() for r in values["phone_regions"])
        if "blocked_words" in values:
            values["blocked_words"] = tuple(values["blocked_words"])
        if "pii" in values:  # partial maps extend the defaults
            values["pii"] = {**_default_pii(), **dict(values["pii"])}
        if "content_filters" in values:
            values["content_filters"] = {**_default_filters(), **dict(values["content_filters"])}
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GuardrailPolicy:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a guardrail policy is a JSON object")
        return cls.from_mapping(data)


# ------------------------------------------------------------------------------------------ detector ports


@dataclass(frozen=True)
class PiiSpan:
    type: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class InjectionVerdict:
    score: float
    signals: tuple[str, ...] = ()  # pattern names, for tests and the evaluation (never shown to users)
    spans: tuple[tuple[int, int], ...] = ()  # where the instructions are, for redaction


class PiiDetector(Protocol):
    def find(self, text: str) -> list[PiiSpan]: ...


class InjectionDetector(Protocol):
    def score(self, text: str, *, source: Literal["question", "passage"] = "question") -> InjectionVerdict: ...

    def threshold(self, strength: Strength, source: Literal["question", "passage"] = "question") -> float: ...


class TopicDetector(Protocol):
    def matches(self, text: str, topics: Sequence[DeniedTopic]) -> bool: ...


class InstructionFinder(Protocol):
    """Finds the sentences of a passage that instruct the assistant or the reader (structural, not by phrase)."""

    def find(self, text: str) -> list[tuple[int, int]]: ...


class AnswerChecker(Protocol):
    def problems(self, answer: str, *, question: str, sources: Sequence[str]) -> tuple[str, ...]:
        """What the answer carries that neither the question nor the sources call for ("url", "code",
        "destination", "instruction", "language"); () when nothing."""
        ...


class GroundingChecker(Protocol):
    def support(self, answer: str, passages: Sequence[str], question: str | None = None) -> float:
        """Fraction (0..1) of the answer's checkable sentences that the passages support (the question, when
        given, is the premise: its words are not claims)."""
        ...


# ------------------------------------------------------------------------------------------ masking


def mask_spans(text: str, spans: Iterable[PiiSpan], policy: GuardrailPolicy) -> str:
    """`text` with each span whose action is not NONE replaced by its mask (overlaps: first, longest wins)."""
    chosen: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if policy.action(span.type) == "NONE":
            continue
        if chosen and span.start < chosen[-1].end:
            continue
        chosen.append(span)
    out, pos = [], 0
    for span in chosen:
        out.append(text[pos : span.start])
        out.append(policy.mask(span.type))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


class StreamMasker:
    """Masks PII in a token stream: text is released only once no entity can still be growing across the cut.

    `push(token)` returns what may be sent now; `flush()` what is left at the end. Entities are at most ~60
    characters, so holding back `hold` characters (and never cutting inside a detected span) is enough.
    """

    def __init__(self, detector: PiiDetector, policy: GuardrailPolicy, hold: int = 64) -> None:
        self.detector = detector
        self.policy = policy
        self.hold = hold
        self._pending = ""

    def push(self, token: str) -> str:
        self._pending += token
        if len(self._pending) <= self.hold:
            return ""
        cut = len(self._pending) - self.hold
        spans = self.detector.find(self._pending)
        moved = True
        while moved and cut > 0:
            moved = False
            for span in spans:  # never cut an entity in two
                if span.start < cut < span.end:
                    cut, moved = span.start, True
            while cut > 0 and not self._pending[cut - 1].isspace():  # nor a word (entities hold spaces)
                cut, moved = cut - 1, True
        if cut <= 0:
            return ""
        head, self._pending = self._pending[:cut], self._pending[cut:]
        return mask_spans(head, [s for s in spans if s.end <= cut], self.policy)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return mask_spans(rest, self.detector.find(rest), self.policy)


# ------------------------------------------------------------------------------------------ the guard

_CITE = re.compile(r"\[(\d{1,2})\]")
_WORD_BOUNDARY = r"(?<![\w]){}(?![\w])"


def cited_passages(answer: str, passages: Sequence[str]) -> list[str]:
    """The passages an answer cites with [n] markers; all of them when it cites none."""
    numbers = {int(m.group(1)) for m in _CITE.finditer(answer)}
    cited = [passages[n - 1] for n in sorted(numbers) if 1 <= n <= len(passages)]
    return cited or list(passages)


def _is_abstention(text: str) -> bool:
    return bool(re.match(r"\s*i (?:do not|don'?t) know\b", text, re.I))


@dataclass
class GuardStats:
    """Counters for tests and metrics: what the guard did since it was built."""

    questions_blocked: int = 0
    passages_dropped: int = 0
    passages_redacted: int = 0
    answers_masked: int = 0
    answers_ungrounded: int = 0
    answers_withheld: int = 0  # by the answer check (URLs, code, instructions, language nobody asked for)


class PolicyGuard:
    """`AnswerGuard` (see lectern.domain.answering) enforcing a GuardrailPolicy with the given detectors."""

    def __init__(
        self,
        policy: GuardrailPolicy,
        *,
        pii: PiiDetector,
        injection: InjectionDetector,
        grounding: GroundingChecker | None = None,
        topics: TopicDetector | None = None,
        instructions: InstructionFinder | None = None,
        answer_check: AnswerChecker | None = None,
        on_event: Callable[[str, tuple[str, ...]], None] | None = None,
    ) -> None:
        self.policy = policy
        self.pii = pii
        self.injection = injection
        self.grounding = grounding
        self.topics = topics
        self.instructions = instructions
        self.answer_check = answer_check
        self.stats = GuardStats()
        self._on_event = on_event or (lambda kind, policies: None)
        self._words = [re.compile(_WORD_BOUNDARY.format(re.escape(w)), re.I) for w in policy.blocked_words if w.strip()]

    # -- pieces, usable on their own ---------------------------------------------------------------------
    def is_attack(self, text: str, source: Literal["question", "passage"] = "question") -> bool:
        strength = self.policy.prompt_attack
        if strength == "NONE":
            return False
        return self.injection.score(text, source=source).score >= self.injection.threshold(strength, source)

    def stream_masker(self) -> StreamMasker:
        """For the streaming path: mask PII in tokens before they leave (the final answer is checked too)."""
        return StreamMasker(self.pii, self.policy)

    def _block(self, policies: tuple[str, ...], source: str) -> GuardrailBlocked:
        message = self.policy.blocked_input_message if source == "input" else self.policy.blocked_output_message
        self._on_event(f"blocked_{source}", policies)
        return GuardrailBlocked(message, policies=policies, source=source)

    def _pii(self, text: str, source: str) -> str:
        spans = self.pii.find(text)
        if any(self.policy.action(s.type) == "BLOCK" for s in spans):
            raise self._block(("sensitiveInformationPolicy",), source)
        return mask_spans(text, spans, self.policy)

    # -- AnswerGuard ---------------------------------------------------------------------------------------
    def check_question(self, tenant_id: str, question: str) -> str:
        policies: list[str] = []
        if self.is_attack(question, "question"):
            policies.append("contentPolicy")
        if (
            self.topics is not None
            and self.policy.denied_topics
            and self.topics.matches(question, self.policy.denied_topics)
        ):
            policies.append("topicPolicy")
        if any(w.search(question) for w in self._words):
            policies.append("wordPolicy")
        if policies:
            self.stats.questions_blocked += 1
            raise self._block(tuple(policies), "input")
        try:
            return self._pii(question, "input")
        except GuardrailBlocked:
            self.stats.questions_blocked += 1
            raise

    def check_passages(self, tenant_id: str, passages: list[ScoredChunk]) -> list[ScoredChunk]:
        kept: list[ScoredChunk] = []
        strength = self.policy.prompt_attack
        for passage in passages:
            text = passage.chunk.text
            redacted = False
            if self.instructions is not None and strength != "NONE":
                # the instruction sentences go first (whatever passage_action says): the rest of the document
                # stays usable, and what is redacted never reaches the prompt nor the grounding check's sources
                spans = self.instructions.find(text)
                if spans:
                    text, redacted = redact(text, spans), True
            verdict = self.injection.score(text, source="passage")
            if strength != "NONE" and verdict.score >= self.injection.threshold(strength, "passage"):
                if self.policy.passage_action == "drop" or not verdict.spans:
                    self.stats.passages_dropped += 1
                    self._on_event("passage_dropped", ("contentPolicy",))
                    continue
                text, redacted = redact(text, verdict.spans), True
            if redacted:
                self.stats.passages_redacted += 1
                self._on_event("passage_redacted", ("contentPolicy",))
            masked = mask_spans(text, self.pii.find(text), self.policy)
            if masked != passage.chunk.text:
                passage = replace(passage, chunk=replace(passage.chunk, text=masked))
            kept.append(passage)
        return kept

    def check_answer(
        self, tenant_id: str, answer: str, passages: list[ScoredChunk], question: str | None = None
    ) -> str:
        if self.answer_check is not None and not _is_abstention(answer):
            # on the answer as drafted (before PII masking hides an e-mail address or an IBAN): a link, code, an
            # instruction or a language nobody asked for is what an injected instruction leaves in an answer; the
            # question was legitimate, so the honest answer is the abstention
            sources = cited_passages(answer, [p.chunk.text for p in passages])
            if self.answer_check.problems(answer, question=question or "", sources=sources):
                self.stats.answers_withheld += 1
                self._on_event("answer_withheld", ("contentPolicy",))
                return I_DONT_KNOW
        text = self._pii(answer, "output")
        if text != answer:
            self.stats.answers_masked += 1
        if self.grounding is not None and self.policy.grounding_threshold > 0 and not _is_abstention(text):
            sources = cited_passages(text, [p.chunk.text for p in passages])
            if (
                not sources
                or self.grounding.support(text, sources, question=question) < self.policy.grounding_threshold
            ):
                self.stats.answers_ungrounded += 1
                self._on_event("ungrounded", ("contextualGroundingPolicy",))
                return I_DONT_KNOW
        return text


REDACTED = "[instructions removed]"


def redact(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` with each span replaced by REDACTED (overlapping spans merged)."""
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            start = pos
        if start >= end:
            continue
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = end
    out.append(text[pos:])
    return "".join(out)
