"""The audit trail: every read and change is recorded, and tampering with it is found."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN, NOW, PASSPHRASE, days_ago, job_credential_file, run_nok
from vault import Vault, audit, consents, erasure, files, notes
from vault.dates import timestamp
from vault.errors import ClockError
from vault.session import Unlocked
from vault.store import AuditRow


def populate(u: Unlocked) -> list[str]:
    """Two people with two notes each, one of them read back; returns the consent ids."""
    ids = []
    for subject in ("Kari", "Ola"):
        c = consents.add(u, consents.ConsentInput(subject, "follow-up", ("conversation-notes",)))
        ids.append(c.id)
        for i in range(2):
            note = notes.add(u, c.id, f"talk {i} with {subject}")
        notes.show(u, note.id)
    return ids


class Trail(tuple):
    """(unlocked vault, raw connection); its repr keeps keys out of failure reports."""

    def __repr__(self) -> str:
        return "Trail(...)"


@pytest.fixture
def trail(unlocked: Unlocked) -> Iterator[Trail]:
    """A vault with 9 audit entries, and a second raw connection to tamper with."""
    populate(unlocked)
    raw = sqlite3.connect(unlocked.store.path, isolation_level=None)
    try:
        yield Trail((unlocked, raw))
    finally:
        raw.close()


COLUMNS_SQL = (
    "seq, ts, actor, action, consent_id, object_id, prev, hash, mac, epoch, detail, rev, state,"
    " batch_start, sig"
)


def chain(raw: sqlite3.Connection) -> list[AuditRow]:
    """The trail as a file writer reads it, entry by entry."""
    return [
        AuditRow(*row)
        for row in raw.execute(f"SELECT {COLUMNS_SQL} FROM audit ORDER BY seq")  # noqa: S608
    ]


def rehash_from(raw: sqlite3.Connection, start: int) -> None:
    """What someone without a staff key can do: recompute every hash from ``start`` on."""
    rows = chain(raw)
    prev = audit.GENESIS if start == 1 else rows[start - 2].hash
    for row in rows[start - 1 :]:
        row.prev = prev
        digest = audit.entry_hash(prev, row)
        raw.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", [prev, digest, row.seq])
        prev = digest


def append_raw(raw: sqlite3.Connection, **fields: object) -> AuditRow:
    """Append a correctly hashed entry after the last one, as anyone who can write the file
    can (unsigned unless ``sig`` is given)."""
    last = chain(raw)[-1]
    row = AuditRow(
        seq=last.seq + 1,
        ts=str(fields.pop("ts", last.ts)),
        actor=str(fields.pop("actor", ADMIN)),
        action=str(fields.pop("action", "note.show")),
        consent_id=None,
        object_id=None,
        prev=last.hash,
        hash=b"",
        mac=None,
        epoch=1,
    )
    for name, value in fields.items():
        setattr(row, name, value)
    row.hash = audit.entry_hash(row.prev, row)
    raw.execute(
        f"INSERT INTO audit ({COLUMNS_SQL}) VALUES ({', '.join('?' * 15)})",  # noqa: S608
        [getattr(row, name.strip()) for name in COLUMNS_SQL.split(",")],
    )
    return row


def edit_actor(raw):
    raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 4")


def edit_and_rehash(raw):
    raw.execute("UPDATE audit SET action = 'consent.list' WHERE seq = 4")
    rehash_from(raw, 4)


def delete_middle(raw):
    raw.execute("DELETE FROM audit WHERE seq = 4")


def delete_middle_and_renumber(raw):
    raw.execute("DELETE FROM audit WHERE seq = 4")
    for (seq,) in raw.execute("SELECT seq FROM audit WHERE seq > 4 ORDER BY seq").fetchall():
        raw.execute("UPDATE audit SET seq = ? WHERE seq = ?", [seq - 1, seq])
    rehash_from(raw, 4)


def reorder(raw):
    rows = {r.seq: r for r in chain(raw)}
    for target, source in ((4, 5), (5, 4)):
        r = rows[source]
        raw.execute(
            "UPDATE audit SET ts=?, actor=?, action=?, consent_id=?, object_id=?, prev=?, hash=?,"
            " epoch=?, detail=?, rev=?, state=?, batch_start=?, sig=? WHERE seq = ?",
            [
                r.ts,
                r.actor,
                r.action,
                r.consent_id,
                r.object_id,
                r.prev,
                r.hash,
                r.epoch,
                r.detail,
                r.rev,
                r.state,
                r.batch_start,
                r.sig,
                target,
            ],
        )


def insert_middle(raw):
    """An entry of someone else's slipped in before anne's entry 4, the chain re-hashed."""
    for (seq,) in raw.execute("SELECT seq FROM audit WHERE seq >= 4 ORDER BY seq DESC").fetchall():
        raw.execute("UPDATE audit SET seq = ? WHERE seq = ?", [seq + 1, seq])
    raw.execute(
        "INSERT INTO audit (seq, ts, actor, action, prev, hash, epoch)"
        " VALUES (4, ?, 'mallory', 'note.show', x'', x'', 1)",
        [chain(raw)[0].ts],
    )
    rehash_from(raw, 4)


def forge_tail(raw):
    append_raw(raw, actor=ADMIN, action="note.show")


def strip_sig(raw):
    raw.execute("UPDATE audit SET sig = NULL WHERE seq = 4")


TAMPERING: list[tuple[Callable[[sqlite3.Connection], None], str]] = [
    (edit_actor, "audit entry 4 does not match its hash"),
    (edit_and_rehash, "audit entry 4 fails its signature"),
    (delete_middle, "audit entry 4 is missing"),
    (delete_middle_and_renumber, "audit entry 4 "),
    (reorder, "audit entry 4 does not follow entry 3"),
    (insert_middle, "audit entries 4 to 5 are signed together by anne, but not all are hers"),
    (forge_tail, "audit entry 10 (note.show) is not signed by a staff member or the job"),
    (strip_sig, "audit entry 4 (note.add) is not signed by a staff member or the job"),
]


@pytest.mark.parametrize(("tamper", "first"), TAMPERING, ids=[t.__name__ for t, _ in TAMPERING])
def test_tampering_is_reported_by_audit_verify(trail, nok, tamper, first):
    """As a colleague who has not used the vault since it was made sees it (her pin holds
    only entry 1: the trail itself must tell)."""
    u, raw = trail
    assert audit.verify_chain(u.store, u.chain, NOW) == []
    tamper(raw)
    result = nok("audit", "verify")
    assert result.exit_code == 13, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert first in lines[0]
    assert "problem(s) found" in result.stderr


def delete_tail(raw):
    raw.execute("DELETE FROM audit WHERE seq >= 4")


def wipe_trail(raw):
    raw.execute("DELETE FROM audit")


@pytest.mark.parametrize("tamper", [delete_tail, wipe_trail, edit_and_rehash])
def test_a_trail_cut_or_rewritten_is_refused_to_whoever_saw_it(trail, nok, tamper):
    """A cut end leaves a chain that agrees with itself, and a rewritten one differs at
    the entry she saw last: the pin of a user who saw the newer trail tells, at her next
    unlock, before anything is shown or written."""
    u, raw = trail
    assert nok("audit", "verify").exit_code == 0
    seen = chain(raw)[-1].seq
    tamper(raw)
    for args in (("audit", "verify"), ("verify",), ("note", "list")):
        result = nok(*args)
        assert result.exit_code == 7, result.stderr
        assert f"its audit trail no longer holds entry {seen}" in result.stderr
    # Without a pin (a colleague new to the vault) only a wiped trail shows in the file.
    kinds = [p.kind for p in audit.verify_chain(u.store, u.chain, NOW)]
    expected = {delete_tail: [], wipe_trail: ["deleted"], edit_and_rehash: ["bad-sig"] * 6}
    assert kinds == expected[tamper]


@pytest.mark.parametrize("tamper", [edit_actor, delete_middle, reorder, delete_tail])
def test_tampering_is_reported_by_nok_verify(trail, nok, tamper):
    _, raw = trail
    tamper(raw)
    result = nok("verify")
    assert result.exit_code == 13
    assert "audit" in result.stdout


def test_verify_json_for_monitoring(trail, nok):
    _, raw = trail
    good = json.loads(nok("audit", "verify", "--json").stdout)
    assert good["ok"] is True
    assert good["problems"] == []
    assert good["head"]["seq"] == good["entries"]
    edit_actor(raw)
    result = nok("audit", "verify", "--json")
    assert result.exit_code == 13
    bad = json.loads(result.stdout)
    assert bad["ok"] is False
    assert bad["problems"][0]["seq"] == 4


# Every column an entry's hash or its batch signature covers. ``mac`` is format 2's: a
# format-3 entry leaves it empty and nothing reads it.
COLUMNS = (
    "ts",
    "actor",
    "action",
    "consent_id",
    "object_id",
    "prev",
    "hash",
    "epoch",
    "detail",
    "rev",
    "state",
    "batch_start",
    "sig",
)


def changed(old: object, column: str) -> object:
    if column in ("prev", "hash", "state", "sig"):
        return bytes(32) if old is None else bytes(b ^ 1 for b in old)
    if column in ("epoch", "rev", "batch_start"):
        return 1 if old is None else int(old) + 1
    return (old or "") + "x"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(row=st.integers(min_value=1, max_value=9), column=st.sampled_from(COLUMNS))
def test_any_changed_cell_is_found_at_its_entry(trail, row, column):
    u, _ = trail
    store = u.store
    assert store.count_audit() == 9
    store.conn.execute("BEGIN")
    try:
        select = f"SELECT {column} FROM audit WHERE seq = ?"  # noqa: S608 (a fixed column name)
        old = store.conn.execute(select, [row]).fetchone()[0]
        update = f"UPDATE audit SET {column} = ? WHERE seq = ?"  # noqa: S608
        store.conn.execute(update, [changed(old, column), row])
        problems = audit.verify_chain(store, u.chain, NOW)
    finally:
        store.conn.execute("ROLLBACK")
    assert problems
    first = problems[0].params
    assert row in (first.get("seq"), first.get("first")), problems[0].message
    assert audit.verify_chain(store, u.chain, NOW) == []


def test_keyless_entries_stay_unsigned_and_vouch_for_no_one(unlocked, vault_path, tmp_path):
    """A keyless backup's entry is no problem, but nothing ever signs it later: the next
    unlock's batch covers only her own work."""
    with Vault.open(vault_path) as keyless:
        from vault import backup

        backup.backup(keyless, tmp_path / "b", now=NOW, actor="cron", into_directory=True)
    (entry,) = [e for e in chain(unlocked.store.conn) if audit.is_keyless(e.actor)]
    assert (entry.action, entry.actor, entry.sig) == ("vault.backup", "cron (keyless)", None)
    assert audit.verify_chain(unlocked.store, unlocked.chain, NOW) == []
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    notes.list_notes(unlocked)  # a signed batch after it
    assert unlocked.store.audit_entry(entry.seq).sig is None
    assert not audit.entry_signed(unlocked.store, unlocked.chain, entry)
    assert audit.verify_chain(unlocked.store, unlocked.chain, NOW) == []


def test_a_forged_unsigned_entry_is_not_covered_by_the_next_signature(trail, vault_path):
    u, raw = trail
    forge_tail(raw)
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    notes.list_notes(u)  # a signed entry after the forged one
    problems = audit.verify_chain(u.store, u.chain, NOW)
    assert [p.kind for p in problems] == ["no-sig"]


def test_erasure_keeps_the_trail_with_ids_only(unlocked):
    kari, _ = populate(unlocked)
    listed = audit.list_entries(unlocked.store, consent_id=kari, chain=unlocked.chain)
    before = [e.seq for e in listed]
    erasure.withdraw(unlocked, kari)
    after = list(audit.list_entries(unlocked.store, consent_id=kari, chain=unlocked.chain))
    assert [e.seq for e in after][: len(before)] == before
    assert after[-1].action == "consent.withdraw"
    assert all(e.sealed for e in after)
    assert audit.verify_chain(unlocked.store, unlocked.chain, NOW) == []
    raw = b"".join(
        str(v).encode() for row in unlocked.store.conn.execute("SELECT * FROM audit") for v in row
    )
    assert b"Kari" not in raw
    assert b"talk" not in raw


def test_audit_list_filters(trail, nok):
    u, _ = trail
    kari = consents.list_all(u).__next__().id
    everything = json.loads(nok("audit", "list", "--json").stdout)
    assert {e["action"] for e in everything} >= {"vault.init", "consent.add", "note.add"}
    about = json.loads(nok("audit", "list", "--consent", kari, "--json").stdout)
    assert about
    assert all(e["consent_id"] == kari for e in about)
    assert {e["action"] for e in about} >= {"consent.add", "note.add", "audit.list"}
    assert json.loads(nok("audit", "list", "--actor", "nobody", "--json").stdout) == []
    assert json.loads(nok("audit", "list", "--since", "2999-01-01", "--json").stdout) == []
    table = nok("audit", "list", "--consent", kari)
    assert table.exit_code == 0
    assert kari in table.stdout


def test_audit_list_refuses_bad_input(trail, nok):
    _, raw = trail
    count = raw.execute("SELECT count(*) FROM audit").fetchone()[0]
    for args in (("--since", "last week"), ("--consent", "C-not-an-id")):
        result = nok("audit", "list", *args)
        assert result.exit_code == 2
        assert result.stderr.startswith("nok: error:")
        assert len(result.stderr.strip().splitlines()) <= 2
    assert raw.execute("SELECT count(*) FROM audit").fetchone()[0] == count


def test_audit_list_is_for_admins(trail, nok, monkeypatch):
    from vault import staff

    u, raw = trail
    staff.add(u, "bob", passphrase=b"bob's passphrase here", kdf="interactive")
    count = raw.execute("SELECT count(*) FROM audit").fetchone()[0]
    monkeypatch.setenv("NOK_PASSPHRASE", "bob's passphrase here")
    result = nok("--as", "bob", "audit", "list")
    assert result.exit_code == 11
    assert "admin" in result.stderr
    assert raw.execute("SELECT count(*) FROM audit").fetchone()[0] == count
    assert nok("--as", "bob", "audit", "verify").exit_code == 0


# -- the pin in the user's own state directory: a cut tail, an older file put back --------


def test_an_older_copy_of_the_file_put_back_is_refused(unlocked, nok, vault_path):
    """The pin records where the trail ended when this user last closed the vault; an older
    copy put back no longer holds that entry, and keyless entries written past it (every
    file writer can append those) do not make it hold it again."""
    kari = consents.add(unlocked, consents.ConsentInput("Kari", "p", ("notes",)))
    assert unlocked.store.checkpoint()
    old = vault_path.parent.parent / "old.db"
    shutil.copyfile(vault_path, old)
    for i in range(12):  # the copy is put back after the trail has grown past it
        notes.add(unlocked, kari.id, f"talk {i}")
    seen = unlocked.store.last_audit().seq
    unlocked.close()
    for side in files.side_files(vault_path):
        side.unlink(missing_ok=True)
    shutil.copyfile(old, vault_path)
    result = nok("audit", "verify")
    assert result.exit_code == 7
    assert f"its audit trail no longer holds entry {seen}" in result.stderr
    with Vault.open(vault_path) as keyless, keyless.store.write():
        while keyless.store.last_audit().seq < seen + 2:
            audit.append(keyless.store, now=NOW, signer=None, actor="cron", action="vault.backup")
    result = nok("verify")
    assert result.exit_code == 7
    assert f"its audit trail no longer holds entry {seen}" in result.stderr


def test_a_user_accepts_the_trail_as_it_is_with_reset_anchor(trail, nok):
    _, raw = trail
    assert nok("audit", "verify").exit_code == 0
    raw.execute("DELETE FROM audit WHERE seq > 5")
    assert nok("audit", "verify").exit_code == 7
    refused = nok("audit", "reset-anchor")
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert nok("audit", "verify").exit_code == 7  # nothing was accepted
    result = nok("audit", "reset-anchor", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "your record of the audit trail now ends at entry 5" in result.stderr
    assert nok("audit", "verify").exit_code == 0


def test_the_pin_is_private_and_moves_only_with_the_users_own_work(
    trail, vault_path, own_state, tmp_path
):
    """Keyless writes (a backup by cron) do not move anyone's pin: only her own unlock
    and close do, to the end of the trail she saw."""
    from vault import backup, pins

    u, _ = trail
    store = pins.PinStore.default()
    assert store.directory == own_state / "nok"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    before = store.get(u.vault_id)
    with Vault.open(vault_path) as keyless:
        backup.backup(keyless, tmp_path / "b", now=NOW, actor="cron", into_directory=True)
    assert store.get(u.vault_id) == before
    u.close()
    last = Vault.open(vault_path)
    try:
        end = last.store.last_audit()
    finally:
        last.close()
    pin = store.get(u.vault_id)
    assert (pin.audit_seq, pin.audit_hash) == (end.seq, bytes(end.hash))


# -- future-dated entries and the purge's clock check ---------------------------------------


FAR_AHEAD = timestamp(NOW + dt.timedelta(days=3000))


@pytest.fixture
def due_vault(unlocked, vault_path, tmp_path):
    """A vault with one consent past its deadline, closed, the job's credential, and a raw
    connection to tamper with."""
    given = days_ago(400)
    c = consents.add(
        unlocked, consents.ConsentInput("Kari", "p", ("notes",), retain_days=30, given=given)
    )
    job = job_credential_file(unlocked, tmp_path)
    unlocked.close()
    raw = sqlite3.connect(vault_path, isolation_level=None)
    yield c.id, raw, job
    raw.close()


def purge_env(vault_path, job):
    return {"NOK_VAULT": str(vault_path), "NOK_JOB_CREDENTIAL": str(job)}


def status_of(raw, cid):
    return raw.execute("SELECT status FROM consents WHERE id = ?", [cid]).fetchone()[0]


def test_a_planted_future_entry_does_not_stop_the_purge(due_vault, vault_path, nok):
    """Anyone who can write the file can append an unsigned entry: dated years ahead, or
    claiming an expiry, it neither moves the clock check nor holds back what is due."""
    cid, raw, job = due_vault
    planted = append_raw(raw, ts=FAR_AHEAD, actor="purge", action="consent.expire", epoch=2)
    result = run_nok("purge", env=purge_env(vault_path, job), input="")
    assert result.returncode == 0, result.stderr
    assert status_of(raw, cid) == "expired"
    report = nok("audit", "verify")
    assert report.exit_code == 13
    assert f"audit entry {planted.seq} is dated {FAR_AHEAD}, more than a day after" in (
        report.stdout
    )
    assert raw.execute("SELECT sig FROM audit WHERE seq = ?", [planted.seq]).fetchone()[0] is None


def test_a_forged_signature_far_ahead_neither_sets_the_clock_nor_lets_the_purge_erase(
    due_vault, vault_path, nok
):
    """A signed-looking entry years ahead: the clock check skips it (its signature does not
    check out), and a trail with a broken signature stops every erasure until an admin
    has looked."""
    cid, raw, job = due_vault
    planted = append_raw(raw, ts=FAR_AHEAD, sig=bytes(64))
    raw.execute("UPDATE audit SET batch_start = seq WHERE seq = ?", [planted.seq])
    result = run_nok("purge", env=purge_env(vault_path, job), input="")
    # Not 14 (the clock is not behind): 7, a consent due was kept for an admin to look at.
    assert result.returncode == 7, result.stderr
    assert "the audit trail does not verify" in result.stderr
    assert status_of(raw, cid) == "active"
    verify = nok("audit", "verify")
    assert verify.exit_code == 13
    assert f"audit entry {planted.seq} fails its signature" in verify.stdout
    assert "more than a day after" in verify.stdout


def test_a_clock_set_back_is_caught_behind_any_number_of_forged_entries(due_vault, vault_path):
    """The clock floor is the newest work with a valid signature, however it is dated and
    however many forged signatures were planted after it: a clock set back days is
    caught."""
    _, raw, _ = due_vault
    for _ in range(150):
        row = append_raw(raw, ts=timestamp(NOW - dt.timedelta(days=30)), sig=bytes(64))
        raw.execute("UPDATE audit SET batch_start = seq WHERE seq = ?", [row.seq])
    with Vault.open(vault_path) as v, pytest.raises(ClockError):
        erasure.check_clock(v, NOW - dt.timedelta(days=2))


# -- keyless entries stay keyless, and never pass for a staff member's --------------------


def test_keyless_entries_stay_marked_keyless_and_unsigned(due_vault, vault_path, nok):
    cid, _, job = due_vault
    assert run_nok("purge", env=purge_env(vault_path, job), input="").returncode == 0
    backup = run_nok(
        "backup",
        str(vault_path.parent.parent / "b") + "/",
        env={"NOK_VAULT": str(vault_path), "NOK_USER": ADMIN},
    )
    assert backup.returncode == 0, backup.stderr
    entries = json.loads(nok("audit", "list", "--json").stdout)
    keyless = [e for e in entries if e["keyless"]]
    assert [(e["action"], e["actor"], e["sealed"]) for e in keyless] == [
        ("vault.backup", f"{ADMIN} (keyless)", False)
    ]
    # The job's work is signed with its credential, under its own name.
    expired = [e for e in entries if e["action"] == "consent.expire"]
    assert [(e["actor"], e["sealed"], e["keyless"]) for e in expired] == [("purge", True, False)]
    assert all(e["sealed"] for e in entries if e["actor"] == ADMIN)
    table = nok("audit", "list").stdout
    assert table.count("no, keyless") == 1
    by_anne = json.loads(nok("audit", "list", "--actor", ADMIN, "--json").stdout)
    assert "vault.backup" in {e["action"] for e in by_anne}
    export = nok("export", cid).stdout
    assert "retention period had run out" in export
    assert "(keyless)" not in export


@pytest.mark.parametrize(
    ("actor", "action", "message"),
    [
        (ADMIN, "consent.withdraw", "records consent.withdraw of consent"),
        ("purge (keyless)", "note.show", "(note.show) is not signed by a staff member or the job"),
        ("purge (keyless)", "staff.add", "(staff.add) is not signed by a staff member or the job"),
    ],
)
def test_a_keyless_entry_claiming_staff_work_is_forged(trail, nok, actor, action, message):
    u, raw = trail
    kari = next(consents.list_all(u)).id
    planted = append_raw(raw, actor=actor, action=action, consent_id=kari)
    result = nok("audit", "verify")
    assert result.exit_code == 13
    assert f"audit entry {planted.seq} " in result.stdout
    assert message in result.stdout
    assert raw.execute("SELECT sig FROM audit WHERE seq = ?", [planted.seq]).fetchone()[0] is None
    # The listing does not pass it off as the work of whoever it names.
    listed = json.loads(nok("audit", "list", "--json").stdout)
    (shown,) = [e for e in listed if e["seq"] == planted.seq]
    assert shown["sealed"] is False
    table = nok("audit", "list", "--consent", kari).stdout.splitlines()
    (line,) = [t for t in table if t.split()[:1] == [str(planted.seq)]]
    assert line.rstrip().endswith((" no", " no, keyless"))


# -- every read of a person's data is in their trail ---------------------------------------


def test_list_reads_are_recorded_per_consent(trail, nok):
    u, raw = trail
    kari, ola = (c.id for c in consents.list_all(u))
    empty = consents.add(u, consents.ConsentInput("Per", "p", ("notes",))).id
    before = chain(raw)[-1].seq
    assert nok("note", "list").exit_code == 0
    listed = raw.execute(
        "SELECT consent_id, ts FROM audit WHERE seq > ? AND action = 'note.list'", [before]
    ).fetchall()
    assert sorted(c for c, _ in listed) == sorted([kari, ola])  # Per has no notes to show
    assert len({ts for _, ts in listed}) == 1  # one transaction
    before = chain(raw)[-1].seq
    assert nok("consent", "list").exit_code == 0
    listed = raw.execute(
        "SELECT consent_id FROM audit WHERE seq > ? AND action = 'consent.list'", [before]
    ).fetchall()
    assert sorted(c for (c,) in listed) == sorted([kari, ola, empty])
    for cid in (kari, ola):
        actions = [
            e["action"] for e in json.loads(nok("export", cid, "--format", "json").stdout)["audit"]
        ]
        assert "note.list" in actions
        assert "consent.list" in actions
    assert audit.verify_chain(u.store, u.chain, NOW) == []


def test_a_list_with_nothing_to_show_is_still_recorded(unlocked, nok):
    before = unlocked.store.count_audit()
    assert nok("note", "list").exit_code == 0
    last = unlocked.store.last_audit()
    assert (unlocked.store.count_audit(), last.action, last.consent_id) == (
        before + 1,
        "note.list",
        None,
    )
