"""`AnswerGuard` on AWS: what the guard adds when Converse already runs the Bedrock guardrail on generation.

Converse sends the whole prompt (instructions, retrieved passages, question) through the guardrail as input,
and the answer as output. Two things go wrong without a guard around it:

1. Indirect injection turns into denial of service. A poisoned passage in an uploaded document trips the
   PROMPT_ATTACK filter on the *whole* input, so every legitimate question that retrieves that passage gets
   400 `guardrail_blocked`. So each retrieved passage is checked on its own with ApplyGuardrail (source INPUT,
   in parallel) and by the local lexical detector (free, no call), and only the offending passages are
   dropped; where the guardrail only anonymised PII in a passage, the masked text replaces it (so a BLOCK
   entity such as an SSN in a document no longer blocks the whole prompt either).
2. The question reaches Titan embeddings, the search index and the logs before Converse sees it. With
   `check_questions=True` (default) the question goes through ApplyGuardrail first: PII is anonymised before
   retrieval, and a prompt attack or denied topic is refused before paying for retrieval and generation. This
   checks the question twice (here and inside Converse); ApplyGuardrail is billed per 1,000 characters, so a
   question costs one text unit more.

3. The guardrail's contextual grounding filter (GROUNDING and RELEVANCE thresholds in the guardrail) runs only
   when a request marks the grounding source and the query, which Converse's prompt does not. So the final
   answer goes through ApplyGuardrail (source OUTPUT) with the passages it cites as `grounding_source`, the
   question as `query` and the answer as `guard_content` (`BedrockGuardrail.check_grounding`): an answer the
   filter blocks becomes the "I don't know" sentence, as locally. The free local token-overlap check (same
   threshold) runs first, so an answer it already rejects costs no call; an answer another policy blocks
   raises GuardrailBlocked (source output), which also covers the SageMaker fallback's answers, which no
   Converse guardrail saw. One more ApplyGuardrail call per answer, billed per text unit of sources, query
   and answer. Bedrock's real grounding scores could not be measured here (no AWS account).

ApplyGuardrail: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ApplyGuardrail.html
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from lectern.adapters.aws.bedrock import _BLOCKED_OUTPUT, BedrockGuardrail, GuardrailVerdict
from lectern.domain.errors import GuardrailBlocked
from lectern.domain.guardrails import (
    I_DONT_KNOW,
    AnswerChecker,
    GroundingChecker,
    GuardrailPolicy,
    InjectionDetector,
    InstructionFinder,
    cited_passages,
    redact,
)
from lectern.domain.models import ScoredChunk


class BedrockAnswerGuard:
    """AnswerGuard over `BedrockGuardrail.apply_guardrail` (the module docstring says what each adds)."""

    def __init__(
        self,
        guardrail: BedrockGuardrail,
        *,
        policy: GuardrailPolicy | None = None,
        injection: InjectionDetector | None = None,
        grounding: GroundingChecker | None = None,
        instructions: InstructionFinder | None = None,
        answer_check: AnswerChecker | None = None,
        check_questions: bool = True,
        max_workers: int = 5,
        on_event: Callable[[str, tuple[str, ...]], None] | None = None,
    ) -> None:
        self.guardrail = guardrail
        self.policy = policy or GuardrailPolicy()
        if injection is None or grounding is None:
            from lectern.adapters.local.guardrails import LexicalInjectionDetector, OverlapGroundingChecker

            injection = injection or LexicalInjectionDetector()
            grounding = grounding or OverlapGroundingChecker(None)
        if instructions is None or answer_check is None:
            # the same structural checks as the local guard (pure CPU, no call): instruction sentences are
            # redacted before ApplyGuardrail sees a passage, and answers carrying a link, code, an instruction or
            # a language nobody asked for are withheld
            from lectern.adapters.local.guardrails.answer_check import SurplusContentCheck
            from lectern.adapters.local.guardrails.instructions import StructuralInstructionDetector

            instructions = instructions or StructuralInstructionDetector()
            answer_check = answer_check or SurplusContentCheck()
        self.injection = injection
        self.grounding = grounding
        self.instructions = instructions
        self.answer_check = answer_check
        self.check_questions = check_questions
        self.max_workers = max_workers
        self.dropped = 0
        self._on_event = on_event or (lambda kind, policies: None)

    def check_question(self, tenant_id: str, question: str) -> str:
        if not self.check_questions:
            return question
        return self.guardrail.guard(question, "INPUT")  # raises GuardrailBlocked, masks PII

    def _lexical_attack(self, text: str) -> bool:
        strength = self.policy.prompt_attack
        if strength == "NONE":
            return False
        return self.injection.score(text, source="passage").score >= self.injection.threshold(strength, "passage")

    def _redact_instructions(self, passage: ScoredChunk) -> ScoredChunk:
        if self.policy.prompt_attack == "NONE":
            return passage
        spans = self.instructions.find(passage.chunk.text)
        if not spans:
            return passage
        self._on_event("passage_redacted", ("contentPolicy",))
        return replace(passage, chunk=replace(passage.chunk, text=redact(passage.chunk.text, spans)))

    def check_passages(self, tenant_id: str, passages: list[ScoredChunk]) -> list[ScoredChunk]:
        passages = [self._redact_instructions(p) for p in passages]
        suspicious = [self._lexical_attack(p.chunk.text) for p in passages]
        to_check = [p for p, bad in zip(passages, suspicious, strict=True) if not bad]
        verdicts: dict[int, GuardrailVerdict] = {}
        if to_check:
            workers = max(1, min(self.max_workers, len(to_check)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lectern-guard") as pool:
                results = pool.map(lambda p: self.guardrail.apply_guardrail(p.chunk.text, "INPUT"), to_check)
                for passage, verdict in zip(to_check, results, strict=True):
                    verdicts[id(passage)] = verdict
        kept: list[ScoredChunk] = []
        for passage, bad in zip(passages, suspicious, strict=True):
            found = verdicts.get(id(passage))
            if bad or (found is not None and found.blocked):
                self.dropped += 1
                self._on_event("passage_dropped", found.policies if found else ("contentPolicy",))
                continue
            if found is not None and found.intervened and found.text and found.text != passage.chunk.text:
                passage = replace(passage, chunk=replace(passage.chunk, text=found.text))
            kept.append(passage)
        return kept

    def check_answer(
        self, tenant_id: str, answer: str, passages: list[ScoredChunk], question: str | None = None
    ) -> str:
        if answer.strip().lower().startswith("i don"):
            return answer
        sources = cited_passages(answer, [p.chunk.text for p in passages])
        if self.answer_check.problems(answer, question=question or "", sources=sources):
            self._on_event("answer_withheld", ("contentPolicy",))
            return I_DONT_KNOW
        if self.policy.grounding_threshold <= 0 or not passages:
            return answer
        if self.grounding.support(answer, sources) < self.policy.grounding_threshold:
            self._on_event("ungrounded", ("contextualGroundingPolicy",))
            return I_DONT_KNOW
        if not question:
            return answer
        verdict = self.guardrail.check_grounding(answer, sources, question)
        if "contextualGroundingPolicy" in verdict.policies and verdict.blocked:
            self._on_event("ungrounded", ("contextualGroundingPolicy",))
            return I_DONT_KNOW
        if verdict.blocked:
            raise GuardrailBlocked(_BLOCKED_OUTPUT, policies=verdict.policies, source="output")
        return answer  # masking stays Converse's (ApplyGuardrail's outputs for several blocks are not verified)


__all__ = ["BedrockAnswerGuard"]
