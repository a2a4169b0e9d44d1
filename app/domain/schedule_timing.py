"""When schedules run: 5-field cron strings evaluated in UTC, intervals with a fixed cadence, and the schedule in
words ("every 5 minutes", "every day at 09:00 UTC")."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterBadDateError, croniter

from app.domain.timeutil import iso_from_timestamp

MIN_INTERVAL_SECONDS = 10
MAX_INTERVAL_SECONDS = 31_536_000
# Missed cron due times are counted back from now up to this many: a longer outage reads "1000+" (its count stays
# 1000), so catching up never enumerates months of minutes (an every-minute cron down 70 days is ~100,000).
MAX_MISSED_COUNTED = 1000


def cron_error(expression: str) -> str | None:
    """Why a cron string cannot be used, or None: five fields (minute hour day month weekday), UTC."""
    if len(expression.split()) != 5:
        return "must have 5 fields: minute hour day-of-month month day-of-week"
    if not croniter.is_valid(expression):
        return "is not a valid cron expression"
    try:  # valid fields can still name no date at all (0 0 31 2 *): it would never fire
        croniter(expression).get_next(float)
    except CroniterBadDateError:
        return "never fires (no date matches it)"
    return None


def next_due(definition: dict[str, Any], after: float, base: float | None = None) -> float:
    """The first due time strictly after `after`: cron in UTC; an interval counts from `base` (its previous due
    time), so the cadence does not drift."""
    if definition.get("cron"):
        return float(croniter(definition["cron"], datetime.fromtimestamp(after, UTC)).get_next(float))
    interval = int(definition["intervalSeconds"])
    if base is None:
        return after + interval
    steps = max(1, int((after - base) // interval) + 1)
    return base + steps * interval


def missed_due_times(definition: dict[str, Any], start: float, until: float, keep: int) -> tuple[int, list[float]]:
    """How many due times fall in [start, until] and the last `keep` of them, oldest first. Intervals are counted
    arithmetically (exact); cron ones are walked back from `until`, at most MAX_MISSED_COUNTED (then "1000+")."""
    if until < start:
        return 0, []
    if not definition.get("cron"):
        interval = int(definition["intervalSeconds"])
        count = int((until - start) // interval) + 1
        return count, [start + step * interval for step in range(max(0, count - keep), count)]
    walk = croniter(definition["cron"], datetime.fromtimestamp(until + 1, UTC))  # get_prev is strictly before
    times: list[float] = []
    while len(times) < MAX_MISSED_COUNTED:
        moment = float(walk.get_prev(float))
        if moment < start:
            break
        if moment <= until:
            times.append(moment)
    return len(times), times[:keep][::-1]


def preview(definition: dict[str, Any], count: int = 5, now: float | None = None) -> list[str]:
    """The next `count` run times (ISO, UTC) of a definition, for the form before saving."""
    moment = time.time() if now is None else now
    runs: list[str] = []
    for _ in range(count):
        moment = next_due(definition, moment, base=moment if runs else None)
        runs.append(iso_from_timestamp(moment))
    return runs


_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _describe_cron(expression: str) -> str:
    """Common cron shapes in words (UTC); any other shape as its cron string."""
    minute, hour, day, month, weekday = expression.split()
    if (day, month) != ("*", "*"):
        return f"cron {expression} (UTC)"
    every = re.fullmatch(r"(\*|\*/\d+)", minute)
    if every and (hour, weekday) == ("*", "*"):
        step = int(minute[2:]) if minute != "*" else 1
        return "every minute" if step == 1 else f"every {step} minutes"
    if minute.isdigit() and hour == "*" and weekday == "*":
        return f"every hour at :{int(minute):02d}"
    if minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d} UTC"
        if weekday == "*":
            return f"every day at {at}"
        if weekday.isdigit() and int(weekday) < len(_DAYS):
            return f"every {_DAYS[int(weekday)]} at {at}"
    return f"cron {expression} (UTC)"


def describe(definition: dict[str, Any]) -> str:
    """The schedule in words: "every 5 minutes", "every day at 09:00 UTC", else the cron string."""
    if definition.get("cron"):
        return _describe_cron(definition["cron"])
    seconds = int(definition["intervalSeconds"])
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"
