"""The processor use case: one queued row becomes at most one mail, whatever is retried.

Order of work for a row: read the ledger (done? stop), load and parse the row, decide (the
decision is committed in the customer's history with If-Match, then written to the ledger
with its operation id and a lease on the right to send, again with If-Match), send, record.

A retry resumes from the last write: a decision found in the history or the ledger is reused;
while another instance holds the lease the message is put back on the queue for later; a send
that may have reached ACS before a crash is first looked up at ACS under its operation id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import HttpResponseError, ServiceRequestError

from shared.mailer import OutgoingEmail, SendResult, Throttled
from shared.matching import (
    decide,
    decision_from_history,
    history_entry,
    identity_key,
    is_test_lead,
)
from shared.model import Customer, Decision, DecisionKind, Lead, RowRef
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.redact import mask_identity
from shared.render import render
from shared.services import Services
from shared.store import LedgerRecord, Status, decode_message

log = logging.getLogger(__name__)

#: Attempts to commit a decision while other processors keep changing the same history.
MAX_DECISION_ATTEMPTS = 8
#: Re-reads of the ledger when another writer (the poller's enqueue mark) changed it.
MAX_LEDGER_ATTEMPTS = 4
#: How long the right to send one mail is held; longer than the mailer's bounded send.
SEND_LEASE = timedelta(minutes=2)
#: Longest a deferred lead waits on the queue before its next try.
MAX_DEFER_SECONDS = 3600


class HistoryContention(RuntimeError):
    """The customer's history kept changing; raising lets the queue retry the lead later."""


class Busy(Exception):
    """Another instance is handling this row; try again after `seconds`."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class ProcessReport:
    row: str
    status: Status
    kind: DecisionKind | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    already_done: bool = False
    deferred: bool = False


def process(services: Services, body: str | bytes, *, now: datetime | None = None) -> ProcessReport:
    """Handle one queue message; raise on failures that a retry can fix."""
    now = now or datetime.now(timezone.utc)
    ref = decode_message(body)
    record = services.ledger.get(ref)
    if _is_done(record):
        return _already_done(ref, record)
    entity = services.leads.get(ref)
    if entity is None:
        services.ledger.record_outcome(ref, Status.SOURCE_MISSING, now)
        log.warning("Lead %s was deleted from the leads table before it was read", ref.display)
        return ProcessReport(ref.display, Status.SOURCE_MISSING)
    lead = parse_lead(entity, now=now)
    customer = normalize_contact(lead.contact)

    try:
        decision, maybe_sent = _decide_and_claim(services, ref, record, lead, customer, now)
    except Busy as busy:
        return _defer(services, ref, busy.seconds, str(busy))
    except _AlreadyDone as done:
        return _already_done(ref, done.record)

    if not decision.kind.sends_mail:
        services.ledger.record_outcome(ref, Status.RECORDED, now)
        _log_outcome(lead, decision, "recorded, no mail")
        return ProcessReport(ref.display, Status.RECORDED, decision.kind)
    return _send(services, ref, lead, customer, decision, maybe_sent, now)


def _is_done(record: LedgerRecord | None) -> bool:
    return record is not None and record.status is not None and record.status.final


def _already_done(ref: RowRef, record: LedgerRecord) -> ProcessReport:
    log.info("Lead %s already handled (%s); nothing to do", ref.display, record.status)
    assert record.status is not None
    return ProcessReport(ref.display, record.status, record.kind, already_done=True)


class _AlreadyDone(Exception):
    def __init__(self, record: LedgerRecord) -> None:
        self.record = record


def _decide_and_claim(
    services: Services,
    ref: RowRef,
    record: LedgerRecord | None,
    lead: Lead,
    customer: Customer,
    now: datetime,
) -> tuple[Decision, bool]:
    """The decision, and for a mail the right to send it; plus whether a send may have
    happened before. Every ledger write is conditional; a lost race re-reads the ledger."""
    for _ in range(MAX_LEDGER_ATTEMPTS):
        if record is None or record.kind is None:
            decision = _commit_decision(services, lead, identity_key(customer))
            if services.ledger.record_decision(
                ref,
                record,
                kind=decision.kind,
                operation_id=decision.operation_id,
                identity=decision.identity,
                earlier=decision.earlier,
                now=now,
                lease=SEND_LEASE,
            ):
                return decision, False
        else:
            decision = Decision(record.kind, record.identity, record.operation_id, record.earlier)
            if not decision.kind.sends_mail:
                return decision, False
            if record.lease_until is not None and now < record.lease_until:
                wait = (record.lease_until - now).total_seconds() + 5
                raise Busy("another instance holds the right to send it", wait)
            if services.ledger.claim_send(ref, record, now + SEND_LEASE):
                return decision, record.lease_until is not None
        record = services.ledger.get(ref)
        if _is_done(record):
            assert record is not None
            raise _AlreadyDone(record)
    raise Busy("its ledger row kept changing", 10)


def _commit_decision(services: Services, lead: Lead, identity: str | None) -> Decision:
    """Decide against the customer's history and commit it there with If-Match."""
    window = services.settings.duplicate_window
    if identity is None or is_test_lead(lead):
        return decide(lead, None, (), window)  # nothing to match against
    for _ in range(MAX_DECISION_ATTEMPTS):
        history = services.histories.read(identity, lead.offer_key)
        earlier = decision_from_history(lead, identity, history.entries)
        if earlier is not None:
            return earlier  # decided before a crash; the ledger write was lost
        decision = decide(lead, identity, history.entries, window)
        entries = [*history.entries, history_entry(lead, decision)]
        if services.histories.write(identity, lead.offer_key, entries, history.etag):
            return decision
    raise HistoryContention(f"history of {mask_identity(identity)} kept changing")


def _send(
    services: Services,
    ref: RowRef,
    lead: Lead,
    customer: Customer,
    decision: Decision,
    maybe_sent: bool,
    now: datetime,
) -> ProcessReport:
    settings = services.settings
    is_test = decision.kind is DecisionKind.TEST
    recipients = settings.admin_recipients if is_test else settings.alert_recipients
    rendered = render(lead, customer, decision)
    mail = OutgoingEmail(
        sender=settings.email_sender,
        to=recipients,
        subject=rendered.subject,
        plain_text=rendered.plain_text,
        html=rendered.html,
    )
    assert decision.operation_id is not None
    try:
        result = services.mailer.send(mail, decision.operation_id, maybe_sent=maybe_sent)
    except Throttled as throttled:
        # Sleeping through ACS's limit would hang the function, and five quick queue retries
        # would poison the lead: put it back on the queue, invisible until ACS is ready again.
        services.ledger.release_send(ref, now)
        return _defer(services, ref, throttled.retry_after, "ACS is throttling")
    except (HttpResponseError, ServiceRequestError):
        # ACS refused or could not be reached: nothing holds the row, the queue retries it.
        # (A retry still asks ACS first: a mail accepted before a failed status poll counts.)
        services.ledger.release_send(ref, now)
        raise
    status = Status.FAILED if result.failed else Status.SENT
    services.ledger.record_outcome(
        ref,
        status,
        now,
        AcsStatus=result.status,
        AcsError=result.error or "",
        Recipients=",".join(recipients),
    )
    _log_send(lead, decision, result)
    return ProcessReport(ref.display, status, decision.kind, recipients, rendered.subject)


def _defer(services: Services, ref: RowRef, seconds: float, reason: str) -> ProcessReport:
    """Put the row back on the queue, invisible for a while; this message is then done."""
    delay = timedelta(seconds=int(min(max(seconds, 5), MAX_DEFER_SECONDS)))
    services.queue.send(ref, delay=delay)
    log.warning("Lead %s is queued again for %d s: %s", ref.display, delay.seconds, reason)
    return ProcessReport(ref.display, Status.DECIDED, deferred=True)


def _log_send(lead: Lead, decision: Decision, result: SendResult) -> None:
    if result.failed:
        log.error(
            "ACS reported the mail for lead %s as %s: %s; operation %s",
            lead.row.display,
            result.status,
            result.error,
            result.operation_id,
        )
    _log_outcome(lead, decision, f"mail {result.status.lower()}, operation {result.operation_id}")


def _log_outcome(lead: Lead, decision: Decision, what: str) -> None:
    log.info(
        "Lead %s (%s, %s): %s for customer %s; %s",
        lead.row.display,
        lead.action_code or "no action",
        lead.offer_id or lead.offer_name or "no offer",
        decision.kind.value,
        mask_identity(decision.identity),
        what,
    )
