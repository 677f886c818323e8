"""Shared fixtures: a fresh vault per test, made with the fast ``interactive`` Argon2id
profile (the default stays ``moderate``), and a CLI runner with the environment set."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nokcli.app import app
from vault import Vault
from vault.session import Unlocked

PASSPHRASE = "correct horse battery staple"
ADMIN = "anne"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


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
    }
    for key in ("NOK_PASSPHRASE_FILE", "NOK_BUSY_TIMEOUT", "NOK_DEBUG", "NOK_CONFIG"):
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


@pytest.fixture
def cli_vault(nok: Nok) -> Nok:
    """A vault made with ``nok init --kdf interactive``; returns the runner."""
    result = nok("init", "--kdf", "interactive")
    assert result.exit_code == 0, result.stderr
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
