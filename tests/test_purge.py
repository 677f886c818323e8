"""The retention purge: keyless, idempotent, safe beside other processes and kill -9."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    ADMIN,
    CLOCK_ENV,
    NOW,
    PASSPHRASE,
    TODAY,
    as_job,
    days_ago,
    insert_consents,
    job_credential_file,
    run_nok,
)
from test_erasure import assert_tombstone, consent_secrets, file_hash, on_terminal, remains

from vault import Vault, audit, consents, dates, endings, erasure, notes
from vault.errors import ClockError, InactiveConsent
from vault.session import Unlocked

LONG_AGO = days_ago(700)
pytestmark = pytest.mark.slow


def bulk(u: Unlocked, count: int, *, notes_each: int, size: int, due: bool) -> list[str]:
    """Consents with notes, inserted in one transaction; ``due`` ones expired long ago."""
    data = consents.ConsentInput(
        subject="BULK-SUBJECT-MARKER" if due else "KEEP-SUBJECT",
        purpose="follow-up",
        categories=("conversation-notes",),
        given=LONG_AGO,
        retain_days=1 if due else 3650,
    )
    text = ("DUE-NOTE-MARKER " if due else "KEEP-NOTE ") + "n" * size
    return insert_consents(u, data, count, notes_each=notes_each, text=text, date=LONG_AGO)


@pytest.fixture
def job(unlocked: Unlocked, tmp_path: Path) -> Path:
    """The credential the scheduled purge runs with (nok key job-credential)."""
    return job_credential_file(unlocked, tmp_path)


def env_without_secrets(vault_path: Path, job: Path) -> dict[str, str]:
    """What a cron job has: the vault path and the job's credential, no passphrase."""
    return {"NOK_VAULT": str(vault_path), "NOK_JOB_CREDENTIAL": str(job)}


def run_purge(vault_path: Path, job: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Standard input is not a terminal, as under cron or systemd: nok never asks.
    return run_nok("purge", *args, env=env_without_secrets(vault_path, job), input="")


def start_purge(vault_path: Path, job: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    """``nok purge`` in the background, with no NOK_* variable but the vault path and the
    job's credential."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update(env_without_secrets(vault_path, job))
    cmd = [sys.executable, "-m", "nokcli", "purge", *args]
    return subprocess.Popen(cmd, env=env, text=True, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


@pytest.fixture
def mixed(unlocked: Unlocked, job: Path) -> tuple[list[str], list[str]]:
    """5 expired consents and 3 current ones; closed afterwards so files are settled."""
    due = bulk(unlocked, 5, notes_each=3, size=9000, due=True)
    keep = bulk(unlocked, 3, notes_each=2, size=9000, due=False)
    return due, keep


def check_consistent(vault_path: Path, due: list[str], keep: list[str], notes_each: int) -> None:
    with Vault.open(vault_path) as v:
        me = v.unlock(ADMIN, PASSPHRASE.encode(), now=dates.utcnow())
        for cid in due:
            assert_tombstone(me.store.get_consent(cid), "expired")
            assert me.store.count_notes(cid) == 0
        for cid in keep:
            assert [n.text[:9] for n in notes.list_notes(me, consent_id=cid)] == [
                "KEEP-NOTE"
            ] * notes_each
        me.close()


def test_purge_needs_no_passphrase_and_leaves_nothing(unlocked, vault_path, mixed, job):
    due, keep = mixed
    secrets = [s for cid in due for s in consent_secrets(unlocked, cid)]
    unlocked.close()
    assert "NOK_PASSPHRASE" not in env_without_secrets(vault_path, job)

    result = run_purge(vault_path, job, "--json")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sorted(doc["purged"]) == sorted(due)
    assert doc["dry_run"] is False
    assert doc["consents"] == 5
    assert doc["notes"] == 15
    assert doc["wal_clean"] is True
    assert remains(vault_path, [*secrets, b"DUE-NOTE-MARKER", b"BULK-SUBJECT-MARKER"]) == []
    check_consistent(vault_path, due, keep, 2)
    log = endings.read_log(endings.log_path(vault_path))
    assert sorted(r.consent_id for r in log.records) == sorted(due)
    assert {(r.ending.reason, r.signer) for r in log.records} == {("expired", "purge")}


def test_purge_audit_entries_are_signed_by_the_job(unlocked, vault_path, mixed, job):
    """The job signs what it erases as itself: the trail says the purge did it, and a
    file writer cannot pass an entry of hers off as the job's."""
    due, _ = mixed
    unlocked.close()
    with Vault.open(vault_path) as v:
        now = dates.utcnow()
        erasure.purge(v, now, dry_run=False, actor=as_job(v, job, now))
        entries = [a for a in v.store.iter_audit() if a.action == "consent.expire"]
        assert sorted(a.consent_id for a in entries) == sorted(due)
        assert {a.actor for a in entries} == {"purge"}
        chain = v.chain()
        assert all(audit.entry_signed(v.store, chain, a) for a in entries)
        assert audit.verify_chain(v.store, chain, now) == []


def test_second_run_has_nothing_to_do(unlocked, vault_path, mixed, job):
    unlocked.close()
    assert run_purge(vault_path, job).returncode == 0
    log_before = endings.log_path(vault_path).read_bytes()
    again = run_purge(vault_path, job, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["purged"] == []
    assert endings.log_path(vault_path).read_bytes() == log_before


def test_dry_run_changes_nothing(unlocked, vault_path, mixed, job):
    due, _ = mixed
    unlocked.close()
    before = file_hash(vault_path)
    result = run_purge(vault_path, job, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert sorted(doc["purged"]) == sorted(due)
    assert doc["notes"] == 15
    assert file_hash(vault_path) == before
    assert not endings.log_path(vault_path).exists()
    plain = run_purge(vault_path, job, "--dry-run")
    assert sorted(plain.stdout.split()) == sorted(due)
    assert file_hash(vault_path) == before


def test_plain_lines_without_a_terminal(unlocked, vault_path, mixed, job):
    due, _ = mixed
    unlocked.close()
    result = run_purge(vault_path, job)
    assert result.returncode == 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(due) + 1
    assert all(any(cid in line for line in lines) for cid in due)
    assert "5 consents erased" in lines[-1]


def test_on_a_terminal_it_asks_first(unlocked, vault_path, mixed, job):
    unlocked.close()
    before = file_hash(vault_path)
    code, err = on_terminal(["purge"], "n", env_without_secrets(vault_path, job))
    assert code == 130
    assert "5 consents with 15 notes" in err
    assert file_hash(vault_path) == before
    code, err = on_terminal(["purge"], "y", env_without_secrets(vault_path, job))
    assert code == 0, err
    assert "5 consents erased" in err


def test_a_clock_behind_the_vault_is_refused(unlocked, vault_path, mixed, job):
    unlocked.close()
    before = file_hash(vault_path)
    behind = days_ago(330)
    result = run_purge(vault_path, job, "--now", behind)
    assert result.returncode == 14
    assert result.stderr.startswith(f"nok: error: the clock says {behind}")
    assert file_hash(vault_path) == before
    with Vault.open(vault_path) as v, pytest.raises(ClockError):
        erasure.purge(v, NOW - dt.timedelta(hours=1), dry_run=True, actor=None)


def test_now_ahead_of_the_calendar_only_previews(unlocked, vault_path, mixed, job):
    due, keep = mixed
    unlocked.close()
    ahead = (TODAY + dt.timedelta(days=3700)).isoformat()
    refused = run_purge(vault_path, job, "--now", ahead)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    preview = run_purge(vault_path, job, "--now", ahead, "--dry-run", "--json")
    assert sorted(json.loads(preview.stdout)["purged"]) == sorted(due + keep)


def test_entries_a_file_writer_plants_do_not_stall_the_purge(unlocked, vault_path, mixed, job):
    """Unsigned entries chained onto the trail (more than verify lists, one dated a year
    ahead, one claiming an erasure): nobody can take them out again, so the purge must
    not wait for an admin to; it erases what is due, and verify still reports them."""
    due, keep = mixed
    with unlocked.store.write():
        for n in range(audit.MAX_PROBLEMS + 5):
            audit.append(
                unlocked.store,
                now=NOW + dt.timedelta(days=365 if n == 0 else 0),
                signer=None,
                actor="eve",
                action="consent.withdraw" if n == 1 else "note.add",
                consent_id=keep[0] if n == 1 else None,
            )
    unlocked.close()
    result = run_purge(vault_path, job, "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["purged"]) == sorted(due)
    check_consistent(vault_path, due, keep, 2)
    env = {**env_without_secrets(vault_path, job), "NOK_USER": ADMIN, "NOK_PASSPHRASE": PASSPHRASE}
    checked = run_nok("verify", "--json", env=env)
    assert checked.returncode == 13
    kinds = {p["kind"] for p in json.loads(checked.stdout)["problems"]}
    assert {"no-sig", "unsigned-erasure", "future"} <= kinds


def test_a_consent_refused_makes_the_job_fail_and_the_rest_is_erased(
    unlocked, vault_path, mixed, job
):
    """A file writer moves a current consent's plaintext deadline into the past: the job
    keeps it (its signed dates say it is not due), erases the others, and exits 7 with
    one line, so the timer's failure brings an admin to look."""
    due, keep = mixed
    unlocked.close()
    db = sqlite3.connect(vault_path)
    db.execute("UPDATE consents SET retain_until = '2001-01-01' WHERE id = ?", [keep[0]])
    db.commit()
    db.close()
    result = run_purge(vault_path, job, "--json")
    assert result.returncode == 7, result.stderr
    doc = json.loads(result.stdout)
    assert sorted(doc["purged"]) == sorted(due)
    assert doc["refused"] == [{"consent_id": keep[0], "why": "not-due"}]
    assert f"consent {keep[0]} is past its stored deadline but was not erased" in result.stderr
    assert result.stderr.count("nok: error: ") == 1
    check_consistent(vault_path, due, keep[1:], 2)
    with Vault.open(vault_path) as v:
        assert v.store.get_consent(keep[0]).status == "active"
        assert v.store.count_notes(keep[0]) == 2


def test_nothing_due_is_success(cli_vault, vault_path):
    result = run_purge(vault_path, Path(os.environ["NOK_JOB_CREDENTIAL"]), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["purged"], doc["dry_run"], doc["consents"], doc["notes"]) == ([], False, 0, 0)
    assert set(doc) >= {"checked_at", "date", "wal_clean"}


def test_missing_vault_is_one_line_and_non_zero(tmp_path):
    result = run_nok("purge", env={"NOK_VAULT": str(tmp_path / "none.db")})
    assert result.returncode == 3
    assert result.stderr.startswith("nok: error: no vault at")


def test_two_purges_at_once(unlocked, vault_path, job):
    due = bulk(unlocked, 120, notes_each=3, size=3000, due=True)
    keep = bulk(unlocked, 3, notes_each=2, size=100, due=False)
    unlocked.close()
    procs = [start_purge(vault_path, job, "--json", stdout=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    purged = [json.loads(o)["purged"] for o in outs]
    assert sorted(purged[0] + purged[1]) == sorted(due)
    assert set(purged[0]).isdisjoint(purged[1])
    check_consistent(vault_path, due, keep, 2)
    lines = endings.log_path(vault_path).read_text().splitlines()
    assert len(lines) == len(due)


def test_purge_while_notes_are_written(unlocked, vault_path, job):
    due = bulk(unlocked, 400, notes_each=3, size=3000, due=True)
    keep = bulk(unlocked, 1, notes_each=2, size=100, due=False)
    late = due[-1]
    proc = start_purge(vault_path, job, "--json", stdout=subprocess.PIPE)
    written: list[str] = []
    renewed = None
    while proc.poll() is None or len(written) < 5:
        written.append(notes.add(unlocked, keep[0], f"KEEP-NOTE written {len(written)}").id)
        # Paced as a person writes: a writer that retakes the lock the instant it lets go
        # starves the purge on a loaded machine (SQLite's busy handler is not fair).
        time.sleep(0.01)
        if len(written) == 3:
            # A note for a due consent either lands first (and renews it) or finds it erased.
            try:
                notes.add(unlocked, late, "a late note")
                renewed = True
            except InactiveConsent:
                renewed = False
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    purged = json.loads(out)["purged"]
    assert sorted(purged) == sorted(d for d in due if d != late or not renewed)
    unlocked.close()
    check_consistent(vault_path, [d for d in due if d in purged], keep, 2 + len(written))
    with Vault.open(vault_path) as v:
        assert set(written) <= set(v.store.note_ids_for_consent(keep[0]))


def expired_count(vault_path: Path) -> int:
    with Vault.open(vault_path) as v:
        return v.store.count_consents("expired")


def test_kill_9_leaves_each_consent_whole_and_a_rerun_finishes(unlocked, vault_path, job):
    due = bulk(unlocked, 2000, notes_each=3, size=6000, due=True)
    keep = bulk(unlocked, 2, notes_each=2, size=100, due=False)
    originals = {cid: unlocked.store.get_consent(cid) for cid in due}
    unlocked.close()
    log = endings.log_path(vault_path)
    proc = start_purge(vault_path, job, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while expired_count(vault_path) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    erased, intact = set(), set()
    with Vault.open(vault_path) as v:
        for cid in due:
            row = v.store.get_consent(cid)
            if row.status == "active":
                assert row == originals[cid]
                assert v.store.count_notes(cid) == 3
                intact.add(cid)
            else:
                assert_tombstone(row, "expired")
                assert v.store.count_notes(cid) == 0
                erased.add(cid)
    assert erased, "the purge was killed before its first commit; nothing to check"
    assert intact, "the purge finished before the kill; make the test vault bigger"
    # Each erasure is logged before its transaction commits, so none is missing.
    assert erased <= {r.consent_id for r in endings.read_log(log).records}

    rerun = run_purge(vault_path, job, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert set(json.loads(rerun.stdout)["purged"]) == intact
    check_consistent(vault_path, due, keep, 2)


# -- the scheduling examples really run ------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, list[str]]:
    """A home folder laid out as examples/README.md says, with a vault holding due consents."""
    nok_script = Path(sys.executable).with_name("nok")
    if not nok_script.exists():
        pytest.skip("the nok console script is not installed next to this Python")
    home = tmp_path / "home"
    venv_bin = home / ".local" / "share" / "nok-venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "nok").symlink_to(nok_script)
    (home / ".local" / "state" / "nok").mkdir(parents=True, mode=0o700)
    vault_path = home / ".local" / "share" / "nok" / "vault.db"
    u = Vault.create(
        vault_path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=NOW, kdf="interactive"
    )
    due = bulk(u, 2, notes_each=1, size=100, due=True)
    # Where examples/README.md tells the admin to put the job's credential.
    config = home / ".config" / "nok"
    config.mkdir(parents=True, mode=0o700)
    job_credential_file(u, config)
    u.close()
    return home, due


def clean_env(home: Path) -> dict[str, str]:
    """Roughly what systemd or cron give a job: no NOK_* variable, no passphrase."""
    return {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LOGNAME": "nok",
        "LANG": "C.UTF-8",
        **CLOCK_ENV,
    }


def tombstones(home: Path) -> list[str]:
    with Vault.open(home / ".local" / "share" / "nok" / "vault.db") as v:
        return sorted(r.id for r in v.store.iter_consents(include_ended=True) if r.ended)


def test_systemd_units_parse(home, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**clean_env(home[0]), "XDG_RUNTIME_DIR": str(runtime)}
    units = [str(EXAMPLES / "nok-purge.service"), str(EXAMPLES / "nok-purge.timer")]
    result = subprocess.run(
        [analyze, "verify", "--user", *units], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_systemd_service_command_purges(home):
    home_dir, due = home
    env = clean_env(home_dir)
    command = None
    for line in (EXAMPLES / "nok-purge.service").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, setting = value.replace("%h", str(home_dir)).partition("=")
            env[name] = setting
        elif key == "ExecStart":
            command = shlex.split(value.replace("%h", str(home_dir)))
    assert command is not None
    assert command[1:] == ["purge"]
    result = subprocess.run(
        command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert tombstones(home_dir) == sorted(due)


def test_crontab_line_purges_and_logs(home):
    home_dir, due = home
    lines = [x for x in (EXAMPLES / "crontab.txt").read_text().splitlines() if x and x[0] != "#"]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert fields[:5] == ["30", "2", "*", "*", "*"]
    # cron turns an unescaped % into a newline; the example must escape every one.
    assert "%" not in fields[5].replace("\\%", "")
    command = fields[5].replace("\\%", "%")
    for _ in range(2):
        result = subprocess.run(
            ["/bin/sh", "-c", f"umask 022; {command}"],
            env=clean_env(home_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0
    log_file = home_dir / ".local" / "state" / "nok" / "purge.log"
    assert log_file.stat().st_mode & 0o077 == 0
    log = log_file.read_text()
    assert log.count("exit 0") == 2
    assert "2 consents erased" in log
    assert tombstones(home_dir) == sorted(due)
