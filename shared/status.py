"""`cli status`: is the app keeping up, and does anything need an operator?

`gather` reads the checkpoint, the queues and the last day of the ledger; `summarize_ledger`
and `attention` are pure, so what counts as a problem is unit-tested without storage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import ResourceNotFoundError

from shared.schedule import interval
from shared.services import Services
from shared.store import Checkpoint, LeadsTableMissing, Status

#: The window `status` reports on.
RECENT = timedelta(hours=24)
#: A lead not finished after this long is worth a look (deferrals last minutes, not this).
STUCK_AFTER = timedelta(minutes=15)
#: The checkpoint is late when older than this many poll intervals (and at least 10 minutes).
LATE_POLLS = 3
MIN_LATE = timedelta(minutes=10)

#: How each finished ledger row is counted, by (status, decision).
OUTCOME_LABELS: dict[tuple[str, str], str] = {
    (Status.SENT, "new"): "new-lead alerts sent",
    (Status.SENT, "update"): "update alerts sent",
    (Status.SENT, "test"): "test-lead mails sent",
    (Status.RECORDED, "duplicate"): "repeats within the window (no mail)",
    (Status.RECORDED, "dnc"): "do-not-contact notices (no mail)",
    (Status.FAILED, "new"): "alerts ACS reported failed",
    (Status.FAILED, "update"): "alerts ACS reported failed",
    (Status.FAILED, "test"): "test-lead mails ACS reported failed",
    (Status.SOURCE_MISSING, ""): "rows deleted before they were read",
}


@dataclass(frozen=True)
class LedgerSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    resent: int = 0
    pending: int = 0  # claimed or decided, not finished
    oldest_pending: datetime | None = None


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    leads_table: str
    leads_table_exists: bool
    leads_recent: int  # rows written to the leads table in the window
    checkpoint: Checkpoint | None
    poll_interval: timedelta
    queue_depth: int | None  # None: the queue does not exist yet
    poison_depth: int | None
    ledger: LedgerSummary

    @property
    def checkpoint_age(self) -> timedelta | None:
        saved = self.checkpoint.saved_at if self.checkpoint else None
        return None if saved is None else self.now - saved


def summarize_ledger(entities: Iterable[Mapping], since: datetime, now: datetime) -> LedgerSummary:
    """Count what happened to the leads handled since `since`, and what is still open."""
    outcomes: Counter[str] = Counter()
    failed = resent = pending = 0
    oldest: datetime | None = None
    for entity in entities:
        status = entity.get("Status") or ""
        resent_at = entity.get("ResentAt")
        if isinstance(resent_at, datetime) and resent_at >= since:
            resent += 1
        if status and status != Status.DECIDED:
            done_at = entity.get("DoneAt")
            if isinstance(done_at, datetime) and done_at < since:
                continue
            key = (status, entity.get("Decision") or "")
            outcomes[OUTCOME_LABELS.get(key, f"{status} ({key[1] or 'no decision'})")] += 1
            failed += status == Status.FAILED
            continue
        started = entity.get("ClaimedAt") or entity.get("DecidedAt")
        if isinstance(started, datetime):  # a resend-only row of an old lead has neither
            pending += 1
            oldest = started if oldest is None else min(oldest, started)
    return LedgerSummary(outcomes, failed, resent, pending, oldest)


def attention(report: StatusReport) -> list[str]:
    """What an operator should look at, in words; empty when all is well."""
    items: list[str] = []
    if report.checkpoint is None:
        items.append("The poller has never run: is the function app started?")
    else:
        late = max(MIN_LATE, LATE_POLLS * report.poll_interval)
        age = report.checkpoint_age
        if age is not None and age > late:
            items.append(
                f"The checkpoint was last saved {duration(age)} ago (polls are due every "
                f"{duration(report.poll_interval)}): is the timer function running?"
            )
    if report.poison_depth:
        items.append(
            f"{report.poison_depth} lead(s) failed every retry and wait in the poison queue: "
            "fix the cause (see the function logs), then run `replay`"
        )
    if report.ledger.failed:
        items.append(f"ACS reported {report.ledger.failed} mail(s) as failed in the last 24 h")
    oldest = report.ledger.oldest_pending
    if oldest is not None and report.now - oldest > STUCK_AFTER:
        items.append(
            f"{report.ledger.pending} lead(s) are not finished, the oldest for "
            f"{duration(report.now - oldest)}: check the queue function and ACS"
        )
    return items


def gather(services: Services, now: datetime | None = None) -> StatusReport:
    now = now or datetime.now(timezone.utc)
    since = now - RECENT
    try:
        leads_recent, table_exists = sum(1 for _ in services.leads.changed_since(since)), True
    except LeadsTableMissing:
        leads_recent, table_exists = 0, False
    try:
        checkpoint = services.checkpoints.read()
        ledger = summarize_ledger(services.ledger.changed_since(since), since, now)
    except ResourceNotFoundError:  # the app's tables do not exist: it never ran
        checkpoint, ledger = None, LedgerSummary()
    return StatusReport(
        now=now,
        leads_table=services.leads.name,
        leads_table_exists=table_exists,
        leads_recent=leads_recent,
        checkpoint=checkpoint,
        poll_interval=interval(services.settings.poll_schedule, now),
        queue_depth=services.queue_depth(),
        poison_depth=services.poison.depth(),
        ledger=ledger,
    )


def duration(delta: timedelta) -> str:
    """`42 s`, `7 min`, `3 h`, `2 days`: precise enough to tell late from stuck."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
