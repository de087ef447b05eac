"""`cli backfill`: teach the customer history about leads from before the install, mailing no one.

Without it, a customer who was a lead last month gets a "[New lead]" alert after the install.
Backfilled rows are entries of kind `history`: the next lead of that customer is an update
that lists them, but never a suppressed repeat, because nobody knows whether the old process
alerted them. Only rows older than the checkpoint's floor are read, so the pipeline's own rows
are never touched; entries are keyed by row, so running it again adds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from shared.matching import identity_key, is_test_lead, row_id
from shared.model import DecisionKind, HistoryEntry, RowRef
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.services import Services

#: Attempts to merge into one customer's history while the pipeline writes to it too.
MAX_MERGE_ATTEMPTS = 8

CustomerKey = tuple[str, str]  # (identity, offer key)


class BackfillError(RuntimeError):
    """Backfill cannot start; the message says what to do."""


@dataclass
class BackfillReport:
    rows_read: int = 0
    indexed: int = 0
    already_indexed: int = 0
    test_leads: int = 0
    unmatched: int = 0  # no valid email, nor phone and last name: nothing to match on
    customers: int = 0
    contended: int = 0  # histories that kept changing; run again to finish them


@dataclass(frozen=True)
class BackfillPlan:
    entries: dict[CustomerKey, list[HistoryEntry]]
    report: BackfillReport


def plan(
    rows: Iterable[Mapping], *, now: datetime, on_row: Callable[[], None] = lambda: None
) -> BackfillPlan:
    """Group the rows' history entries by customer and offer (pure: no storage)."""
    report = BackfillReport()
    entries: dict[CustomerKey, list[HistoryEntry]] = defaultdict(list)
    for entity in rows:
        report.rows_read += 1
        on_row()
        lead = parse_lead(entity, now=now)
        if is_test_lead(lead):
            report.test_leads += 1
            continue
        identity = identity_key(normalize_contact(lead.contact))
        if identity is None:
            report.unmatched += 1
            continue
        entries[(identity, lead.offer_key)].append(
            HistoryEntry(
                row_id=row_id(RowRef(entity["PartitionKey"], entity["RowKey"])),
                action_code=lead.action_code,
                action_label=lead.action_label,
                at=lead.received_at,
                kind=DecisionKind.HISTORY,
            )
        )
    report.customers = len(entries)
    return BackfillPlan(dict(entries), report)


def window_end(services: Services, since: datetime) -> datetime:
    """The checkpoint's floor: rows before it are history. Errors say what to do first."""
    try:
        checkpoint = services.checkpoints.read()
    except ResourceNotFoundError:
        checkpoint = None
    if checkpoint is None:
        raise BackfillError(
            "The app has not polled yet, so the line between history and new leads is not "
            "drawn: start the function app (or `python -m shared.devhost --once`) first"
        )
    if since >= checkpoint.floor:
        raise BackfillError(
            f"Nothing to do: --since {since.isoformat()} is not before the app's start "
            f"({checkpoint.floor.isoformat()}); later leads are already in the history"
        )
    return checkpoint.floor


def apply(
    services: Services,
    backfill_plan: BackfillPlan,
    *,
    on_customer: Callable[[], None] = lambda: None,
) -> BackfillReport:
    """Merge each customer's entries into their history (If-Match; re-read on a lost race)."""
    report = backfill_plan.report
    for (identity, offer), entries in backfill_plan.entries.items():
        for _ in range(MAX_MERGE_ATTEMPTS):
            history = services.histories.read(identity, offer)
            known = {entry.row_id for entry in history.entries}
            new = [entry for entry in entries if entry.row_id not in known]
            if not new:
                break
            merged = sorted([*history.entries, *new], key=lambda entry: entry.at)
            if services.histories.write(identity, offer, merged, history.etag):
                break
        else:
            report.contended += 1
            on_customer()
            continue
        report.indexed += len(new)
        report.already_indexed += len(entries) - len(new)
        on_customer()
    return report
