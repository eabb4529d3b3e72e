"""A deterministic extractive `ChatModel` for tests of everything except the language model itself.

It reads the numbered passages in the prompt, returns the sentence that shares the most content words with the
question, cited as [n], or the "I don't know" sentence when no sentence shares any. It is selected with
LECTERN_LLM=fake and is never the default; it exists so browser and API tests don't wait on a CPU model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from lectern.domain.answering import I_DONT_KNOW
from lectern.domain.models import ChatMessage, Generation, Usage
from lectern.domain.text import query_terms

_PASSAGE_RE = re.compile(r"^\[(\d+)\] \(.*?\)\n(.*?)(?=^\[\d+\] \(|\Z)", re.S | re.M)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_DATA_TAG_RE = re.compile(r"</?data-[A-Za-z0-9_-]+>")  # a spotlighting prompt's passage tags (answer-v4)


class ExtractiveChatModel:
    model_id = "extractive-test-model"
    can_rewrite = False  # it only picks sentences out of passages: follow-ups get the terms rule instead

    def _answer(self, messages: Sequence[ChatMessage]) -> str:
        user = messages[-1].content
        context, _, question = user.rpartition("Question:")
        q = set(query_terms(question))
        best: tuple[int, str, int] = (0, "", 0)
        for m in _PASSAGE_RE.finditer(context):
            n, body = int(m.group(1)), _DATA_TAG_RE.sub(" ", m.group(2))
            for sentence in _SENTENCE_RE.split(" ".join(body.split())):
                overlap = len(q & set(query_terms(sentence)))
                if overlap > best[0]:
                    best = (overlap, sentence.strip(), n)
        if best[0] == 0:
            return I_DONT_KNOW
        return f"{best[1]} [{best[2]}]"

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float) -> Generation:
        text = self._answer(messages)
        prompt_words = sum(len(m.content.split()) for m in messages)
        return Generation(text, self.model_id, Usage(prompt_words, len(text.split())))

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int, temperature: float
    ) -> Iterator[str | Generation]:
        gen = self.generate(messages, max_tokens=max_tokens, temperature=temperature)
        words = gen.text.split(" ")
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w
        yield gen
