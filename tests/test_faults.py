"""Faults a real machine has: a full disk. Nothing may be lost or half-written."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ADMIN, CLOCK_ENV, PASSPHRASE, init_args, run_nok


def _env(vault_path, tmp_path):
    return {
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "XDG_RUNTIME_DIR": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        **CLOCK_ENV,
    }


def _file_size_limit(limit: int):
    def apply() -> None:
        # Without this the kernel kills the process at the limit instead of failing writes.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_full_disk_fails_cleanly_and_loses_nothing(vault_path, tmp_path):
    env = _env(vault_path, tmp_path)
    assert run_nok(*init_args(tmp_path), env=env).returncode == 0
    added = run_nok(
        "consent", "add", "--subject", "S", "--purpose", "P", "--category", "c", "--json", env=env
    )
    consent_id = json.loads(added.stdout)["id"]
    cmd = [sys.executable, "-m", "nokcli", "note", "add", consent_id, "--yes"]
    saved, failure = 0, None
    for _ in range(40):
        proc = subprocess.run(
            cmd,
            input="n" * 19_000,
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            preexec_fn=_file_size_limit(160_000),
            check=False,
        )
        if proc.returncode != 0:
            failure = proc
            break
        saved += 1
    assert failure is not None, "the file size limit never hit"
    assert failure.returncode == 12
    lines = failure.stderr.strip().splitlines()
    assert lines[0].startswith("nok: error: could not write the vault")
    assert "Traceback" not in failure.stderr
    listed = run_nok("note", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == saved
    with sqlite3.connect(vault_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
