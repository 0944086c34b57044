"""Cron schedules: validation and due times (croniter), in UTC or an IANA time zone."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from picloud.errors import BadRequest

__all__ = ["check_schedule", "check_timezone", "latest_due", "next_due"]

_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def check_schedule(value: object) -> str:
    """A standard 5-field cron expression (or one of the @daily-style macros)."""
    if not isinstance(value, str):
        raise BadRequest("field 'schedule' must be a string")
    text = " ".join(value.split())
    if text not in _MACROS and (len(text.split(" ")) != 5 or not _croniter().is_valid(text)):
        raise BadRequest(
            f"schedule must be a 5-field cron expression like '*/5 * * * *', got {value!r:.80}"
        )
    return text


def check_timezone(value: object) -> str | None:
    """An IANA time zone name such as 'Europe/Berlin'; None (or absent) means UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequest("field 'timezone' must be an IANA time zone name like 'Europe/Berlin'")
    try:
        _zone(value)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise BadRequest(f"unknown time zone {value!r:.80}") from None
    return value


def _croniter() -> Any:
    """croniter, imported on first use: ~1.7 MB the daemon need not hold with no cron trigger."""
    from croniter import croniter

    return croniter


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    # zoneinfo on first use, like croniter: nothing to hold without a cron trigger in a zone.
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def next_due(schedule: str, timezone: str | None, after_ms: int) -> int:
    """The first scheduled time strictly after `after_ms` (unix ms)."""
    start = datetime.fromtimestamp(after_ms / 1000, _zone(timezone))
    return int(_croniter()(schedule, start).get_next(float) * 1000)


def latest_due(schedule: str, timezone: str | None, now_ms: int) -> int:
    """The last scheduled time at or before `now_ms` (unix ms)."""
    # Step from just after `now` so a run due exactly at `now` counts.
    start = datetime.fromtimestamp((now_ms + 1) / 1000, _zone(timezone))
    return int(_croniter()(schedule, start).get_prev(float) * 1000)
