"""Erasure that reaches copies: the backups nok made, an older vault put back, a withdrawal
or a backup killed half-way. Real subprocesses and raw-byte searches, as a user runs nok."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLOCK_ENV, NOW, days_ago, job_credential_file, run_nok
from tests.test_backup import found_in, secrets_of
from vault import backup, consents, copies, erasure, notes
from vault.session import Unlocked


@pytest.fixture
def env(nok_env: dict[str, str]) -> dict[str, str]:
    return {**nok_env, **CLOCK_ENV}


@pytest.fixture
def people(unlocked: Unlocked) -> dict[str, str]:
    """Three people with long notes (overflow pages); ids by name."""
    made = {}
    for subject in ("Kari", "Ola", "Per"):
        c = consents.add(unlocked, consents.ConsentInput(subject, "follow-up", ("notes",)))
        made[subject] = c.id
        for i in range(3):
            notes.add(unlocked, c.id, f"MARKER-{subject}-{i} " + "x" * 3000)
    return made


def nok(*args: str, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_nok(*args, env=env)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    return result


def all_files(*directories: Path) -> list[Path]:
    return sorted(p for d in directories for p in d.rglob("*") if p.is_file())


def make_backups(env: dict[str, str], tmp_path: Path) -> tuple[Path, Path]:
    """Three backups in two directories, made with `nok backup` as a scheduled job would."""
    first, second = tmp_path / "nightly", tmp_path / "usb"
    nok("backup", f"{first}/", env=env)
    nok("backup", str(first / "monday.db"), env=env)
    nok("backup", f"{second}/", env=env)
    return first, second


def test_withdraw_erases_from_every_reachable_backup(unlocked, people, env, tmp_path, vault_path):
    gone = secrets_of(unlocked, people["Kari"])
    kept = secrets_of(unlocked, people["Ola"])
    unlocked.close()
    first, second = make_backups(env, tmp_path)
    backups = all_files(first, second)
    assert len(backups) == 3
    assert all(found_in([b], gone) for b in backups)

    result = nok("consent", "withdraw", people["Kari"], "--yes", "--json", env=env)
    doc = json.loads(result.stdout)
    assert doc["backups_updated"] == 3
    assert doc["backups_checked"] == 3
    assert doc["backups_unreachable"] == []
    assert found_in(all_files(first, second), gone) == []
    assert found_in(vault_dir(vault_path), gone) == []
    # The others' data is still there, and every backup is still a sound backup.
    assert sorted(found_in(all_files(first, second), kept)) == sorted(b.name for b in backups)
    assert all_files(first, second) == backups
    for b in backups:
        assert sqlite_rows(b, "PRAGMA integrity_check") == [("ok",)]
        assert sqlite_rows(b, "PRAGMA journal_mode") == [("delete",)]
        assert sqlite_rows(b, "SELECT status FROM consents WHERE id = ?", people["Kari"]) == [
            ("withdrawn",)
        ]

    human = nok("consent", "withdraw", people["Per"], "--yes", env=env)
    assert "backups nok made and can reach: 3; erased in 3 of them" in human.stderr


def vault_dir(vault_path: Path) -> list[Path]:
    return sorted(p for p in vault_path.parent.iterdir() if p.is_file())


def sqlite_rows(path: Path, sql: str, *params: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_purge_erases_from_every_reachable_backup(unlocked, env, tmp_path, vault_path):
    due = consents.add(
        unlocked,
        consents.ConsentInput("Due", "p", ("notes",), retain_days=1, given=days_ago(400)),
    ).id
    notes.add(unlocked, due, "MARKER-due " + "y" * 3000, date=days_ago(400))
    gone = secrets_of(unlocked, due)
    job = job_credential_file(unlocked, tmp_path)
    unlocked.close()
    first, second = make_backups(env, tmp_path)
    doc = json.loads(nok("purge", "--json", env={**env, "NOK_JOB_CREDENTIAL": str(job)}).stdout)
    assert doc["purged"] == [due]
    assert doc["backups_updated"] == 3
    assert found_in(all_files(first, second), gone) == []


def test_a_backup_out_of_reach_is_named_with_its_window(unlocked, people, env, tmp_path):
    gone = secrets_of(unlocked, people["Kari"])
    job = job_credential_file(unlocked, tmp_path)
    unlocked.close()
    usb = tmp_path / "usb"
    nok("backup", f"{usb}/", "--keep-days", "30", env=env)
    (made,) = usb.iterdir()
    away = tmp_path / "drawer"
    shutil.move(usb, away)  # the disk is taken out

    result = nok("consent", "withdraw", people["Kari"], "--yes", "--json", env=env)
    doc = json.loads(result.stdout)
    assert doc["backups_updated"] == 0
    (out,) = doc["backups_unreachable"]
    until = (NOW.astimezone(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    assert out["path"] == str(made)
    assert out["may_hold_erased_data_until"] == until
    assert str(made) in result.stderr
    assert until in result.stderr

    status = json.loads(nok("status", "--json", env=env).stdout)
    assert status["backups_recorded"] == 1
    assert [u["path"] for u in status["unreachable_backups"]] == [str(made)]
    assert status["unreachable_backups"][0]["may_hold_erased_data_until"] == until
    assert until in nok("status", env=env).stderr

    # The disk comes back: the next backup run with the job's credential (or the next
    # erasure, or staff unlock) brings it up to date.
    shutil.move(away, usb)
    assert found_in([made], gone) == [made.name]
    nok("backup", f"{tmp_path / 'nightly'}/", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert found_in([made], gone) == []
    assert json.loads(nok("status", "--json", env=env).stdout)["unreachable_backups"] == []


def test_keep_prunes_old_backups_and_only_backups(unlocked, env, tmp_path, vault_path):
    unlocked.close()
    nightly = tmp_path / "nightly"
    nok("backup", f"{nightly}/", env=env)
    for name in ("b.db", "c.db"):
        nok("backup", str(nightly / name), env=env)
    before = sorted(p.name for p in nightly.iterdir())
    assert len(before) == 3
    doc = json.loads(nok("backup", str(nightly / "d.db"), "--keep", "2", "--json", env=env).stdout)
    assert len(doc["pruned"]) == 2
    left = sorted(p.name for p in nightly.iterdir())
    assert len(left) == 2
    assert "d.db" in left
    assert [Path(e.path).name for e in copies.read(vault_path)] == left


def test_a_planted_list_entry_never_touches_the_vault_or_other_files(
    unlocked, people, env, tmp_path, vault_path
):
    """A file writer adds the live vault and an unrelated file to the list of backups."""
    unlocked.close()
    nok("backup", f"{tmp_path / 'nightly'}/", env=env)
    precious = tmp_path / "thesis.db"
    conn = sqlite3.connect(precious)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES ('mine')")
    conn.commit()
    conn.close()
    precious.chmod(0o600)
    before = precious.read_bytes()
    registry = copies.registry_path(vault_path)
    with registry.open("a") as handle:
        for path in (vault_path, precious):
            handle.write(json.dumps({"path": str(path), "taken": "2000-01-01T00:00:00Z"}) + "\n")
    result = nok("backup", str(tmp_path / "nightly" / "x.db"), "--keep", "1", "--json", env=env)
    doc = json.loads(result.stdout)
    assert str(vault_path) not in doc["pruned"]
    assert str(precious) not in doc["pruned"]
    assert vault_path.exists()
    assert precious.read_bytes() == before
    nok("consent", "withdraw", people["Kari"], "--yes", env=env)
    assert precious.read_bytes() == before
    assert nok("verify", env=env).returncode == 0


def test_a_pre_withdrawal_copy_put_back_is_erased_again_and_reported(
    unlocked, people, env, vault_path, tmp_path
):
    kari = people["Kari"]
    gone = secrets_of(unlocked, kari)
    unlocked.store.checkpoint()
    unlocked.close()
    old = tmp_path / "old-vault.db"
    shutil.copyfile(vault_path, old)  # what `cp vault.db` gives
    nok("consent", "withdraw", kari, "--yes", env=env)

    for side in (vault_path.with_name("vault.db-wal"), vault_path.with_name("vault.db-shm")):
        side.unlink(missing_ok=True)
    shutil.copyfile(old, vault_path)  # put back by hand
    assert found_in(vault_dir(vault_path), gone)

    # Whoever saw the newer vault is refused the older one (her pin), and nothing is
    # written; without a key nok only says what the signed erasure record names.
    refused = nok("verify", env=env, code=7)
    assert "this vault is older than the one you last used" in refused.stderr
    keyless = json.loads(nok("status", "--json", env=env).stdout)
    assert keyless["waiting_for_a_key"] == [kari]
    # She looks into it and accepts the file as it is: her next unlock erases again.
    nok("audit", "reset-anchor", "--yes", env=env)
    checked = nok("verify", env=env, code=13)
    assert kari in checked.stderr
    assert "erased again" in checked.stderr
    assert kari in checked.stdout
    assert found_in(vault_dir(vault_path), gone) == []
    shown = json.loads(nok("consent", "show", kari, "--json", env=env).stdout)
    assert shown["status"] == "withdrawn"
    assert shown["subject"] is None
    trail = nok("audit", "list", "--consent", kari, "--json", env=env).stdout
    again = [e for e in json.loads(trail) if e["action"] == erasure.AGAIN_ACTION][-1]
    assert (again["actor"], again["sealed"], again["keyless"]) == ("anne", True, False)
    assert nok("verify", env=env).returncode == 0


def test_rows_pasted_back_with_the_log_gone_are_erased_by_the_signed_trail(
    unlocked, people, env, vault_path, tmp_path
):
    """The erasure log is deleted too; the signed consent.withdraw entry still tells."""
    kari = people["Kari"]
    gone = secrets_of(unlocked, kari)
    unlocked.store.checkpoint()
    unlocked.close()
    old = tmp_path / "old-vault.db"
    shutil.copyfile(vault_path, old)
    nok("consent", "withdraw", kari, "--yes", env=env)
    erasure.log_path(vault_path).unlink()
    conn = sqlite3.connect(vault_path)
    conn.execute("ATTACH ? AS old", [str(old)])
    conn.execute("DELETE FROM consents WHERE id = ?", [kari])
    conn.execute("INSERT INTO consents SELECT * FROM old.consents WHERE id = ?", [kari])
    conn.execute("INSERT INTO notes SELECT * FROM old.notes WHERE consent_id = ?", [kari])
    conn.execute(
        "INSERT INTO consent_keys SELECT * FROM old.consent_keys WHERE consent_id = ?", [kari]
    )
    conn.commit()
    conn.close()
    assert found_in(vault_dir(vault_path), gone)

    keyless = nok("status", env=env)  # no key, no log: cannot know yet
    assert "erased again" not in keyless.stderr
    listed = nok("consent", "list", "--json", env=env)
    assert kari in listed.stderr
    assert "erased again" in listed.stderr
    assert kari not in {c["id"] for c in json.loads(listed.stdout)}
    assert found_in(vault_dir(vault_path), gone) == []


# -- kill -9 ------------------------------------------------------------------------------

WITHDRAW_CHILD = r"""
import os, signal, sys
from pathlib import Path
os.umask(0o077)
from vault import Vault, dates, endings, erasure, store
path, consent_id, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after-log-line":
    original = endings.append_log
    def append(*a, **k):
        original(*a, **k)
        die()
    endings.append_log = append
elif point == "before-checkpoint":
    erasure.checkpoint = die
elif point == "inside-a-backup":
    original = erasure.erase_in_copy
    def erase_in_copy(*a, **k):
        original(*a, **k)
        die()
    erasure.erase_in_copy = erase_in_copy
u = Vault.open(path).unlock(os.environ["NOK_USER"], os.environ["NOK_PASSPHRASE"].encode(),
                            now=dates.utcnow())
erasure.withdraw(u, consent_id)
"""


@pytest.mark.parametrize("point", ["after-log-line", "before-checkpoint", "inside-a-backup"])
def test_a_withdrawal_killed_at_any_point_is_finished_at_the_next_open(
    unlocked, people, env, vault_path, tmp_path, point
):
    kari = people["Kari"]
    gone = secrets_of(unlocked, kari)
    unlocked.close()
    nightly = tmp_path / "nightly"
    nok("backup", f"{nightly}/", env=env)
    proc = subprocess.run(
        [sys.executable, "-c", WITHDRAW_CHILD, str(vault_path), kari, point],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # The next command, whatever it is, finishes the withdrawal before anything else.
    added = run_nok("note", "add", kari, "--text", "written after the kill", env=env)
    assert added.returncode == 9, added.stderr
    if point == "after-log-line":
        assert kari in added.stderr
        assert "erased again" in added.stderr
    else:
        assert "were brought up to date" in added.stderr
    shown = json.loads(nok("consent", "show", kari, "--json", env=env).stdout)
    assert shown["status"] == "withdrawn"
    assert found_in(vault_dir(vault_path) + all_files(nightly), gone) == []
    assert not erasure.pending_path(vault_path).exists()
    assert nok("verify", env=env).returncode == 0


BACKUP_CHILD = r"""
import os, signal, sys
from pathlib import Path
os.umask(0o077)
from vault import Vault, backup, dates, store
path, dest = Path(sys.argv[1]), Path(sys.argv[2])
original = store.Store.vacuum_into
def vacuum_into(self, target):
    original(self, target)
    os.kill(os.getpid(), signal.SIGKILL)
store.Store.vacuum_into = vacuum_into
backup.backup(Vault.open(path), dest, now=dates.utcnow(), actor="cron")
"""


def test_a_killed_backup_leaves_a_partial_that_is_reported_then_removed(
    unlocked, people, env, vault_path, tmp_path
):
    kari = people["Kari"]
    gone = secrets_of(unlocked, kari)
    unlocked.close()
    nightly = tmp_path / "nightly"
    nightly.mkdir(mode=0o700)
    proc = subprocess.run(
        [sys.executable, "-c", BACKUP_CHILD, str(vault_path), str(nightly)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (partial,) = nightly.iterdir()
    assert partial.name.startswith(".")
    assert partial.name.endswith(".partial")
    assert found_in([partial], gone)

    status = nok("status", "--json", env=env)
    assert json.loads(status.stdout)["partial_backups"] == [str(partial)]
    assert str(partial) in nok("status", env=env).stderr
    withdrawn = nok("consent", "withdraw", kari, "--yes", env=env)
    assert str(partial) in withdrawn.stderr
    assert list(nightly.iterdir()) == []
    assert json.loads(nok("status", "--json", env=env).stdout)["partial_backups"] == []


def test_notes_pasted_under_a_tombstone_are_deleted_again_at_open(
    unlocked, people, env, vault_path, tmp_path
):
    kari = people["Kari"]
    gone = [bytes(n.record) for n in unlocked.store.iter_notes(consent_id=kari)]
    unlocked.store.checkpoint()
    unlocked.close()
    old = tmp_path / "old-vault.db"
    shutil.copyfile(vault_path, old)
    nok("consent", "withdraw", kari, "--yes", env=env)
    conn = sqlite3.connect(vault_path)
    conn.execute("ATTACH ? AS old", [str(old)])
    conn.execute("INSERT INTO notes SELECT * FROM old.notes WHERE consent_id = ?", [kari])
    conn.commit()
    conn.close()
    assert found_in(vault_dir(vault_path), gone)

    # The next unlock, whatever the command, empties it again (only a key holder may:
    # without one nok changes nothing).
    opened = nok("consent", "list", env=env)
    assert "emptied again 1 tombstone(s)" in opened.stderr
    assert kari in opened.stderr
    assert sqlite_rows(vault_path, "SELECT count(*) FROM notes WHERE consent_id = ?", kari) == [
        (0,)
    ]
    again = nok("consent", "list", env=env)  # a second unlock finds nothing left to do
    assert "emptied again" not in again.stderr
    assert found_in(vault_dir(vault_path), gone) == []


def test_keep_days_deletes_what_is_older_and_states_the_day_for_the_rest(unlocked, tmp_path):
    nightly = tmp_path / "nightly"
    old = backup.backup(
        unlocked.vault, nightly, now=NOW - dt.timedelta(days=40), actor="cron", into_directory=True
    )
    recent = backup.backup(
        unlocked.vault, nightly, now=NOW - dt.timedelta(days=3), actor="cron", into_directory=True
    )
    new = backup.backup(unlocked.vault, nightly, now=NOW, actor="cron", keep_days=30)
    assert new.pruned == (old.path,)
    assert sorted(nightly.iterdir()) == sorted([recent.path, new.path])
    until = {e.path: e.keep_until for e in copies.read(unlocked.vault.path)}
    assert until[recent.path] == (NOW.date() + dt.timedelta(days=27)).isoformat()
    assert until[new.path] == (NOW.date() + dt.timedelta(days=30)).isoformat()


def test_a_missing_backup_past_its_day_is_forgotten_one_before_it_is_not(unlocked, tmp_path):
    usb = tmp_path / "usb"
    old = backup.backup(
        unlocked.vault, usb, now=NOW - dt.timedelta(days=40), actor="cron", into_directory=True
    )
    recent = backup.backup(
        unlocked.vault, usb, now=NOW - dt.timedelta(days=3), actor="cron", into_directory=True
    )
    shutil.move(usb, tmp_path / "drawer")
    new = backup.backup(
        unlocked.vault,
        tmp_path / "nightly",
        now=NOW,
        actor="cron",
        into_directory=True,
        keep_days=30,
    )
    assert new.forgotten == (old.path,)
    assert new.pruned == ()
    listed = [e.path for e in copies.read(unlocked.vault.path)]
    assert listed == [recent.path, new.path]
    assert [u.path for u in backup.copies_status(unlocked.vault.path).unreachable] == [recent.path]
