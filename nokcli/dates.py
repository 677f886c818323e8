"""Dates as people type them: ``YYYY-MM-DD``, or today, yesterday, i dag, i går, or a
weekday (mandag ... søndag, monday ... sunday) meaning the last such day, today included.
A deadline (``ahead``) reads the other way: tomorrow, i morgen, or the coming weekday.

The vault checks the date further (not in the future, not before the consent).
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from nokcli.i18n import pgettext
from vault.dates import DEFAULT_TIMEZONE, day
from vault.errors import BadInput

DAYS_BACK = {"today": 0, "i dag": 0, "idag": 0, "yesterday": 1, "i går": 1, "igår": 1}
DAYS_AHEAD = {"today": 0, "i dag": 0, "idag": 0, "tomorrow": 1, "i morgen": 1, "imorgen": 1}
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
    text: str | None,
    now: dt.datetime,
    *,
    field: str,
    zone: str = DEFAULT_TIMEZONE,
    ahead: bool = False,
) -> str | None:
    """``text`` as ``YYYY-MM-DD``: a date as it is, or a word for a day relative to ``now``
    in the calendar of ``zone`` (the vault's); with ``ahead``, words name days to come.

    Raises:
        BadInput: neither (``field`` names the option in the message).
    """
    if text is None:
        return None
    word = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    today = dt.date.fromisoformat(day(now, zone))
    days = DAYS_AHEAD if ahead else DAYS_BACK
    sign = 1 if ahead else -1
    if word in days:
        return (today + sign * dt.timedelta(days=days[word])).isoformat()
    if word in WEEKDAYS:
        distance = sign * (WEEKDAYS[word] - today.weekday()) % 7
        return (today + sign * dt.timedelta(days=distance)).isoformat()
    try:
        if len(text) != len("2026-11-23"):
            raise ValueError
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadInput(
            "{field} {text!r} is not a date: use YYYY-MM-DD, today, {near} or a weekday",
            field=field,
            text=text,
            # Phrases, as a vault error's are: the hint names the word that works here.
            near=pgettext("phrase", "tomorrow") if ahead else pgettext("phrase", "yesterday"),
        ) from None
