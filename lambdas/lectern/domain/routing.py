"""Model routing: a cheap model by default, a stronger one when the question looks hard.

The rules are plain and ordered, so every decision can be explained in one phrase (recorded in `Answer.route`
and in the query trace):

1. comparison   — "compare", "versus"/"vs", "difference(s) between", "differ", "contrast", "better than", ...
2. multi-part   — two or more question marks, an enumeration ("1) ... 2) ...", "(a) ... (b) ..."), or two
                  question words joined by "and"/"also" ("When was X built and who designed it?")
3. long context — the passages put in the prompt hold at least `long_context_tokens` tokens
4. low retrieval confidence — the best vector similarity is under `min_similarity` (the retrieval gate already
                  turned away off-topic questions; these are the ones that passed it only just)

Anything else goes to the cheap model. Each rule can be switched off per deployment, and routing as a whole.
Without a strong model configured the decision is still made and recorded, but the cheap model answers
("cheap: comparison (no strong model)"): the trace then shows how much traffic a strong model would get.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lectern.domain.ports import ChatModel
from lectern.domain.retrieval import RetrievalResult

Tier = Literal["cheap", "strong"]

_COMPARISON_RE = re.compile(
    r"\b(compar(?:e|es|ed|ing|ison)|versus|vs\.?|difference(?:s)? between|differ(?:s|ed)?\b|contrast"
    r"|similarit(?:y|ies) between|(?:better|worse) than"
    r"|which (?:is|was|one is) "
    r"(?:better|worse|larger|smaller|bigger|cheaper|faster|older|newer|higher|lower))",
    re.I,
)
_WH = r"(?:who|what|when|where|why|how|which|whom|whose)"
# "When was X built and who designed it?" — a question word after "and"/"also"/";" starts a second question.
_SECOND_QUESTION_RE = re.compile(rf"\b{_WH}\b.+?(?:\band\b|\balso\b|;)\s+(?:also\s+)?{_WH}\b", re.I)
_ENUMERATION_RE = re.compile(
    r"(?:^|\s)(?:\(?[1-9a-e]\)|[1-9]\.)\s+\S.*(?:^|\s)(?:\(?[2-9b-f]\)|[2-9]\.)\s+\S", re.I
)


@dataclass(frozen=True)
class RoutingConfig:
    enabled: bool = True
    comparison: bool = True
    multi_part: bool = True
    long_context_tokens: int = 1200  # 0 switches the rule off
    min_similarity: float = 0.4  # best cosine under this -> strong; a negative value switches the rule off


def is_comparison(question: str) -> bool:
    return bool(_COMPARISON_RE.search(question))


def question_parts(question: str) -> int:
    """How many questions this text asks (1 for an ordinary question)."""
    q = question.strip()
    marks = len(re.findall(r"\?(?=\s|$)", q))
    if marks >= 2:
        return marks
    if _ENUMERATION_RE.search(q):
        return max(2, len(re.findall(r"(?:^|\s)(?:\(?[1-9a-f]\)|[1-9]\.)\s+\S", q)))
    if _SECOND_QUESTION_RE.search(q):
        return 2
    return 1


def classify(
    question: str, best_similarity: float, context_tokens: int, config: RoutingConfig
) -> tuple[Tier, str]:
    """(tier, reason) by the ordered rules above. Pure: the unit tests exercise every rule through this."""
    if not config.enabled:
        return "cheap", "routing off"
    if config.comparison and is_comparison(question):
        return "strong", "comparison"
    if config.multi_part and question_parts(question) >= 2:
        return "strong", "multi-part"
    if config.long_context_tokens > 0 and context_tokens >= config.long_context_tokens:
        return "strong", f"long context ({context_tokens} tokens)"
    # best_similarity is -1 when no vector search ran (BM25-only): no evidence either way
    if config.min_similarity >= 0 and -1 < best_similarity < config.min_similarity:
        return "strong", f"low retrieval confidence ({best_similarity:.2f})"
    return "cheap", "default"


class ModelRouter:
    """Chooses the model for one answer: `choose` returns it and the reason recorded with the answer."""

    def __init__(
        self, cheap: ChatModel, strong: ChatModel | None = None, config: RoutingConfig | None = None
    ) -> None:
        self.cheap = cheap
        self.strong = strong
        self.config = config or RoutingConfig()

    def choose(self, question: str, retrieval: RetrievalResult, context_tokens: int) -> tuple[ChatModel, str]:
        tier, why = classify(question, retrieval.best_similarity, context_tokens, self.config)
        if tier == "strong":
            if self.strong is None:
                return self.cheap, f"cheap: {why} (no strong model)"
            return self.strong, f"strong: {why}"
        return self.cheap, f"cheap: {why}"
