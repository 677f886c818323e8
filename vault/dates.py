"""Dates and times as nok stores them: ISO 8601 text, UTC for timestamps."""

from __future__ import annotations

import datetime as dt

from vault.errors import BadInput


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(now: dt.datetime) -> str:
    """A sortable UTC timestamp, e.g. ``2026-11-23T10:54:43.123456Z``."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day(now: dt.datetime) -> str:
    """The local calendar date of ``now`` as ``YYYY-MM-DD``."""
    return now.astimezone().date().isoformat()


def parse_day(text: str, *, field: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD``.

    Raises:
        BadInput: anything else.
    """
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput(
            "{field} {text!r} is not a date like 2026-11-23", field=field, text=text
        ) from None


def add_days(day_text: str, days: int) -> str:
    return (dt.date.fromisoformat(day_text) + dt.timedelta(days=days)).isoformat()
