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

from tests.conftest import ADMIN, NOW, PASSPHRASE, days_ago, run_nok
from vault import Vault, audit, consents, erasure, files, notes
from vault.dates import timestamp
from vault.session import Unlocked


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


def chain(raw: sqlite3.Connection) -> list[tuple]:
    return raw.execute(
        "SELECT seq, ts, actor, action, consent_id, object_id, prev, hash, mac FROM audit"
        " ORDER BY seq"
    ).fetchall()


def rehash_from(raw: sqlite3.Connection, start: int) -> None:
    """What someone without the key can do: recompute every hash from ``start`` on."""
    rows = chain(raw)
    prev = audit.GENESIS if start == 1 else rows[start - 2][7]
    for seq, ts, actor, action, cid, oid, _, _, _ in rows[start - 1 :]:
        digest = audit.entry_hash(prev, seq, ts, actor, action, cid, oid)
        raw.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", [prev, digest, seq])
        prev = digest


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


def delete_tail(raw):
    raw.execute("DELETE FROM audit WHERE seq >= 4")


def reorder(raw):
    rows = {r[0]: r for r in chain(raw)}
    for target, source in ((4, 5), (5, 4)):
        _, ts, actor, action, cid, oid, prev, digest, mac = rows[source]
        raw.execute(
            "UPDATE audit SET ts=?, actor=?, action=?, consent_id=?, object_id=?, prev=?, hash=?,"
            " mac=? WHERE seq = ?",
            [ts, actor, action, cid, oid, prev, digest, mac, target],
        )


def insert_middle(raw):
    for (seq,) in raw.execute("SELECT seq FROM audit WHERE seq >= 4 ORDER BY seq DESC").fetchall():
        raw.execute("UPDATE audit SET seq = ? WHERE seq = ?", [seq + 1, seq])
    row = chain(raw)[0]
    raw.execute(
        "INSERT INTO audit (seq, ts, actor, action, consent_id, object_id, prev, hash, mac)"
        " VALUES (4, ?, 'anne', 'note.show', NULL, NULL, x'', x'', ?)",
        [row[1], row[8]],
    )
    rehash_from(raw, 4)


def forge_tail(raw):
    last = chain(raw)[-1]
    seq, ts = last[0] + 1, last[1]
    digest = audit.entry_hash(last[7], seq, ts, "anne", "note.show", None, None)
    raw.execute(
        "INSERT INTO audit (seq, ts, actor, action, prev, hash) VALUES (?, ?, 'anne',"
        " 'note.show', ?, ?)",
        [seq, ts, last[7], digest],
    )


def strip_mac(raw):
    raw.execute("UPDATE audit SET mac = NULL WHERE seq = 4")


def drop_head(raw):
    raw.execute("DELETE FROM settings WHERE key = ?", [audit.HEAD_SETTING])


def wipe_trail(raw):
    raw.execute("DELETE FROM audit")
    raw.execute("DELETE FROM settings WHERE key = ?", [audit.HEAD_SETTING])


TAMPERING: list[tuple[Callable[[sqlite3.Connection], None], str]] = [
    (edit_actor, "entry 4 "),
    (edit_and_rehash, "entry 4 "),
    (delete_middle, "entry 4 is missing"),
    (delete_middle_and_renumber, "entry 4 "),
    (delete_tail, "ends at entry 3"),
    (reorder, "entry 4 "),
    (insert_middle, "entry 4 "),
    (forge_tail, "no MAC"),
    (strip_mac, "entry 4 "),
    (drop_head, "where the audit trail ends"),
    (wipe_trail, "empty"),
]


@pytest.mark.parametrize(("tamper", "first"), TAMPERING, ids=[t.__name__ for t, _ in TAMPERING])
def test_tampering_is_reported_by_audit_verify(trail, nok, tamper, first):
    _, raw = trail
    assert nok("audit", "verify").exit_code == 0
    tamper(raw)
    result = nok("audit", "verify")
    assert result.exit_code == 13, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert first in lines[0]
    assert "problem(s) found" in result.stderr


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


COLUMNS = ("ts", "actor", "action", "consent_id", "object_id", "prev", "hash", "mac")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(row=st.integers(min_value=1, max_value=9), column=st.sampled_from(COLUMNS))
def test_any_changed_cell_is_found_at_its_entry(trail, row, column):
    u, _ = trail
    store, key = u.store, u.vault_key(audit.AUDIT_KEY)
    assert store.count_audit() == 9
    store.conn.execute("BEGIN")
    try:
        select = f"SELECT {column} FROM audit WHERE seq = ?"  # noqa: S608 (a fixed column name)
        old = store.conn.execute(select, [row]).fetchone()[0]
        new = (
            (bytes(32) if old is None else bytes(b ^ 1 for b in old))
            if column
            in (
                "prev",
                "hash",
                "mac",
            )
            else (old or "") + "x"
        )
        update = f"UPDATE audit SET {column} = ? WHERE seq = ?"  # noqa: S608
        store.conn.execute(update, [new, row])
        problems = audit.verify_chain(store, key, NOW)
    finally:
        store.conn.execute("ROLLBACK")
    assert problems
    first = problems[0].params
    assert row in (first.get("seq"), first.get("first"), first.get("head")), problems[0].message
    assert audit.verify_chain(store, key, NOW) == []


def test_keyless_entries_wait_for_the_next_unlock(unlocked, vault_path):
    c = consents.add(
        unlocked, consents.ConsentInput("Kari", "p", ("notes",), retain_days=1, given="2026-01-01")
    )
    with Vault.open(vault_path) as keyless:
        erasure.purge(keyless, NOW, dry_run=False)
    tail = unlocked.store.audit_unsealed_tail()
    assert [(e.action, e.consent_id) for e in tail] == [("consent.expire", c.id)]
    key = unlocked.vault_key(audit.AUDIT_KEY)
    assert audit.verify_chain(unlocked.store, key, NOW) == []
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    assert unlocked.store.audit_unsealed_tail() == []
    assert audit.verify_chain(unlocked.store, key, NOW) == []


def test_a_forged_keyless_entry_is_not_sealed(trail, vault_path):
    u, raw = trail
    forge_tail(raw)
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    notes.list_notes(u)  # a keyed entry after the forged one
    problems = audit.verify_chain(u.store, u.vault_key(audit.AUDIT_KEY), NOW)
    assert [p.kind for p in problems] == ["no-mac"]


def test_erasure_keeps_the_trail_with_ids_only(unlocked):
    kari, _ = populate(unlocked)
    before = [e.seq for e in audit.list_entries(unlocked.store, consent_id=kari)]
    erasure.withdraw(unlocked, kari)
    after = list(audit.list_entries(unlocked.store, consent_id=kari))
    assert [e.seq for e in after][: len(before)] == before
    assert after[-1].action == "consent.withdraw"
    assert audit.verify_chain(unlocked.store, unlocked.vault_key(audit.AUDIT_KEY), NOW) == []
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


# -- the anchor beside the vault: a cut tail with an older head, an older file put back ----


def head_setting(raw: sqlite3.Connection) -> str:
    return raw.execute("SELECT value FROM settings WHERE key = ?", [audit.HEAD_SETTING]).fetchone()[
        0
    ]


def cut_back_to(raw: sqlite3.Connection, seq: int, old_head: str) -> None:
    """What a file writer with an older head record does: drop the tail, put the head back."""
    raw.execute("DELETE FROM audit WHERE seq > ?", [seq])
    raw.execute("UPDATE settings SET value = ? WHERE key = ?", [old_head, audit.HEAD_SETTING])


def test_a_cut_tail_with_an_older_head_is_found_by_the_anchor(unlocked, nok, vault_path):
    kari = consents.add(unlocked, consents.ConsentInput("Kari", "p", ("notes",)))
    raw = sqlite3.connect(vault_path, isolation_level=None)
    old_head = head_setting(raw)
    old_seq = json.loads(old_head)["seq"]
    for i in range(3):
        notes.show(unlocked, notes.add(unlocked, kari.id, f"talk {i}").id)
    assert nok("audit", "verify").exit_code == 0
    cut_back_to(raw, old_seq, old_head)
    # The trail, its chain, MACs and head agree with each other: only the anchor tells.
    key = unlocked.vault_key(audit.AUDIT_KEY)
    assert [p.kind for p in audit.verify_chain(unlocked.store, key, NOW)] == ["rollback"]
    for args in (("audit", "verify"), ("verify",)):
        result = nok(*args)
        assert result.exit_code == 13, result.stderr
        assert f"the audit trail ends at entry {old_seq}, but the anchor" in result.stdout
    # Work goes on; the anchor is not moved past the cut, so the evidence stays.
    notes.add(unlocked, kari.id, "later")
    result = nok("audit", "verify")
    assert result.exit_code == 13
    assert "anchor beside the vault records" in result.stdout
    raw.close()


def test_an_older_copy_of_the_file_put_back_is_found(unlocked, nok, vault_path, tmp_path):
    kari = consents.add(unlocked, consents.ConsentInput("Kari", "p", ("notes",)))
    assert unlocked.store.checkpoint()
    old = tmp_path / "old.db"
    shutil.copyfile(vault_path, old)
    for i in range(12):  # the copy is put back after the trail has grown past it and more
        notes.add(unlocked, kari.id, f"talk {i}")
    unlocked.close()
    for side in files.side_files(vault_path):
        side.unlink(missing_ok=True)
    shutil.copyfile(old, vault_path)
    result = nok("audit", "verify")
    assert result.exit_code == 13
    assert "an older copy of the vault was put back" in result.stdout
    # The trail written again past the anchor's entry does not hide it either.
    for i in range(14):
        nok("note", "add", kari.id, "--text", f"again {i}")
    result = nok("verify")
    assert result.exit_code == 13
    assert "is not the one the anchor beside the vault records" in result.stdout


def test_an_admin_accepts_the_trail_with_reset_anchor(trail, nok, vault_path, monkeypatch):
    from vault import staff

    u, raw = trail
    old_head = head_setting(raw)
    notes.add(u, next(consents.list_all(u)).id, "more")
    cut_back_to(raw, json.loads(old_head)["seq"], old_head)
    assert nok("audit", "verify").exit_code == 13
    refused = nok("audit", "reset-anchor")
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    staff.add(u, "bob", passphrase=b"bob's passphrase here", kdf="interactive")
    monkeypatch.setenv("NOK_PASSPHRASE", "bob's passphrase here")
    assert nok("--as", "bob", "audit", "reset-anchor", "--yes").exit_code == 11
    monkeypatch.setenv("NOK_PASSPHRASE", PASSPHRASE)
    assert nok("audit", "verify").exit_code == 13
    result = nok("audit", "reset-anchor", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "the audit anchor now records entry" in result.stderr
    assert nok("audit", "verify").exit_code == 0
    assert chain(raw)[-1][3] == "audit.anchor-reset"


def test_an_altered_or_foreign_anchor_is_reported(trail, nok, vault_path, tmp_path):
    path = audit.anchor_path(vault_path)
    value = json.loads(path.read_bytes())
    path.write_text(json.dumps({**value, "seq": value["seq"] - 1}))
    result = nok("audit", "verify")
    assert result.exit_code == 13
    assert "anchor beside the vault fails its MAC" in result.stdout
    path.write_text(json.dumps({**value, "vault_id": "0" * 16}))
    assert "belongs to another vault" in nok("audit", "verify").stdout
    path.write_text("not an anchor")
    assert "the audit anchor" in nok("audit", "verify").stdout


def test_a_deleted_anchor_is_a_warning_and_is_not_made_again(trail, nok, vault_path):
    u, _ = trail
    path = audit.anchor_path(vault_path)
    path.unlink()
    result = nok("audit", "verify")
    assert result.exit_code == 0
    assert "warning: there is no audit anchor beside the vault" in result.stderr
    notes.list_notes(u, consent_id=next(consents.list_all(u)).id)
    assert not path.exists()
    report = json.loads(nok("verify", "--json").stdout)
    assert report["ok"] is True
    assert [w["kind"] for w in report["warnings"]] == ["anchor-missing"]


def test_the_anchor_is_private_and_follows_the_trail(trail, vault_path):
    u, _ = trail
    path = audit.anchor_path(vault_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    anchor = audit.read_anchor(vault_path)
    last = u.store.last_audit()
    assert anchor is not None
    assert (anchor.head.seq, anchor.tail_seq, anchor.tail_hash) == (last.seq, last.seq, last.hash)
    with Vault.open(vault_path) as keyless:
        erasure.purge(keyless, NOW, dry_run=False)
        backup_dir = vault_path.parent.parent / "b"
        from vault import backup

        backup.backup(keyless, backup_dir, now=NOW, actor="cron", into_directory=True)
    moved = audit.read_anchor(vault_path)
    assert moved is not None
    assert moved.head == anchor.head  # keyless writes cannot move the sealed part
    assert moved.tail_seq == last.seq + 1


# -- future-dated entries and the purge's clock check ---------------------------------------


def plant(raw: sqlite3.Connection, *, ts: str, actor: str, action: str, mac: bytes | None = None):
    """Append a correctly hashed entry, as anyone who can write the file can."""
    last = chain(raw)[-1]
    seq = last[0] + 1
    digest = audit.entry_hash(last[7], seq, ts, actor, action, None, None)
    raw.execute(
        "INSERT INTO audit (seq, ts, actor, action, prev, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [seq, ts, actor, action, last[7], digest, mac],
    )
    return seq, digest


FAR_AHEAD = timestamp(NOW + dt.timedelta(days=3000))


@pytest.fixture
def due_vault(unlocked, vault_path):
    """A vault with one consent past its deadline, closed; a raw connection to tamper with."""
    given = days_ago(400)
    c = consents.add(
        unlocked, consents.ConsentInput("Kari", "p", ("notes",), retain_days=30, given=given)
    )
    unlocked.close()
    raw = sqlite3.connect(vault_path, isolation_level=None)
    yield c.id, raw
    raw.close()


def purge_env(vault_path):
    return {"NOK_VAULT": str(vault_path)}


def test_a_planted_future_entry_does_not_stop_the_purge(due_vault, vault_path, nok):
    cid, raw = due_vault
    seq, _ = plant(raw, ts=FAR_AHEAD, actor="purge (keyless)", action="consent.expire")
    result = run_nok("purge", env=purge_env(vault_path), input="")
    assert result.returncode == 0, result.stderr
    assert raw.execute("SELECT status FROM consents WHERE id = ?", [cid]).fetchone()[0] == (
        "expired"
    )
    report = nok("audit", "verify")
    assert report.exit_code == 13
    assert f"audit entry {seq} is dated {FAR_AHEAD}, more than a day after" in report.stdout
    # The unlock of that verify did not seal it.
    assert raw.execute("SELECT mac FROM audit WHERE seq = ?", [seq]).fetchone()[0] is None


def test_a_planted_future_head_stops_the_purge_only_until_staff_next_work(
    due_vault, vault_path, nok
):
    cid, raw = due_vault
    seq, digest = plant(raw, ts=FAR_AHEAD, actor="anne", action="note.show", mac=bytes(32))
    fake = {"seq": seq, "hash": digest.hex(), "mac": bytes(32).hex()}
    raw.execute(
        "UPDATE settings SET value = ? WHERE key = ?", [json.dumps(fake), audit.HEAD_SETTING]
    )
    blocked = run_nok("purge", env=purge_env(vault_path), input="")
    assert blocked.returncode == 14
    assert nok("consent", "show", cid).exit_code == 0  # any staff command moves the head
    result = run_nok("purge", env=purge_env(vault_path), input="")
    assert result.returncode == 0, result.stderr
    verify = nok("audit", "verify")
    assert verify.exit_code == 13
    assert f"audit entry {seq} fails its MAC" in verify.stdout
    assert "more than a day after" in verify.stdout


# -- keyless entries stay keyless, and never pass for a staff member's --------------------


def test_keyless_entries_stay_marked_keyless_after_sealing(due_vault, vault_path, nok):
    cid, _ = due_vault
    assert run_nok("purge", env=purge_env(vault_path), input="").returncode == 0
    assert (
        run_nok(
            "backup",
            str(vault_path.parent.parent / "b") + "/",
            env={**purge_env(vault_path), "NOK_USER": ADMIN},
        ).returncode
        == 0
    )
    entries = json.loads(nok("audit", "list", "--json").stdout)
    keyless = [e for e in entries if e["keyless"]]
    assert [(e["action"], e["actor"]) for e in keyless] == [
        ("consent.expire", "purge (keyless)"),
        ("vault.backup", f"{ADMIN} (keyless)"),
    ]
    assert all(e["sealed"] for e in keyless)  # sealed by that unlock, still keyless
    assert not any(e["keyless"] for e in entries if e["actor"] == ADMIN)
    table = nok("audit", "list").stdout
    assert table.count("yes, keyless") == 2
    by_anne = json.loads(nok("audit", "list", "--actor", ADMIN, "--json").stdout)
    assert "vault.backup" in {e["action"] for e in by_anne}
    export = nok("export", cid).stdout
    assert "retention period had run out" in export
    assert "(keyless)" not in export


@pytest.mark.parametrize(
    ("actor", "action", "message"),
    [
        ("anne", "consent.withdraw", "has no MAC but names anne as the staff member"),
        ("purge (keyless)", "note.show", "records note.show, which only a staff member"),
        ("purge (keyless)", "staff.add", "records staff.add, which only a staff member"),
    ],
)
def test_a_keyless_entry_claiming_staff_work_is_forged(trail, nok, actor, action, message):
    _, raw = trail
    seq, _ = plant(raw, ts=chain(raw)[-1][1], actor=actor, action=action)
    result = nok("audit", "verify")
    assert result.exit_code == 13
    assert f"audit entry {seq} " in result.stdout
    assert message in result.stdout
    assert raw.execute("SELECT mac FROM audit WHERE seq = ?", [seq]).fetchone()[0] is None


# -- every read of a person's data is in their trail ---------------------------------------


def test_list_reads_are_recorded_per_consent(trail, nok):
    u, raw = trail
    kari, ola = (c.id for c in consents.list_all(u))
    empty = consents.add(u, consents.ConsentInput("Per", "p", ("notes",))).id
    before = chain(raw)[-1][0]
    assert nok("note", "list").exit_code == 0
    listed = raw.execute(
        "SELECT consent_id, ts FROM audit WHERE seq > ? AND action = 'note.list'", [before]
    ).fetchall()
    assert sorted(c for c, _ in listed) == sorted([kari, ola])  # Per has no notes to show
    assert len({ts for _, ts in listed}) == 1  # one transaction
    before = chain(raw)[-1][0]
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
    assert audit.verify_chain(u.store, u.vault_key(audit.AUDIT_KEY), NOW) == []


def test_a_list_with_nothing_to_show_is_still_recorded(unlocked, nok):
    before = unlocked.store.count_audit()
    assert nok("note", "list").exit_code == 0
    last = unlocked.store.last_audit()
    assert (unlocked.store.count_audit(), last.action, last.consent_id) == (
        before + 1,
        "note.list",
        None,
    )
