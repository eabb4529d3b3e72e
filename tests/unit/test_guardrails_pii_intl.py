"""PII beyond US/GB: national phone formats through libphonenumber, card brands by IIN range and length, IP
addresses masked by default (issue 15). Values here are not in tests/fixtures/guardrails/pii_intl.jsonl."""

from __future__ import annotations

import pytest

from lectern.adapters.local.guardrails import PatternPiiDetector, build_local_guard, card_brand, luhn_ok
from lectern.domain.guardrails import GuardrailPolicy, mask_spans
from lectern.domain.models import Chunk, ScoredChunk

PII = PatternPiiDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(s.type, s.text) for s in PII.find(text)]


def with_luhn(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError(body)


@pytest.mark.parametrize(
    "phone",
    [
        "01 45 67 89 12",  # FR landline
        "07 81 23 45 67",  # FR mobile
        "040 3456789",  # DE Hamburg
        "0171 2345678",  # DE mobile
        "03 234 56 78",  # BE Antwerp
        "030 234 5678",  # NL Utrecht
        "91 345 67 89",  # ES Madrid
        "055 123 4567",  # IT Florence
        "045-123-4567",  # JP Yokohama
        "080 2345 6789",  # IN Bangalore
        "(31) 3456-7890",  # BR Belo Horizonte
        "+33 (0)1 45 67 89 12",
        "0033 1 45 67 89 12",
    ],
)
def test_national_formats_of_other_countries_are_phones(phone: str) -> None:
    assert found(f"Tel. {phone}") == [("PHONE", phone)]
    assert found(f"Call {phone} today") == [("PHONE", phone)]


def test_the_brackets_of_the_sentence_are_not_part_of_the_number() -> None:
    assert found("Service (01 45 67 89 12) du lundi au vendredi") == [("PHONE", "01 45 67 89 12")]


@pytest.mark.parametrize(
    "text",
    [
        "Le rendez-vous du 14.03.2025 est confirmé.",
        "Zahlung am 03/11/2024, Betrag 1 234 567 €.",
        "The company has 23 456 789 customers.",
        "Total: EUR 2.345.678,90",
        "Kundennummer 0123 4567 89, bitte angeben.",
        "Bestellnummer 040 3456789 wurde versandt.",  # a valid German number after "Bestellnummer"
        "Rechnung Nr. 0171 2345678 vom Mai",
        "Numéro SIREN 552 100 554 de la société.",
        "From 1998-2011 the plant ran at 91 345 678 tonnes.",
        "Ordine n. 055 123 4567 spedito.",
        "Batch 20250314-0912 passed QA.",
        "ISBN 978-88-04-12345-6",
        "Article 345 of 2019, paragraph 12 3456",
        "The patent US 10 234 567 was granted.",
    ],
)
def test_dates_amounts_and_ids_are_not_phones(text: str) -> None:
    assert [t for t, _ in found(text) if t == "PHONE"] == [], found(text)


@pytest.mark.parametrize(
    ("brand", "prefix", "length"),
    [
        ("visa", "4", 13), ("visa", "4", 19), ("mastercard", "2221", 16), ("mastercard", "2720", 16),
        ("mastercard", "51", 16), ("amex", "34", 15), ("amex", "37", 15), ("jcb", "3528", 15), ("jcb", "3589", 19),
        ("maestro", "6759", 12), ("maestro", "5893", 13), ("maestro", "6304", 19), ("discover", "6011", 16),
        ("discover", "622126", 16), ("diners", "305", 14), ("diners", "36", 14), ("unionpay", "62", 19),
        ("mir", "2204", 16),
    ],
)  # fmt: skip
def test_card_brands_by_iin_range_and_length(brand: str, prefix: str, length: int) -> None:
    number = with_luhn(prefix + "7" * (length - len(prefix) - 1))
    assert card_brand(number) == brand or (brand == "discover" and card_brand(number) in ("discover", "unionpay"))
    assert found(f"card {number} please") == [("CREDIT_DEBIT_CARD_NUMBER", number)]


def test_cards_outside_every_brand_or_failing_luhn_are_not_cards() -> None:
    assert card_brand("2720" + "0" * 12) == "mastercard" and card_brand("2721" + "0" * 12) is None
    assert card_brand("3527" + "0" * 12) is None  # below JCB's 3528
    assert card_brand(with_luhn("51" + "1" * 12)) is None  # Mastercard is 16 digits only
    short = with_luhn("5612345678" + "1")  # a 12-digit number in Maestro's wide 56 range: too common an ID shape
    assert card_brand(short) is None
    bad = with_luhn("3528" + "1" * 10)
    wrong = bad[:-1] + str((int(bad[-1]) + 1) % 10)
    assert found(f"card {wrong}") == []
    assert found(f"EAN {with_luhn('6759' + '1' * 7)}") == []  # a 12-digit code after "EAN"


def test_ip_addresses_are_masked_by_default_and_can_be_let_through() -> None:
    guard = build_local_guard(learned_injection=False)
    chunk = ScoredChunk(Chunk("c", "t", "d", "doc.txt", 1, 0, "The attack came from 203.0.113.9 at noon."), 1.0)
    assert guard.check_passages("t", [chunk])[0].chunk.text == "The attack came from {IP_ADDRESS} at noon."
    quoting = GuardrailPolicy.from_mapping({"pii": {"IP_ADDRESS": "NONE"}})
    spans = PII.find("gateway 10.0.0.1")
    assert mask_spans("gateway 10.0.0.1", spans, quoting) == "gateway 10.0.0.1"


def test_a_number_counts_only_as_its_country_writes_it() -> None:
    germany = PatternPiiDetector(("DE",), common_regions=False)
    assert [s.text for s in germany.find("Tel. 030 1234567")] == ["030 1234567"]
    assert germany.find("Tel. 30 1234567") == []  # valid digits, but Germans write the trunk 0


def test_policy_phone_regions_come_first_and_are_validated() -> None:
    # Luxembourg's plan is not among the common regions (most runs of digits are valid there)
    assert found("ring 32 12 34 56") == []
    policy = GuardrailPolicy.from_mapping({"phone_regions": ["lu"]})
    assert policy.phone_regions == ("LU",)
    guard = build_local_guard(policy, learned_injection=False)
    assert [(s.type, s.text) for s in guard.pii.find("ring 32 12 34 56")] == [("PHONE", "32 12 34 56")]
    with pytest.raises(ValueError, match="ISO 3166"):
        GuardrailPolicy(phone_regions=("Denmark",))
