"""``nok backup`` / ``nok restore``: encrypted copies, and restores that keep erasures."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ADMIN, NOW, PASSPHRASE, as_job, days_ago, job_credential_file
from vault import Vault, backup, consents, erasure, notes, staff, verify
from vault.errors import NokError, NotAllowed
from vault.session import Unlocked

WINDOW = 24


def secrets_of(u: Unlocked, consent_id: str) -> list[bytes]:
    """The consent's wrapped data key and every ciphertext under it, as stored."""
    row = u.store.get_consent(consent_id)
    assert row is not None
    blobs = [bytes(b) for b in (row.data_key, row.record) if b is not None]
    for n in u.store.iter_notes(consent_id=consent_id):
        blobs.append(bytes(n.record))
    return blobs


def found_in(paths: list[Path], needles: list[bytes]) -> list[str]:
    """Files holding any WINDOW-byte piece of any needle (raw byte search)."""
    pieces = [n[i : i + WINDOW] for n in needles for i in range(0, len(n) - WINDOW + 1, WINDOW)]
    return [p.name for p in paths if any(piece in p.read_bytes() for piece in pieces)]


def vault_dir_files(vault_path: Path) -> list[Path]:
    return sorted(p for p in vault_path.parent.iterdir() if p.is_file())


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two(unlocked: Unlocked) -> tuple[str, str]:
    ids = []
    for subject in ("Kari", "Ola"):
        c = consents.add(unlocked, consents.ConsentInput(subject, "follow-up", ("notes",)))
        ids.append(c.id)
        for i in range(3):
            notes.add(unlocked, c.id, f"MARKER-{subject}-{i} " + "x" * 3000)
    return ids[0], ids[1]


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    directory = tmp_path / "backups"
    directory.mkdir(mode=0o700)
    return directory


def open_copy(path: Path, tmp_path: Path, passphrase: str = PASSPHRASE) -> Unlocked:
    """Unlock a copy of a backup (opening the backup itself would turn on WAL in it)."""
    where = tmp_path / "opened"
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    copy = where / path.name
    shutil.copyfile(path, copy)
    copy.chmod(0o600)
    return Vault.open(copy).unlock(ADMIN, passphrase.encode(), now=NOW)


def take_offline(path: Path, tmp_path: Path) -> Path:
    """Move a backup where nok cannot reach it (a disk taken away), as a later erasure
    then finds it."""
    where = tmp_path / "offline"
    where.mkdir(mode=0o700, exist_ok=True)
    return Path(shutil.move(path, where / path.name))


def test_backup_is_private_complete_and_opens(two, nok, backups, tmp_path):
    result = nok("backup", str(backups), "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    path = Path(info["path"])
    assert path.parent == backups
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert info["active_consents"] == 2
    assert [p.name for p in backups.iterdir()] == [path.name]
    assert b"MARKER" not in path.read_bytes()
    copy = open_copy(path, tmp_path)
    try:
        assert verify.verify(copy).ok
        texts = sorted(n.text.split()[0] for n in notes.list_notes(copy))
        assert texts == sorted(f"MARKER-{s}-{i}" for s in ("Kari", "Ola") for i in range(3))
    finally:
        copy.close()


def test_backup_needs_no_passphrase_and_never_overwrites(two, nok, backups, monkeypatch):
    monkeypatch.delenv("NOK_PASSPHRASE")
    target = backups / "one.db"
    first = nok("backup", str(target))
    assert first.exit_code == 0, first.stderr
    assert first.stdout.strip() == str(target)
    before = file_hash(target)
    again = nok("backup", str(target))
    assert again.exit_code == 9
    assert again.stderr.startswith("nok: error:")
    assert file_hash(target) == before


def test_backup_refuses_a_directory_others_can_enter(two, nok, tmp_path):
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    result = nok("backup", str(open_dir / "b.db"))
    assert result.exit_code == 10
    assert list(open_dir.iterdir()) == []


def test_a_path_ending_in_a_slash_is_a_new_private_directory(two, nok, tmp_path):
    """`nok backup /srv/nok-backups/` on a first run: the directory is made, 0700,
    even inside a parent other users can enter (a home directory that is 0755)."""
    parent = tmp_path / "home"
    parent.mkdir()
    parent.chmod(0o755)
    result = nok("backup", f"{parent / 'nok-backups'}/")
    assert result.exit_code == 0, result.stderr
    made = parent / "nok-backups"
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    (backup_file,) = made.iterdir()
    assert Path(result.stdout.strip()) == backup_file
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600


def test_backup_holds_nothing_already_erased(two, unlocked, backups):
    kari, ola = two
    gone = secrets_of(unlocked, kari)
    kept = secrets_of(unlocked, ola)
    erasure.withdraw(unlocked, kari)
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    assert found_in([info.path], gone) == []
    assert found_in([info.path], kept) == [info.path.name]
    assert kari in info.ended_ids
    assert ola in info.consent_ids


def test_restore_after_withdrawal_does_not_bring_notes_back(
    two, unlocked, nok, backups, vault_path, tmp_path
):
    kari, ola = two
    gone = secrets_of(unlocked, kari)
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    offline = take_offline(info.path, tmp_path)
    erasure.withdraw(unlocked, kari)
    unlocked.close()

    result = nok("restore", str(offline), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["reapplied"] == [kari]
    replaced = Path(doc["replaced"])
    assert stat.S_IMODE(replaced.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o600

    assert found_in(vault_dir_files(vault_path), gone) == []
    listed = json.loads(nok("note", "list", "--json").stdout)
    assert {n["consent_id"] for n in listed} == {ola}
    assert all("Kari" not in n["text"] for n in listed)
    shown = json.loads(nok("consent", "show", kari, "--json").stdout)
    assert shown["status"] == "withdrawn"
    assert shown["subject"] is None
    assert nok("verify").exit_code == 0


def test_restore_with_only_the_erasure_log(two, unlocked, nok, backups, vault_path, tmp_path):
    kari, ola = two
    gone = secrets_of(unlocked, kari)
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    offline = take_offline(info.path, tmp_path)
    erasure.withdraw(unlocked, kari)
    unlocked.close()
    saved = tmp_path / "erasures-copy"
    shutil.copyfile(erasure.log_path(vault_path), saved)
    shutil.rmtree(vault_path.parent)

    result = nok("restore", str(offline), "--erasures", str(saved), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["replaced"] is None
    assert doc["reapplied"] == [kari]
    assert doc["erasure_sources"] == [str(saved)]
    assert found_in(vault_dir_files(vault_path), gone) == []
    listed = json.loads(nok("note", "list", "--json").stdout)
    assert {n["consent_id"] for n in listed} == {ola}
    assert nok("verify").exit_code == 0


def test_restore_refuses_without_any_record_of_erasures(two, unlocked, nok, backups, vault_path):
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    shutil.rmtree(vault_path.parent)
    result = nok("restore", str(info.path), "--yes")
    assert result.exit_code == 9
    assert "erasure log" in result.stderr
    assert not vault_path.exists()


def test_restore_asks_first(two, unlocked, nok, backups, vault_path):
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    before = file_hash(vault_path)
    result = nok("restore", str(info.path))
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert file_hash(vault_path) == before
    assert sorted(p.name for p in vault_dir_files(vault_path)) == ["vault.db", "vault.db.backups"]


def test_restore_refuses_what_is_not_a_backup(two, unlocked, nok, tmp_path, vault_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    before = file_hash(vault_path)
    result = nok("restore", str(junk), "--yes")
    assert result.exit_code in (3, 7)
    assert result.stderr.startswith("nok: error:")
    assert file_hash(vault_path) == before
    result = nok("restore", str(vault_path), "--yes")
    assert result.exit_code == 9


def test_restore_reapplies_a_purge(unlocked, nok, backups, vault_path, tmp_path):
    due = consents.add(
        unlocked,
        consents.ConsentInput("Per", "p", ("notes",), retain_days=1, given=days_ago(330)),
    ).id
    notes.add(unlocked, due, "MARKER-Per", date=days_ago(330))
    gone = secrets_of(unlocked, due)
    credential = job_credential_file(unlocked, tmp_path)
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    # The backup is taken offline, so the purge cannot erase in it: the restore must.
    offline = take_offline(info.path, tmp_path)
    with Vault.open(vault_path) as v:
        job = as_job(v, credential, NOW)
        assert erasure.purge(v, NOW, dry_run=False, actor=job).purged == (due,)
    unlocked.close()
    assert found_in([offline], gone) == [offline.name]
    restored = nok("restore", str(offline), "--yes", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["reapplied"] == [due]
    assert json.loads(nok("consent", "show", due, "--json").stdout)["status"] == "expired"
    assert found_in(vault_dir_files(vault_path), gone) == []


def test_an_old_backup_opens_with_the_passphrases_of_its_day(
    two, unlocked, nok, backups, vault_path, monkeypatch, tmp_path
):
    """The backup file keeps the slots of its day (docs/backup.md); a restore made with
    today's passphrase works, and leaves today's passphrases in force: one changed since
    the backup, perhaps because it leaked, does not open the restored vault again."""
    new = "a brand new passphrase"
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    staff.passwd(unlocked, new.encode())
    unlocked.close()
    monkeypatch.setenv("NOK_PASSPHRASE", new)
    assert nok("key", "rotate", "--yes").exit_code == 0
    with Vault.open(info.path, read_only=True) as old:
        assert old.unlock(ADMIN, PASSPHRASE.encode(), now=NOW, pin_store=None).role == "admin"
        with pytest.raises(NokError):
            old.unlock(ADMIN, new.encode(), now=NOW, pin_store=None)
    result = nok("restore", str(info.path), "--yes")
    assert result.exit_code == 0, result.stderr
    listed = nok("note", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 6
    monkeypatch.setenv("NOK_PASSPHRASE", PASSPHRASE)
    assert nok("note", "list").exit_code == 4


WRITER = """
import datetime as dt, sys, time
from pathlib import Path
from vault import Vault, consents, notes
from vault.dates import utcnow
now = utcnow()
u = Vault.open(Path(sys.argv[1])).unlock(sys.argv[2], sys.argv[3].encode(), now=now)
c = consents.add(u, consents.ConsentInput("Writer", "p", ("notes",)))
print("ready", flush=True)
stop = Path(sys.argv[4])
while not stop.exists():
    notes.add(u, c.id, "written during a backup " * 40)
    # A writer that takes the lock again the instant it lets go starves every other
    # process (SQLite's busy handler is not fair); people type slower than that.
    time.sleep(0.01)
u.close()
"""


@pytest.mark.slow
def test_backup_while_another_process_writes(two, unlocked, backups, tmp_path, vault_path):
    # The writer runs until told to stop, not for a fixed time: on a loaded machine three
    # backups and their checks can outlast any fixed time.
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(vault_path), ADMIN, PASSPHRASE, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        counts = []
        for i in range(3):
            info = backup.backup(unlocked.vault, backups / f"b{i}.db", now=NOW, actor="cron")
            copy = open_copy(info.path, tmp_path / f"c{i}")
            try:
                assert verify.verify(copy).ok
                counts.append(copy.store.count_notes())
            finally:
                copy.close()
            time.sleep(0.3)
    finally:
        stop.touch()
        assert writer.wait(timeout=60) == 0
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]


LEAVER, LEAVER_PASS = "leaver", "the leaver's passphrase"


def opens(vault_path: Path, name: str, passphrase: str) -> bool:
    with Vault.open(vault_path) as v:
        try:
            v.unlock(name, passphrase.encode(), now=NOW)
        except NokError:
            return False
        return True


def test_restore_removes_again_staff_removed_since_the_backup(unlocked, nok, backups, vault_path):
    staff.add(unlocked, LEAVER, passphrase=LEAVER_PASS.encode())
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    staff.remove(unlocked, LEAVER)
    staff.add(unlocked, "newbie", passphrase=b"the newbie's passphrase")
    unlocked.close()

    result = nok("restore", str(info.path), "--yes")
    assert result.exit_code == 0, result.stderr
    assert "removed again the key slots of staff removed since the backup: leaver" in (
        result.stderr
    )
    assert "newbie were added after the backup" in result.stderr
    assert not opens(vault_path, LEAVER, LEAVER_PASS)
    assert opens(vault_path, ADMIN, PASSPHRASE)
    listed = json.loads(nok("staff", "list", "--json").stdout)
    assert [m["name"] for m in listed] == [ADMIN]
    assert nok("verify").exit_code == 0
    with Vault.open(vault_path) as v:
        # Her keys are off the signed staff list, not just her row out of the file.
        assert LEAVER not in v.chain().current.staff
        assert LEAVER not in {row.name for row in v.store.list_staff()}


def test_restore_reports_removed_staff_in_its_result(unlocked, backups, vault_path):
    staff.add(unlocked, LEAVER, passphrase=LEAVER_PASS.encode())
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    staff.remove(unlocked, LEAVER)
    unlocked.close()
    result = backup.restore(
        info.path,
        vault_path,
        erasures_file=None,
        now=NOW,
        actor=ADMIN,
        passphrase=PASSPHRASE.encode(),
    )
    doc = result.to_json()
    assert doc["staff_removed"] == [LEAVER]
    assert doc["staff_added_since"] == []
    assert doc["warnings"] == []
    assert not opens(vault_path, LEAVER, LEAVER_PASS)


def test_restore_gives_staff_their_live_roles_and_removes_a_removed_admin(
    unlocked, nok, backups, vault_path
):
    staff.add(unlocked, "bob", passphrase=b"bob's passphrase")
    staff.add(unlocked, "carl", passphrase=b"carl's passphrase", role="admin")
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    staff.set_role(unlocked, "bob", "admin")
    staff.remove(unlocked, "carl")
    unlocked.close()
    before = vault_path.stat().st_ino
    # Bob is an admin today but was not on the backup's day: he holds none of its keys.
    with pytest.raises(NotAllowed):
        backup.restore(
            info.path,
            vault_path,
            erasures_file=None,
            now=NOW,
            actor="bob",
            passphrase=b"bob's passphrase",
        )
    assert vault_path.stat().st_ino == before
    result = backup.restore(
        info.path,
        vault_path,
        erasures_file=None,
        now=NOW,
        actor=ADMIN,
        passphrase=PASSPHRASE.encode(),
    )
    assert result.staff_roles_set == ("bob",)
    assert result.staff_removed == ("carl",)
    assert result.warnings == []
    assert not opens(vault_path, "carl", "carl's passphrase")
    with Vault.open(vault_path) as v:
        bob = v.unlock("bob", b"bob's passphrase", now=NOW)
        assert bob.role == "admin"
        assert bob.admin is not None
        assert verify.verify(bob).ok


def test_restore_needs_an_admin_passphrase(unlocked, nok, backups, vault_path, monkeypatch):
    """A member demoted since the backup was an admin in it: still refused."""
    staff.add(unlocked, "bob", passphrase=b"bob's passphrase", role="admin")
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    staff.set_role(unlocked, "bob", "staff")
    unlocked.close()
    before = vault_path.stat().st_ino  # a restore swaps a new file in
    monkeypatch.setenv("NOK_USER", "bob")
    monkeypatch.setenv("NOK_PASSPHRASE", "bob's passphrase")
    refused = nok("restore", str(info.path), "--yes")
    assert refused.exit_code == 11, refused.stderr
    assert vault_path.stat().st_ino == before
    monkeypatch.setenv("NOK_USER", ADMIN)
    monkeypatch.setenv("NOK_PASSPHRASE", "not the passphrase")
    assert nok("restore", str(info.path), "--yes").exit_code == 4
    assert vault_path.stat().st_ino == before
    assert backup.set_aside(vault_path) == []


def test_restore_of_a_lost_vault_needs_an_admin_of_the_backup(
    unlocked, nok, backups, vault_path, tmp_path, monkeypatch
):
    staff.add(unlocked, "bob", passphrase=b"bob's passphrase")
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    saved = tmp_path / "erasures-copy"
    saved.write_text("")
    shutil.rmtree(vault_path.parent)
    monkeypatch.setenv("NOK_USER", "bob")
    monkeypatch.setenv("NOK_PASSPHRASE", "bob's passphrase")
    refused = nok("restore", str(info.path), "--erasures", str(saved), "--yes")
    assert refused.exit_code == 11, refused.stderr
    assert not vault_path.exists()


def test_staff_rows_deleted_from_the_live_file_are_not_removed_from_the_restore(
    unlocked, nok, backups, vault_path
):
    """A file writer deletes an admin's row from the live vault before a restore: that is
    not a removal (the signed staff list still names him), so the restored vault keeps
    his slot, and there is nothing to warn about."""
    staff.add(unlocked, "bob", passphrase=b"bob's passphrase", role="admin")
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    conn = sqlite3.connect(vault_path)
    conn.execute("DELETE FROM staff WHERE name = 'bob'")
    conn.commit()
    conn.close()
    result = nok("restore", str(info.path), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["staff_removed"] == []
    assert doc["warnings"] == []
    assert opens(vault_path, "bob", "bob's passphrase")


def test_restore_with_only_the_erasure_log_warns_that_removed_staff_are_back(
    unlocked, nok, backups, vault_path, tmp_path
):
    staff.add(unlocked, LEAVER, passphrase=LEAVER_PASS.encode())
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    shutil.rmtree(vault_path.parent)
    empty_log = tmp_path / "erasures-copy"
    empty_log.write_text("")

    result = nok("restore", str(info.path), "--erasures", str(empty_log), "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [w["kind"] for w in doc["warnings"]] == ["staff-unknown"]
    assert doc["staff_removed"] == []
    assert "keeps the staff and keys of the backup's day" in result.stderr
    # What the warning says is true: whoever the backup lists opens the restored vault.
    assert opens(vault_path, LEAVER, LEAVER_PASS)


def test_status_lists_the_files_a_restore_set_aside(two, unlocked, nok, backups, vault_path):
    info = backup.backup(unlocked.vault, backups, now=NOW, actor="cron")
    unlocked.close()
    assert json.loads(nok("status", "--json").stdout)["set_aside_files"] == []

    restored = nok("restore", str(info.path), "--yes")
    assert restored.exit_code == 0, restored.stderr
    aside = json.loads(nok("status", "--json").stdout)["set_aside_files"]
    replaced = min(aside, key=len)
    assert Path(replaced).name.startswith(f"{vault_path.name}.replaced-")
    assert all(Path(p).name.startswith(Path(replaced).name) for p in aside)
    assert f"the replaced vault is kept at {replaced}: " in restored.stderr
    assert "delete it" in restored.stderr
    shown = nok("status")
    assert shown.exit_code == 0
    assert f"nok: warning: {replaced} was set aside by a restore" in shown.stderr

    for path in aside:
        Path(path).unlink()
    shown = nok("status")
    assert shown.exit_code == 0
    assert "set aside" not in shown.stderr
