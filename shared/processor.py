"""The processor use case: one queued row becomes at most one mail, whatever is retried.

Order of work for a row: read the ledger (done? stop), load and parse the row, decide (the
decision is committed in the customer's history with If-Match, then written to the ledger
with its operation id), send, record. A retry after a crash resumes from the last write:
a decision found in the history or the ledger is reused, and a send that may have happened
is first looked up at ACS under its operation id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from shared.mailer import OutgoingEmail, Throttled
from shared.matching import (
    decide,
    decision_from_history,
    history_entry,
    identity_key,
    is_test_lead,
)
from shared.model import Decision, DecisionKind, Lead
from shared.normalize import normalize_contact
from shared.parsing import parse_lead
from shared.redact import mask_identity
from shared.render import render
from shared.services import Services
from shared.store import Status, decode_message

log = logging.getLogger(__name__)

#: Attempts to commit a decision while other processors keep changing the same history.
MAX_DECISION_ATTEMPTS = 8
#: Longest a throttled lead waits on the queue before its next try.
MAX_THROTTLE_DELAY_SECONDS = 3600


class HistoryContention(RuntimeError):
    """The customer's history kept changing; raising lets the queue retry the lead later."""


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
    if record is not None and record.status is not None and record.status.final:
        log.info("Lead %s already handled (%s); nothing to do", ref.display, record.status)
        return ProcessReport(ref.display, record.status, record.kind, already_done=True)

    entity = services.leads.get(ref)
    if entity is None:
        services.ledger.record_outcome(ref, Status.SOURCE_MISSING, now)
        log.warning("Lead %s was deleted from the leads table before it was read", ref.display)
        return ProcessReport(ref.display, Status.SOURCE_MISSING)

    lead = parse_lead(entity, now=now)
    customer = normalize_contact(lead.contact)
    if record is not None and record.kind is not None:
        decision = Decision(record.kind, record.identity, record.operation_id, record.earlier)
        maybe_sent = True  # a previous attempt decided and may have reached ACS
    else:
        decision = _commit_decision(services, lead, identity_key(customer))
        services.ledger.record_decision(
            ref,
            kind=decision.kind,
            operation_id=decision.operation_id,
            identity=decision.identity,
            earlier=decision.earlier,
            now=now,
        )
        maybe_sent = False

    if not decision.kind.sends_mail:
        services.ledger.record_outcome(ref, Status.RECORDED, now)
        _log_outcome(lead, decision, "recorded, no mail")
        return ProcessReport(ref.display, Status.RECORDED, decision.kind)

    settings = services.settings
    recipients = (
        settings.admin_recipients
        if decision.kind is DecisionKind.TEST
        else settings.alert_recipients
    )
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
        delay = timedelta(seconds=min(max(throttled.retry_after, 5), MAX_THROTTLE_DELAY_SECONDS))
        services.queue.send(ref, delay=delay)
        log.warning(
            "ACS is throttling; lead %s is queued again for %d s", ref.display, delay.seconds
        )
        return ProcessReport(ref.display, Status.DECIDED, decision.kind, deferred=True)
    status = Status.FAILED if result.failed else Status.SENT
    services.ledger.record_outcome(
        ref,
        status,
        now,
        AcsStatus=result.status,
        AcsError=result.error or "",
        Recipients=",".join(recipients),
    )
    if result.failed:
        log.error(
            "ACS reported the mail for lead %s as %s: %s; operation %s",
            ref.display,
            result.status,
            result.error,
            result.operation_id,
        )
    _log_outcome(lead, decision, f"mail {result.status.lower()}, operation {result.operation_id}")
    return ProcessReport(ref.display, status, decision.kind, recipients, rendered.subject)


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
