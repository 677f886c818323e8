"""The audit trail: every read and change is recorded, and tampering with it is found."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN, NOW, PASSPHRASE
from vault import Vault, audit, consents, erasure, notes
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
        problems = audit.verify_chain(store, key)
    finally:
        store.conn.execute("ROLLBACK")
    assert problems
    first = problems[0].params
    assert row in (first.get("seq"), first.get("first"), first.get("head")), problems[0].message
    assert audit.verify_chain(store, key) == []


def test_keyless_entries_wait_for_the_next_unlock(unlocked, vault_path):
    c = consents.add(
        unlocked, consents.ConsentInput("Kari", "p", ("notes",), retain_days=1, given="2026-01-01")
    )
    with Vault.open(vault_path) as keyless:
        erasure.purge(keyless, NOW, dry_run=False)
    tail = unlocked.store.audit_unsealed_tail()
    assert [(e.action, e.consent_id) for e in tail] == [("consent.expire", c.id)]
    key = unlocked.vault_key(audit.AUDIT_KEY)
    assert audit.verify_chain(unlocked.store, key) == []
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    assert unlocked.store.audit_unsealed_tail() == []
    assert audit.verify_chain(unlocked.store, key) == []


def test_a_forged_keyless_entry_is_not_sealed(trail, vault_path):
    u, raw = trail
    forge_tail(raw)
    with Vault.open(vault_path) as again:
        again.unlock(ADMIN, PASSPHRASE.encode(), now=NOW).close()
    notes.list_notes(u)  # a keyed entry after the forged one
    problems = audit.verify_chain(u.store, u.vault_key(audit.AUDIT_KEY))
    assert [p.kind for p in problems] == ["no-mac"]


def test_erasure_keeps_the_trail_with_ids_only(unlocked):
    kari, _ = populate(unlocked)
    before = [e.seq for e in audit.list_entries(unlocked.store, consent_id=kari)]
    erasure.withdraw(unlocked, kari)
    after = list(audit.list_entries(unlocked.store, consent_id=kari))
    assert [e.seq for e in after][: len(before)] == before
    assert after[-1].action == "consent.withdraw"
    assert audit.verify_chain(unlocked.store, unlocked.vault_key(audit.AUDIT_KEY)) == []
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
