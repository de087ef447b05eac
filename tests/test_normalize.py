"""Unit tests for shared.normalize: what strangers typed, made safe and comparable.

Why: the same customer must look the same across leads (matching), and nothing a customer
types may break a mail header or mislead the reader (control and bidi characters).
"""

from __future__ import annotations

import unicodedata

import pytest

from shared.model import Contact
from shared.normalize import (
    MAX_FIELD_CHARS,
    clean_multiline,
    clean_text,
    country,
    normalize_contact,
    normalize_email,
    person_name,
    phone_e164,
)

# --------------------------------------------------------------------------- clean_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Smith\r\nBcc: x@evil.example", "Smith Bcc: x@evil.example"),
        ("a\tb", "a b"),
        ("  lots   of \n\n  space  ", "lots of space"),
        ("bell\x07 and nul\x00 and del\x7f", "bell and nul and del"),
        ("abc\u202edef\u202c", "abcdef"),
        ("\u2066isolated\u2069 \u200emark\u200f", "isolated mark"),
        ("Chief \U0001f600 Officer", "Chief \U0001f600 Officer"),
        ("Zoë Ångström 王", "Zoë Ångström 王"),
        (None, ""),
        (42, "42"),
    ],
)
def test_clean_text(raw: object, expected: str) -> None:
    assert clean_text(raw) == expected


def test_clean_text_leaves_no_control_or_bidi_characters() -> None:
    nasty = "".join(chr(c) for c in range(0x00, 0x20)) + "x\x7f\x85\u202a\u202b\u202d\u202e"
    cleaned = clean_text(nasty)
    assert cleaned == "x"
    assert not any(unicodedata.category(ch) == "Cc" for ch in cleaned)


def test_clean_text_cuts_10_kb_to_field_limit_with_ellipsis() -> None:
    cleaned = clean_text("A" * 10_000)
    assert MAX_FIELD_CHARS == 200
    assert len(cleaned) == 200
    assert cleaned.endswith("…")
    assert cleaned[:-1] == "A" * 199


def test_clean_text_does_not_leave_a_space_before_the_ellipsis() -> None:
    cleaned = clean_text("word " * 100, 12)
    assert len(cleaned) <= 12
    assert cleaned.endswith("…")
    assert not cleaned.endswith(" …")


def test_clean_text_without_limit_keeps_everything() -> None:
    assert clean_text("B" * 10_000, None) == "B" * 10_000


def test_clean_text_short_value_is_not_cut() -> None:
    assert clean_text("x" * 200) == "x" * 200


def test_clean_multiline_keeps_line_breaks_but_not_controls() -> None:
    text = "first\x00 line\r\n\r\n\r\n\r\nsecond\u202e\tline\n"
    assert clean_multiline(text, 4000) == "first line\n\nsecond line"


def test_clean_multiline_cuts_with_ellipsis() -> None:
    text = clean_multiline("line\n" * 1000, 50)
    assert len(text) <= 50
    assert text.endswith("…")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("McDonald", "McDonald"),
        ("van der Berg", "van der Berg"),  # mixed case: the customer's own spelling
        ("JANE", "Jane"),
        ("jane", "Jane"),
        ("o'neil", "O'Neil"),
        ("JEAN-LUC", "Jean-Luc"),
        ("  mary   ann ", "Mary Ann"),
        ("J", "J"),
        ("", ""),
    ],
)
def test_person_name(raw: str, expected: str) -> None:
    assert person_name(raw) == expected


def test_person_name_is_cleaned() -> None:
    assert person_name("Smith\r\nBcc: x") == "Smith Bcc: x"
    assert len(person_name("a" * 10_000)) == MAX_FIELD_CHARS


# --------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane.doe@contoso.com", "jane.doe@contoso.com"),
        ("Jane.Doe@CONTOSO.COM", "Jane.Doe@contoso.com"),
        ("  jane@contoso.com \r\n", "jane@contoso.com"),
        ("mailto:jane@contoso.com", "jane@contoso.com"),
        # No DNS look-up: a domain that does not resolve is still accepted.
        (
            "someone@no-such-domain-for-tests.contoso.com",
            "someone@no-such-domain-for-tests.contoso.com",
        ),
    ],
)
def test_valid_email_is_normalized(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        None,
        "not an email",
        "jane@",
        "@contoso.com",
        "jane@contoso",
        "jane doe@contoso.com",
        "a@b@contoso.com",
        "<script>alert(1)</script>",
        "x" * 250 + "@contoso.com",
    ],
)
def test_invalid_email_is_none(raw: object) -> None:
    assert normalize_email(raw) is None


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(425) 555-0100", "US", "+14255550100"),
        ("425.555.0100", "US", "+14255550100"),
        ("16175555555", None, "+16175555555"),
        ("+1 617 555 5555", None, "+16175555555"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),  # international form wins over region
        ("098765 43210", "IN", "+919876543210"),
    ],
)
def test_phone_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert phone_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("1234567890", "US"),  # the test lead's number: not a real US number
        ("020 7946 0958", None),  # national number without a country cannot be read
        ("", "US"),
        ("call me", "US"),
        ("12", "US"),
        (None, "US"),
    ],
)
def test_unusable_phone_is_none(raw: object, region: str | None) -> None:
    assert phone_e164(raw, region) is None


# --------------------------------------------------------------------------- country


@pytest.mark.parametrize("raw", ["US", "us", "USA", "United States", "united states", " U.S. "])
def test_united_states_spellings(raw: str) -> None:
    assert country(raw) == ("US", "United States")


@pytest.mark.parametrize("raw", ["UK", "uk", "GB", "United Kingdom", "England"])
def test_united_kingdom_spellings(raw: str) -> None:
    assert country(raw) == ("GB", "United Kingdom")


@pytest.mark.parametrize(("raw", "code"), [("India", "IN"), ("KR", "KR"), ("DEU", "DE")])
def test_other_countries(raw: str, code: str) -> None:
    found_code, name = country(raw)
    assert found_code == code
    assert name  # a display name, not empty


@pytest.mark.parametrize("raw", ["Narnia", "", None, "ZZ", "<script>"])
def test_unknown_country(raw: object) -> None:
    assert country(raw) == (None, None)


# --------------------------------------------------------------------------- contact


def test_normalize_contact_end_to_end() -> None:
    customer = normalize_contact(
        Contact(
            first_name="JANE",
            last_name="doe",
            email="Jane.Doe@CONTOSO.com",
            phone="(425) 555-0100",
            country="United States",
            company="  Contoso\r\nLtd ",
            title="VP\tSales",
        )
    )
    assert customer.first_name == "Jane"
    assert customer.last_name == "Doe"
    assert customer.full_name == "Jane Doe"
    assert customer.email == "Jane.Doe@contoso.com"
    assert customer.email_raw == "Jane.Doe@CONTOSO.com"
    assert customer.phone_e164 == "+14255550100"
    assert customer.phone_raw == "(425) 555-0100"
    assert customer.country_code == "US"
    assert customer.country_name == "United States"
    assert customer.country_raw == "United States"
    assert customer.company == "Contoso Ltd"
    assert customer.title == "VP Sales"


def test_normalize_contact_reads_phone_in_the_customers_country() -> None:
    customer = normalize_contact(Contact(phone="020 7946 0958", country="UK"))
    assert customer.phone_e164 == "+442079460958"
    assert customer.country_code == "GB"


def test_normalize_contact_keeps_raw_values_when_unusable() -> None:
    customer = normalize_contact(Contact(email="not-an-email", phone="ext. 12", country="Narnia"))
    assert customer.email is None
    assert customer.email_raw == "not-an-email"
    assert customer.phone_e164 is None
    assert customer.phone_raw == "ext. 12"
    assert (customer.country_code, customer.country_name) == (None, None)
    assert customer.country_raw == "Narnia"


def test_normalize_empty_contact() -> None:
    customer = normalize_contact(Contact())
    assert customer.full_name == ""
    assert customer.email is None
    assert customer.phone_e164 is None
    assert customer.country_code is None
