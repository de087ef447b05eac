"""Unit tests for shared.status: what `cli status` counts and when it asks for attention."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.schedule import interval
from shared.status import (
    LedgerSummary,
    StatusReport,
    attention,
    duration,
    summarize_ledger,
)
from shared.store import Checkpoint

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
SINCE = NOW - timedelta(hours=24)


def ledger_row(status: str = "", decision: str = "", **times: datetime) -> dict:
    return {"Status": status, "Decision": decision, **times}


def test_outcomes_are_counted_by_status_and_decision() -> None:
    done = NOW - timedelta(hours=1)
    rows = [
        ledger_row("sent", "new", DoneAt=done),
        ledger_row("sent", "new", DoneAt=done),
        ledger_row("sent", "update", DoneAt=done),
        ledger_row("recorded", "duplicate", DoneAt=done),
        ledger_row("failed", "new", DoneAt=done),
        ledger_row("source_missing", "", DoneAt=done),
        ledger_row("sent", "new", DoneAt=SINCE - timedelta(minutes=1)),  # outside the window
    ]
    summary = summarize_ledger(rows, SINCE, NOW)
    assert summary.outcomes == {
        "new-lead alerts sent": 2,
        "update alerts sent": 1,
        "repeats within the window (no mail)": 1,
        "alerts ACS reported failed": 1,
        "rows deleted before they were read": 1,
    }
    assert (summary.failed, summary.pending) == (1, 0)


def test_unfinished_rows_are_pending_with_the_oldest_start() -> None:
    rows = [
        ledger_row(ClaimedAt=NOW - timedelta(minutes=3)),  # enqueued, not yet processed
        ledger_row("decided", "new", ClaimedAt=NOW - timedelta(minutes=40)),
        ledger_row(ResentAt=NOW - timedelta(hours=2)),  # a resend of a pre-install lead
    ]
    summary = summarize_ledger(rows, SINCE, NOW)
    assert summary.pending == 2
    assert summary.oldest_pending == NOW - timedelta(minutes=40)
    assert summary.resent == 1


def healthy() -> StatusReport:
    return StatusReport(
        now=NOW,
        leads_table="MarketplaceLeads",
        leads_table_exists=True,
        leads_recent=3,
        checkpoint=Checkpoint(NOW, NOW, saved_at=NOW - timedelta(seconds=40)),
        poll_interval=timedelta(minutes=1),
        queue_depth=0,
        poison_depth=0,
        ledger=LedgerSummary(),
    )


def test_a_healthy_app_needs_no_attention() -> None:
    assert attention(healthy()) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"checkpoint": None}, "The poller has never run"),
        (
            {"checkpoint": Checkpoint(NOW, NOW, saved_at=NOW - timedelta(minutes=11))},
            "last saved 11 min ago (polls are due every 60 s)",
        ),
        ({"poison_depth": 2}, "2 lead(s) failed every retry"),
        ({"ledger": LedgerSummary(failed=1)}, "ACS reported 1 mail(s) as failed"),
        (
            {"ledger": LedgerSummary(pending=1, oldest_pending=NOW - timedelta(minutes=16))},
            "1 lead(s) are not finished, the oldest for 16 min",
        ),
    ],
)
def test_problems_are_named(change: dict, words: str) -> None:
    problems = attention(replace(healthy(), **change))
    assert len(problems) == 1 and words in problems[0]


def test_late_is_relative_to_the_schedule() -> None:
    hourly = replace(
        healthy(),
        poll_interval=timedelta(hours=1),
        checkpoint=Checkpoint(NOW, NOW, saved_at=NOW - timedelta(minutes=50)),
    )
    assert attention(hourly) == []


def test_recent_pending_work_is_not_a_problem() -> None:
    busy = replace(
        healthy(), ledger=LedgerSummary(pending=5, oldest_pending=NOW - timedelta(minutes=2))
    )
    assert attention(busy) == []


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 */1 * * * *", timedelta(minutes=1)),
        ("*/30 * * * * *", timedelta(seconds=30)),
        ("0 0 * * * *", timedelta(hours=1)),
    ],
)
def test_poll_interval(schedule: str, expected: timedelta) -> None:
    assert interval(schedule, NOW) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42 s"), (600, "10 min"), (3 * 3600, "3 h"), (3 * 86400, "3 days")],
)
def test_duration(seconds: int, text: str) -> None:
    assert duration(timedelta(seconds=seconds)) == text
