"""``nok stats``: the yearly figures match counts kept independently while a vault was built,
small counts are suppressed, exact figures are for admins, and no id leaves the vault."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, TODAY

from vault import Vault, consents, erasure, jobs, notes, staff, stats
from vault.errors import BadInput, NotAllowed
from vault.session import Unlocked

YEAR = TODAY.year - 1  # a whole year behind the test clock, whatever its date
FIRST, LAST = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)
START = dt.date(YEAR - 1, 6, 1)
END = min(dt.date(YEAR + 1, 3, 1), TODAY - dt.timedelta(days=1))
# The purge runs on the first of each month; an expiring consent ends at the first run
# after its deadline (due when the deadline is before the run's day).
PURGE_DAYS = [
    dt.date(y, m, 1)
    for y in (YEAR - 1, YEAR, YEAR + 1)
    for m in range(1, 13)
    if START < dt.date(y, m, 1) <= END
]


def noon(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC)


@dataclass
class Plan:
    """One consent as the test means it to be, kept apart from the vault."""

    fate: str  # keep, withdraw, expire, error
    given: dt.date
    under_16: bool
    retain_days: int | None
    notes: list[tuple[dt.date, str]] = field(default_factory=list)
    end: dt.date | None = None
    id: str = ""

    @property
    def status(self) -> str:
        if self.end is None:
            return "active"
        return "expired" if self.fate == "expire" else "withdrawn"


def plan_vault(rng: random.Random, count: int = 48) -> list[Plan]:
    plans = []
    span = (END - START).days
    for _ in range(count):
        fate = rng.choice(("keep", "keep", "withdraw", "expire", "error"))
        given = START + dt.timedelta(days=rng.randrange(span - 40))
        retain = rng.randrange(20, 60) if fate == "expire" else None
        plan = Plan(fate, given, rng.random() < 0.3, retain)
        last_day = given + dt.timedelta(days=retain // 2) if retain else END
        for _ in range(rng.randrange(0, 7)):
            when = given + dt.timedelta(days=rng.randrange((last_day - given).days + 1))
            plan.notes.append((when, rng.choice(notes.KINDS)))
        plan.notes.sort()
        last = max([given, *(d for d, _ in plan.notes)])
        if fate in ("withdraw", "error"):
            plan.end = last + dt.timedelta(days=rng.randrange(1, 30))
            if plan.end > END:
                plan.end = None
        elif retain is not None:
            deadline = last + dt.timedelta(days=retain)
            plan.end = next((p for p in PURGE_DAYS if deadline < p), None)
        plans.append(plan)
    return plans


def build(path: Path, plans: list[Plan]) -> None:
    """Replay the plans through the API in time order, as staff and the purge (the
    scheduled job, with its credential) would."""
    base = Vault.create(
        path,
        admin=ADMIN,
        passphrase=PASSPHRASE.encode(),
        now=noon(START - dt.timedelta(days=1)),
        kdf="interactive",
    )
    events: list[tuple[dt.date, int, int, object]] = []
    for n, plan in enumerate(plans):
        events.append((plan.given, 0, n, ("add", plan)))
        events += [(d, 1, n, ("note", plan, kind)) for d, kind in plan.notes]
        if plan.end is not None and plan.fate != "expire":
            events.append((plan.end, 2, n, ("withdraw", plan)))
    events += [(p, 3, 0, ("purge",)) for p in PURGE_DAYS]
    credential = jobs.issue(base)
    try:
        for when, _, _, event in sorted(events, key=lambda e: e[:3]):
            at = dataclasses.replace(base, now=noon(when))
            assert isinstance(event, tuple)
            if event[0] == "add":
                plan = event[1]
                plan.id = consents.add(
                    at,
                    consents.ConsentInput(
                        subject="S",
                        purpose="P",
                        categories=("conversation-notes",),
                        under_16=plan.under_16,
                        guardian="G" if plan.under_16 else None,
                        retain_days=plan.retain_days,
                        given=plan.given.isoformat(),
                    ),
                ).id
            elif event[0] == "note":
                notes.add(at, event[1].id, "contact", kind=event[2], date=when.isoformat())
            elif event[0] == "withdraw":
                plan = event[1]
                reason = "registered-in-error" if plan.fate == "error" else "withdrawn"
                erasure.withdraw(at, plan.id, reason=reason)
            else:
                job = jobs.unlock(base.vault, credential, now=noon(when), pin_store=None)
                erasure.purge(base.vault, noon(when), dry_run=False, actor=job)
    finally:
        base.close()


def expected(plans: list[Plan]) -> dict[str, object]:
    """The year's figures, counted from the plans alone."""

    def in_year(d: dt.date | None) -> bool:
        return d is not None and FIRST <= d <= LAST

    # Registered in error: never a real consent, whatever the year it was found out.
    in_error = [p for p in plans if p.fate == "error" and p.end is not None]
    real = [p for p in plans if p not in in_error]
    active = [p for p in real if p.given <= LAST and (p.end is None or p.end >= FIRST)]
    held = [p for p in active if p.end is None]
    kept_notes = [(d, k, p.id) for p in plans if p.end is None for d, k in p.notes if in_year(d)]
    kinds = Counter(k for _, k, _ in kept_notes)
    months = Counter(d.strftime("%Y-%m") for d, _, _ in kept_notes)
    return {
        "year": YEAR,
        "exact": True,
        "consents_new": sum(in_year(p.given) for p in active),
        "consents_active": len(active),
        "ended_withdrawn": sum(in_year(p.end) and p.status == "withdrawn" for p in real),
        "ended_expired": sum(in_year(p.end) and p.status == "expired" for p in real),
        "registered_in_error": sum(in_year(p.end) for p in in_error),
        "under_16": sum(p.under_16 for p in held),
        "under_16_unknown": len(active) - len(held),
        "contacts": len(kept_notes),
        "contacts_by_kind": {k: kinds[k] for k in notes.KINDS},
        "contacts_by_month": {f"{YEAR}-{m:02d}": months[f"{YEAR}-{m:02d}"] for m in range(1, 13)},
        "people_with_contact": len({cid for _, _, cid in kept_notes}),
    }


def suppressed(figures: dict[str, object]) -> dict[str, object]:
    """The test's own reading of the rule: 1 to 4 become "<5"."""

    def one(v: object) -> object:
        if isinstance(v, dict):
            return {k: one(x) for k, x in v.items()}
        if isinstance(v, bool) or not isinstance(v, int):
            return v
        return "<5" if 1 <= v <= 4 else v

    return {k: (False if k == "exact" else one(v)) for k, v in figures.items()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("stats") / "vaultdir" / "vault.db"
    plans = plan_vault(random.Random(20261123))
    build(path, plans)
    want = expected(plans)
    # The seed gives a vault that exercises every kind of figure at least once.
    assert all(want[k] for k in ("ended_withdrawn", "ended_expired", "under_16", "contacts"))
    assert want["under_16_unknown"]
    assert want["registered_in_error"]
    return path, want


@pytest.fixture
def stats_cli(generated, nok, monkeypatch):
    monkeypatch.setenv("NOK_VAULT", str(generated[0]))
    return nok


def test_exact_figures_match_the_independent_count(stats_cli, generated):
    result = stats_cli("stats", "--year", str(YEAR), "--json", "--exact")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    # The report's tables (tests/test_report.py) come beside these keys.
    assert {k: shown[k] for k in generated[1]} == generated[1]


def test_default_figures_suppress_counts_from_one_to_four(stats_cli, generated):
    result = stats_cli("stats", "--year", str(YEAR), "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert {k: shown[k] for k in generated[1]} == suppressed(generated[1])
    values = [*shown["contacts_by_kind"].values(), *shown["contacts_by_month"].values()]
    # The seed makes some figures small and some not, so both branches are seen.
    assert "<5" in values
    assert any(isinstance(v, int) and v >= 5 for v in values)
    for v in values:
        assert v == "<5" or v == 0 or v >= 5


def test_csv_and_table_carry_the_same_figures(stats_cli, generated):
    result = stats_cli("stats", "--year", str(YEAR), "--csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["figure", "value"]
    table = dict(rows[1:])
    want = suppressed(generated[1])
    assert table["consents_active"] == str(want["consents_active"])
    for kind, value in want["contacts_by_kind"].items():
        assert table[f"contacts_by_kind.{kind}"] == str(value)
    text = stats_cli("stats", "--year", str(YEAR))
    assert text.exit_code == 0, text.stderr
    assert f"{YEAR}-07" in text.stdout
    assert "<5" in text.stdout


def test_no_id_leaves_and_the_read_is_one_aggregate_audit_entry(stats_cli, generated):
    path = generated[0]
    vault = Vault.open(path)
    try:
        before = vault.store.count_audit()
        ids = [row.id for row in vault.store.iter_consents(include_ended=True)]
    finally:
        vault.close()
    result = stats_cli("stats", "--year", str(YEAR), "--json", "--exact")
    assert result.exit_code == 0, result.stderr
    for consent_id in ids:
        assert consent_id not in result.stdout + result.stderr
    vault = Vault.open(path)
    try:
        entries = list(vault.store.audit_entries())[before:]
    finally:
        vault.close()
    assert [(e.action, e.consent_id, e.actor) for e in entries] == [("stats.read", None, ADMIN)]
    assert entries[0].object_id == f"{YEAR}-exact"


def test_exact_is_for_admins_only(unlocked: Unlocked, nok):
    staff.add(unlocked, "kari", passphrase=b"kari's own passphrase", role="staff")
    unlocked.close()
    nok_kari = {"NOK_USER": "kari", "NOK_PASSPHRASE": "kari's own passphrase"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in nok_kari.items():
            mp.setenv(k, v)
        refused = nok("stats", "--exact", "--json")
        allowed = nok("stats", "--json")
    assert refused.exit_code == 11, refused.stderr
    assert refused.stdout == ""
    assert allowed.exit_code == 0, allowed.stderr


def test_small_vault_is_suppressed_and_zero_stays_zero(unlocked: Unlocked):
    ids = [
        consents.add(unlocked, consents.ConsentInput("S", "P", ("c",), True, "G")).id
        for _ in range(2)
    ]
    for _ in range(6):
        notes.add(unlocked, ids[0], "text", kind="phone")
    figures = stats.year_figures(unlocked, TODAY.year)
    shown = figures.to_json()
    assert (figures.under_16, shown["under_16"]) == (2, "<5")
    assert (figures.contacts, shown["contacts"]) == (6, 6)
    assert shown["contacts_by_kind"]["phone"] == 6
    assert shown["contacts_by_kind"]["group"] == 0
    assert shown["people_with_contact"] == "<5"
    assert figures.to_json(exact=True)["people_with_contact"] == 1


@pytest.mark.parametrize("year", [1999, NOW.year + 1])
def test_a_year_outside_the_vaults_time_is_refused(unlocked: Unlocked, year: int):
    with pytest.raises(BadInput):
        stats.year_figures(unlocked, year)


def test_exact_through_the_api_checks_the_role(unlocked: Unlocked, vault_path: Path):
    staff.add(unlocked, "kari", passphrase=b"kari's own passphrase", role="staff")
    vault = Vault.open(vault_path)
    kari = vault.unlock("kari", b"kari's own passphrase", now=NOW)
    try:
        with pytest.raises(NotAllowed):
            stats.year_figures(kari, TODAY.year, exact=True)
    finally:
        kari.close()


def test_json_and_csv_together_is_bad_usage(cli_vault):
    result = cli_vault("stats", "--json", "--csv")
    assert result.exit_code == 2
    assert result.stderr.startswith("nok: error:")
