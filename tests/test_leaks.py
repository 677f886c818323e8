"""Issue 9, section 3 (leaks), as an attacker would try them: note text on the command
line, terminal control sequences planted in vault data, and loose permission checks on
the vault directory, the backup directory and the passphrase file."""

from __future__ import annotations

import grp
import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PASSPHRASE, Nok, Result, days_ago, init_args

# OSC 52 writes the terminal's clipboard; OSC 0 sets the window title; 0x9b is the C1 CSI.
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x07"
TITLE = "\x1b]0;owned\x07"
PLANTED = f"before {CLIPBOARD}{TITLE} csi\x9b2J\r end\ttab"


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.stderr
    return result


def import_planted(nok: Nok, tmp_path: Path) -> tuple[str, str]:
    """Import one consent whose alias and note carry control sequences; returns the ids."""
    line = {
        "subject": f"Kari{TITLE}",
        "purpose": "follow-up",
        "categories": ["safety"],
        "given": days_ago(10),
        "notes": [{"date": days_ago(9), "kind": "phone", "text": PLANTED}],
    }
    source = tmp_path / "planted.jsonl"
    source.write_text(json.dumps(line) + "\n")
    ok(nok("import", str(source)))
    notes = json.loads(ok(nok("note", "list", "--json")).stdout)
    return notes[0]["consent_id"], notes[0]["id"]


def on_a_terminal(*args: str, env: dict[str, str], answer: bytes | None = None) -> tuple[int, str]:
    """Run nok with stdin, stdout and stderr on one pseudo-terminal; returns (code, output)."""
    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=full_env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        if answer is not None:
            os.write(leader, answer)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(leader)
    return code, b"".join(chunks).decode("utf-8", "replace")


# -- control sequences --------------------------------------------------------------------


def test_control_sequences_in_an_imported_note_are_escaped_on_a_terminal(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent, note = import_planted(cli_vault, tmp_path)
    for args in (
        ("note", "show", note),
        ("note", "list"),
        ("consent", "list"),
        ("consent", "show", consent),
        ("export", consent),
    ):
        code, shown = on_a_terminal(*args, env=nok_env)
        assert code == 0, shown
        assert "\x1b" not in shown, args
        assert "\x9b" not in shown, args
        assert "\\x1b" in shown, (args, shown)
    code, shown = on_a_terminal("note", "show", note, env=nok_env)
    # Newline and tab stay what they are; a carriage return could hide the line before it.
    assert "\\x0d end\ttab" in shown


def test_json_and_a_piped_export_keep_the_text_exact(cli_vault: Nok, tmp_path: Path) -> None:
    consent, note = import_planted(cli_vault, tmp_path)
    shown = json.loads(ok(cli_vault("note", "show", note, "--json")).stdout)
    assert shown["text"] == PLANTED
    listed = json.loads(ok(cli_vault("consent", "list", "--json")).stdout)
    assert listed[0]["subject"] == f"Kari{TITLE}"
    exported = json.loads(
        ok(cli_vault("export", consent, "--format", "json", "--output", "-")).stdout
    )
    assert [n["text"] for n in exported["notes"]] == [PLANTED]


# -- note text on the command line --------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (("note", "add"), "--text"),
        (("consent", "add"), "--subject"),
        (("consent", "add"), "--purpose"),
    ],
)
def test_each_exposing_option_says_so_in_its_help(
    nok: Nok, command: tuple[str, ...], option: str
) -> None:
    result = nok(*command, "--help")
    assert result.exit_code == 0
    block = result.stdout.split(option, 1)[1].split("\n  --", 1)[0]
    assert "process list" in " ".join(block.split()), block


def test_text_on_the_command_line_warns_at_a_terminal_only(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    consent = ok(
        cli_vault("consent", "add", "--subject", "A", "--purpose", "B", "--category", "safety")
    ).stdout.strip()
    code, shown = on_a_terminal("note", "add", consent, "--text", "seen by ps", env=nok_env)
    assert code == 0, shown
    assert "--text" in shown
    assert "process list" in shown
    # A script chose its command line; no warning there.
    quiet = ok(cli_vault("note", "add", consent, "--text", "from a script"))
    assert "warning" not in quiet.stderr


def test_consent_add_asks_for_subject_and_purpose_at_a_terminal(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    code, shown = on_a_terminal(
        "consent",
        "add",
        "--category",
        "safety",
        env=nok_env,
        answer=b"ASKED-ALIAS\nASKED-PURPOSE\ny\n",
    )
    assert code == 0, shown
    assert "warning" not in shown
    consent = json.loads(ok(cli_vault("consent", "list", "--json")).stdout)[0]
    assert (consent["subject"], consent["purpose"]) == ("ASKED-ALIAS", "ASKED-PURPOSE")
    assert consent["duties_told"] is not None


def test_consent_add_without_subject_in_a_script_is_a_usage_error(cli_vault: Nok) -> None:
    result = cli_vault("consent", "add", "--purpose", "B", "--category", "safety")
    assert result.exit_code == 2
    assert "--subject" in result.stderr
    assert "Traceback" not in result.stderr


# -- loose permission checks --------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o730])
def test_a_vault_directory_others_can_write_is_refused(
    cli_vault: Nok, vault_path: Path, mode: int
) -> None:
    vault_path.parent.chmod(mode)
    try:
        for args in (("status",), ("note", "list")):
            result = cli_vault(*args)
            assert result.exit_code == 10, result.stderr
            assert result.stderr.startswith(f"nok: error: {vault_path.parent} is a directory")
            assert "chmod" in result.stderr
    finally:
        vault_path.parent.chmod(0o700)
    ok(cli_vault("status"))


def test_init_refuses_a_directory_its_group_can_write(nok: Nok, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o770)
    shared.chmod(0o770)
    result = nok("--vault", str(shared / "vault.db"), *init_args(tmp_path))
    assert result.exit_code == 10, result.stderr
    assert not (shared / "vault.db").exists()


def test_a_group_vault_keeps_its_group_writable_directory(nok: Nok, tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    path = tmp_path / "center" / "vault.db"
    ok(nok("--vault", str(path), *init_args(tmp_path, "--group", group)))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o2770
    ok(nok("--vault", str(path), "status"))


@pytest.mark.parametrize("mode", [0o770, 0o730])
def test_a_backup_directory_its_group_can_write_is_refused(
    cli_vault: Nok, tmp_path: Path, mode: int
) -> None:
    target = tmp_path / "backups"
    target.mkdir()
    target.chmod(mode)
    result = cli_vault("backup", str(target) + "/")
    assert result.exit_code == 10, result.stderr
    assert list(target.iterdir()) == []
    target.chmod(0o700)
    ok(cli_vault("backup", str(target) + "/"))


def test_a_passphrase_fifo_others_can_read_is_refused(cli_vault: Nok, tmp_path: Path) -> None:
    fifo = tmp_path / "passphrase.fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o644)
    # Refused before it is opened: no writer is needed, and none is waited for.
    result = cli_vault("--passphrase-file", str(fifo), "note", "list")
    assert result.exit_code == 10, result.stderr
    assert "0644" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_passphrase_file_of_another_user_is_refused(cli_vault: Nok, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    os.chown(secret, 65534, -1)
    result = cli_vault("--passphrase-file", str(secret), "note", "list")
    assert result.exit_code == 10, result.stderr
    assert "belongs to another user" in result.stderr


def test_a_passphrase_pipe_of_your_own_still_works(cli_vault: Nok, nok_env: dict[str, str]) -> None:
    # What `--passphrase-file <(pass show nok)` hands nok: a 0600 pipe you own.
    read_end, write_end = os.pipe()
    os.write(write_end, (PASSPHRASE + "\n").encode())
    os.close(write_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update({k: v for k, v in nok_env.items() if k != "NOK_PASSPHRASE"})
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "nokcli",
                "--passphrase-file",
                f"/dev/fd/{read_end}",
                "note",
                "list",
                "--json",
            ],
            pass_fds=(read_end,),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(read_end)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
