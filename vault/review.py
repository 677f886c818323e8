"""``nok audit review``: what in the access log deserves an admin's look (Normen asks that
access logs are not only kept but reviewed).

From the signed audit trail since a day, it finds:

* ``outside``: reads of a consent by an admin outside her assignment (with her reason);
* ``grant``: access given, and the reads the colleague made under it;
* ``bulk``: one staff member reading many consents in a short while (settings
  ``review_bulk_reads`` consents within ``review_bulk_minutes``, default 20 within 10);
* ``hours``: reads outside the center's working hours (setting ``working_hours``, default
  08-16 on weekdays, in the vault's calendar);
* ``failed``: failed unlocks in a row (``unlock.failed``, written without a key).

Findings hold ids, staff names, times and fixed codes only. :func:`counts` gives only how
many of each kind, for a scheduled job whose mail must tell an admin when to look without
carrying who or which.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from vault import audit
from vault.dates import parse_day, zone
from vault.epochs import Chain
from vault.errors import BadInput
from vault.store import AuditRow, Store

READ_ACTIONS = frozenset(
    {
        "consent.show",
        "consent.list",
        "note.show",
        "note.list",
        "note.search",
        "export.consent",
    }
)
KINDS = ("outside", "grant", "bulk", "hours", "failed")
DEFAULT_BULK = 20
DEFAULT_BULK_MINUTES = 10
DEFAULT_HOURS = "08-16"
# Failed unlocks of one name, one after another, that make a finding.
FAILED_IN_A_ROW = 3


@dataclass(frozen=True)
class Finding:
    kind: str
    ts: str
    actor: str
    consent_id: str | None = None
    detail: str | None = None
    count: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "ts": self.ts,
            "actor": self.actor,
            "consent_id": self.consent_id,
            "detail": self.detail,
            "count": self.count,
        }


def working_hours(text: str) -> tuple[int, int]:
    """``HH-HH`` as (first hour, end hour). Raises BadInput."""
    try:
        first, _, last = text.partition("-")
        start, end = int(first), int(last)
        if not 0 <= start < end <= 24:
            raise ValueError
    except ValueError:
        raise BadInput(
            "working-hours must be two hours like 08-16, not {value!r}", value=text
        ) from None
    return start, end


def _when(ts: str, tz: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone(tz))


def review(store: Store, chain: Chain, *, since: str | None = None) -> list[Finding]:
    """Every finding since ``since`` (a day), oldest first. Reads only.

    Raises BadInput for a malformed day.
    """
    if since is not None:
        parse_day(since, field="--since")
    settings = chain.current.settings
    tz = str(settings.get("timezone", "Europe/Oslo"))
    bulk = int(settings.get("review_bulk_reads", DEFAULT_BULK))
    minutes = int(settings.get("review_bulk_minutes", DEFAULT_BULK_MINUTES))
    start, end = working_hours(str(settings.get("working_hours", DEFAULT_HOURS)))
    rows = list(store.audit_entries(since=since))
    found: list[Finding] = []
    found += _outside(rows)
    found += _grants(rows)
    found += _bulk(rows, bulk, dt.timedelta(minutes=minutes))
    found += _hours(rows, tz, start, end)
    found += _failed(rows)
    return sorted(found, key=lambda f: (f.ts, f.kind))


def _reads(rows: Iterable[AuditRow]) -> Iterable[AuditRow]:
    return (r for r in rows if r.action in READ_ACTIONS and not audit.is_keyless(r.actor))


def _outside(rows: list[AuditRow]) -> list[Finding]:
    return [
        Finding("outside", r.ts, r.actor, r.consent_id, r.detail)
        for r in _reads(rows)
        if r.detail and r.consent_id
    ]


def _grants(rows: list[AuditRow]) -> list[Finding]:
    found, granted = [], {}
    for r in rows:
        if r.action == "access.grant" and r.consent_id and r.object_id:
            granted[(r.consent_id, r.object_id)] = r
            found.append(Finding("grant", r.ts, r.actor, r.consent_id, r.object_id))
    uses: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], str] = {}
    for r in _reads(rows):
        key = (r.consent_id or "", r.actor)
        if key in granted and r.seq > granted[key].seq:
            uses[key] += 1
            first.setdefault(key, r.ts)
    for (consent_id, name), n in sorted(uses.items()):
        found.append(Finding("grant", first[(consent_id, name)], name, consent_id, "used", n))
    return found


def _bulk(rows: list[AuditRow], limit: int, window: dt.timedelta) -> list[Finding]:
    found = []
    seen: dict[str, deque[tuple[dt.datetime, str]]] = defaultdict(deque)
    flagged: dict[str, dt.datetime] = {}
    for r in _reads(rows):
        if not r.consent_id:
            continue
        when = dt.datetime.fromisoformat(r.ts.replace("Z", "+00:00"))
        recent = seen[r.actor]
        recent.append((when, r.consent_id))
        while recent and when - recent[0][0] > window:
            recent.popleft()
        distinct = {c for _, c in recent}
        last = flagged.get(r.actor)
        if len(distinct) >= limit and (last is None or when - last > window):
            flagged[r.actor] = when
            found.append(Finding("bulk", r.ts, r.actor, None, None, len(distinct)))
    return found


def _hours(rows: list[AuditRow], tz: str, start: int, end: int) -> list[Finding]:
    found = []
    for r in _reads(rows):
        local = _when(r.ts, tz)
        if local.weekday() >= 5 or not start <= local.hour < end:
            found.append(Finding("hours", r.ts, r.actor, r.consent_id))
    return found


def _failed(rows: list[AuditRow]) -> list[Finding]:
    found, streak = [], Counter[str]()
    for r in rows:
        name = r.actor.removesuffix(audit.KEYLESS_SUFFIX)
        if r.action == "unlock.failed":
            streak[name] += 1
            if streak[name] == FAILED_IN_A_ROW:
                found.append(Finding("failed", r.ts, name, None, None, FAILED_IN_A_ROW))
        elif not audit.is_keyless(r.actor):
            streak[r.actor] = 0
    return found


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each kind (no ids, no names): what a scheduled job prints."""
    tally = Counter(f.kind for f in findings)
    return {kind: tally.get(kind, 0) for kind in KINDS}
