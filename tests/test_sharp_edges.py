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
from conftest import PASSPHRASE, Nok, Result, days_ago, init_args

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
            line = one_error(nok("--vault", str(target), *init_args(tmp_path)), 12)
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


# -- surprises in the record: a consent born expired, a revived one, an import twice ---------


def old_consent(nok: Nok, *extra: str) -> Result:
    return nok(
        "consent",
        "add",
        "--subject",
        "K.H.",
        "--purpose",
        "follow-up",
        "--category",
        "safety",
        "--given",
        days_ago(40),
        "--retain-days",
        "30",
        *extra,
    )


def test_a_consent_given_past_its_deadline_is_refused_in_a_script(cli_vault: Nok) -> None:
    line = one_error(old_consent(cli_vault), 2)
    assert "--yes" in line
    assert days_ago(10) in line  # the deadline that has passed
    assert json.loads(ok(cli_vault("status", "--json")).stdout)["active_consents"] == 0
    ok(old_consent(cli_vault, "--yes"))
    assert json.loads(ok(cli_vault("status", "--json")).stdout)["active_consents"] == 1


def test_a_consent_given_past_its_deadline_is_asked_about_at_a_terminal(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    args = ["consent", "add", "--subject", "A", "--purpose", "B", "--category", "safety"]
    args += ["--given", days_ago(40), "--retain-days", "30"]
    for answer, code, active in (("n\n", 130, 0), ("y\n", 0, 1)):
        # The first question is whether the duties were told; then the deadline.
        with terminal_with("y\n" + answer) as terminal:
            result = subprocess.run(
                [sys.executable, "-m", "nokcli", *args],
                stdin=terminal,
                capture_output=True,
                text=True,
                env=environment(nok_env),
                timeout=60,
                check=False,
            )
        assert result.returncode == code, result.stderr
        assert "retention deadline" in result.stderr
        status = json.loads(ok(cli_vault("status", "--json")).stdout)
        assert status["active_consents"] == active


@contextlib.contextmanager
def terminal_with(answer: str) -> Iterator[int]:
    """A pseudo-terminal with ``answer`` already typed; yields the side nok reads."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        yield follower
    finally:
        os.close(follower)
        os.close(leader)


def test_a_note_under_an_overdue_consent_is_not_a_silent_revival(cli_vault: Nok) -> None:
    consent = ok(old_consent(cli_vault, "--yes")).stdout.strip()
    line = one_error(cli_vault("note", "add", consent, "--text", "x"), 2)
    assert days_ago(10) in line
    assert "--yes" in line
    before = json.loads(ok(cli_vault("consent", "show", consent, "--json")).stdout)
    assert before["retain_until"] == days_ago(10)
    ok(cli_vault("note", "add", consent, "--text", "x", "--yes"))
    after = json.loads(ok(cli_vault("consent", "show", consent, "--json")).stdout)
    assert after["retain_until"] > before["retain_until"]


def test_importing_the_same_file_twice_is_refused(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    line = {
        "subject": "Kari (demo)",
        "purpose": "follow-up",
        "categories": ["safety"],
        "given": days_ago(20),
        "notes": [{"date": days_ago(19), "text": "first talk"}],
    }
    source = tmp_path / "once.jsonl"
    source.write_bytes((json.dumps(line) + "\n").encode())

    def counts() -> tuple[int, int]:
        status = json.loads(ok(cli_vault("status", "--json")).stdout)
        return status["active_consents"], status["notes"]

    ok(cli_vault("import", str(source)))
    assert counts() == (1, 1)
    assert "imported before" in one_error(cli_vault("import", str(source)), 9)
    # From standard input too (read once, so found out at the end and rolled back).
    again = subprocess.run(
        [sys.executable, "-m", "nokcli", "import", "-"],
        input=source.read_bytes(),
        capture_output=True,
        env=environment(nok_env),
        timeout=60,
        check=False,
    )
    assert again.returncode == 9, again.stderr
    assert counts() == (1, 1)
    dry = ok(cli_vault("import", str(source), "--dry-run"))
    assert "imported before" in dry.stderr
    ok(cli_vault("import", str(source), "--force"))
    assert counts() == (2, 2)
    # A different file is a different import.
    line["subject"] = "Ola (demo)"
    other = tmp_path / "other.jsonl"
    other.write_bytes((json.dumps(line) + "\n").encode())
    ok(cli_vault("import", str(other)))
    assert counts() == (3, 3)


def test_the_import_fingerprint_reveals_nothing_without_a_key(
    cli_vault: Nok, vault_path: Path, tmp_path: Path
) -> None:
    import sqlite3

    content = json.dumps(
        {"subject": "X", "purpose": "p", "categories": ["safety"], "given": days_ago(5)}
    )
    source = tmp_path / "f.jsonl"
    source.write_text(content + "\n")
    ok(cli_vault("import", str(source)))
    conn = sqlite3.connect(vault_path)
    keys = [k for (k,) in conn.execute("SELECT key FROM settings WHERE key LIKE 'import:%'")]
    conn.close()
    assert len(keys) == 1
    raw = source.read_bytes()
    # Not a plain hash of the file: whoever has the file cannot confirm it was imported.
    for plain in (hashlib.sha256(raw), hashlib.blake2b(raw, digest_size=32)):
        assert plain.hexdigest() not in keys[0]


# -- --json on every command that reports a result -------------------------------------------


def test_the_commands_that_lacked_json_print_one_document(
    cli_vault: Nok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consent = add_consent(cli_vault)
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", "a new passphrase for kari")
    ok(cli_vault("staff", "add", "kari"))

    def document(*args: str) -> Any:
        result = ok(cli_vault(*args, "--json"))
        return json.loads(result.stdout)

    copy = tmp_path / "copy.md"
    assert document("export", consent, "--output", str(copy)) == {
        "consent_id": consent,
        "path": str(copy),
        "format": "markdown",
        "notes": 0,
    }
    assert document("export", consent)["consent"]["id"] == consent
    assert document("key", "kdf", "interactive") == {"kdf_min": "interactive"}
    changed = document("settings", "set", "note-guideline", "1200")
    assert (changed["key"], changed["old"], changed["new"]) == ("note-guideline", 1500, 1200)
    assert document("staff", "role", "kari", "admin")["role"] == "admin"
    assert document("staff", "reset", "kari")["name"] == "kari"
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", PASSPHRASE + " too")
    assert document("passwd")["name"] == "anne"


# -- hints that say what to do next ----------------------------------------------------------


def test_a_missing_passphrase_file_hint_names_the_file_option(
    cli_vault: Nok, tmp_path: Path
) -> None:
    result = cli_vault("--passphrase-file", str(tmp_path / "missing"), "note", "list")
    one_error(result, 4)
    hint = result.stderr.strip().splitlines()[-1]
    assert hint.startswith("nok: hint: check the path given with --passphrase-file")


def test_a_failed_verify_says_how_to_check_and_restore_a_backup(
    cli_vault: Nok, vault_path: Path
) -> None:
    import sqlite3

    consent = add_consent(cli_vault)
    ok(cli_vault("note", "add", consent, "--text", "to be damaged"))
    conn = sqlite3.connect(vault_path)
    (body,) = conn.execute("SELECT record FROM notes").fetchone()
    damaged = bytes(body[:-1]) + bytes([body[-1] ^ 1])
    conn.execute("UPDATE notes SET record = ?", [damaged])
    conn.commit()
    conn.close()
    result = cli_vault("verify")
    assert result.exit_code == 13
    hint = result.stderr.strip().splitlines()[-1]
    assert "nok --vault BACKUP verify" in hint
    assert "nok restore BACKUP" in hint
