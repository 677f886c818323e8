"""Dates as people type them: ``YYYY-MM-DD``, or today, yesterday, i dag, i går, or a
weekday (mandag ... søndag, monday ... sunday) meaning the last such day, today included.

The vault checks the date further (not in the future, not before the consent).
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from vault.dates import DEFAULT_TIMEZONE, day
from vault.errors import BadInput

DAYS_BACK = {"today": 0, "i dag": 0, "idag": 0, "yesterday": 1, "i går": 1, "igår": 1}
WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
    "mandag": 0,
    "tirsdag": 1,
    "onsdag": 2,
    "torsdag": 3,
    "fredag": 4,
    "lørdag": 5,
    "søndag": 6,
}


def resolve(
    text: str | None, now: dt.datetime, *, field: str, zone: str = DEFAULT_TIMEZONE
) -> str | None:
    """``text`` as ``YYYY-MM-DD``: a date as it is, or a word for a day relative to ``now``
    in the calendar of ``zone`` (the vault's).

    Raises:
        BadInput: neither (``field`` names the option in the message).
    """
    if text is None:
        return None
    word = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    today = dt.date.fromisoformat(day(now, zone))
    if word in DAYS_BACK:
        return (today - dt.timedelta(days=DAYS_BACK[word])).isoformat()
    if word in WEEKDAYS:
        back = (today.weekday() - WEEKDAYS[word]) % 7
        return (today - dt.timedelta(days=back)).isoformat()
    try:
        if len(text) != len("2026-11-23"):
            raise ValueError
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadInput(
            "{field} {text!r} is not a date: use YYYY-MM-DD, today, yesterday or a weekday",
            field=field,
            text=text,
        ) from None
