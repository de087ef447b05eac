"""Unit tests for shared.redact: log masks.

Why: logs are read by operators and kept for weeks; they must tell leads apart (domain, last
digits) without holding a customer's address or number.
"""

from __future__ import annotations

import re

import pytest

from shared.redact import mask_email, mask_identity, mask_phone


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("jane.doe@contoso.com", "contoso.com"),
        ("Raj.Patel+leads@northwind.in", "northwind.in"),
        ("ab@x.example", "x.example"),
    ],
)
def test_mask_email_keeps_domain_hides_local_part(address: str, domain: str) -> None:
    local = address.rpartition("@")[0]
    masked = mask_email(address)
    assert masked.endswith("@" + domain)
    assert local not in masked
    assert masked != address
    assert "***" in masked
    # At most the first character of the local part is shown.
    shown_local = masked.rpartition("@")[0].replace("*", "")
    assert len(shown_local) <= 1


@pytest.mark.parametrize("value", [None, ""])
def test_mask_email_empty(value: str | None) -> None:
    assert mask_email(value) == "-"


def test_mask_email_without_at_sign_shows_nothing() -> None:
    masked = mask_email("jane.doe.contoso.com")
    assert "jane" not in masked
    assert "contoso" not in masked


@pytest.mark.parametrize(
    "number", ["+14255550100", "+442079460958", "+919876543210", "(425) 555-0100", "16175555555"]
)
def test_mask_phone_keeps_last_four_digits_only(number: str) -> None:
    digits = re.sub(r"\D", "", number)
    masked = mask_phone(number)
    masked_digits = re.sub(r"\D", "", masked)
    assert masked.endswith(digits[-4:])
    assert digits not in masked_digits
    # At most the first (country) digit and the last four show.
    assert len(masked_digits) <= 5
    assert "*" in masked


def test_mask_phone_keeps_international_prefix() -> None:
    masked = mask_phone("+14255550100")
    assert masked.startswith("+1")
    assert masked.endswith("0100")
    assert "555" not in masked


@pytest.mark.parametrize("number", ["12345", "+1", "abc"])
def test_mask_phone_too_short_to_show_anything(number: str) -> None:
    masked = mask_phone(number)
    assert not any(ch.isdigit() for ch in masked)


@pytest.mark.parametrize("value", [None, ""])
def test_mask_phone_empty(value: str | None) -> None:
    assert mask_phone(value) == "-"


def test_mask_identity_email() -> None:
    masked = mask_identity("email:jane.doe@contoso.com")
    assert masked.startswith("email:")
    assert masked.endswith("@contoso.com")
    assert "jane.doe" not in masked


def test_mask_identity_phone_hides_number_and_last_name() -> None:
    masked = mask_identity("phone:+14255550100|doe")
    assert masked.startswith("phone:")
    assert masked.endswith("0100")
    assert "4255550100" not in masked
    assert "doe" not in masked


def test_mask_identity_none() -> None:
    assert mask_identity(None) == "unmatched"
