"""Dates and times as nok stores them: ISO 8601 text, UTC for timestamps, and calendar
days in the vault's own time zone (a signed setting, default Europe/Oslo).

Deadlines and "today" are days of the vault's calendar, never of the ``TZ`` a process
happens to run under: a purge started from a unit with another zone (or none) must
see the same day as the counselor who registered the consent.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from vault.errors import BadInput

DEFAULT_TIMEZONE = "Europe/Oslo"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(now: dt.datetime) -> str:
    """A sortable UTC timestamp, e.g. ``2026-11-23T10:54:43.123456Z``."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The time zone ``name`` (an IANA name such as ``Europe/Oslo``).

    Raises BadInput when this system (or the tzdata package) does not know it.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise BadInput(
            "unknown time zone {name!r} (an IANA name, e.g. Europe/Oslo)", name=name
        ) from None


def day(now: dt.datetime, zone_name: str) -> str:
    """The calendar date of ``now`` in the time zone ``zone_name``, as ``YYYY-MM-DD``."""
    return now.astimezone(zone(zone_name)).date().isoformat()


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
