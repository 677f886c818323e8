"""The yearly report to Bufdir (issue 18): the figures match counts the test keeps itself,
before and after withdrawals and the job's purge; no protected cell can be worked out from
what is shown; a file writer cannot roll the figures back unseen; the Excel file and the
printed page are what Norwegian Excel and an A4 printer take."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import itertools
import json
import random
import shutil
import sqlite3
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, TODAY
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import Vault, consents, crypto, erasure, jobs, notes, report, staff, suppression
from vault.session import Unlocked

YEAR = TODAY.year - 1
START = dt.date(YEAR, 1, 1)
PURGE_DAY = dt.date(YEAR + 1, 3, 1)
FIELDS = report.profile_fields()
VISITS = report.VISIT_NOTE_KINDS


def at(base: Unlocked, when: dt.datetime) -> Unlocked:
    return dataclasses.replace(base, now=when)


@dataclass
class Person:
    """One consent as the test means it, kept apart from the vault."""

    fate: str  # keep, withdraw, error, expire
    given: dt.date
    profile: dict[str, str] | None
    notes: list[tuple[dt.date, str]] = field(default_factory=list)
    linked: list[tuple[dt.date, str]] = field(default_factory=list)  # contacts by channel
    id: str = ""

    @property
    def role(self) -> str:
        return (self.profile or {}).get("role", "unknown") if self.profile else "unknown"


@dataclass
class Year:
    contacts: list[tuple[dt.date, str, str, str]]  # date, channel, role, new
    activities: list[tuple[dt.date, str, int, str | None]]
    people: list[Person]


def plan(rng: random.Random) -> Year:
    channels = report.choices("channels")
    roles = report.choices("contact_roles")
    contacts = [
        (
            START + dt.timedelta(days=rng.randrange(365)),
            rng.choice(channels),
            rng.choice(roles),
            rng.choice(("new", "returning", "unknown")),
        )
        for _ in range(60)
    ]
    activities = []
    for _ in range(14):
        kind = rng.choice(report.choices("activity_kinds"))
        audience = (
            rng.choice(report.choices("audiences")) if kind in ("outreach", "teaching") else None
        )
        activities.append(
            (START + dt.timedelta(days=rng.randrange(365)), kind, rng.randrange(1, 40), audience)
        )
    people = []
    for n in range(16):
        fate = ("keep", "withdraw", "error", "expire")[n % 4]
        given_day = START + dt.timedelta(days=rng.randrange(250))
        profile = None
        if rng.random() < 0.6:
            profile = {f: rng.choice(report.profile_values(f)) for f in FIELDS}
        person = Person(fate, given_day, profile)
        window = 40 if fate == "expire" else 364 - (given_day - START).days
        for _ in range(rng.randrange(2, 9)):
            d = given_day + dt.timedelta(days=rng.randrange(window))
            # Two notes the same day now and then: counted once.
            person.notes.append((d, rng.choice(notes.KINDS)))
            if rng.random() < 0.3:
                person.notes.append((d, rng.choice(notes.KINDS)))
        if rng.random() < 0.5:
            person.linked.append((given_day + dt.timedelta(days=rng.randrange(window)), "email"))
        people.append(person)
    return Year(contacts, activities, people)


def build(path: Path, year: Year, *, erase: bool) -> Unlocked:
    """Replay the year through the API in time order, as staff would; with ``erase``,
    the withdrawals and then the job's purge follow in the next year. Returns an admin's
    session at the day after."""
    base = Vault.create(
        path,
        admin=ADMIN,
        passphrase=PASSPHRASE.encode(),
        now=dt.datetime(YEAR - 1, 12, 1, 9, tzinfo=dt.UTC),
        kdf="interactive",
    )
    credential = jobs.issue(base)
    events: list[tuple[dt.date, int, Any]] = []
    events += [(c[0], 2, ("contact", c)) for c in year.contacts]
    events += [(a[0], 2, ("activity", a)) for a in year.activities]
    for p in year.people:
        events.append((p.given, 0, ("consent", p)))
        events += [(d, 1, ("note", p, k)) for d, k in p.notes]
        events += [(d, 1, ("linked", p, ch)) for d, ch in p.linked]
    tick = itertools.count()
    for when, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        now = dt.datetime(when.year, when.month, when.day, 8, tzinfo=dt.UTC) + dt.timedelta(
            seconds=next(tick)
        )
        me = at(base, now)
        kind = event[0]
        if kind == "contact":
            _, channel, role, new = event[1]
            report.log_contact(me, channel=channel, role=role, new=new, date=when.isoformat())
        elif kind == "activity":
            _, act, n, audience = event[1]
            report.log_activity(
                me, kind=act, participants=n, audience=audience, date=when.isoformat()
            )
        elif kind == "consent":
            p = event[1]
            p.id = consents.add(
                me,
                consents.ConsentInput(
                    subject="S",
                    purpose="P",
                    categories=("contact",),
                    given=p.given.isoformat(),
                    retain_days=60 if p.fate == "expire" else None,
                ),
            ).id
            if p.profile is not None:
                report.set_profile(me, p.id, p.profile, agreed=p.given.isoformat())
        elif kind == "note":
            notes.add(me, event[1].id, "x", kind=event[2], date=when.isoformat())
        else:
            report.log_contact(me, channel=event[2], consent_id=event[1].id, date=when.isoformat())
    after = dt.datetime(YEAR + 1, 1, 15, 9, tzinfo=dt.UTC)
    # The center leader makes the year's report in January (it also brings every
    # consent's share up to date, for the job that may erase it later).
    report.year_report(at(base, after - dt.timedelta(days=5)), YEAR)
    if erase:
        for n, p in enumerate(x for x in year.people if x.fate in ("withdraw", "error")):
            reason = "registered-in-error" if p.fate == "error" else "withdrawn"
            erasure.withdraw(at(base, after + dt.timedelta(minutes=n)), p.id, reason=reason)
        purge_at = dt.datetime(PURGE_DAY.year, PURGE_DAY.month, PURGE_DAY.day, 3, tzinfo=dt.UTC)
        holder = jobs.unlock(base.vault, credential, now=purge_at, pin_store=None)
        done = erasure.purge(base.vault, purge_at, dry_run=False, actor=holder)
        assert sorted(done.purged) == sorted(p.id for p in year.people if p.fate == "expire")
        after = purge_at + dt.timedelta(days=1)
    return at(base, after)


def expected(year: Year, *, erased: bool) -> dict[str, dict[str, int]]:
    """The year's tables, counted from the plan alone (Bufdir's rules: a person's
    contacts and visits once a day each, the first of the day)."""
    t: dict[str, Counter[str]] = defaultdict(Counter)
    for d, channel, role, new in year.contacts:
        if d.year == YEAR:
            t["contacts_by_channel"][channel] += 1
            t["contacts_by_role"][role] += 1
            t["contacts_by_new"][new] += 1
            t["contacts_monthly"][f"{d.month:02d}"] += 1
    for d, act, n, audience in year.activities:
        if d.year != YEAR:
            continue
        if act in ("outreach", "teaching"):
            t["outreach_events"][act] += 1
            t["outreach_by_audience"][audience or "other"] += 1
            t["outreach_participants"][act] += n
        else:
            t["activities_by_kind"][act] += 1
            t["participants_by_kind"][act] += n
    for p in year.people:
        if erased and p.fate == "error":
            continue
        new = (p.profile or {}).get("new-returning", "unknown")
        new = new if new in ("new", "returning") else "unknown"
        role = p.role if p.role in report.choices("contact_roles") else "unknown"
        first_contact: dict[dt.date, tuple[str, str, str]] = {}
        first_visit: dict[dt.date, str] = {}
        outreach_days = set()
        # Notes were added in date order, in the order listed; a person's linked contact
        # on a day with a phone note comes after the notes of that day.
        for d, kind in p.notes:
            if kind == "phone":
                first_contact.setdefault(d, ("phone", role, new))
            elif kind in VISITS:
                first_visit.setdefault(d, kind)
            elif kind == "outreach":
                outreach_days.add(d)
        for d, channel in p.linked:
            first_contact.setdefault(d, (channel, "unknown", "unknown"))
        for d, (channel, r, nw) in first_contact.items():
            t["contacts_by_channel"][channel] += 1
            t["contacts_by_role"][r] += 1
            t["contacts_by_new"][nw] += 1
            t["contacts_monthly"][f"{d.month:02d}"] += 1
        for d, kind in first_visit.items():
            t["visits_by_kind"][kind] += 1
            t["visits_monthly"][f"{d.month:02d}"] += 1
        t["outreach_events"]["outreach"] += len(outreach_days)
        if first_contact or first_visit or p.profile is not None:
            for f in FIELDS:
                t[f"users_by_{f}"][p.profile[f] if p.profile else "no-consent"] += 1
    return {name: {c: n for c, n in t[name].items() if n} for name, _ in report.TABLES}


def counted(shown: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {name: {c: n for c, n in shown[name]["cells"].items() if n} for name, _ in report.TABLES}


@pytest.fixture(scope="module")
def year_plan() -> Year:
    return plan(random.Random(18_2026))


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory, year_plan: Year) -> Unlocked:
    path = tmp_path_factory.mktemp("report-kept") / "v" / "vault.db"
    return build(path, year_plan, erase=False)


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory, year_plan: Year) -> Unlocked:
    path = tmp_path_factory.mktemp("report-erased") / "v" / "vault.db"
    return build(path, year_plan, erase=True)


def test_the_figures_match_the_independent_count_before_the_erasures(kept, year_plan):
    shown = report.year_report(kept, YEAR).shown(exact=True)
    assert shown["scope"] == "full"
    assert counted(shown) == expected(year_plan, erased=False)
    for name, _ in report.TABLES:
        assert shown[name]["total"] == sum(shown[name]["cells"].values())


def test_withdrawals_and_the_purge_keep_the_figures_and_in_error_leaves_them(erased, year_plan):
    """Real withdrawals (by staff who open the consent) and the job's purge (which cannot
    read) keep what the person contributed; a consent registered in error leaves."""
    want = expected(year_plan, erased=True)
    assert want != expected(year_plan, erased=False), "the plan must have in-error consents"
    assert counted(report.year_report(erased, YEAR).shown(exact=True)) == want
    store = erased.store
    # Folded: nothing per person is left of the erased ones.
    assert store.kept_report_shares() == []
    ended = {r.id for r in store.iter_consents(include_ended=True) if r.status != "active"}
    assert ended == {p.id for p in year_plan.people if p.fate != "keep"}
    assert all(store.report_share(c) is None for c in ended)
    # The contacts logged under erased consents went with them; the anonymous ones stay.
    assert store.report_events(None)
    assert not any(c in ended for _, c, _, _ in store.report_events(None))
    assert store.entries_of([report.LOST]) == []
    # A second report folds nothing more and counts the same.
    assert counted(report.year_report(erased, YEAR).shown(exact=True)) == want


# -- protection of small counts -----------------------------------------------------------


def values_possible(table: dict[str, Any]) -> dict[str, set[int]]:
    """Every value each protected cell can take, by brute force over every assignment that
    agrees with what is shown: shown cells exact, protected ones at least 1, and the sum
    the shown total (a protected total: only at least 1 each, no sum known)."""
    cells = table["cells"]
    hidden = [c for c, v in cells.items() if v == suppression.MARK]
    if not hidden:
        return {}
    if table["total"] == suppression.MARK:
        return {c: {1, 2} for c in hidden}  # no sum: any value from 1 up
    left = table["total"] - sum(v for v in cells.values() if v != suppression.MARK)
    found: dict[str, set[int]] = {c: set() for c in hidden}
    for combo in itertools.product(range(1, left + 1), repeat=len(hidden)):
        if sum(combo) == left:
            for c, v in zip(hidden, combo, strict=True):
                found[c].add(v)
    return found


def check_protected(shown: dict[str, Any], exact: dict[str, Any], groups: dict[str, str]) -> None:
    for name, table in shown.items():
        truth = exact[name]["cells"]
        for cell, value in table["cells"].items():
            if value != suppression.MARK:
                assert value == truth[cell]
                assert not 1 <= value <= 4, (name, cell)
        for cell, possible in values_possible(table).items():
            assert truth[cell] in possible or table["total"] == suppression.MARK
            assert len(possible) > 1, (name, cell, table)
        if not any(1 <= n <= 4 for n in truth.values()) and not 1 <= sum(truth.values()) <= 4:
            same_group = [n for n, g in groups.items() if g == groups[name]]
            if all(shown[n]["total"] != suppression.MARK for n in same_group):
                assert table["cells"] == truth, name
    # A total is shown in every table of its group or in none.
    for group in set(groups.values()):
        totals = {shown[n]["total"] for n, g in groups.items() if g == group}
        assert len(totals) == 1, group


def test_every_table_of_a_real_report_is_protected(erased):
    made = report.year_report(erased, YEAR)
    shown, exact = made.shown(), made.shown(exact=True)
    tables = {name: shown[name] for name, _ in report.TABLES}
    check_protected(tables, exact, dict(report.TABLES))
    assert any(v == suppression.MARK for t in tables.values() for v in t["cells"].values()), (
        "the seed must give small counts"
    )


def test_the_issues_subtraction_no_longer_works():
    """Contacts 9, one-to-one 7, phone hidden: without a second hidden cell, phone = 2."""
    shown = suppression.protect(
        {"kinds": suppression.Table({"one-to-one": 7, "phone": 2, "group": 0}, "contacts")}
    )["kinds"]
    assert shown["total"] == 9
    assert shown["cells"]["phone"] == suppression.MARK
    assert shown["cells"]["one-to-one"] == suppression.MARK
    assert values_possible(shown)["phone"] == set(range(1, 9))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=5), min_size=1, max_size=3).flatmap(
        lambda tables: st.tuples(
            st.just(tables),
            st.lists(st.sampled_from("ab"), min_size=len(tables), max_size=len(tables)),
        )
    )
)
def test_no_protected_cell_narrows_to_one_value(drawn):
    """Any tables, tables in one group sharing their total (the test only groups tables
    whose totals are equal, as a real report's are)."""
    cells, group_names = drawn
    groups = {}
    tables = {}
    for n, (values, g) in enumerate(zip(cells, group_names, strict=True)):
        name = f"t{n}"
        total = sum(values)
        groups[name] = f"{g}{total}"
        tables[name] = suppression.Table({f"c{i}": v for i, v in enumerate(values)}, groups[name])
    check_protected(suppression.protect(tables), suppression.exact(tables), groups)


# -- a file writer --------------------------------------------------------------------------


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def small_year(u: Unlocked) -> str:
    for channel in ("phone", "phone", "chat", "phone", "email", "phone"):
        report.log_contact(u, channel=channel, role="survivor")
    c = consents.add(u, consents.ConsentInput(subject="S", purpose="P", categories=("contact",)))
    report.set_profile(u, c.id, {"gender": "woman"})
    notes.add(u, c.id, "x", kind="phone")
    return c.id


def test_a_contact_row_removed_from_the_file_is_seen(unlocked, vault_path):
    small_year(unlocked)
    unlocked.close()
    db = raw(vault_path)
    db.execute("DELETE FROM report_events WHERE id = (SELECT min(id) FROM report_events)")
    db.close()
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        with pytest.raises(report.ReportRolledBack):
            report.year_report(u, NOW.year)
    finally:
        u.close()


def test_a_deleted_contact_put_back_from_an_older_copy_is_seen(unlocked, vault_path, tmp_path):
    small_year(unlocked)
    first = unlocked.store.report_events(None)[0]
    report.delete_event(unlocked, first[0])
    unlocked.close()
    db = raw(vault_path)
    db.execute(
        "INSERT INTO report_events (id, consent_id, key_version, record) VALUES (?, ?, ?, ?)",
        list(first),
    )
    db.close()
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        with pytest.raises(report.ReportRolledBack):
            report.year_report(u, NOW.year)
    finally:
        u.close()


def test_older_yearly_totals_put_back_are_seen(unlocked, vault_path):
    """The totals after the first erasure, copied back over those after the second: the
    newest report.fold entry of the signed trail names other totals."""
    one, two = small_year(unlocked), small_year(unlocked)
    erasure.withdraw(unlocked, one)
    report.year_report(unlocked, NOW.year)
    older = unlocked.store.report_totals()
    erasure.withdraw(unlocked, two)
    report.year_report(unlocked, NOW.year)
    assert unlocked.store.report_totals() != older
    unlocked.close()
    db = raw(vault_path)
    db.execute("UPDATE report_totals SET sealed = ? WHERE id = 1", [older[1]])
    db.close()
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        with pytest.raises(report.ReportRolledBack):
            report.year_report(u, NOW.year)
    finally:
        u.close()


def test_a_kept_share_removed_before_it_is_folded_is_seen(unlocked, vault_path):
    cid = small_year(unlocked)
    erasure.withdraw(unlocked, cid)
    assert unlocked.store.kept_report_shares()
    unlocked.close()
    db = raw(vault_path)
    db.execute("DELETE FROM report_shares")
    db.close()
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        with pytest.raises(report.ReportRolledBack):
            report.year_report(u, NOW.year)
    finally:
        u.close()


def test_the_job_keeps_no_share_a_file_writer_made(unlocked, vault_path):
    """Anyone can seal to the admin key: a share with inflated counts, put in place for a
    consent about to be purged, is not signed by staff, so the job records the figures as
    lost rather than keep it."""
    credential = jobs.issue(unlocked)
    c = consents.add(
        unlocked,
        consents.ConsentInput(subject="S", purpose="P", categories=("contact",), retain_days=1),
    )
    notes.add(unlocked, c.id, "x", kind="phone")
    report.year_report(unlocked, NOW.year)  # the share is sealed for the current state
    row = unlocked.store.get_consent(c.id)
    assert row is not None
    assert report._valid_share(unlocked.store, unlocked, row) is not None
    forged = {
        "profile": None,
        "contacts": [[f"{NOW.year}-01-{d:02d}", "phone", "survivor", "new"] for d in range(1, 29)],
        "visits": [],
        "outreach": [],
    }
    sealed = crypto.seal_to(
        unlocked.epoch.keys.admin,
        report._encode(forged),
        report._share_ad(unlocked.vault_id, c.id, row.rev or 0),
    )
    unlocked.close()
    db = raw(vault_path)
    db.execute("UPDATE report_shares SET sealed = ? WHERE consent_id = ?", [sealed, c.id])
    db.close()
    later = NOW + dt.timedelta(days=5)
    with Vault.open(vault_path) as vault:
        holder = jobs.unlock(vault, credential, now=later, pin_store=None)
        assert erasure.purge(vault, later, dry_run=False, actor=holder).purged == (c.id,)
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=later)
    try:
        made = report.year_report(u, NOW.year)
        assert made.lost == 1
        assert made.tables["contacts_by_channel"].total == 0
    finally:
        u.close()


def test_a_colleague_counts_only_what_she_may_open(unlocked, vault_path):
    small_year(unlocked)
    staff.add(unlocked, "kari", passphrase=b"kari horse battery staple")
    unlocked.close()
    kari = Vault.open(vault_path).unlock("kari", b"kari horse battery staple", now=NOW)
    try:
        made = report.year_report(kari, NOW.year)
        assert not made.full
        assert made.tables["contacts_by_channel"].total == 6  # the anonymous ones only
        assert made.tables["users_by_gender"].total == 0
    finally:
        kari.close()


def test_a_file_reader_learns_no_channel_role_or_profile(unlocked, vault_path):
    cid = small_year(unlocked)
    report.log_activity(unlocked, kind="teaching", participants=31, audience="kindergarten")
    unlocked.close()
    data = b"".join(p.read_bytes() for p in vault_path.parent.iterdir() if p.is_file())
    for word in (b"chat", b"survivor", b"woman", b"kindergarten", b"teaching", b"email"):
        assert word not in data, word
    assert cid.encode() in data  # the consent's id is plaintext, as it always was


# -- the command line -----------------------------------------------------------------------


def test_the_excel_file_opens_in_norwegian_excel(cli_vault):
    nok = cli_vault
    for channel in ("phone",) * 6 + ("chat",) * 5 + ("sms",) * 2:
        assert nok("contact", "log", "--channel", channel).exit_code == 0
    assert nok("settings", "set", "staff-fte", "4,6").exit_code == 0
    result = nok("stats", "--excel")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(result.stdout[1:]), delimiter=";"))
    assert rows[0] == ["Tabell", "Kategori", "Antall"]
    assert all(len(r) == 3 for r in rows)
    by = {(r[0], r[1]): r[2] for r in rows}
    assert by[("Henvendelser etter kanal (skjema A)", "telefon")] == "6"
    # sms (2) is protected, and chat (5) with it, or sms would be 13 - 6 - 5.
    assert by[("Henvendelser etter kanal (skjema A)", "SMS")] == suppression.MARK
    assert by[("Henvendelser etter kanal (skjema A)", "chat")] == suppression.MARK
    assert by[("Henvendelser etter kanal (skjema A)", "Sum")] == "13"
    assert by[("Ansatte", "Årsverk")] == "4,6"
    shown = json.loads(nok("stats", "--json").stdout)
    assert shown["contacts_by_channel"]["cells"]["sms"] == suppression.MARK
    exact = json.loads(nok("stats", "--json", "--exact").stdout)
    assert exact["contacts_by_channel"]["cells"]["sms"] == 2


def test_contact_log_refuses_free_text_values(cli_vault):
    result = cli_vault("contact", "log", "--channel", "Kari called about her father")
    assert result.exit_code == 2
    assert "unknown channel" in result.stderr
    assert cli_vault("stats", "--json", "--exact").exit_code == 0


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.mark.skipif(
    not any(shutil.which(b) for b in BROWSERS), reason="no headless browser installed"
)
def test_the_html_report_prints_on_one_or_two_a4_pages(cli_vault, tmp_path):
    page = tmp_path / "report.html"
    result = cli_vault("stats", "--html")
    assert result.exit_code == 0, result.stderr
    page.write_text(result.stdout, "utf-8")
    browser = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", f"--print-to-pdf={pdf}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pages = pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(b"/Type /Pages")
    assert 1 <= pages <= 2


def test_the_figures_survive_rotating_the_vault_keys_and_new_data_keys(unlocked, vault_path):
    """A new admin seed: what was kept is folded, the live shares and totals are sealed
    again to the new admin key; a consent given a new data key (access revoked) keeps its
    contacts. The figures stay what they were, and the job still keeps a share."""
    from vault import grants, rotation

    staff.add(unlocked, "kari", passphrase=b"kari horse battery staple")
    one, two = small_year(unlocked), small_year(unlocked)
    report.log_contact(unlocked, channel="letter", consent_id=two)
    grants.grant(unlocked, two, "kari", reason="covering")
    erasure.withdraw(unlocked, one)
    before = report.year_report(unlocked, NOW.year).shown(exact=True)
    erasure.withdraw(unlocked, small_year(unlocked))  # kept, not folded yet
    rotation.rotate(unlocked)
    grants.revoke(unlocked, two, "kari")
    assert unlocked.store.get_consent(two).key_version == 2
    after = report.year_report(unlocked, NOW.year).shown(exact=True)  # refreshes shares
    # The letter came the day of her phone note: one contact that day, and its row still
    # opens under the consent's new data key.
    assert [e.channel for e in report.check_events(unlocked) if e.consent_id == two] == ["letter"]
    assert after["contacts_by_channel"]["total"] == before["contacts_by_channel"]["total"] + 7
    assert after["users_by_gender"]["cells"]["woman"] == 3
    assert report._valid_share(unlocked.store, unlocked, unlocked.store.get_consent(two))


def test_a_backup_loses_the_share_of_a_consent_erased_since(unlocked, tmp_path):
    """The share is the person's contribution; the live vault keeps it (to fold), but the
    withdrawal reaching a backup erases it there like the rest of her data."""
    from vault import backup

    cid = small_year(unlocked)
    report.year_report(unlocked, NOW.year)  # brings the consent's share up to date
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    info = backup.backup(unlocked, backups, now=NOW, actor=ADMIN)
    copy = raw(info.path)
    assert copy.execute("SELECT count(*) FROM report_shares").fetchone() == (1,)
    copy.close()
    done = erasure.withdraw(unlocked, cid)
    assert info.path in done.copies.updated
    copy = raw(info.path)
    assert copy.execute("SELECT count(*) FROM report_shares").fetchone() == (0,)
    copy.close()
    assert unlocked.store.kept_report_shares()


@pytest.mark.parametrize(
    ("lang", "box"),
    [("nb", "Ja, svarene mine kan brukes"), ("en", "Yes, my answers may be used")],
)
def test_the_consent_form_asks_for_statistics_apart(cli_vault, lang, box):
    """A box of its own, after the duties and before the signature: ticking it or not
    is a choice apart from the consent to notes."""
    result = cli_vault("consent", "form", "--lang", lang)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert box in text
    assert text.index(box) > text.index("196")
    assert text.index(box) < text.index("\n## ", text.index(box))  # the signature follows


def test_the_json_keeps_todays_keys_beside_the_tables(cli_vault):
    """Scripts reading `nok stats --json` from before keep every key and value; the report's
    tables come beside them, each with its cells and total."""
    nok = cli_vault
    assert nok("contact", "log", "--channel", "phone").exit_code == 0
    shown = json.loads(nok("stats", "--json", "--exact").stdout)
    before = [
        "year", "consents_new", "consents_active", "ended_withdrawn", "ended_expired",
        "registered_in_error", "under_16", "under_16_unknown", "contacts",
        "contacts_by_kind", "contacts_by_month", "people_with_contact",
    ]  # fmt: skip
    assert all(k in shown for k in before)
    assert all(k.startswith(f"{NOW.year}-") for k in shown["contacts_by_month"])
    for name, _ in report.TABLES:
        assert set(shown[name]) == {"cells", "total"}
    assert shown["contacts_by_channel"]["cells"]["phone"] == 1


def purge_later(vault_path: Path, credential: object, days: int = 5) -> None:
    later = NOW + dt.timedelta(days=days)
    with Vault.open(vault_path) as vault:
        holder = jobs.unlock(vault, credential, now=later, pin_store=None)
        assert erasure.purge(vault, later, dry_run=False, actor=holder).purged


@pytest.mark.parametrize("unlocked_since", [True, False], ids=["unlocked since", "not since"])
def test_the_job_keeps_what_the_last_unlock_brought_up_to_date(
    unlocked, vault_path, unlocked_since
):
    """Writing a note seals one record; the consent's share is brought up to date at the
    next unlock of someone who may open it. Purged before that, its figures are counted
    as lost, never silently dropped."""
    credential = jobs.issue(unlocked)
    c = consents.add(
        unlocked,
        consents.ConsentInput(subject="S", purpose="P", categories=("contact",), retain_days=1),
    )
    report.set_profile(unlocked, c.id, {"gender": "man"})
    notes.add(unlocked, c.id, "x", kind="phone")
    unlocked.close()
    if unlocked_since:
        Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    purge_later(vault_path, credential)
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW + dt.timedelta(days=6))
    try:
        made = report.year_report(u, NOW.year)
        assert made.lost == (0 if unlocked_since else 1)
        assert made.tables["users_by_gender"].cells["man"] == (1 if unlocked_since else 0)
        assert made.tables["contacts_by_channel"].cells["phone"] == (1 if unlocked_since else 0)
    finally:
        u.close()


def test_the_staff_figures_are_an_admins_signed_settings(cli_vault):
    nok = cli_vault
    assert nok("settings", "set", "staff-count", "7").exit_code == 0
    assert nok("settings", "set", "staff-fte", "4.65").exit_code == 0
    assert nok("settings", "set", "staff-fte", "4.655").exit_code == 2
    assert nok("settings", "set", "staff-fte", "fire").exit_code == 2
    shown = json.loads(nok("stats", "--json").stdout)
    assert shown["staff"] == {"count": 7, "fte": "4.65"}
    settings_shown = json.loads(nok("settings", "show", "--json").stdout)
    assert (settings_shown["staff-count"], settings_shown["staff-fte"]) == (7, "4.65")
