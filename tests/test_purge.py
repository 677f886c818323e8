"""The retention purge: keyless, idempotent, safe beside other processes and kill -9."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ADMIN, CLOCK_ENV, NOW, PASSPHRASE, TODAY, days_ago, run_nok
from test_erasure import assert_tombstone, consent_secrets, file_hash, on_terminal, remains

from vault import Vault, consents, crypto, dates, erasure, ids, notes
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
    made = []
    with u.store.write():
        for _ in range(count):
            cid = consents.new_consent_id(u.store)
            key = crypto.new_key()
            text = ("DUE-NOTE-MARKER " if due else "KEEP-NOTE ") + "n" * size
            rows = [
                notes.build_row(
                    key,
                    note_id=ids.new_id(ids.NOTE_PREFIX),
                    consent_id=cid,
                    key_version=1,
                    seq=seq,
                    date=LONG_AGO,
                    kind="phone",
                    text=text,
                    author=ADMIN,
                    now=NOW,
                )
                for seq in range(1, notes_each + 1)
            ]
            u.store.insert_consent(consents.build_row(u, data, cid, key, NOW, notes=rows))
            u.store.insert_notes(rows)
            made.append(cid)
    return made


def env_without_secrets(vault_path: Path) -> dict[str, str]:
    """What a cron job has: the vault path, and no passphrase of any kind."""
    return {"NOK_VAULT": str(vault_path)}


def run_purge(vault_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Standard input is not a terminal, as under cron or systemd: nok never asks.
    return run_nok("purge", *args, env=env_without_secrets(vault_path), input="")


def start_purge(vault_path: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    """``nok purge`` in the background, with no NOK_* variable but the vault path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update(env_without_secrets(vault_path))
    cmd = [sys.executable, "-m", "nokcli", "purge", *args]
    return subprocess.Popen(cmd, env=env, text=True, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]


@pytest.fixture
def mixed(unlocked: Unlocked) -> tuple[list[str], list[str]]:
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


def test_purge_needs_no_passphrase_and_leaves_nothing(unlocked, vault_path, mixed):
    due, keep = mixed
    secrets = [s for cid in due for s in consent_secrets(unlocked, cid)]
    unlocked.close()
    assert "NOK_PASSPHRASE" not in env_without_secrets(vault_path)

    result = run_purge(vault_path, "--json")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert sorted(doc["purged"]) == sorted(due)
    assert doc["dry_run"] is False
    assert doc["consents"] == 5
    assert doc["notes"] == 15
    assert doc["wal_clean"] is True
    assert remains(vault_path, [*secrets, b"DUE-NOTE-MARKER", b"BULK-SUBJECT-MARKER"]) == []
    check_consistent(vault_path, due, keep, 2)
    log = erasure.read_erasure_log(erasure.log_path(vault_path))
    assert sorted(r.consent_id for r in log) == sorted(due)
    assert {r.reason for r in log} == {"expired"}


def test_purge_audit_entries_are_keyless_then_sealed(unlocked, vault_path, mixed):
    due, _ = mixed
    unlocked.close()
    with Vault.open(vault_path) as v:
        erasure.purge(v, dates.utcnow(), dry_run=False)
        entries = [a for a in v.store.iter_audit() if a.action == "consent.expire"]
        assert sorted(a.consent_id for a in entries) == sorted(due)
        assert {(a.actor, a.mac) for a in entries} == {("purge (keyless)", None)}
        v.unlock(ADMIN, PASSPHRASE.encode(), now=dates.utcnow())
        assert all(a.mac for a in v.store.iter_audit())


def test_second_run_has_nothing_to_do(unlocked, vault_path, mixed):
    unlocked.close()
    assert run_purge(vault_path).returncode == 0
    log_before = erasure.log_path(vault_path).read_bytes()
    again = run_purge(vault_path, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["purged"] == []
    assert erasure.log_path(vault_path).read_bytes() == log_before


def test_dry_run_changes_nothing(unlocked, vault_path, mixed):
    due, _ = mixed
    unlocked.close()
    before = file_hash(vault_path)
    result = run_purge(vault_path, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert sorted(doc["purged"]) == sorted(due)
    assert doc["notes"] == 15
    assert file_hash(vault_path) == before
    assert not erasure.log_path(vault_path).exists()
    plain = run_purge(vault_path, "--dry-run")
    assert sorted(plain.stdout.split()) == sorted(due)
    assert file_hash(vault_path) == before


def test_plain_lines_without_a_terminal(unlocked, vault_path, mixed):
    due, _ = mixed
    unlocked.close()
    result = run_purge(vault_path)
    assert result.returncode == 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == len(due) + 1
    assert all(any(cid in line for line in lines) for cid in due)
    assert "5 consents erased" in lines[-1]


def test_on_a_terminal_it_asks_first(unlocked, vault_path, mixed):
    unlocked.close()
    before = file_hash(vault_path)
    code, err = on_terminal(["purge"], "n", env_without_secrets(vault_path))
    assert code == 130
    assert "5 consents with 15 notes" in err
    assert file_hash(vault_path) == before
    code, err = on_terminal(["purge"], "y", env_without_secrets(vault_path))
    assert code == 0, err
    assert "5 consents erased" in err


def test_a_clock_behind_the_vault_is_refused(unlocked, vault_path, mixed):
    unlocked.close()
    before = file_hash(vault_path)
    behind = days_ago(330)
    result = run_purge(vault_path, "--now", behind)
    assert result.returncode == 14
    assert result.stderr.startswith(f"nok: error: the clock says {behind}")
    assert file_hash(vault_path) == before
    with Vault.open(vault_path) as v, pytest.raises(ClockError):
        erasure.purge(v, NOW - dt.timedelta(hours=1), dry_run=True)


def test_now_ahead_of_the_calendar_only_previews(unlocked, vault_path, mixed):
    due, keep = mixed
    unlocked.close()
    ahead = (TODAY + dt.timedelta(days=3700)).isoformat()
    refused = run_purge(vault_path, "--now", ahead)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    preview = run_purge(vault_path, "--now", ahead, "--dry-run", "--json")
    assert sorted(json.loads(preview.stdout)["purged"]) == sorted(due + keep)


def test_nothing_due_is_success(cli_vault, vault_path):
    result = run_purge(vault_path, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["purged"], doc["dry_run"], doc["consents"], doc["notes"]) == ([], False, 0, 0)
    assert set(doc) >= {"checked_at", "date", "wal_clean"}


def test_missing_vault_is_one_line_and_non_zero(tmp_path):
    result = run_nok("purge", env={"NOK_VAULT": str(tmp_path / "none.db")})
    assert result.returncode == 3
    assert result.stderr.startswith("nok: error: no vault at")


def test_two_purges_at_once(unlocked, vault_path):
    due = bulk(unlocked, 120, notes_each=3, size=3000, due=True)
    keep = bulk(unlocked, 3, notes_each=2, size=100, due=False)
    unlocked.close()
    procs = [start_purge(vault_path, "--json", stdout=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    purged = [json.loads(o)["purged"] for o in outs]
    assert sorted(purged[0] + purged[1]) == sorted(due)
    assert set(purged[0]).isdisjoint(purged[1])
    check_consistent(vault_path, due, keep, 2)
    lines = erasure.log_path(vault_path).read_text().splitlines()
    assert len(lines) == len(due)


def test_purge_while_notes_are_written(unlocked, vault_path):
    due = bulk(unlocked, 400, notes_each=3, size=3000, due=True)
    keep = bulk(unlocked, 1, notes_each=2, size=100, due=False)
    late = due[-1]
    proc = start_purge(vault_path, "--json", stdout=subprocess.PIPE)
    written: list[str] = []
    renewed = None
    while proc.poll() is None or len(written) < 5:
        written.append(notes.add(unlocked, keep[0], f"KEEP-NOTE written {len(written)}").id)
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


def test_kill_9_leaves_each_consent_whole_and_a_rerun_finishes(unlocked, vault_path):
    due = bulk(unlocked, 2000, notes_each=3, size=6000, due=True)
    keep = bulk(unlocked, 2, notes_each=2, size=100, due=False)
    originals = {cid: unlocked.store.get_consent(cid) for cid in due}
    unlocked.close()
    log = erasure.log_path(vault_path)
    proc = start_purge(vault_path, stderr=subprocess.DEVNULL)
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
    assert erased <= {r.consent_id for r in erasure.read_erasure_log(log)}

    rerun = run_purge(vault_path, "--json")
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
