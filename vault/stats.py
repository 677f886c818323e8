"""The yearly figures a center reports (to Bufdir), counted inside the vault.

Only counts leave this module: no id, alias, date or kind of any one person. Counts from 1
to 4 are shown as "<5" unless an admin asks for exact figures, so a small figure cannot
point to a person ("the only under-16 in March"). Zero stays 0: it points to no one.

What is counted, for calendar year Y (local dates, as nok stores them):

* consents: *new* (given in Y), *active* (given by the end of Y and not ended before Y
  began), *ended by withdrawal* and *by expiry* in Y; a withdrawal with the reason
  registered-in-error is counted apart and in none of the others, as it was never a real
  consent. *Under 16*: the active ones whose declaration says so.
* contacts: the notes dated in Y, by kind and by month, and how many consents (people)
  have at least one.

Erasure decides what can still be counted: a withdrawn or expired consent keeps only its
dates and status, so its notes and its under-16 mark are gone. Its figures come in
*under_16_unknown*, and its contacts are no longer counted. Run the figures for a year
early in the next (before the purge takes that year's data).

Kinds and the under-16 mark are encrypted, so this needs an unlocked vault; notes are
decrypted as they stream (memory stays flat whatever the vault's size).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, field

from vault import consents, notes
from vault.dates import day
from vault.endings import EXPIRED, WITHDRAWN
from vault.errors import BadInput
from vault.session import Unlocked
from vault.store import ConsentRow

SMALL = 5
SUPPRESSED = "<5"
IN_ERROR = "registered-in-error"
FIRST_YEAR = 2000
ACTION = "stats.read"

Figure = int | str


@dataclass(frozen=True)
class YearFigures:
    """Exact counts for one year; :meth:`to_json` shows them as a report does."""

    year: int
    consents_new: int = 0
    consents_active: int = 0
    ended_withdrawn: int = 0
    ended_expired: int = 0
    registered_in_error: int = 0
    under_16: int = 0
    under_16_unknown: int = 0
    contacts: int = 0
    contacts_by_kind: dict[str, int] = field(default_factory=dict)
    contacts_by_month: dict[str, int] = field(default_factory=dict)
    people_with_contact: int = 0

    def to_json(self, *, exact: bool = False) -> dict[str, object]:
        """The figures, with counts 1-4 as "<5" unless ``exact``."""

        def shown(n: int) -> Figure:
            return n if exact else suppress(n)

        return {
            "year": self.year,
            "exact": exact,
            "consents_new": shown(self.consents_new),
            "consents_active": shown(self.consents_active),
            "ended_withdrawn": shown(self.ended_withdrawn),
            "ended_expired": shown(self.ended_expired),
            "registered_in_error": shown(self.registered_in_error),
            "under_16": shown(self.under_16),
            "under_16_unknown": shown(self.under_16_unknown),
            "contacts": shown(self.contacts),
            "contacts_by_kind": {k: shown(v) for k, v in self.contacts_by_kind.items()},
            "contacts_by_month": {k: shown(v) for k, v in self.contacts_by_month.items()},
            "people_with_contact": shown(self.people_with_contact),
        }


def suppress(count: int) -> Figure:
    """``count``, or "<5" when it is 1 to 4."""
    return SUPPRESSED if 0 < count < SMALL else count


def check_year(year: int, today: str) -> int:
    """Raises BadInput for a year before 2000 or one that has not begun."""
    this_year = int(today[:4])
    if not FIRST_YEAR <= year <= this_year:
        raise BadInput(
            "the year must be between {first} and {this}, not {year}",
            first=FIRST_YEAR,
            this=this_year,
            year=year,
        )
    return year


def year_figures(vault: Unlocked, year: int, *, exact: bool = False) -> YearFigures:
    """Count the year's consents and contacts; one audit entry (no consent ids).

    ``exact`` only records that exact figures were asked for (admins only): every count
    is exact here, and :meth:`YearFigures.to_json` suppresses them for the others.

    Raises:
        BadInput: see :func:`check_year`. NotAllowed: ``exact`` by a non-admin.
        IntegrityError, KeysRotated: a record was altered, or keys were rotated meanwhile.
    """
    check_year(year, vault.today())
    if exact:
        vault.require_admin("nok stats --exact")
    store = vault.store
    with store.write():
        vault.record(ACTION, object_id=f"{year}-exact" if exact else str(year))
    with store.read():
        counted = _count_consents(vault, year)
        kinds, months, people = _count_contacts(vault, year)
    return dataclasses.replace(
        counted,
        contacts=sum(kinds.values()),
        contacts_by_kind=kinds,
        contacts_by_month=months,
        people_with_contact=people,
    )


def _ended_day(row: ConsentRow, zone: str) -> str | None:
    """The vault-calendar day a consent ended (``ended`` is a UTC timestamp)."""
    if row.ended is None:
        return None
    return day(dt.datetime.fromisoformat(row.ended.replace("Z", "+00:00")), zone)


def _count_consents(vault: Unlocked, year: int) -> YearFigures:
    first, last = f"{year}-01-01", f"{year}-12-31"
    counts: Counter[str] = Counter()
    zone = vault.settings().timezone
    for row in vault.store.iter_consents(include_ended=True):
        ended = _ended_day(row, zone)
        ended_in_year = ended is not None and first <= ended <= last
        if row.end_reason == IN_ERROR:
            counts["registered_in_error"] += ended_in_year
            continue
        if row.given > last or (ended is not None and ended < first):
            continue
        counts["consents_active"] += 1
        counts["consents_new"] += row.given >= first
        counts["ended_withdrawn"] += ended_in_year and row.status == WITHDRAWN
        counts["ended_expired"] += ended_in_year and row.status == EXPIRED
        if row.status != consents.ACTIVE:
            counts["under_16_unknown"] += 1
        elif consents.readable(vault, row) and consents.decrypt(vault, row).under_16:
            counts["under_16"] += 1
    return YearFigures(
        year=year,
        consents_new=counts["consents_new"],
        consents_active=counts["consents_active"],
        ended_withdrawn=counts["ended_withdrawn"],
        ended_expired=counts["ended_expired"],
        registered_in_error=counts["registered_in_error"],
        under_16=counts["under_16"],
        under_16_unknown=counts["under_16_unknown"],
    )


def _count_contacts(vault: Unlocked, year: int) -> tuple[dict[str, int], dict[str, int], int]:
    """(notes by kind, notes by month, consents with a note) for the notes dated in ``year``."""
    first, last = f"{year}-01-01", f"{year}-12-31"
    kinds = dict.fromkeys(notes.KINDS, 0)
    months = {f"{year}-{m:02d}": 0 for m in range(1, 13)}
    people: set[str] = set()
    # Rows come by date: the first one after the year ends the count, undecrypted.
    found = notes.scope(vault, since=first)
    if found.everything:
        every = vault.store.iter_note_bodies(since=first, reader="#admin")
    else:
        every = vault.store.iter_note_bodies(consent_ids=sorted(found.ids), since=first)
    rows = itertools.takewhile(lambda r: r.date <= last, every)
    for note in notes.decrypt_stream(vault, rows):
        kinds[note.kind] = kinds.get(note.kind, 0) + 1
        months[note.date[:7]] += 1
        people.add(note.consent_id)
    return kinds, months, len(people)
