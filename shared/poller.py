"""The poller use case: find new rows in the leads table and enqueue each exactly once.

Order of work, so that a crash at any line loses nothing: claim a row (atomic insert into the
ledger), enqueue its keys, mark it enqueued, and only after the whole read save the checkpoint.
A rerun re-reads the overlap window; claims make every re-read harmless.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import ResourceNotFoundError

from shared.services import Services
from shared.store import Checkpoint, ClaimOutcome, LeadsTableMissing, row_cache_key

log = logging.getLogger(__name__)

#: A row edited after install is history when its CreatedTime is this much older than the
#: floor. Generous, because CreatedTime's format and time zone are not documented.
HISTORY_SLACK = timedelta(days=2)


@dataclass(frozen=True)
class PollReport:
    lower_bound: datetime
    rows_read: int
    enqueued: int
    already_enqueued: int
    held_by_other_poller: int
    history_skipped: int
    watermark: datetime
    checkpoint_saved: bool
    leads_table_found: bool = True


def poll(
    services: Services, *, now: datetime | None = None, claimer: str | None = None
) -> PollReport:
    """One poll of the leads table: enqueue every new row once, then advance the checkpoint."""
    now = now or datetime.now(timezone.utc)
    claimer = claimer or uuid.uuid4().hex
    checkpoint = _checkpoint(services, now)
    overlap = services.settings.poll_overlap
    lower = max(checkpoint.floor, checkpoint.watermark - overlap)

    seen = dict(checkpoint.seen)
    newest_confirmed = checkpoint.watermark
    oldest_held: datetime | None = None
    rows = enqueued = already = held = history = 0
    try:
        for row in services.leads.changed_since(lower):
            rows += 1
            key = row_cache_key(row.ref)
            if key in seen:
                already += 1
            elif row.created is not None and row.created < checkpoint.floor - HISTORY_SLACK:
                history += 1  # an old lead edited after install: history, not a new lead
                seen[key] = row.timestamp.isoformat()
            else:
                outcome = services.ledger.claim(row.ref, row.timestamp, claimer, now)
                if outcome is ClaimOutcome.HELD:
                    held += 1
                    oldest_held = min(oldest_held or row.timestamp, row.timestamp)
                    continue
                if outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.TAKEN_OVER):
                    services.queue.send(row.ref)
                    services.ledger.mark_enqueued(row.ref, now)
                    enqueued += 1
                else:
                    already += 1
                seen[key] = row.timestamp.isoformat()
            newest_confirmed = max(newest_confirmed, row.timestamp)
    except LeadsTableMissing:
        log.info(
            "Leads table %r does not exist yet; Partner Center creates it with the first "
            "(test) lead",
            services.leads.name,
        )
        return PollReport(
            lower, 0, 0, 0, 0, 0, checkpoint.watermark, False, leads_table_found=False
        )

    # Never move past a row another poller still holds: it must stay inside the next read.
    watermark = newest_confirmed if oldest_held is None else min(newest_confirmed, oldest_held)
    watermark = max(watermark, checkpoint.watermark)
    next_lower = watermark - overlap
    seen = {key: ts for key, ts in seen.items() if datetime.fromisoformat(ts) >= next_lower}
    saved = services.checkpoints.save(
        Checkpoint(checkpoint.floor, watermark, seen, checkpoint.etag)
    )
    report = PollReport(lower, rows, enqueued, already, held, history, watermark, saved)
    log.info(
        "Poll of %s: read %d rows since %s, enqueued %d, already enqueued %d, held by another "
        "poller %d, created before the start %d; watermark %s%s",
        services.leads.name,
        rows,
        lower.isoformat(),
        enqueued,
        already,
        held,
        history,
        watermark.isoformat(),
        "" if saved else " (another poller saved its checkpoint first; keeping theirs)",
    )
    return report


def _checkpoint(services: Services, now: datetime) -> Checkpoint:
    """The stored checkpoint; on the first run, one whose floor is LEADS_START_FROM or now."""
    try:
        checkpoint = services.checkpoints.read()
    except ResourceNotFoundError:
        services.ensure_app_storage()
        checkpoint = services.checkpoints.read()
    if checkpoint is None:
        floor = services.settings.start_from or now
        checkpoint = services.checkpoints.create(floor)
        log.info(
            "First run: alerting on leads modified from %s on (older rows are history)",
            checkpoint.floor.isoformat(),
        )
    return checkpoint
