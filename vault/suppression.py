"""Small counts protected so that none can be worked out from what is shown (docs/report.md).

A table is its cells and their total. A count from 1 to 4 could point to a person, so it
is *protected* (shown as :data:`MARK`). Hiding it alone is not enough: with the total
shown, the one hidden cell is the total less the others (contacts 9, one-to-one 7, phone
hidden: phone is 2). So this is complementary suppression, checked by an interval audit:

* A reader knows every shown cell, the total (or, when it is protected, only that it is
  at least 1), and that a protected cell is at least 1 (zeros are always shown: a zero
  points to no one). Given that, a protected cell can take any value from 1 up to what the
  total leaves after the shown cells and the other protected cells at 1 each.
* With one protected cell that interval is a single value; with k protected cells
  holding R together, each can be 1 to R - (k - 1), more than one value exactly when
  R > k. So while a table fails, the smallest count still shown is protected as well;
  when every cell is protected and it still fails (k cells of 1 with the total shown), the
  total is protected too.
* Tables that share a total (contacts by channel, by role and by month all add up to the
  year's contacts) are one *group*: a total protected in one is protected in all, else
  the other table would show it.

Nothing is protected in a table with no count from 1 to 4: it is shown whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SMALL = 5
MARK = ":"

Shown = int | str


@dataclass(frozen=True)
class Table:
    """Exact cells of one table; ``group`` names the tables that share its total."""

    cells: dict[str, int]
    group: str

    @property
    def total(self) -> int:
        return sum(self.cells.values())


def _small(n: int) -> bool:
    return 0 < n < SMALL


def _safe(cells: Mapping[str, int], hidden: set[str], total_hidden: bool) -> bool:
    """The interval audit for one table: every protected cell can take more than one
    value given the shown cells and the total."""
    if not hidden or total_hidden:
        return True
    left = sum(cells[k] for k in hidden)
    return len(hidden) >= 2 and left > len(hidden)


def _protect_one(cells: Mapping[str, int], total_hidden: bool) -> tuple[set[str], bool]:
    """(protected cells, whether the total must be protected) for one table."""
    total_hidden = total_hidden or _small(sum(cells.values()))
    hidden = {k for k, n in cells.items() if _small(n)}
    while not _safe(cells, hidden, total_hidden):
        shown = sorted((n, k) for k, n in cells.items() if n > 0 and k not in hidden)
        if not shown:
            return hidden, True
        hidden.add(shown[0][1])
    return hidden, total_hidden


def protect(tables: Mapping[str, Table]) -> dict[str, dict[str, object]]:
    """Each table as shown: ``{"cells": {name: count or MARK}, "total": count or MARK}``."""
    hidden_totals: set[str] = set()
    while True:
        decided = {
            name: _protect_one(t.cells, t.group in hidden_totals) for name, t in tables.items()
        }
        more = {tables[n].group for n, (_, total) in decided.items() if total} - hidden_totals
        if not more:
            break
        hidden_totals |= more
    out: dict[str, dict[str, object]] = {}
    for name, table in tables.items():
        hidden, total_hidden = decided[name]
        out[name] = {
            "cells": {k: (MARK if k in hidden else n) for k, n in table.cells.items()},
            "total": MARK if total_hidden else table.total,
        }
    return out


def exact(tables: Mapping[str, Table]) -> dict[str, dict[str, object]]:
    """Each table as it is (admins' ``--exact``)."""
    return {name: {"cells": dict(t.cells), "total": t.total} for name, t in tables.items()}
