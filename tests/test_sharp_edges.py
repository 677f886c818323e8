"""Issue 10, "Sharp edges found by trying it": each ordinary thing a new user tried that
ended in a missing prompt, an internal error (exit 1) or a surprise, as the user runs it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSPHRASE, Nok, Result, days_ago

from nokcli.app import app


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.stderr
    return result


def one_error(result: Any, code: int) -> str:
    """A clean failure: the exit code and a one-line ``nok: error:`` (maybe a hint)."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    lines = [line for line in lines if not line.startswith("nok: warning: ")]
    assert lines[0].startswith("nok: error: "), lines
    assert "internal error" not in lines[0]
    assert lines[1:] == [] or (len(lines) == 2 and lines[1].startswith("nok: hint: ")), lines
    return lines[0]


def add_consent(nok: Nok) -> str:
    result = ok(
        nok("consent", "add", "--subject", "K.H.", "--purpose", "follow-up", "--category", "safety")
    )
    return result.stdout.strip()


def environment(nok_env: dict[str, str], *, passphrase: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update({k: v for k, v in nok_env.items() if passphrase or k != "NOK_PASSPHRASE"})
    return env


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (the immutable flag), else by its mode."""
    if os.geteuid() == 0:
        if (
            not shutil.which("chattr")
            or subprocess.run(
                ["chattr", "+i", str(path)], capture_output=True, check=False
            ).returncode
        ):
            pytest.skip("root, and no immutable flag on this file system")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    mode = path.stat().st_mode
    path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        yield
    finally:
        path.chmod(mode)


# -- the passphrase prompt with a pipe on standard input -----------------------------------


def test_a_piped_note_at_a_terminal_asks_for_the_passphrase_there(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    consent = add_consent(cli_vault)
    leader, follower = pty.openpty()
    terminal = os.ttyname(follower)

    def take_the_terminal() -> None:
        # The child is a session leader (start_new_session): the first terminal it opens
        # becomes its controlling terminal, as a login shell's would.
        os.close(os.open(terminal, os.O_RDWR))

    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", "note", "add", consent, "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(nok_env, passphrase=False),
        start_new_session=True,
        preexec_fn=take_the_terminal,
    )
    os.close(follower)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"PIPED-MARKER the note itself")
        proc.stdin.close()
        proc.stdin = None  # communicate() below must not flush it again
        # The hidden prompt writes to the terminal once it has turned echo off; only then
        # is the passphrase typed (earlier input would be flushed).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            ready, _, _ = select.select([leader], [], [], 0.5)
            try:
                if ready and os.read(leader, 1024):
                    break
            except OSError:
                # EIO until nok opens /dev/tty: nothing holds the terminal open before.
                time.sleep(0.1)
        os.write(leader, (PASSPHRASE + "\n").encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    assert proc.returncode == 0, err
    assert b"Passphrase for anne" in err
    note = json.loads(out)["id"]
    shown = json.loads(ok(cli_vault("note", "show", note, "--json")).stdout)
    assert shown["text"] == "PIPED-MARKER the note itself"


def test_without_any_terminal_a_missing_passphrase_is_still_exit_4(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    consent = add_consent(cli_vault)
    result = subprocess.run(
        [sys.executable, "-m", "nokcli", "note", "add", consent],
        input="text",
        capture_output=True,
        text=True,
        env=environment(nok_env, passphrase=False),
        start_new_session=True,  # no controlling terminal, as under cron
        timeout=60,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "no passphrase given and no terminal" in result.stderr


# -- the editor ----------------------------------------------------------------------------


def test_the_editor_starts_on_an_empty_line_above_the_comments(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli_vault)
    seen = tmp_path / "seen.txt"
    script = tmp_path / "editor"
    # Records what the editor was given, then types on the cursor's line (the first).
    script.write_text(
        f'#!/bin/sh\ncp "$1" "{seen}"\n'
        '{ printf \'TYPED-ON-LINE-ONE\'; cat "$1"; } > "$1.new" && mv "$1.new" "$1"\n'
    )
    script.chmod(0o700)
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nokcli", "note", "add", consent, "--json"],
            stdin=follower,
            capture_output=True,
            text=True,
            env={**environment(nok_env), "EDITOR": str(script)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 0, result.stderr
    given = seen.read_text().splitlines()
    assert given[0] == ""
    assert given[1:]
    assert all(line.startswith("#") for line in given[1:] if line)
    note = json.loads(result.stdout)["id"]
    shown = json.loads(ok(cli_vault("note", "show", note, "--json")).stdout)
    assert shown["text"] == "TYPED-ON-LINE-ONE"


# -- internal errors on ordinary input -----------------------------------------------------


@pytest.mark.parametrize("raw", [b"caf\xe9 au lait\n", b"\xff\xfe n\x00o\x00t\x00e\x00"])
def test_text_that_is_not_utf8_on_stdin_is_a_usage_error(cli_vault: Nok, raw: bytes) -> None:
    consent = add_consent(cli_vault)
    for args in (("note", "add", consent), ("note", "search", "-")):
        r = cli_vault.runner.invoke(app, list(args), input=raw, catch_exceptions=False)
        line = one_error(r, 2)
        assert "not UTF-8" in line
    assert json.loads(ok(cli_vault("status", "--json")).stdout)["notes"] == 0


@pytest.mark.parametrize("path", ["", ".", ".."])
def test_a_vault_path_that_names_no_file_is_a_usage_error(cli_vault: Nok, path: str) -> None:
    for args in (("status",), ("note", "list"), ("init", "--kdf", "interactive")):
        assert "--vault" in one_error(cli_vault("--vault", path, *args), 2)


def test_init_into_a_read_only_directory(nok: Nok, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with read_only(locked):
        for target in (locked / "vault.db", locked / "sub" / "vault.db"):
            line = one_error(nok("--vault", str(target), "init", "--kdf", "interactive"), 12)
            assert "could not create" in line
    assert list(locked.iterdir()) == []


def test_busy_timeout_out_of_range_is_a_usage_error(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("inf", "1e300", "nan", "-1"):
        result = cli_vault("--busy-timeout", value, "status")
        assert result.exit_code == 2, (value, result.stderr)
        assert "--busy-timeout" in result.stderr
        assert "internal error" not in result.stderr
    config = tmp_path / "nok.toml"
    config.write_text("busy_timeout = inf\n")
    monkeypatch.setenv("NOK_CONFIG", str(config))
    assert "busy_timeout" in one_error(cli_vault("status"), 2)


def test_output_piped_into_head_stops_quietly(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    lines = [
        json.dumps(
            {
                "subject": f"person {i}",
                "purpose": "follow-up",
                "categories": ["safety"],
                "given": days_ago(30),
                "notes": [{"date": days_ago(2), "text": "x" * 50} for _ in range(20)],
            }
        )
        for i in range(100)
    ]
    source = tmp_path / "many.jsonl"
    source.write_text("\n".join(lines) + "\n")
    ok(cli_vault("import", str(source)))
    for args in (("note", "list"), ("note", "list", "--json")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "nokcli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(nok_env),
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.readline()  # what `head -1` reads before it exits
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
        assert err == ""


# -- export, read-only vaults, backups only read --------------------------------------------


def test_export_output_dash_is_standard_output(
    cli_vault: Nok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consent = add_consent(cli_vault)
    monkeypatch.chdir(tmp_path)
    result = ok(cli_vault("export", consent, "--format", "json", "--output", "-"))
    assert json.loads(result.stdout)["consent"]["id"] == consent
    assert not (tmp_path / "-").exists()


def test_a_read_only_vault_says_so(cli_vault: Nok, vault_path: Path) -> None:
    consent = add_consent(cli_vault)
    with read_only(vault_path):
        result = cli_vault("note", "add", consent, "--text", "x")
        one_error(result, 12)
    assert "read-only" in result.stderr
    assert "disk space" not in result.stderr
    assert json.loads(ok(cli_vault("status", "--json")).stdout)["notes"] == 0


def test_status_and_verify_leave_a_backup_byte_for_byte(cli_vault: Nok, tmp_path: Path) -> None:
    add_consent(cli_vault)
    target = tmp_path / "backups"
    ok(cli_vault("backup", str(target) + "/"))
    (backup,) = target.iterdir()
    before = hashlib.sha256(backup.read_bytes()).hexdigest(), backup.stat().st_mtime_ns
    ok(cli_vault("--vault", str(backup), "status"))
    ok(cli_vault("--vault", str(backup), "verify"))
    after = hashlib.sha256(backup.read_bytes()).hexdigest(), backup.stat().st_mtime_ns
    assert after == before
    assert sorted(p.name for p in target.iterdir()) == [backup.name]
