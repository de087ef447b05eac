"""Masking for logs: an operator needs to tell leads apart, not to read customers' details."""

from __future__ import annotations


def mask_email(address: str | None) -> str:
    """`jane.doe@contoso.com` -> `j***@contoso.com` (the domain helps, the person stays hidden)."""
    if not address:
        return "-"
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str | None) -> str:
    """`+14255550100` -> `+1******0100`-style: country code and last digits only."""
    if not number:
        return "-"
    digits = [ch for ch in number if ch.isdigit()]
    if len(digits) < 6:
        return "***"
    prefix = "+" + digits[0] if number.startswith("+") else ""
    return f"{prefix}{'*' * (len(digits) - 5)}{''.join(digits[-4:])}"


def mask_identity(identity: str | None) -> str:
    """A customer identity key (`email:...` or `phone:...|lastname`), masked."""
    if not identity:
        return "unmatched"
    kind, _, value = identity.partition(":")
    if kind == "email":
        return "email:" + mask_email(value)
    phone, _, _ = value.partition("|")
    return "phone:" + mask_phone(phone)
