"""PII found by patterns and checksums: e-mail, phone numbers of every region (libphonenumber), cards by brand
ranges + Luhn, IBAN, US SSN, IP addresses."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from lectern.domain.guardrails import (
    CREDIT_CARD,
    EMAIL,
    IBAN,
    IP_ADDRESS,
    PHONE,
    US_SSN,
    PiiSpan,
)


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
