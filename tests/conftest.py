"""Shared fixtures: a fresh vault per test, made with the fast ``interactive`` Argon2id
profile (the default stays ``moderate``), and a CLI runner with the environment set."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The test clock comes first, before anything imports vault.dates' utcnow: every test,
# in-process or in a subprocess, sees NOW plus the real time passed since the run began.
# NOKTEST_NOW moves it (tests/test_clock.py runs a sample years ahead); without it, a
# fixed day, so the suite passes the same on any calendar date.
NOW = dt.datetime.fromisoformat(os.environ.get("NOKTEST_NOW") or "2026-11-23T10:00:00+00:00")
TODAY = NOW.astimezone().date()  # nok's 'today' is the local calendar day
CLOCK_DIR = Path(__file__).parent / "testclock"
# setdefault: this file is imported as both ``conftest`` and ``tests.conftest``, and the
# second import must not restart the clock.
os.environ.setdefault("NOKTEST_CLOCK", f"{NOW.isoformat()}@{time.time()!r}")
if str(CLOCK_DIR) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(CLOCK_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
if str(CLOCK_DIR) not in sys.path:
    sys.path.insert(0, str(CLOCK_DIR))
import nok_testclock  # noqa: E402  (the clock module on CLOCK_DIR)

# Explicitly: sitecustomize may have imported the module before the variable was set.
nok_testclock.install(os.environ["NOKTEST_CLOCK"])

# For subprocesses started with an environment of their own (cron- and systemd-like jobs).
CLOCK_ENV = {"NOKTEST_CLOCK": os.environ["NOKTEST_CLOCK"], "PYTHONPATH": os.environ["PYTHONPATH"]}

# The suite speaks English whatever the developer's locale or configuration file; tests of
# the Norwegian interface ask for it (tests/test_i18n.py). Set before nokcli.i18n is imported.
for _var in ("LC_ALL", "LC_MESSAGES", "LANGUAGE", "NOK_LANG"):
    os.environ.pop(_var, None)
os.environ["LANG"] = "C.UTF-8"
os.environ["NOK_CONFIG"] = os.devnull

from typer.testing import CliRunner  # noqa: E402

from nokcli.app import app  # noqa: E402
from vault import Vault  # noqa: E402
from vault.session import Unlocked  # noqa: E402


def days_ago(n: int) -> str:
    """The test clock's calendar day ``n`` days back, as ``YYYY-MM-DD``."""
    return (TODAY - dt.timedelta(days=n)).isoformat()


PASSPHRASE = "correct horse battery staple"
ADMIN = "anne"


@pytest.fixture(autouse=True)
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test is its own user: what she last saw of each vault (vault.pins) is kept in
    a state directory of the test's, never in the developer's."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    directory = tmp_path / "vaultdir"
    return directory / "vault.db"


@pytest.fixture
def unlocked(vault_path: Path) -> Iterator[Unlocked]:
    """An unlocked vault made through the API (admin ``anne``)."""
    u = Vault.create(
        vault_path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=NOW, kdf="interactive"
    )
    try:
        yield u
    finally:
        u.close()


@pytest.fixture
def nok_env(vault_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Environment for CLI runs: the vault, the user and the passphrase."""
    env = {
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    for key in (
        "NOK_PASSPHRASE_FILE",
        "NOK_BUSY_TIMEOUT",
        "NOK_DEBUG",
        "NOK_CONFIG",
        "NOK_JOB_CREDENTIAL",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Nok:
    """Runs ``nok`` in-process with Typer's CliRunner, stdout and stderr kept apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        r = self.runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Result(r.exit_code, r.stdout, r.stderr)


@pytest.fixture
def nok(nok_env: dict[str, str]) -> Nok:
    return Nok()


def init_args(tmp_path: Path, *extra: str) -> list[str]:
    """``nok init`` as a script runs it: the recovery key written to a file of the test's."""
    recovery = tmp_path / f"recovery-{len(list(tmp_path.glob('recovery-*')))}.txt"
    return ["init", "--kdf", "interactive", "--recovery-file", str(recovery), *extra]


def make_job_credential(nok: Nok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scheduled job's credential (nok key job-credential), passed to every later
    command through NOK_JOB_CREDENTIAL, as the examples' units do."""
    path = tmp_path / "job.credential"
    result = nok("key", "job-credential", "--output", str(path))
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("NOK_JOB_CREDENTIAL", str(path))
    return path


@pytest.fixture
def cli_vault(nok: Nok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Nok:
    """A vault made with ``nok init --kdf interactive``, and the job credential the nightly
    purge runs with; returns the runner."""
    result = nok(*init_args(tmp_path))
    assert result.exit_code == 0, result.stderr
    make_job_credential(nok, tmp_path, monkeypatch)
    return nok


def run_nok(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run nok as a real subprocess (``python -m nokcli``)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "nokcli", *args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def keys_that_open(
    keysets: list[Any], vault_id: str, consent_id: str, wraps: list[tuple[Any, ...]]
) -> list[tuple[str, bytes]]:
    """(reader, key) of every wrap of ``consent_id`` that one of ``keysets`` (vault.identity
    key sets) opens, either way a wrap is made: what a holder of those keys gets out of the
    raw file."""
    from vault import access, crypto
    from vault.errors import NokError

    opened = []
    for reader, version, _how, wrapped in wraps:
        ad = access.wrap_ad(vault_id, consent_id, reader, version)
        for keys in keysets:
            for attempt in (
                lambda k=keys, w=wrapped, a=ad: crypto.open_sealed(k.box_secret, w, a, where="x"),
                lambda k=keys, w=wrapped, a=ad: crypto.unseal(k.wrap, w, a, where="x"),
            ):
                try:
                    opened.append((reader, attempt()))
                except (NokError, ValueError, TypeError):
                    continue
    return opened


# -- tests-c: the job credential and bulk consents (purge, erasure, backup, stats) --------


def job_credential_file(unlocked: Unlocked, tmp_path: Path, name: str = "purge") -> Path:
    """The scheduled job's credential as an admin makes it (nok key job-credential), in a
    new 0600 file of the test's."""
    from vault import jobs

    path = tmp_path / f"{name}.credential"
    jobs.write(path, jobs.issue(unlocked, name))
    return path


def as_job(vault: Vault, credential: Path, now: dt.datetime) -> Any:
    """The vault as the scheduled job of ``credential`` holds it (vault.jobs.JobUnlocked),
    keeping no pins of its own."""
    from vault import jobs

    return jobs.unlock(vault, jobs.read(credential), now=now, pin_store=None)


def insert_consents(
    unlocked: Unlocked,
    data: Any,
    count: int,
    *,
    notes_each: int,
    text: str,
    date: str,
) -> list[str]:
    """``count`` consents of ``data`` (a vault.consents.ConsentInput), each with
    ``notes_each`` notes of ``text`` dated ``date``, written in one transaction as
    consents.add and notes.add write them: signed states, key wraps, one signed trail
    entry each. Fast enough for thousands; returns their ids."""
    from vault import consents, crypto, ids, notes

    data = consents.validate(data, unlocked.today())
    made = []
    with unlocked.store.write():
        for _ in range(count):
            consent_id = consents.new_consent_id(unlocked.store)
            key = crypto.new_key()
            rows = [
                notes.build_row(
                    key,
                    note_id=ids.new_id(ids.NOTE_PREFIX),
                    consent_id=consent_id,
                    key_version=consents.FIRST_KEY_VERSION,
                    seq=seq,
                    date=date,
                    kind="phone",
                    text=text,
                    author=unlocked.name,
                    now=unlocked.now,
                )
                for seq in range(1, notes_each + 1)
            ]
            row, wraps = consents.new_row(unlocked, data, consent_id, key, unlocked.now, notes=rows)
            unlocked.store.insert_consent(row)
            unlocked.store.insert_notes(rows)
            unlocked.store.put_wraps(consent_id, [w.row() for w in wraps])
            unlocked.record(
                "consent.add",
                consent_id=consent_id,
                object_id=row.contact,
                rev=row.rev,
                state=consents.state_digest(unlocked.vault_id, row),
            )
            made.append(consent_id)
    return made
