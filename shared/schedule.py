"""NCRONTAB schedules (six fields, seconds first, UTC), as the Functions timer trigger reads them.

Used by the local runner to fire timers and by `cli status` to know when a poll is late.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from croniter import CroniterError, croniter


class ScheduleError(ValueError):
    """A timer's schedule is not a six-field NCRONTAB expression."""


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the NCRONTAB `schedule` names, in UTC.

    NCRONTAB has six fields, seconds first: `{second} {minute} {hour} {day} {month}
    {day-of-week}`, e.g. `0 */5 * * * *` (every five minutes). A naive `after` is taken as UTC.
    """
    fields = schedule.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"schedule {schedule!r} is not NCRONTAB: it needs six fields, "
            "{second} {minute} {hour} {day} {month} {day-of-week}, e.g. '0 */5 * * * *'"
        )
    start = after.replace(tzinfo=timezone.utc) if after.tzinfo is None else after
    try:
        cron = croniter(" ".join(fields), start.astimezone(timezone.utc), second_at_beginning=True)
        return cron.get_next(datetime)
    except CroniterError as err:
        raise ScheduleError(
            f"schedule {schedule!r} is not a valid NCRONTAB expression: {err}"
        ) from None


def interval(schedule: str, now: datetime) -> timedelta:
    """The time between the next two ticks of `schedule` after `now`."""
    first = next_occurrence(schedule, now)
    return next_occurrence(schedule, first) - first
