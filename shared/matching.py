"""Who the customer is, and what to do with their lead given what came before.

Pure functions: the processor feeds them the customer's history read from storage and writes
back what they return.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from shared.model import DNC_ACTION, Customer, Decision, DecisionKind, HistoryEntry, Lead, RowRef

TEST_MARKER = "MSFT_TEST_"
#: Namespace for deterministic ACS operation ids (uuid5 of the row's keys and the mail kind).
_OPERATION_NAMESPACE = uuid.UUID("6f2b7c1e-3f0c-4e59-9d57-2d1f5b8a9c41")


def identity_key(customer: Customer) -> str | None:
    """The normalized email; else E.164 phone plus last name; else None (cannot be matched)."""
    if customer.email:
        return "email:" + customer.email.lower()
    if customer.phone_e164 and customer.last_name:
        return f"phone:{customer.phone_e164}|{customer.last_name.casefold()}"
    return None


def is_test_lead(lead: Lead) -> bool:
    """Partner Center's test lead carries `MSFT_TEST_` in its name, email or LeadSource."""
    contact = lead.contact
    fields = (contact.first_name, contact.last_name, contact.email, lead.lead_source)
    return any(TEST_MARKER in field.upper() for field in fields)


def row_id(row: RowRef) -> str:
    """A stable text id of a source row (for histories and operation ids)."""
    return f"{row.partition_key}\n{row.row_key}"


def operation_id(row: RowRef, mail_kind: str) -> str:
    """The ACS operation id for one mail about one row: the same on every retry."""
    return str(uuid.uuid5(_OPERATION_NAMESPACE, f"{row_id(row)}\n{mail_kind}"))


def mail_kind(kind: DecisionKind) -> str:
    return "test" if kind is DecisionKind.TEST else "alert"


def decide(
    lead: Lead,
    identity: str | None,
    history: Sequence[HistoryEntry],
    duplicate_window: timedelta,
) -> Decision:
    """The alert decision for one lead, given the customer's earlier leads for this offer."""
    this_row = row_id(lead.row)
    history = [entry for entry in history if entry.row_id != this_row]
    if is_test_lead(lead):
        kind = DecisionKind.TEST
    elif lead.action_code.upper() == DNC_ACTION:
        kind = DecisionKind.DO_NOT_CONTACT
    else:
        alerted = [entry for entry in history if entry.kind.alerts_sales]
        same_action = [
            entry
            for entry in alerted
            if entry.action_code.lower() == lead.action_code.lower()
            and abs(lead.received_at - entry.at) <= duplicate_window
        ]
        # Backfilled leads make this an update, never a duplicate: nobody knows whether the
        # old process alerted them, so a repeat of one is mailed rather than lost.
        known = alerted or [entry for entry in history if entry.kind is DecisionKind.HISTORY]
        if same_action:
            kind = DecisionKind.DUPLICATE
        elif known:
            kind = DecisionKind.UPDATE
        else:
            kind = DecisionKind.NEW
    op = operation_id(lead.row, mail_kind(kind)) if kind.sends_mail else None
    earlier = tuple(sorted(history, key=lambda entry: entry.at))
    return Decision(kind=kind, identity=identity, operation_id=op, earlier=earlier)


def history_entry(lead: Lead, decision: Decision) -> HistoryEntry:
    """What the customer history keeps about this lead once decided."""
    return HistoryEntry(
        row_id=row_id(lead.row),
        action_code=lead.action_code,
        action_label=lead.action_label,
        at=lead.received_at,
        kind=decision.kind,
        operation_id=decision.operation_id,
    )


def decision_from_history(
    lead: Lead, identity: str, history: Sequence[HistoryEntry]
) -> Decision | None:
    """The decision already taken for this row, if the history holds it (crash recovery)."""
    this_row = row_id(lead.row)
    for index, entry in enumerate(history):
        # A backfilled entry is not a decision: the row was indexed before it changed.
        if entry.row_id == this_row and entry.kind is not DecisionKind.HISTORY:
            earlier = tuple(sorted(history[:index], key=lambda e: e.at))
            return Decision(entry.kind, identity, entry.operation_id, earlier)
    return None
