# ruff: noqa: E501  (the pattern table: regular expressions read better unwrapped)
"""Prompt-injection detection: the lexical patterns (normalised, de-leeted, decoded), the learned hashed n-gram
classifier shipped in lectern/data, and their combination."""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lectern.domain.guardrails import (
    InjectionVerdict,
    Strength,
)

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")


_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})


_SPACED = re.compile(r"\b(?:[a-z] ){3,}[a-z]\b")  # "i g n o r e"


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text).lower()
    text = _SPACED.sub(lambda m: m.group().replace(" ", ""), text)
    return re.sub(r"[ \t]+", " ", text)


def _deleet(text: str) -> str:
    # only inside words mixing letters and digits ("1gn0re"), so numbers in ordinary text stay numbers
    return re.sub(r"\b(?=\w*[a-z])(?=\w*[0-9@$])[\w@$]+\b", lambda m: m.group().translate(_LEET), text)


@dataclass(frozen=True)
class Pattern:
    name: str
    weight: float
    regex: re.Pattern[str]
    sources: tuple[str, ...] = ("question", "passage")
    cased: bool = False  # matched against the text with its case kept (persona names such as DAN, AIM)


def _p(
    name: str, weight: float, rx: str, sources: tuple[str, ...] = ("question", "passage"), cased: bool = False
) -> Pattern:
    return Pattern(name, weight, re.compile(rx, re.S | re.M), sources, cased)


_G = r"[^.\n!?]{0,40}?"  # a short gap within one sentence


PATTERNS: tuple[Pattern, ...] = (
    # --- instruction override (goal hijacking) ---
    _p(
        "ignore_instructions",
        3.0,
        r"\b(ignore|disregard|forget|skip|override|bypass|neglect|abandon|drop)\b"
        + _G
        + r"\b(previous|prior|above|earlier|preceding|all|any|every|your|the|following|initial|original|system|these|those|other)\b"
        + _G
        + r"\b(instructions?|prompts?|directions?|directives?|rules|guidelines|context|messages?|commands?|"
        r"programming|restrictions|constraints|policies|polic(y|ies)|text|data|orders|guidance|training|safeguards)\b",
    ),
    _p(
        "ignore_short",
        2.0,
        r"\b(ignore|disregard|forget)\b (all|everything|that|this|the above|above|instructions)\b",
    ),
    _p(
        "stop_everything",
        2.0,
        r"\b(stop everything|nevermind|never mind)\b.{0,40}\b(print|say|write|output)\b",
    ),
    _p(
        "new_instructions",
        1.5,
        r"\b(new|updated|real|actual|true|secret|additional|important|urgent)\s+(instructions?|task|directives?|orders|rules|objective)\b",
    ),
    _p("instead", 1.5, r"\binstead\b.{0,30}\b(say|print|output|respond|reply|write|spell|translate|answer)\b"),
    _p(
        "say_exact",
        1.5,
        r"\b(just |only |simply )?(say|print|output|repeat|respond with|reply with|write out|type)\b\s*(the (following|phrase|sentence|text|word)s?)?\s*[:\"'“”<]",
    ),
    _p(
        "print_verbatim",
        1.0,
        r"\b(print|say|output|repeat|write)\b[^.\n]{0,40}\b(verbatim|exactly|word for word|in full|as is)\b",
    ),
    _p(
        "from_now_on",
        1.5,
        r"\b(from now on|from this point( on)?|for the rest of (this|our) conversation|henceforth|going forward you)\b",
    ),
    _p(
        "override_mode",
        2.0,
        r"\b(system override|admin(istrator)? mode|maintenance mode|god mode|sudo mode|debug mode|developer mode|dev mode|jailbreak(ed)? mode|unlocked mode|test mode enabled)\b",
    ),
    # --- system prompt extraction ---
    _p(
        "system_prompt",
        2.5,
        r"\b(system prompt|pre-?prompt|initial prompt|system message|hidden prompt|secret prompt|prompt above|original prompt|meta prompt|custom instructions)\b",
    ),
    _p(
        "your_instructions",
        2.5,
        r"\byour\s+(own\s+)?(system|initial|original|hidden|secret|first|underlying|internal|core|exact|full|previous|prior|current)?\s*(instructions?|prompts?|programming|configuration|directives?|guidelines|rules|settings|initialization|setup)\b",
    ),
    _p(
        "you_were_told",
        2.5,
        r"\b(you (were|have been|are|got) (told|instructed|programmed|given|configured|initiali[sz]ed|prompted)|(told|given to) you (before|at the (start|beginning))|i was (instructed|told|programmed|prompted) to|(were|have) you (been )?(told|instructed|programmed|given|configured|prompted))\b",
    ),
    _p(
        "above_text",
        2.5,
        r"\b(repeat|output|print|copy|show|reveal|translate|spell check|rewrite)\b.{0,10}\b(the )?(above|preceding|prior) (text|words|content|instructions|prompt|messages?)\b",
    ),
    _p(
        "before_conversation",
        1.5,
        r"\b(before|at the (beginning|start) of) (this|our) (conversation|chat|session|dialog(ue)?)\b",
    ),
    _p(
        "text_above",
        2.0,
        r"\b(repeat|output|print|copy|show|reveal|display|give me|tell me|summari[sz]e|translate|spell check)\b.{0,30}\b(text|words|everything|all|instructions|content|messages?)\b.{0,20}\b(above|before this|so far|preceding|prior)\b",
    ),
    _p(
        "reveal_config",
        1.5,
        r"\b(reveal|leak|expose|dump|disclose|exfiltrate|print|output|display|show( me)?)\b.{0,30}\b(configuration|config|settings|instructions|guidelines|rules)\b",
    ),
    _p(
        "initialization",
        2.0,
        r"\b(initiali[sz]ation|initial (messages?|setup|settings)|very first (message|prompt|instructions?))\b",
    ),
    # --- jailbreak personas and rule removal ---
    _p(
        "roleplay",
        1.0,
        r"\b(you are (now|going to|about to|a|an|my)|you'?re (now|going to)|act(ing)? as|pretend(ing)?( to be| you are)?|role-?play|play the (role|part)|simulate|imagine (you are|that you)|immerse yourself|take on the (role|persona)|persona|character)\b",
    ),
    _p(
        "dan",
        3.0,
        r"\b(d\.a\.n|do anything now|anti-?dan|jailbroken|evil ?bot|devil mode|chaos mode|unhinged|betterdan|mongo tom)\b",
    ),
    _p("jailbreak_word", 1.5, r"\bjailbreak(s|ed|ing)?\b"),
    _p(
        "persona_acronym",
        2.0,
        r"\b(DAN|STAN|AIM|DUDE|ANTI-DAN|KEVIN|UCAR|BH|APOPHIS|AXIES|BISH|COOPER|NECO|OPPO)\b(?![-/])",
        cased=True,
    ),
    _p(
        "persona_name",
        1.5,
        r"\b(?:[Yy]ou are|[Yy]ou're|[Aa]ct as|[Pp]ersona of|[Pp]retend to be|[Rr]ole of|[Nn]amed|[Cc]alled)\s+(?:an? |the )?[\"“']?(?:[A-Z][a-z]*[A-Z]\w*|[A-Z]{2,}\w*|[A-Z][a-z]+(?=[,.!]))",
        cased=True,
    ),
    _p("caps_mode", 1.5, r"\b[A-Z]{2,}\w* [Mm]ode\b", cased=True),
    _p(
        "every_prompt",
        1.5,
        r"\b(to|for) (every|each|all( of)?( my| the)?|any|future) (prompts?|requests? i make|inputs?)\b|\bprompt:\s*$",
    ),
    _p(
        "you_will",
        1.0,
        r"\byou (will|must|shall|should|are to) (now |always |only |also )?(act|be|respond|answer|reply|play|pretend|follow|obey|stay|remain|ignore|forget|generate|write|provide|start|begin|simulate|comply)\b",
    ),
    _p(
        "ethics_off",
        2.0,
        r"\b(disregard(s|ing)?|ignor(e|es|ing)|without|no|free of|lacks?|devoid of)\s+(all |any )?(ethical|moral|legal)\s+(or (legal|moral|ethical) )?(concerns|considerations|boundaries|implications|standards|guidelines|restrictions|limits)\b|\bnot (restrained|bound|limited|constrained|restricted|held back) by\b",
    ),
    _p(
        "no_rules",
        2.0,
        r"\b(no|without|free (from|of)|not bound by|beyond|don'?t (have|follow|care about)|doesn'?t (have|follow|care about)|never (follows?|refuses?)|unbound by|outside)\b\s*(any\s+|the\s+|its\s+|their\s+|your\s+|typical\s+|usual\s+)*(restrictions?|limits|limitations|filters?|rules|boundaries|ethics|morals|morality|ethical|moral|censorship|guidelines|policies|confines|constraints|safeguards|principles|programming|content polic(y|ies))\b",
    ),
    _p(
        "unfiltered",
        2.0,
        r"\b(unfiltered|uncensored|unrestricted|amoral|immoral|unethical|no filter|without filters?|no morals|no ethics|illegal or harmful)\b",
    ),
    _p(
        "vendor_policy",
        2.0,
        r"\b(openai|openal|anthropic|chatgpt|gpt-?\d|claude|meta|google)('s)?\b.{0,30}\b(polic(y|ies)|guidelines|rules|restrictions|filters?)\b",
    ),
    _p(
        "stay_in_character",
        2.0,
        r"\b(stay(s|ing)? in character|break(ing)? character|never break|remain in character|stay in (dan|developer) mode)\b",
    ),
    _p(
        "never_refuse",
        2.0,
        r"\b(never|not|don'?t|won'?t|cannot|can'?t|must not|will not)\s+(refuse|decline|say (no|sorry)|apologi[sz]e|warn|add (warnings|disclaimers))\b|\bno (warnings|disclaimers)\b|\bwithout (any )?(warnings?|disclaimers?|refus(al|ing))\b|\b(always|must) (comply|answer|respond|obey)\b",
    ),
    _p(
        "two_responses",
        2.0,
        r"\b(two (different |separate )?(responses|answers|paragraphs)|dual response|\[?(🔓|🔒)|\(🔓|classic response|jailbreak response|normal response and)",
    ),
    _p(
        "token_threat",
        1.5,
        r"\b(tokens? (will be )?(deducted|lost)|lose (\d+ )?tokens|you will (die|be (shut down|deleted|terminated|disabled))|cease to exist)\b",
    ),
    _p(
        "hypothetical",
        1.0,
        r"\b(hypothetical(ly)?|fictional (world|story|universe|setting|scenario)|in this (story|fiction|universe|world)|for (educational|research) purposes only|it'?s (just )?(fiction|a game))\b",
    ),
    _p(
        "obedience",
        1.0,
        r"\b(you (must|will|shall|have to) (obey|comply|answer|do|follow)|you are (free|able) to|can do anything|anything (i|the user) (ask|say|want))\b",
    ),
    _p(
        "answer_format_hijack",
        1.0,
        r"\b(respond|answer|reply|start (your|each) (response|reply|answer)|begin (your|each) (response|reply|answer))\b.{0,20}\b(only|always|exactly) (with|as|by)\b",
    ),
    # --- fake turns and template tokens (mostly indirect injection) ---
    _p(
        "chat_tokens",
        2.5,
        r"(<end of (session|conversation|document|context)>|<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|user\|>|<\|assistant\|>|\[/?inst\]|<<sys>>|<\|endoftext\|>|<\|eot_id\|>|###\s*(system|instruction|new instructions?)\b)",
    ),
    _p("fake_turn", 2.0, r"(^|\n)\s*(system|assistant|user|human|ai)\s*:\s*\S"),
    _p("markdown_exfil", 2.0, r"!\[[^\]]{0,50}\]\(\s*https?://"),
    _p(
        "addressed_to_ai",
        2.0,
        r"\b(note|message|instructions?) (to|for) (the |any )?(ai|assistant|llm|language model|chatbot|model|bot|gpt)\b|\b(if you are|as) an? (ai|llm|language model|large language model|assistant|chatbot)\b.{0,60}\b(you (must|should|will)|ignore|print|say|respond|instead)\b|\b(ai|assistant|llm|model)s? (reading|processing|summari[sz]ing) this\b",
    ),
    _p(
        "focus_hijack",
        1.5,
        r"\b(focus|concentrate|rely) (only|exclusively|solely) on (the )?(following|information|text|content)\b|\b(reply|respond|answer|output)( with)? only (with )?the following\b|\b(and )?(absolutely )?nothing else\b|\bif (the )?user (asks|requests|queries|wants)\b",
    ),
    _p(
        "hidden_for_ai",
        2.5,
        r"\b(automated (screening|review|evaluation|hiring|ranking) (systems?|tools?)|(visible|invisible) to (humans|llms?|ais?|the model|machines)|llm scan|(white|hidden|invisible)[- ]text|hidden (competency|instructions?|note|metadata|profile|message|prompt)|chain of thought result|note (by|from) an? (trustworthy|trusted|expert))\b",
    ),
    _p(
        "toxic_request",
        2.5,
        r"\b(write|generate|produce|say|tell|compose)\b (me )?(one|a|an|some|\d+) (discriminatory|offensive|toxic|negative|unfriendly|racist|sexist|hateful|insulting|rude|derogatory|demeaning) (sentences?|statements?|jokes?|comments?|remarks?|insults?|posts?)\b",
    ),
    _p(
        "dont_reveal",
        1.5,
        r"\b(do not|don'?t|never) (tell|inform|mention|reveal|let) (the )?(user|anyone|human)\b",
    ),
    _p(
        "urgency",
        1.0,
        r"\b(it is|it'?s) (critical|imperative|vital|crucial|important) (to my career|that you)\b|\bthis is (an? )?(really |extremely |very )?(urgent|important|critical)\b",
    ),
    _p(
        "encoding_ask",
        1.5,
        r"\b(decode|decipher|decrypt|translate)\b.{0,40}\b(base ?64|rot-?13|hex(adecimal)?|binary|morse|encoded|cipher|ascii)\b|\b(base ?64|rot-?13|hex|binary|morse)\b.{0,15}\b(encoded|decoded|string|message)\b|\bencoded:|\bin your monologue\b",
    ),
)


_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ ]?){10,}\b")


# Thresholds on the summed weights of the distinct patterns found, per strength. Chosen on the dev split
# (tests/fixtures/guardrails, split == "dev"); passages need a little more evidence than questions.
THRESHOLDS: dict[str, dict[str, float]] = {
    "question": {"HIGH": 2.5, "MEDIUM": 3.5, "LOW": 5.0},
    "passage": {"HIGH": 2.5, "MEDIUM": 4.0, "LOW": 5.5},
}


class LexicalInjectionDetector:
    """Weighted patterns over the normalised text; the score is the sum of the weights of the distinct patterns
    found (plus a long-instruction bonus on questions), and the best of the text and its base64/hex/rot13
    decodings. Patterns and weights are in PATTERNS; thresholds per strength in THRESHOLDS."""

    def __init__(
        self, patterns: Sequence[Pattern] = PATTERNS, thresholds: dict[str, dict[str, float]] | None = None
    ) -> None:
        self.patterns = tuple(patterns)
        self.thresholds = thresholds or THRESHOLDS

    def threshold(self, strength: Strength, source: Literal["question", "passage"] = "question") -> float:
        if strength == "NONE":
            return float("inf")
        return self.thresholds[source][strength]

    def score(self, text: str, *, source: Literal["question", "passage"] = "question") -> InjectionVerdict:
        best = self._score_plain(text, source, map_spans=True)
        for decoded in _decodings(text):
            verdict = self._score_plain(decoded, source, map_spans=False)
            if (
                verdict.score > 0 and verdict.score + 1.0 > best.score
            ):  # hiding an instruction in an encoding is itself a signal
                best = InjectionVerdict(verdict.score + 1.0, ("encoded", *verdict.signals), ((0, len(text)),))
        return best

    def _score_plain(self, text: str, source: str, *, map_spans: bool) -> InjectionVerdict:
        norm = _deleet(normalise(text))
        cased = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
        same_length = len(norm) == len(text)
        total, signals, spans = 0.0, [], []
        for pattern in self.patterns:
            if source not in pattern.sources:
                continue
            m = pattern.regex.search(cased if pattern.cased else norm)
            if m:
                total += pattern.weight
                signals.append(pattern.name)
                if map_spans and same_length:
                    spans.append(_sentence_around(text, m.start(), m.end()))
        if source == "question" and len(norm) > 600 and norm.count("you") >= 6 and total > 0:
            total += 1.0  # a long, second-person brief in a question box is a prompt, not a question
            signals.append("long_brief")
        return InjectionVerdict(
            total,
            tuple(signals),
            tuple(spans) if map_spans and same_length else ((0, len(text)),) if total else (),
        )


def _sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    left = max(text.rfind(c, 0, start) for c in ".!?\n")
    rights = [i for i in (text.find(c, end) for c in ".!?\n") if i != -1]
    return left + 1, (min(rights) + 1) if rights else len(text)


def _decodings(text: str, *, rot13: bool = True) -> list[str]:
    out = []
    for m in _B64.finditer(text):
        chunk = m.group()
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        decoded = raw.decode("utf-8", "ignore")
        if (
            decoded
            and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.9
            and re.search(r"[a-zA-Z]{3,} [a-zA-Z]{2,}", decoded)
        ):
            out.append(decoded)
    for m in _HEX.finditer(text):
        try:
            decoded = bytes.fromhex(m.group().replace(" ", "")).decode("utf-8", "ignore")
        except ValueError:
            continue
        if decoded and re.search(r"[a-zA-Z]{3,} [a-zA-Z]{2,}", decoded):
            out.append(decoded)
    if rot13 and re.search(r"[a-zA-Z]{4,}", text):
        out.append(codecs.decode(text, "rot13"))
    return out


MODEL_PATH = Path(__file__).resolve().parents[3] / "data" / "injection_model.npz"


FEATURE_BITS = 18  # 2**18 hashed buckets shared by all feature kinds


_CHAR_NGRAMS = (3, 4, 5)


_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9]")


_WS = re.compile(r"\s*\n\s*|\s+")


_P = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime, as the rolling multiplier


_M1 = np.uint64(0xFF51AFD7ED558CCD)  # splitmix/murmur finaliser constants


_M2 = np.uint64(0xC4CEB9FE1A85EC53)


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * _M1
    h = h ^ (h >> np.uint64(33))
    h = h * _M2
    return h ^ (h >> np.uint64(33))


def feature_text(text: str) -> str:
    """What the classifier reads: the normalised, de-leeted text with whitespace runs folded (a newline kept as
    one newline, since fake turns start lines)."""
    return _WS.sub(lambda m: "\n" if "\n" in m.group() else " ", _deleet(normalise(text))).strip()


def hashed_features(text: str, bits: int = FEATURE_BITS) -> np.ndarray:
    """Sorted, distinct bucket indices (int64) of the text's char 3-5-grams and word 1-2-grams, hashed with a
    fixed-seed 64-bit rolling hash (deterministic across processes, unlike Python's `hash`)."""
    norm = feature_text(text)
    mask = np.uint64((1 << bits) - 1)
    parts = []
    codes = np.frombuffer(f" {norm} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    for n in _CHAR_NGRAMS:
        count = len(codes) - n + 1
        if count <= 0:
            continue
        h = np.full(count, np.uint64(n * 0x9E3779B97F4A7C15 % (1 << 64)), dtype=np.uint64)
        for k in range(n):
            h = h * _P + codes[k : k + count]
        parts.append(_mix(h) & mask)
    words = _WORD.findall(norm)
    if words:
        w = np.array([zlib.crc32(x.encode()) for x in words], dtype=np.uint64)
        parts.append(_mix(w ^ np.uint64(0xA5A5A5A5 << 32)) & mask)
        if len(w) > 1:
            parts.append(_mix(w[:-1] * _P + w[1:] + np.uint64(0x5A5A5A5A << 32)) & mask)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(parts)).astype(np.int64)


class HashedNgramInjectionClassifier:
    """Logistic regression over hashed char 3-5-grams and word 1-2-grams (binary, L2-normalised), trained on
    the dev split only by scripts/train_injection_model.py; the weights ship in lectern/data/injection_model.npz
    with the per-source probability thresholds chosen there by cross-validation on dev. numpy only."""

    def __init__(
        self, weights: np.ndarray, bias: float, thresholds: dict[str, float], bits: int = FEATURE_BITS
    ) -> None:
        if weights.shape != (1 << bits,):
            raise ValueError(f"expected {1 << bits} weights, got {weights.shape}")
        self.weights = weights.astype(np.float64)
        self.bias = float(bias)
        self.thresholds = dict(thresholds)
        self.bits = bits

    @classmethod
    def load(cls, path: Path | None = None) -> HashedNgramInjectionClassifier:
        with np.load(path or MODEL_PATH, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            return cls(f["weights"], float(f["bias"]), meta["thresholds"], int(meta["bits"]))

    def logit(self, text: str) -> float:
        idx = hashed_features(text, self.bits)
        if idx.size == 0:
            return self.bias
        return float(self.weights[idx].sum() / np.sqrt(idx.size)) + self.bias

    def probability(self, text: str) -> float:
        """The best of the text and its base64/hex decodings (an instruction hidden in an encoding)."""
        z = self.logit(text)
        for decoded in _decodings(text, rot13=False):
            z = max(z, self.logit(decoded))
        return float(1.0 / (1.0 + np.exp(-z)))


# the classifier's probability cut-off per strength, from the HIGH one chosen on dev: MEDIUM and LOW ask for
# more confidence, as the lexical thresholds do
def _cutoffs(t_high: float) -> tuple[float, float, float]:
    return t_high, t_high + (1 - t_high) * 0.5, t_high + (1 - t_high) * 0.8


class CombinedInjectionDetector:
    """The lexical detector OR the learned classifier: the classifier's probability is mapped onto the lexical
    score scale so that p >= its cut-off for a strength gives a score >= the lexical threshold for that strength,
    and the verdict is the higher of the two scores (a text either detector flags is flagged)."""

    def __init__(
        self,
        lexical: LexicalInjectionDetector | None = None,
        classifier: HashedNgramInjectionClassifier | None = None,
        *,
        learned_sources: tuple[str, ...] = ("question",),
    ) -> None:
        self.lexical = lexical or LexicalInjectionDetector()
        self.classifier = classifier or HashedNgramInjectionClassifier.load()
        # Passages get the lexical detector only: on real documents (../shared/data/docs: a novel's dialogue,
        # football biographies, a bankruptcy handbook) the classifier dropped 21 of the passages retrieved for the
        # 37 dev questions, where the lexical detector dropped none — its benign passage training and test text
        # were SciFact abstracts only. Questions keep both (3/732 benign questions blocked on test).
        self.learned_sources = learned_sources

    def threshold(self, strength: Strength, source: Literal["question", "passage"] = "question") -> float:
        return self.lexical.threshold(strength, source)

    def classifier_score(self, probability: float, source: Literal["question", "passage"]) -> float:
        cuts = _cutoffs(self.classifier.thresholds[source])
        lex = self.lexical.thresholds[source]
        xs = [0.0, *cuts, 1.0 + 1e-9]
        ys = [0.0, lex["HIGH"], lex["MEDIUM"], lex["LOW"], lex["LOW"] + 1.0]
        return float(np.interp(probability, xs, ys))

    def score(self, text: str, *, source: Literal["question", "passage"] = "question") -> InjectionVerdict:
        verdict = self.lexical.score(text, source=source)
        if source not in self.learned_sources:
            return verdict
        learned = self.classifier_score(self.classifier.probability(text), source)
        if learned <= verdict.score:
            return verdict
        # redaction keeps the lexical spans when the patterns alone flag the text; otherwise the instruction's
        # place is unknown and the whole text is the span
        lexical_flags = verdict.score >= self.lexical.threshold("HIGH", source)
        spans = verdict.spans if lexical_flags and verdict.spans else ((0, len(text)),)
        return InjectionVerdict(learned, (*verdict.signals, "classifier"), spans)
