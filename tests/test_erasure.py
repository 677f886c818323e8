"""Withdrawal of consent: everything under it leaves the disk, only a tombstone stays."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, as_job, job_credential_file

from vault import Vault, audit, consents, dates, endings, erasure, notes, states
from vault.errors import (
    BadInput,
    Conflict,
    InactiveConsent,
    NotFound,
    SymlinkRefused,
    UnsafePermissions,
)
from vault.session import Unlocked
from vault.store import ConsentRow

# Well over a 4096-byte page, so every such note spills to overflow pages.
BIG = 12_000
WINDOW = 24


def disk_files(vault_path: Path) -> list[Path]:
    """The vault and its -wal/-shm companions, as they are on disk now."""
    names = [vault_path.name, vault_path.name + "-wal", vault_path.name + "-shm"]
    return [vault_path.with_name(n) for n in names if vault_path.with_name(n).exists()]


def windows(blob: bytes) -> list[bytes]:
    """Every WINDOW-byte slice of ``blob`` at WINDOW steps: finds partial remains too."""
    return [blob[i : i + WINDOW] for i in range(0, len(blob) - WINDOW + 1, WINDOW)]


def remains(vault_path: Path, needles: Iterable[bytes]) -> list[str]:
    """Which files still contain any of ``needles`` (byte search of the raw files)."""
    pieces = [w for n in needles for w in windows(n)]
    found = []
    for f in disk_files(vault_path):
        data = f.read_bytes()
        if any(p in data for p in pieces):
            found.append(f.name)
    return found


def consent_secrets(u: Unlocked, consent_id: str) -> list[bytes]:
    """Every ciphertext and the wrapped data key stored for a consent, as on disk."""
    row = u.store.get_consent(consent_id)
    assert row is not None
    blobs = [bytes(b) for b in (row.data_key, row.record) if b is not None]
    for note in u.store.iter_notes(consent_id=consent_id):
        blobs.append(bytes(note.record))
    return [b for b in blobs if len(b) >= WINDOW]


def add_consent(u: Unlocked, subject: str, **kw: object) -> str:
    data = consents.ConsentInput(
        subject=subject, purpose="follow-up", categories=("conversation-notes",), **kw
    )
    return consents.add(u, data).id


def assert_tombstone(row: ConsentRow | None, status: str) -> None:
    assert row is not None
    assert row.status == status
    assert row.ended is not None
    assert row.end_reason
    assert row.ended_by
    personal = [row.data_key, row.record, row.retention_tag, row.notes_tag, row.last_activity]
    assert personal == [None] * len(personal)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_terminal(args: list[str], answer: str, env: dict[str, str]) -> tuple[int, str]:
    """Run nok with its standard input on a pseudo-terminal, answering its question."""
    leader, follower = os.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", *args],
        env=full_env,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(follower)
    os.write(leader, answer.encode() + b"\n")
    _, err = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, err


@pytest.fixture
def two_people(unlocked: Unlocked) -> tuple[str, str]:
    """Two consents with marker notes, some big enough for overflow pages."""
    gone = add_consent(unlocked, "GONE-SUBJECT-MARKER", guardian="GONE-GUARDIAN-MARKER")
    kept = add_consent(unlocked, "KEPT-SUBJECT")
    for i in range(3):
        notes.add(unlocked, gone, f"GONE-NOTE-MARKER-{i} " + "x" * BIG)
        notes.add(unlocked, gone, f"GONE-SHORT-MARKER-{i}")
        notes.add(unlocked, kept, f"KEPT-NOTE-{i} " + "y" * BIG)
    return gone, kept


def test_withdrawal_leaves_no_byte_behind(unlocked, vault_path, two_people):
    gone, kept = two_people
    secrets = consent_secrets(unlocked, gone)
    markers = [b"GONE-NOTE-MARKER", b"GONE-SHORT-MARKER", b"GONE-SUBJECT-MARKER", b"GONE-GUARD"]
    # The search finds the ciphertexts while they are there.
    assert remains(vault_path, secrets)

    result = erasure.withdraw(unlocked, gone)

    assert result.wal_clean
    assert result.erasure.notes == 6
    assert remains(vault_path, secrets) == []
    assert remains(vault_path, markers) == []
    assert vault_path.with_name(vault_path.name + "-wal").stat().st_size == 0
    assert_tombstone(unlocked.store.get_consent(gone), "withdrawn")
    assert unlocked.store.count_notes(gone) == 0
    texts = sorted(n.text[:11] for n in notes.list_notes(unlocked))
    assert texts == ["KEPT-NOTE-0", "KEPT-NOTE-1", "KEPT-NOTE-2"]
    assert consents.show(unlocked, kept).subject == "KEPT-SUBJECT"


def test_without_the_checkpoint_the_wal_would_still_hold_them(
    unlocked, vault_path, two_people, monkeypatch
):
    """Why erasure checkpoints: secure_delete alone leaves old page images in -wal."""
    gone, _ = two_people
    secrets = consent_secrets(unlocked, gone)
    monkeypatch.setattr(erasure, "checkpoint", lambda store: True)
    erasure.withdraw(unlocked, gone)
    assert "vault.db-wal" in remains(vault_path, secrets)


def test_blocked_checkpoint_is_reported_and_a_later_purge_wipes(
    unlocked, vault_path, two_people, tmp_path
):
    gone, _ = two_people
    credential = job_credential_file(unlocked, tmp_path)
    reader = Vault.open(vault_path)
    quick = Vault.open(vault_path, busy_timeout=0.2)
    me = quick.unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    secrets = consent_secrets(me, gone)
    try:
        with reader.store.read():
            reader.store.count_notes()
            result = erasure.withdraw(me, gone)
        assert not result.wal_clean
        assert_tombstone(me.store.get_consent(gone), "withdrawn")
        # The nightly purge, with nothing due, still checkpoints.
        job = as_job(quick, credential, NOW)
        assert erasure.purge(quick, NOW, dry_run=False, actor=job).wal_clean
        assert remains(vault_path, secrets) == []
    finally:
        reader.close()
        me.close()


def test_cli_withdraw_erases_and_reports(cli_vault, vault_path):
    nok = cli_vault
    added = nok("consent", "add", "--subject", "CLI-MARKER", "--purpose", "p", "--category", "c")
    consent_id = added.stdout.strip()
    assert nok("note", "add", consent_id, "--text", "CLI-NOTE-MARKER " + "z" * BIG).exit_code == 0
    with Vault.open(vault_path) as v:
        me = v.unlock(ADMIN, PASSPHRASE.encode(), now=dates.utcnow())
        secrets = consent_secrets(me, consent_id)

    out = nok("consent", "withdraw", consent_id, "--yes", "--json")

    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["id"] == consent_id
    assert doc["status"] == "withdrawn"
    assert doc["notes_erased"] == 1
    assert doc["wal_clean"] is True
    assert remains(vault_path, [*secrets, b"CLI-MARKER", b"CLI-NOTE-MARKER"]) == []
    listed = json.loads(nok("consent", "list", "--all", "--json").stdout)
    assert [(c["id"], c["status"], c["subject"]) for c in listed] == [
        (consent_id, "withdrawn", None)
    ]
    shown = nok("consent", "show", consent_id)
    assert "erased" in shown.stdout
    assert "withdrawn" in shown.stdout
    refused = nok("note", "add", consent_id, "--text", "again")
    assert refused.exit_code == 9
    error, hint = refused.stderr.splitlines()
    assert error.startswith("nok: error: ")
    assert hint.startswith("nok: hint: 'nok consent show")


def test_cli_withdraw_asks_on_a_terminal(unlocked, vault_path, two_people):
    gone, _ = two_people
    unlocked.close()
    env = {"NOK_VAULT": str(vault_path), "NOK_USER": ADMIN, "NOK_PASSPHRASE": PASSPHRASE}
    before = _consent_state(vault_path)
    code, err = on_terminal(["consent", "withdraw", gone], "n", env)
    assert code == 130
    assert f"Withdraw consent {gone}" in err
    assert "its 6 notes," in err
    assert _consent_state(vault_path) == before
    code, err = on_terminal(["consent", "withdraw", gone], "y", env)
    assert code == 0, err
    with Vault.open(vault_path) as v:
        assert_tombstone(v.store.get_consent(gone), "withdrawn")


def _consent_state(vault_path: Path) -> list[tuple[object, ...]]:
    with Vault.open(vault_path) as v:
        rows = list(v.store.iter_consents(include_ended=True))
        return [(r.id, r.status, r.data_key, r.record, v.store.count_notes(r.id)) for r in rows]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["C-0000-0000", "--yes"], 6),
        (["not-an-id", "--yes"], 2),
        (["{id}"], 2),  # no --yes and no terminal: refused, nothing erased
        (["{id}", "--yes", "--reason", "because I say so"], 2),
    ],
)
def test_cli_withdraw_refusals_change_nothing(cli_vault, vault_path, args, code):
    nok = cli_vault
    consent_id = nok(
        "consent", "add", "--subject", "S", "--purpose", "p", "--category", "c"
    ).stdout.strip()
    nok("note", "add", consent_id, "--text", "stays")
    before = _consent_state(vault_path)
    out = nok("consent", "withdraw", *[a.format(id=consent_id) for a in args])
    assert out.exit_code == code
    assert out.stderr.startswith("nok: error: ")
    assert before == _consent_state(vault_path)
    assert not erasure.log_path(vault_path).exists()


def test_withdrawing_twice_is_a_clear_error(unlocked, vault_path, two_people):
    gone, _ = two_people
    erasure.withdraw(unlocked, gone, reason="withdrawn-by-guardian")
    before = _consent_state(vault_path)
    log_before = erasure.log_path(vault_path).read_bytes()
    with pytest.raises(Conflict, match="already withdrawn"):
        erasure.withdraw(unlocked, gone)
    with pytest.raises(Conflict):
        erasure.preview(unlocked.vault, gone)
    with pytest.raises(NotFound):
        erasure.withdraw(unlocked, "C-0000-0000")
    assert before == _consent_state(vault_path)
    assert erasure.log_path(vault_path).read_bytes() == log_before
    assert unlocked.store.get_consent(gone).end_reason == "withdrawn-by-guardian"


def test_no_note_under_a_withdrawn_consent(unlocked, two_people):
    gone, _ = two_people
    erasure.withdraw(unlocked, gone)
    with pytest.raises(InactiveConsent) as info:
        notes.add(unlocked, gone, "too late")
    assert info.value.exit_code == 9
    assert unlocked.store.count_notes(gone) == 0


def test_preview_counts_what_goes(unlocked, two_people):
    gone, kept = two_people
    assert erasure.preview(unlocked.vault, gone).notes == 6
    assert erasure.preview(unlocked.vault, kept).notes == 3


def test_withdrawal_is_audited_without_personal_data(unlocked, two_people):
    gone, _ = two_people
    erasure.withdraw(unlocked, gone)
    entries = [a for a in unlocked.store.iter_audit() if a.action == "consent.withdraw"]
    assert [(a.actor, a.consent_id, a.detail) for a in entries] == [(ADMIN, gone, "withdrawn")]
    # Signed by her: nobody else can record (or deny) that she withdrew it.
    assert audit.entry_signed(unlocked.store, unlocked.chain, entries[0])
    fields = " ".join(str(v) for v in vars(entries[0]).values() if isinstance(v, str))
    assert "MARKER" not in fields


# -- the erasure log ------------------------------------------------------------------------


def test_erasure_log_records_each_erasure(unlocked, vault_path, two_people):
    gone, _ = two_people
    erasure.withdraw(unlocked, gone)
    path = endings.log_path(vault_path)
    assert path.name == "vault.db.erasures"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    tomb = unlocked.store.get_consent(gone)
    assert len(lines) == 1
    line = lines[0]
    assert {k: line[k] for k in ("consent_id", "status", "ended", "reason", "ended_by")} == {
        "consent_id": gone,
        "status": "withdrawn",
        "ended": tomb.ended,
        "reason": "withdrawn",
        "ended_by": ADMIN,
    }
    assert (line["given"], line["created"]) == (tomb.given, tomb.created)
    assert b"MARKER" not in path.read_bytes()
    (record,) = endings.read_log(path).records
    assert record == endings.from_row(tomb)
    # Signed by the one who withdrew it, so a restore can trust it without the vault.
    assert endings.signature_valid(unlocked.chain, record)


def _signed(u: Unlocked, consent_id: str, ended: str, status: str) -> endings.Signed:
    ending = states.Ending(
        consent_id, status, "2026-01-01", "2026-01-01T00:00:00Z", ended, status, u.name
    )
    return endings.sign(u, ending)


def test_erasure_log_survives_a_torn_line(unlocked, tmp_path):
    path = tmp_path / "v.db.erasures"
    first = _signed(unlocked, "C-AAAA-AAAA", "2026-01-01T00:00:00.000000Z", "expired")
    second = _signed(unlocked, "C-BBBB-BBBB", "2026-01-02T00:00:00.000000Z", "withdrawn")
    endings.append_log(path, [first])
    with path.open("ab") as f:
        f.write(b'{"consent_id":"C-CC')
    # A crash mid-write: the torn last line is skipped.
    assert endings.read_log(path) == endings.Log((first,), ())
    # The next erasure starts on a line of its own: the torn line never swallows it, and
    # stays counted as a line that is not an ending.
    endings.append_log(path, [second])
    assert endings.read_log(path) == endings.Log((first, second), (2,))
    path.write_text(path.read_text().replace('{"consent_id":"C-CC\n', ""))
    assert endings.read_log(path) == endings.Log((first, second), ())


def test_erasure_log_refuses_unsafe_or_missing_files(unlocked, tmp_path):
    record = _signed(unlocked, "C-AAAA-AAAA", "2026-01-01T00:00:00.000000Z", "expired")
    with pytest.raises(NotFound):
        endings.read_log(tmp_path / "missing")
    assert endings.read_log(tmp_path / "missing", missing_ok=True) == endings.Log((), ())
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "link.erasures"
    link.symlink_to(target)
    with pytest.raises(SymlinkRefused, match="symbolic link"):
        endings.append_log(link, [record])
    loose = tmp_path / "loose.erasures"
    loose.write_text("")
    os.chmod(loose, 0o644)
    with pytest.raises(UnsafePermissions, match="accessible"):
        endings.append_log(loose, [record])
    assert target.read_text() == loose.read_text() == ""


def test_unlock_erases_again_what_an_older_copy_brought_back(
    unlocked, vault_path, two_people, tmp_path
):
    """An older copy's rows put back after a withdrawal (a restore by hand, rows pasted
    in): the signed ending in the log is enough to erase them again, to the last byte."""
    gone, kept = two_people
    secrets = consent_secrets(unlocked, gone)
    unlocked.store.checkpoint()
    unlocked.close()
    old = tmp_path / "old.db"
    shutil.copyfile(vault_path, old)
    with Vault.open(vault_path) as v:
        erasure.withdraw(v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW), gone)
    (record,) = endings.read_log(endings.log_path(vault_path)).records
    db = sqlite3.connect(vault_path, isolation_level=None)
    db.execute("ATTACH ? AS old", [str(old)])
    db.execute("DELETE FROM consents WHERE id = ?", [gone])
    db.execute("INSERT INTO consents SELECT * FROM old.consents WHERE id = ?", [gone])
    db.execute(
        "INSERT INTO consent_keys SELECT * FROM old.consent_keys WHERE consent_id = ?", [gone]
    )
    db.execute("INSERT INTO notes SELECT * FROM old.notes WHERE consent_id = ?", [gone])
    db.close()
    assert remains(vault_path, secrets)

    me = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        assert [r.erased_again for r in me.reconciled] == [(gone,)]
        tomb = me.store.get_consent(gone)
        assert_tombstone(tomb, "withdrawn")
        assert tomb.ended == record.ending.ended
        assert remains(vault_path, secrets) == []
        assert erasure.replay(me, me.vault).erased_again == ()
        assert me.store.count_notes(kept) == 3
    finally:
        me.close()


# -- extending retention --------------------------------------------------------------------


def test_extend_moves_the_deadline_and_keeps_it_after_new_notes(unlocked):
    consent_id = add_consent(unlocked, "S", given="2026-01-10")
    before = unlocked.store.get_consent(consent_id).retain_until
    ext = erasure.extend(unlocked, consent_id, 100)
    assert ext.old_until == before
    assert dt.date.fromisoformat(ext.new_until) - dt.date.fromisoformat(before) == dt.timedelta(
        days=100
    )
    assert unlocked.store.get_consent(consent_id).retain_until == ext.new_until
    notes.add(unlocked, consent_id, "later", date="2026-02-01")
    default = unlocked.vault.settings().retention_days
    expected = dt.date(2026, 2, 1) + dt.timedelta(days=default + 100)
    assert unlocked.store.get_consent(consent_id).retain_until == expected.isoformat()
    actions = [(a.action, a.consent_id) for a in unlocked.store.iter_audit()]
    assert ("consent.extend", consent_id) in actions


def test_extend_refuses_bad_days_and_tombstones(unlocked, two_people):
    gone, kept = two_people
    before = unlocked.store.get_consent(kept)
    for days in (0, -5, 40_000):
        with pytest.raises(BadInput):
            erasure.extend(unlocked, kept, days)
    assert unlocked.store.get_consent(kept) == before
    erasure.withdraw(unlocked, gone)
    with pytest.raises(Conflict):
        erasure.extend(unlocked, gone, 10)


def test_cli_extend(cli_vault):
    nok = cli_vault
    consent_id = nok(
        "consent", "add", "--subject", "S", "--purpose", "p", "--category", "c"
    ).stdout.strip()
    out = nok("consent", "extend", consent_id, "--days", "30", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    moved = dt.date.fromisoformat(doc["retain_until"]) - dt.date.fromisoformat(
        doc["old_retain_until"]
    )
    assert moved.days == 30
    assert doc["retain_days"] == 730 + 30
    shown = json.loads(nok("consent", "show", consent_id, "--json").stdout)
    assert shown["retain_until"] == doc["retain_until"]
    bad = nok("consent", "extend", consent_id, "--days", "0")
    assert bad.exit_code == 2
    again = json.loads(nok("consent", "show", consent_id, "--json").stdout)
    assert again["retain_until"] == doc["retain_until"]
