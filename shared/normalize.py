"""Normalization of what strangers typed: names, email, phone, country.

Pure functions built on libraries made for each job (email-validator, phonenumbers, pycountry)
so the same customer looks the same across leads and the alert reads cleanly.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from shared.model import Contact, Customer

#: Longest name, company or title shown; longer values are cut with an ellipsis.
MAX_FIELD_CHARS = 200

#: Common names for countries that ISO 3166 spells otherwise.
_COUNTRY_ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "great britain": "GB",
    "u.s.": "US",
    "u.s.a.": "US",
    "america": "US",
    "russia": "RU",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "uae": "AE",
    "turkey": "TR",
}

# Bidirectional overrides can make a name display as something else; drop them with controls.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
_WHITESPACE = re.compile(r"\s+")


def clean_text(value: object, max_chars: int | None = MAX_FIELD_CHARS) -> str:
    """Trim, collapse inner whitespace, drop control characters, cut overlong values."""
    if value is None:
        return ""
    text = str(value)
    text = "".join(
        " " if ch in "\t\r\n\v\f" else ch
        for ch in text
        if ch in "\t\r\n\v\f"
        or (unicodedata.category(ch) not in ("Cc", "Cs", "Co") and ch not in _BIDI_CONTROLS)
    )
    text = _WHITESPACE.sub(" ", text).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def clean_multiline(value: object, max_chars: int) -> str:
    """Like `clean_text` but keeps line breaks (descriptions are free text)."""
    lines = [clean_text(line, None) for line in str(value or "").splitlines()]
    text = "\n".join(lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return text


def person_name(value: object) -> str:
    """Clean a first or last name; ALL-CAPS or all-lower names are title-cased."""
    text = clean_text(value)
    cased = [ch for ch in text if ch.isupper() or ch.islower()]
    if len(cased) > 1 and (all(ch.isupper() for ch in cased) or all(ch.islower() for ch in cased)):
        text = text.title()
    return text


def normalize_email(value: object) -> str | None:
    """A syntactically valid address (no DNS look-up), or None."""
    text = clean_text(value, None)
    if text.lower().startswith("mailto:"):
        text = text[7:]
    if not text or len(text) > 254:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def country(value: object) -> tuple[str | None, str | None]:
    """ISO 3166 alpha-2 code and display name for a code or a name, or (None, None)."""
    text = clean_text(value, 100)
    if not text:
        return None, None
    code = _COUNTRY_ALIASES.get(text.lower())
    try:
        match = pycountry.countries.lookup(code or text)
    except LookupError:
        return None, None
    return match.alpha_2, getattr(match, "common_name", None) or match.name


def phone_e164(value: object, region: str | None) -> str | None:
    """E.164 form of a valid phone number, reading national numbers in the lead's country."""
    text = clean_text(value, 64)
    if not any(ch.isdigit() for ch in text):
        return None
    if region is None and not text.startswith("+"):
        text = "+" + text  # without a country only an international number can be read
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_contact(contact: Contact) -> Customer:
    """The customer as the alert shows them and as matching compares them."""
    country_code, country_name = country(contact.country)
    return Customer(
        first_name=person_name(contact.first_name),
        last_name=person_name(contact.last_name),
        company=clean_text(contact.company),
        title=clean_text(contact.title),
        email=normalize_email(contact.email),
        email_raw=clean_text(contact.email),
        phone_e164=phone_e164(contact.phone, country_code),
        phone_raw=clean_text(contact.phone, 64),
        country_code=country_code,
        country_name=country_name,
        country_raw=clean_text(contact.country, 100),
    )
