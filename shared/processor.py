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
    message = decode_message(body)
    if message.resend_id is not None:
        return _resend(services, message.ref, message.resend_id, now)
    ref = message.ref
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
        this_row = history_entry(lead, decision)
        entries = [e for e in history.entries if e.row_id != this_row.row_id] + [this_row]
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
    mail = _mail(services, lead, customer, decision)
    assert decision.operation_id is not None
    result = _send_or_defer(services, ref, mail, decision.operation_id, now, maybe_sent=maybe_sent)
    if result is None:
        return ProcessReport(ref.display, Status.DECIDED, deferred=True)
    status = Status.FAILED if result.failed else Status.SENT
    services.ledger.record_outcome(
        ref,
        status,
        now,
        AcsStatus=result.status,
        AcsError=result.error or "",
        Recipients=",".join(mail.to),
    )
    _log_send(lead, decision, result)
    return ProcessReport(ref.display, status, decision.kind, mail.to, mail.subject)


def _mail(
    services: Services,
    lead: Lead,
    customer: Customer,
    decision: Decision,
    resent_at: datetime | None = None,
) -> OutgoingEmail:
    settings = services.settings
    is_test = decision.kind is DecisionKind.TEST
    rendered = render(lead, customer, decision, resent_at=resent_at)
    return OutgoingEmail(
        sender=settings.email_sender,
        to=settings.admin_recipients if is_test else settings.alert_recipients,
        subject=rendered.subject,
        plain_text=rendered.plain_text,
        html=rendered.html,
    )


def _send_or_defer(
    services: Services,
    ref: RowRef,
    mail: OutgoingEmail,
    operation_id: str,
    now: datetime,
    *,
    maybe_sent: bool,
    resend_id: str | None = None,
) -> SendResult | None:
    """Send under a held lease; None when ACS throttles and the row went back on the queue."""
    release = services.ledger.release_resend if resend_id else services.ledger.release_send
    try:
        return services.mailer.send(mail, operation_id, maybe_sent=maybe_sent)
    except Throttled as throttled:
        # Sleeping through ACS's limit would hang the function, and five quick queue retries
        # would poison the lead: put it back on the queue, invisible until ACS is ready again.
        release(ref, now)
        _defer(services, ref, throttled.retry_after, "ACS is throttling", resend_id=resend_id)
        return None
    except (HttpResponseError, ServiceRequestError):
        # ACS refused or could not be reached: nothing holds the row, the queue retries it.
        # (A retry still asks ACS first: a mail accepted before a failed status poll counts.)
        release(ref, now)
        raise


def _defer(
    services: Services,
    ref: RowRef,
    seconds: float,
    reason: str,
    *,
    resend_id: str | None = None,
) -> ProcessReport:
    """Put the row back on the queue, invisible for a while; this message is then done."""
    delay = timedelta(seconds=int(min(max(seconds, 5), MAX_DEFER_SECONDS)))
    services.queue.send(ref, delay=delay, resend_id=resend_id)
    log.warning("Lead %s is queued again for %d s: %s", ref.display, delay.seconds, reason)
    return ProcessReport(ref.display, Status.DECIDED, deferred=True)


# --------------------------------------------------------------------------- resend


def _resend(services: Services, ref: RowRef, resend_id: str, now: datetime) -> ProcessReport:
    """An operator asked for this row's alert again (`cli resend`): one more mail, once.

    The request's id is the mail's operation id; the ledger row holds a lease on it the way a
    normal send does, so a redelivered request neither sends twice nor is lost.
    """
    record = services.ledger.get(ref)
    for _ in range(MAX_LEDGER_ATTEMPTS):
        if record is not None and record.resend_id == resend_id:
            if record.resend_status:
                log.info("Resend %s of lead %s already done", resend_id, ref.display)
                return ProcessReport(ref.display, Status.SENT, record.kind, already_done=True)
            lease = record.resend_lease_until
            if lease is not None and now < lease:
                wait = (lease - now).total_seconds() + 5
                reason = "another instance is sending this resend"
                return _defer(services, ref, wait, reason, resend_id=resend_id)
        if services.ledger.claim_resend(ref, record, resend_id, now + SEND_LEASE):
            break
        record = services.ledger.get(ref)
    else:
        return _defer(services, ref, 10, "its ledger row kept changing", resend_id=resend_id)
    entity = services.leads.get(ref)
    if entity is None:
        services.ledger.record_resend(ref, resend_id, "SourceMissing", now)
        log.warning("Resend of lead %s: the row is gone from the leads table", ref.display)
        return ProcessReport(ref.display, Status.SOURCE_MISSING)
    lead = parse_lead(entity, now=now)
    customer = normalize_contact(lead.contact)
    decision = _resend_decision(services, lead, customer, record)
    mail = _mail(services, lead, customer, decision, resent_at=now)
    # maybe_sent: a redelivered request may have sent before a crash, so ACS is asked first.
    result = _send_or_defer(
        services, ref, mail, resend_id, now, maybe_sent=True, resend_id=resend_id
    )
    if result is None:
        return ProcessReport(ref.display, Status.DECIDED, deferred=True)
    services.ledger.record_resend(ref, resend_id, result.status, now)
    _log_send(lead, decision, result)
    status = Status.FAILED if result.failed else Status.SENT
    return ProcessReport(ref.display, status, decision.kind, mail.to, mail.subject)


def _resend_decision(
    services: Services, lead: Lead, customer: Customer, record: LedgerRecord | None
) -> Decision:
    """The decision the row was mailed under; for a row never mailed, an alert as it would be
    now (a repeat or a do-not-contact row is sent as a plain alert: the operator asked)."""
    if record is not None and record.kind is not None and record.kind.sends_mail:
        return Decision(record.kind, record.identity, None, record.earlier)
    identity = identity_key(customer)
    history = services.histories.read(identity, lead.offer_key).entries if identity else ()
    decision = decide(lead, identity, history, services.settings.duplicate_window)
    if decision.kind.sends_mail:
        return decision
    prior = [entry for entry in decision.earlier if entry.kind is not DecisionKind.TEST]
    kind = DecisionKind.UPDATE if prior else DecisionKind.NEW
    return Decision(kind, identity, None, decision.earlier)


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
