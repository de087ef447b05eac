"""Unit tests for the pure helpers of shared.store: table keys, queue messages, history JSON.

Why: source keys and offer ids become PartitionKey/RowKey of the app's own tables; Azure
Tables forbids some characters and sizes, and two different values must never share a key
(that would merge two customers' histories or two rows' ledgers). Queue messages and the
history are the app's own durable formats: they must round-trip exactly.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest

from shared.model import DecisionKind, HistoryEntry, RowRef
from shared.store import (
    LeadMessage,
    decode_message,
    encode_message,
    entries_from_json,
    entries_to_json,
    escape_key,
    row_cache_key,
)

FORBIDDEN = set("/\\#?")


def is_valid_table_key(key: str) -> bool:
    """What Azure Tables accepts in PartitionKey/RowKey (and a size we keep under)."""
    return (
        not (FORBIDDEN & set(key))
        and not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in key)
        and len(key.encode("utf-8")) <= 512
    )


# --------------------------------------------------------------------------- escape_key


@pytest.mark.parametrize(
    "value",
    [
        "3/5/2026",
        "back\\slash",
        "hash#tag",
        "what?",
        "tab\tnew\nline\rcr",
        "nul\x00del\x7fc1\x85\x9f",
        "100%",
        "plain",
        "",
        "émoji 😀 日本",
    ],
)
def test_escaped_key_is_valid(value: str) -> None:
    assert is_valid_table_key(escape_key(value))


def test_forbidden_characters_disappear() -> None:
    escaped = escape_key("a/b\\c#d?e\x01f")
    for ch in "/\\#?\x01":
        assert ch not in escaped
    assert escaped.startswith("a") and escaped.endswith("f")


def test_ordinary_text_is_unchanged() -> None:
    assert escape_key("contoso.crm-connector") == "contoso.crm-connector"
    assert escape_key("Jane Doe 日本 😀") == "Jane Doe 日本 😀"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a/b", "a%2Fb"),
        ("a%2Fb", "a%252Fb"),
        ("#", "%23"),
        ("?", "%3F"),
        ("\\", "%5C"),
        ("a\nb", "a%0Ab"),
        ("%", "%25"),
        ("a/b", "a\\b"),
        ("sha256-x", "sha256-y"),
    ],
)
def test_tricky_pairs_stay_distinct(a: str, b: str) -> None:
    assert escape_key(a) != escape_key(b)


def test_injective_over_a_small_alphabet() -> None:
    alphabet = ["a", "/", "%", "2", "F", "\n"]
    values = ["".join(p) for n in range(5) for p in itertools.product(alphabet, repeat=n)]
    escaped = {escape_key(v) for v in values}
    assert len(escaped) == len(values)


@pytest.mark.parametrize("value", ["a/b%2F", "50% off / now?", "x\x00y\x9fz", "日本/語#1", "%%%"])
def test_short_keys_decode_back_to_the_original(value: str) -> None:
    # Escapes are %XX of code points below 0xA0: percent-decoding as Latin-1 undoes them.
    assert unquote(escape_key(value), encoding="latin-1") == value


def test_key_at_512_bytes_is_kept_and_longer_is_hashed() -> None:
    at_limit = "k" * 512
    assert escape_key(at_limit) == at_limit
    longer = escape_key("k" * 513)
    assert longer != "k" * 513
    assert is_valid_table_key(longer)
    assert len(longer) < 513


def test_long_values_are_hashed_distinctly_and_deterministically() -> None:
    one = "x" * 600 + "1"
    two = "x" * 600 + "2"  # same long prefix: a truncation would collide
    assert escape_key(one) != escape_key(two)
    assert escape_key(one) == escape_key("x" * 600 + "1")
    for value in (one, two, "/" * 200, "日" * 200):
        assert is_valid_table_key(escape_key(value))


def test_escaping_that_grows_past_the_limit_is_hashed() -> None:
    value = "/" * 200  # 200 characters, 600 once escaped
    key = escape_key(value)
    assert is_valid_table_key(key)
    assert key != escape_key("/" * 201)


def test_row_cache_key_keeps_the_boundary_between_keys() -> None:
    assert row_cache_key(RowRef("a/b", "c")) != row_cache_key(RowRef("a", "b/c"))
    assert row_cache_key(RowRef("p", "r")) == row_cache_key(RowRef("p", "r"))
    assert row_cache_key(RowRef("p", "r")) != row_cache_key(RowRef("r", "p"))


# --------------------------------------------------------------------------- queue messages


@pytest.mark.parametrize(
    "ref",
    [
        RowRef("3:2F5:2F2026", "20260305093000-001-abcd1234"),
        RowRef("", ""),
        RowRef('quote"s', "back\\slash/ü 😀\n"),
    ],
)
def test_message_round_trip(ref: RowRef) -> None:
    text = encode_message(ref)
    assert decode_message(text) == LeadMessage(ref)
    assert decode_message(text.encode("utf-8")) == LeadMessage(ref)


def test_resend_message_round_trip() -> None:
    ref = RowRef("p", "r")
    text = encode_message(ref, resend_id="7d1c0f9e-0000-4000-8000-000000000001")
    assert decode_message(text) == LeadMessage(ref, "7d1c0f9e-0000-4000-8000-000000000001")


def test_message_carries_only_the_keys() -> None:
    data = json.loads(encode_message(RowRef("p", "r")))
    assert data == {"pk": "p", "rk": "r"}


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "null",
        "[]",
        '["p", "r"]',
        '{"pk": "p"}',
        '{"rk": "r"}',
        '{"pk": 1, "rk": "r"}',
        '{"pk": "p", "rk": null}',
        '{"pk": "p", "rk": "r", "resend": 5}',
        b"\xff\xfe",
    ],
)
def test_decode_rejects_junk(body: str | bytes) -> None:
    with pytest.raises(ValueError):
        decode_message(body)


# --------------------------------------------------------------------------- history JSON


def test_entries_json_round_trip() -> None:
    t0 = datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
    entries = (
        HistoryEntry("p\nr1", "PLT", "Contact me", t0, DecisionKind.NEW, "op-1"),
        HistoryEntry(
            "p\nr2", "PLT", "Contact me", t0 + timedelta(hours=1), DecisionKind.DUPLICATE, None
        ),
        HistoryEntry(
            "p\nr3", "DNC", "Do not contact", t0 + timedelta(days=1), DecisionKind.DO_NOT_CONTACT
        ),
        HistoryEntry(
            "p\nr4",
            "FreeTrial",
            "FreeTrial",
            datetime(2026, 3, 2, 11, 0, tzinfo=timezone(timedelta(hours=2))),
            DecisionKind.UPDATE,
            "op-4",
        ),
        HistoryEntry("p\nr5", "MSFT_TEST_1", "MSFT_TEST_1", t0, DecisionKind.TEST, "op-5"),
    )
    restored = entries_from_json(entries_to_json(entries))
    assert restored == entries
    assert all(entry.at.tzinfo is not None for entry in restored)
    assert restored[3].at.utcoffset() == timedelta(hours=2)


def test_entries_json_accepts_a_list_and_is_json() -> None:
    entry = HistoryEntry(
        "r", "INS", "Install", datetime(2026, 1, 1, tzinfo=timezone.utc), DecisionKind.NEW
    )
    text = entries_to_json([entry])
    assert isinstance(json.loads(text), list)
    assert entries_from_json(text) == (entry,)


@pytest.mark.parametrize("text", [None, "", "[]"])
def test_empty_entries(text: str | None) -> None:
    assert entries_from_json(text) == ()
