"""Unit tests for shared.matching: who the customer is and what to do with their lead.

Why: a customer often produces several leads (contact me, then install). Sales should get one
alert per new action, never a repeat within the window, never a test lead or a do-not-contact
heads-up, and a retried alert must reuse the same ACS operation id.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.matching import (
    decide,
    decision_from_history,
    history_entry,
    identity_key,
    is_test_lead,
    operation_id,
    row_id,
)
from shared.model import (
    Contact,
    Customer,
    Decision,
    DecisionKind,
    HistoryEntry,
    Lead,
    RowRef,
)
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.sample_leads import jane
from shared.sample_leads import test_lead as sample_test_lead

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
WINDOW = timedelta(days=14)
IDENTITY = "email:jane.doe@contoso.com"


def make_customer(**fields: object) -> Customer:
    values: dict[str, object] = {
        "first_name": "",
        "last_name": "",
        "company": "",
        "title": "",
        "email": None,
        "email_raw": "",
        "phone_e164": None,
        "phone_raw": "",
        "country_code": None,
        "country_name": None,
        "country_raw": "",
    }
    values.update(fields)
    return Customer(**values)  # type: ignore[arg-type]


def make_lead(
    action: str = "PLT",
    *,
    at: datetime = T0,
    row_key: str = "row-1",
    contact: Contact | None = None,
    lead_source: str | None = None,
) -> Lead:
    return Lead(
        row=RowRef("3:2F1:2F2026", row_key),
        lead_source=lead_source if lead_source is not None else f"SPZA-{action}|contoso.crm",
        source_code="SPZA",
        source_label="AppSource",
        action_code=action,
        action_label=action,
        offer_id="contoso.crm",
        offer_name="Contoso CRM",
        description="",
        received_at=at,
        contact=contact or Contact(first_name="Jane", last_name="Doe", email="jane@contoso.com"),
    )


def entry(
    action: str, at: datetime, kind: DecisionKind = DecisionKind.NEW, row: str = "old"
) -> HistoryEntry:
    return HistoryEntry(
        row_id=row, action_code=action, action_label=action, at=at, kind=kind, operation_id=None
    )


# --------------------------------------------------------------------------- identity


def test_identity_is_the_whole_email_lower_cased() -> None:
    customer = make_customer(email="Jane.Doe@contoso.com", last_name="Doe")
    assert identity_key(customer) == "email:jane.doe@contoso.com"


def test_identity_same_customer_different_spelling_matches() -> None:
    one = normalize_contact(Contact(email="jane.doe@contoso.com", last_name="DOE"))
    two = normalize_contact(Contact(email=" Jane.Doe@CONTOSO.com ", last_name="Doe"))
    assert identity_key(one) == identity_key(two) is not None


def test_identity_differs_for_different_addresses() -> None:
    a = make_customer(email="jane@contoso.com")
    b = make_customer(email="jane@contoso.org")
    assert identity_key(a) != identity_key(b)


def test_identity_falls_back_to_phone_and_last_name() -> None:
    customer = make_customer(phone_e164="+14255550100", last_name="Doe")
    key = identity_key(customer)
    assert key is not None
    assert "+14255550100" in key
    assert "doe" in key
    assert not key.startswith("email:")
    other_name = make_customer(phone_e164="+14255550100", last_name="Smith")
    same_name_other_case = make_customer(phone_e164="+14255550100", last_name="DOE")
    assert identity_key(other_name) != key
    assert identity_key(same_name_other_case) == key


def test_email_wins_over_phone() -> None:
    customer = make_customer(email="a@contoso.com", phone_e164="+14255550100", last_name="Doe")
    assert identity_key(customer) == "email:a@contoso.com"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"phone_e164": "+14255550100"},  # phone without last name: too weak
        {"last_name": "Doe", "first_name": "Jane", "company": "Contoso"},
        {"email_raw": "not-an-email", "phone_raw": "call me", "last_name": "Doe"},
    ],
)
def test_no_identity_without_email_or_phone_and_last_name(fields: dict) -> None:
    assert identity_key(make_customer(**fields)) is None


# --------------------------------------------------------------------------- test lead


def test_partner_center_test_lead_is_detected() -> None:
    lead = parse_lead(sample_test_lead(when=T0), now=T0)
    assert is_test_lead(lead)


@pytest.mark.parametrize(
    "contact",
    [
        Contact(first_name="MSFT_TEST_123"),
        Contact(last_name="msft_test_123"),
        Contact(email="Msft_Test_42@test.com"),
    ],
)
def test_marker_in_name_or_email_any_case(contact: Contact) -> None:
    assert is_test_lead(make_lead(contact=contact))


def test_marker_in_lead_source() -> None:
    lead = make_lead(contact=Contact(), lead_source="msft_test_1-msft_test_1|Contoso CRM")
    assert is_test_lead(lead)


def test_real_lead_is_not_a_test_lead() -> None:
    lead = parse_lead(jane("PLT", when=T0), now=T0)
    assert not is_test_lead(lead)
    assert not is_test_lead(make_lead(contact=Contact(first_name="MSFT", last_name="TEST")))


# --------------------------------------------------------------------------- decide


def test_test_lead_decision() -> None:
    lead = parse_lead(sample_test_lead(when=T0), now=T0)
    decision = decide(lead, "email:msft_test@test.com", [entry("PLT", T0)], WINDOW)
    assert decision.kind is DecisionKind.TEST
    assert decision.kind.sends_mail and not decision.kind.alerts_sales
    assert decision.operation_id is not None


@pytest.mark.parametrize("action", ["DNC", "dnc"])
def test_do_not_contact_sends_nothing(action: str) -> None:
    decision = decide(make_lead(action), IDENTITY, [], WINDOW)
    assert decision.kind is DecisionKind.DO_NOT_CONTACT
    assert decision.operation_id is None
    assert not decision.kind.sends_mail


def test_first_lead_is_new() -> None:
    decision = decide(make_lead("PLT"), IDENTITY, [], WINDOW)
    assert decision.kind is DecisionKind.NEW
    assert decision.identity == IDENTITY
    assert decision.earlier == ()
    assert decision.operation_id is not None


def test_unmatched_lead_is_new() -> None:
    decision = decide(make_lead("PLT"), None, [], WINDOW)
    assert decision.kind is DecisionKind.NEW
    assert decision.identity is None


def test_same_action_within_window_is_duplicate() -> None:
    history = [entry("PLT", T0)]
    lead = make_lead("PLT", at=T0 + timedelta(days=3), row_key="row-2")
    decision = decide(lead, IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.DUPLICATE
    assert decision.operation_id is None
    assert not decision.kind.sends_mail


def test_same_action_compares_codes_ignoring_case() -> None:
    history = [entry("ins", T0)]
    decision = decide(make_lead("INS", at=T0 + timedelta(hours=1)), IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.DUPLICATE


def test_same_action_at_window_edge_is_duplicate_and_just_after_is_not() -> None:
    history = [entry("PLT", T0)]
    at_edge = decide(make_lead("PLT", at=T0 + WINDOW), IDENTITY, history, WINDOW)
    after = decide(
        make_lead("PLT", at=T0 + WINDOW + timedelta(seconds=1)), IDENTITY, history, WINDOW
    )
    assert at_edge.kind is DecisionKind.DUPLICATE
    assert after.kind is DecisionKind.UPDATE


def test_same_action_outside_window_is_not_duplicate() -> None:
    history = [entry("PLT", T0)]
    decision = decide(make_lead("PLT", at=T0 + timedelta(days=30)), IDENTITY, history, WINDOW)
    assert decision.kind is not DecisionKind.DUPLICATE
    assert decision.kind.alerts_sales


def test_zero_window_never_suppresses_a_later_lead() -> None:
    history = [entry("PLT", T0)]
    later = make_lead("PLT", at=T0 + timedelta(seconds=1))
    assert decide(later, IDENTITY, history, timedelta(0)).kind is DecisionKind.UPDATE


@pytest.mark.parametrize("earlier_kind", [DecisionKind.DUPLICATE, DecisionKind.DO_NOT_CONTACT])
def test_earlier_entry_that_was_not_alerted_does_not_make_a_duplicate(
    earlier_kind: DecisionKind,
) -> None:
    history = [entry("PLT", T0, kind=earlier_kind)]
    decision = decide(make_lead("PLT", at=T0 + timedelta(hours=1)), IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.NEW
    # ...but the mail still shows what came before.
    assert decision.earlier == tuple(history)


def test_earlier_test_lead_does_not_make_a_duplicate() -> None:
    history = [entry("PLT", T0, kind=DecisionKind.TEST)]
    decision = decide(make_lead("PLT", at=T0 + timedelta(hours=1)), IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.NEW


def test_new_action_after_alerted_one_is_update_with_sorted_history() -> None:
    plt = entry("PLT", T0, row="r1")
    dup = entry("PLT", T0 + timedelta(days=1), kind=DecisionKind.DUPLICATE, row="r2")
    trial = entry("FreeTrial", T0 + timedelta(days=2), kind=DecisionKind.UPDATE, row="r3")
    history = [trial, plt, dup]  # storage order is not time order
    lead = make_lead("INS", at=T0 + timedelta(days=3), row_key="r4")
    decision = decide(lead, IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.UPDATE
    assert decision.kind.alerts_sales
    assert decision.earlier == (plt, dup, trial)
    assert decision.operation_id is not None


def test_update_when_only_older_alert_is_outside_window() -> None:
    history = [entry("PLT", T0 - timedelta(days=60))]
    decision = decide(make_lead("INS", at=T0), IDENTITY, history, WINDOW)
    assert decision.kind is DecisionKind.UPDATE


# --------------------------------------------------------------------------- operation ids


def test_operation_id_is_deterministic_uuid() -> None:
    lead = make_lead("PLT")
    first = decide(lead, IDENTITY, [], WINDOW)
    again = decide(replace(lead), IDENTITY, [], WINDOW)
    assert first.operation_id == again.operation_id
    assert first.operation_id is not None
    assert str(uuid.UUID(first.operation_id)) == first.operation_id


def test_operation_id_differs_by_row() -> None:
    one = decide(make_lead("PLT", row_key="row-1"), IDENTITY, [], WINDOW)
    two = decide(make_lead("PLT", row_key="row-2"), IDENTITY, [], WINDOW)
    other_partition = make_lead("PLT", row_key="row-1")
    other_partition = replace(other_partition, row=RowRef("3:2F2:2F2026", "row-1"))
    three = decide(other_partition, IDENTITY, [], WINDOW)
    assert len({one.operation_id, two.operation_id, three.operation_id}) == 3


def test_operation_id_differs_by_mail_kind() -> None:
    ref = RowRef("p", "r")
    assert operation_id(ref, "alert") != operation_id(ref, "test")
    assert operation_id(ref, "alert") == operation_id(RowRef("p", "r"), "alert")


def test_new_and_update_of_one_row_share_the_alert_operation_id() -> None:
    # A retry that re-decides the same row as UPDATE must not send a second, different mail.
    lead = make_lead("INS", row_key="same")
    new = decide(lead, IDENTITY, [], WINDOW)
    update = decide(lead, IDENTITY, [entry("PLT", T0 - timedelta(days=1))], WINDOW)
    assert new.kind is DecisionKind.NEW and update.kind is DecisionKind.UPDATE
    assert new.operation_id == update.operation_id


def test_test_mail_operation_id_differs_from_alert_for_same_row() -> None:
    row = sample_test_lead(when=T0)
    test = parse_lead(row, now=T0)
    real = replace(make_lead("PLT"), row=test.row)
    assert (
        decide(test, None, [], WINDOW).operation_id != decide(real, None, [], WINDOW).operation_id
    )


# --------------------------------------------------------------------------- history


def test_history_entry_records_the_decision() -> None:
    lead = make_lead("INS", at=T0, row_key="r9")
    decision = Decision(DecisionKind.UPDATE, IDENTITY, "op-1", ())
    recorded = history_entry(lead, decision)
    assert recorded.row_id == row_id(lead.row)
    assert recorded.action_code == "INS"
    assert recorded.at == T0
    assert recorded.kind is DecisionKind.UPDATE
    assert recorded.operation_id == "op-1"


def test_decision_from_history_finds_this_row() -> None:
    lead_b = make_lead("INS", at=T0 + timedelta(days=2), row_key="b")
    a = entry("PLT", T0 + timedelta(days=1), row=row_id(RowRef(lead_b.row.partition_key, "a")))
    z = entry("PLT", T0, kind=DecisionKind.DUPLICATE, row="z")
    b = HistoryEntry(
        row_id=row_id(lead_b.row),
        action_code="INS",
        action_label="Install",
        at=lead_b.received_at,
        kind=DecisionKind.UPDATE,
        operation_id="op-b",
    )
    later = entry("StartTestDrive", T0 + timedelta(days=5), row="c")
    found = decision_from_history(lead_b, IDENTITY, [a, z, b, later])
    assert found is not None
    assert found.kind is DecisionKind.UPDATE
    assert found.operation_id == "op-b"
    assert found.identity == IDENTITY
    assert found.earlier == (z, a)  # the ones before it, in time order; not the later one


def test_decision_from_history_none_when_row_not_there() -> None:
    lead = make_lead("PLT", row_key="unknown")
    assert decision_from_history(lead, IDENTITY, [entry("PLT", T0, row="other")]) is None
    assert decision_from_history(lead, IDENTITY, []) is None


def test_decide_then_record_then_recover_round_trip() -> None:
    first = make_lead("PLT", at=T0, row_key="r1")
    first_decision = decide(first, IDENTITY, [], WINDOW)
    history = [history_entry(first, first_decision)]
    second = make_lead("INS", at=T0 + timedelta(days=1), row_key="r2")
    second_decision = decide(second, IDENTITY, history, WINDOW)
    history.append(history_entry(second, second_decision))
    recovered = decision_from_history(second, IDENTITY, history)
    assert recovered == second_decision


# --------------------------------------------------------------------------- backfilled history


def test_backfilled_lead_makes_the_next_one_an_update_not_a_repeat() -> None:
    old = entry("PLT", T0 - timedelta(days=2), kind=DecisionKind.HISTORY)
    decision = decide(make_lead("PLT"), IDENTITY, [old], WINDOW)
    assert decision.kind is DecisionKind.UPDATE  # the old process may have lost it: mail it
    assert decision.earlier == (old,)


def test_repeat_of_an_alerted_lead_is_still_a_repeat_with_backfilled_history() -> None:
    history = [
        entry("PLT", T0 - timedelta(days=30), kind=DecisionKind.HISTORY),
        entry("PLT", T0 - timedelta(days=1), kind=DecisionKind.NEW),
    ]
    assert decide(make_lead("PLT"), IDENTITY, history, WINDOW).kind is DecisionKind.DUPLICATE


def test_a_backfilled_row_that_changes_later_is_decided_afresh() -> None:
    lead = make_lead("PLT")
    indexed = replace(entry("PLT", T0, kind=DecisionKind.HISTORY), row_id=row_id(lead.row))
    assert decision_from_history(lead, IDENTITY, [indexed]) is None
    decision = decide(lead, IDENTITY, [indexed], WINDOW)
    assert decision.kind is DecisionKind.NEW  # not an update about itself
    assert decision.earlier == ()
