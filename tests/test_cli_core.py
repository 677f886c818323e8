"""Every issue-2 command as a care worker (or a script) runs it: init, status, consent,
note; the bad inputs with their one-line errors and exit codes; and the whole first path
of a new user, ending with a raw search of the vault files for the plaintext."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ADMIN, PASSPHRASE, TODAY, Nok, Result, init_args, run_nok

from nokcli import editor


def days_ago(n: int) -> str:
    return (TODAY - dt.timedelta(days=n)).isoformat()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.stderr
    return result


def fails(result: Result, code: int) -> str:
    """Asserts a clean failure: the exit code, nothing on stdout, one error line on stderr."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("nok: ") for line in lines), lines
    lines = [line for line in lines if not line.startswith("nok: warning: ")]
    assert lines[0].startswith("nok: error: "), lines
    assert lines[1:] == [] or (len(lines) == 2 and lines[1].startswith("nok: hint: ")), lines
    return lines[0]


class Checked(Nok):
    """The CLI runner, asserting on every run that no passphrase or traceback leaks out."""

    def __init__(self, inner: Nok, secrets: list[str]) -> None:
        super().__init__()
        self.runner = inner.runner
        self.secrets = secrets

    def __call__(self, *args: str, input: str | None = None) -> Result:
        result = super().__call__(*args, input=input)
        for secret in self.secrets:
            assert secret not in result.stdout
            assert secret not in result.stderr
        assert "Traceback" not in result.stderr
        return result


@pytest.fixture
def cli(cli_vault: Nok) -> Checked:
    return Checked(cli_vault, [PASSPHRASE])


@pytest.fixture
def fresh(nok: Nok) -> Checked:
    """The runner before any vault exists."""
    return Checked(nok, [PASSPHRASE])


def state(cli: Nok) -> tuple[int, int, int]:
    data = json.loads(ok(cli("status", "--json")).stdout)
    return data["active_consents"], data["ended_consents"], data["notes"]


def add_consent(cli: Nok, *extra: str) -> str:
    result = ok(
        cli(
            "consent",
            "add",
            "--subject",
            "Kari",
            "--purpose",
            "follow-up",
            "--category",
            "conversation-notes",
            *extra,
            "--json",
        )
    )
    return str(json.loads(result.stdout)["id"])


def add_note(cli: Nok, consent_id: str, text: str, *extra: str) -> str:
    result = ok(cli("note", "add", consent_id, "--text", text, *extra, "--json"))
    return str(json.loads(result.stdout)["id"])


# -- init and status ---------------------------------------------------------------------


def test_init_creates_a_private_vault(fresh: Checked, vault_path: Path, tmp_path: Path) -> None:
    result = ok(fresh(*init_args(tmp_path, "--json")))
    assert json.loads(result.stdout) == {
        "vault": str(vault_path),
        "admin": ADMIN,
        "kdf": "interactive",
    }
    assert "warning" in result.stderr
    assert "interactive" in result.stderr
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "recovery-0.txt").stat().st_mode) == 0o600


def test_init_twice_is_refused(cli: Checked, vault_path: Path, tmp_path: Path) -> None:
    before = vault_path.read_bytes()
    line = fails(cli(*init_args(tmp_path)), 9)
    assert "already exists" in line
    assert vault_path.read_bytes() == before


def test_init_human_output_and_admin_name(fresh: Checked, tmp_path: Path) -> None:
    result = ok(fresh(*init_args(tmp_path, "--admin", "berit")))
    assert result.stdout == ""
    assert "berit" in result.stderr
    data = json.loads(ok(fresh("--as", "berit", "consent", "list", "--json")).stdout)
    assert data == []


@pytest.mark.parametrize(
    "args", [("--kdf", "fast"), ("--admin", "two words"), ("--retain-days", "0")]
)
def test_init_bad_values_create_nothing(
    fresh: Checked, vault_path: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    fails(fresh(*init_args(tmp_path, *args)), 2)
    assert not vault_path.parent.exists()
    assert not list(tmp_path.glob("recovery-*"))


def test_init_with_a_short_passphrase_creates_nothing(
    fresh: Checked, vault_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOK_PASSPHRASE", "short")
    assert "at least" in fails(fresh(*init_args(tmp_path)), 2)
    assert not vault_path.exists()


def test_init_with_group(fresh: Checked, vault_path: Path, tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(os.getgid()).gr_name
    ok(fresh(*init_args(tmp_path, "--group", group)))
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o660
    assert stat.S_IMODE(vault_path.parent.stat().st_mode) == 0o2770
    add_consent(fresh)
    assert state(fresh) == (1, 0, 0)


def test_status_needs_no_passphrase(cli: Checked, monkeypatch: pytest.MonkeyPatch) -> None:
    consent = add_consent(cli, "--retain-days", "10")
    add_note(cli, consent, "x")
    monkeypatch.delenv("NOK_PASSPHRASE")
    data = json.loads(ok(cli("status", "--json")).stdout)
    assert data["active_consents"] == 1
    assert data["notes"] == 1
    assert data["next_deadline"] == (TODAY + dt.timedelta(days=10)).isoformat()
    assert isinstance(data["schema_version"], int)
    assert data["master_key_version"] == 1
    human = ok(cli("status")).stdout
    assert "active consents" in human
    # Nothing pending reads as a word, not a blank a reader has to interpret.
    pending = next(line for line in human.splitlines() if line.startswith("rotation pending"))
    assert pending.split()[-1] == "none"


# -- the vault file ----------------------------------------------------------------------


def test_a_typo_in_vault_is_an_error_and_creates_nothing(cli: Checked, tmp_path: Path) -> None:
    typo = tmp_path / "vaultdri" / "vault.db"
    for args in (("status",), ("consent", "list"), ("note", "add", "C-0000-0000", "--text", "x")):
        line = fails(cli("--vault", str(typo), *args), 3)
        assert "no vault" in line
    assert not typo.parent.exists()


def test_a_world_readable_vault_is_refused_with_a_hint(cli: Checked, vault_path: Path) -> None:
    vault_path.chmod(0o644)
    result = cli("status")
    fails(result, 10)
    assert f"chmod 600 {vault_path}" in result.stderr


def test_a_symlinked_vault_is_refused(cli: Checked, vault_path: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(vault_path)
    fails(cli("--vault", str(link), "status"), 10)


def test_a_file_that_is_not_a_vault(cli: Checked, tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("shopping list\n")
    other.chmod(0o600)
    assert "not a nok vault" in fails(cli("--vault", str(other), "status"), 3)
    assert other.read_text() == "shopping list\n"


def test_a_schema_from_a_newer_nok(cli: Checked, vault_path: Path) -> None:
    conn = sqlite3.connect(vault_path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('nok', '9999_future', '2030-01-01')"
    )
    conn.commit()
    conn.close()
    fails(cli("status"), 8)
    fails(cli("consent", "list"), 8)


def test_vault_busy(cli: Checked, vault_path: Path) -> None:
    consent = add_consent(cli)
    before = state(cli)
    blocker = sqlite3.connect(vault_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        line = fails(cli("--busy-timeout", "0.2", "note", "add", consent, "--text", "x"), 5)
        assert "vault busy" in line
        line = fails(
            cli(
                "--busy-timeout",
                "0.2",
                "consent",
                "add",
                "--subject",
                "A",
                "--purpose",
                "p",
                "--category",
                "c",
            ),
            5,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert state(cli) == before


def test_tampered_note_is_one_line_exit_7(cli: Checked, vault_path: Path) -> None:
    consent = add_consent(cli)
    first, second = add_note(cli, consent, "one"), add_note(cli, consent, "two")
    conn = sqlite3.connect(vault_path)
    conn.execute(
        "UPDATE notes SET record = (SELECT record FROM notes WHERE id = ?) WHERE id = ?",
        [first, second],
    )
    conn.commit()
    conn.close()
    line = fails(cli("note", "show", second), 7)
    assert "integrity" in line
    fails(cli("note", "list"), 7)
    ok(cli("note", "show", first))


# -- passphrases -------------------------------------------------------------------------


def test_wrong_passphrase_is_one_line_exit_4(cli: Checked, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOK_PASSPHRASE", "not the right one")
    cli.secrets.append("not the right one")
    line = fails(cli("consent", "list"), 4)
    assert "wrong passphrase" in line


def test_unknown_staff_name_exit_4(cli: Checked) -> None:
    fails(cli("--as", "nobody", "consent", "list"), 4)


def test_no_passphrase_and_no_terminal(cli: Checked, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOK_PASSPHRASE")
    fails(cli("consent", "list"), 4)


def test_passphrase_is_never_an_argument(cli: Checked) -> None:
    result = cli("--passphrase", PASSPHRASE.replace(" ", "-"), "consent", "list")
    assert result.exit_code == 2


def test_passphrase_file(cli: Checked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOK_PASSPHRASE")
    secret = tmp_path / "secret"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    ok(cli("--passphrase-file", str(secret), "consent", "list"))
    monkeypatch.setenv("NOK_PASSPHRASE_FILE", str(secret))
    ok(cli("consent", "list"))
    monkeypatch.delenv("NOK_PASSPHRASE_FILE")
    fails(cli("--passphrase-file", str(tmp_path / "missing"), "consent", "list"), 4)
    secret.chmod(0o644)
    result = cli("--passphrase-file", str(secret), "consent", "list")
    fails(result, 10)
    assert "chmod 600" in result.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("another passphrase\n")
    wrong.chmod(0o600)
    fails(cli("--passphrase-file", str(wrong), "consent", "list"), 4)


def test_passphrase_file_wins_over_the_environment(
    cli: Checked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOK_PASSPHRASE", "not the right one")
    secret = tmp_path / "secret"
    secret.write_text(PASSPHRASE)
    secret.chmod(0o600)
    ok(cli("--passphrase-file", str(secret), "consent", "list"))


# -- consents ----------------------------------------------------------------------------

CONSENT_KEYS = {"id", "status", "subject", "purpose", "categories", "given", "retain_until"}


def test_consent_add_list_show(cli: Checked) -> None:
    result = ok(
        cli(
            "consent",
            "add",
            "--subject",
            "Kari N.",
            "--purpose",
            "oppfølging etter samtaler",
            "--category",
            "conversation-notes",
            "--category",
            "safety",
            "--form-ref",
            "perm 3, ark 12",
            "--retain-days",
            "90",
            "--json",
        )
    )
    added = json.loads(result.stdout)
    consent_id = added["id"]
    assert consent_id.startswith("C-")
    assert added["retain_until"] == (TODAY + dt.timedelta(days=90)).isoformat()
    listed = json.loads(ok(cli("consent", "list", "--json")).stdout)
    assert isinstance(listed, list)
    assert [c["id"] for c in listed] == [consent_id]
    shown = json.loads(ok(cli("consent", "show", consent_id.lower(), "--json")).stdout)
    assert shown == listed[0]
    assert set(shown) >= CONSENT_KEYS
    assert shown["status"] == "active"
    assert shown["subject"] == "Kari N."
    assert shown["purpose"] == "oppfølging etter samtaler"
    assert shown["categories"] == ["conversation-notes", "safety"]
    assert shown["given"] == TODAY.isoformat()
    assert shown["form_ref"] == "perm 3, ark 12"
    human = ok(cli("consent", "show", consent_id)).stdout
    assert "oppfølging etter samtaler" in human
    assert "perm 3, ark 12" in human
    table = ok(cli("consent", "list")).stdout
    assert consent_id in table
    assert "Kari N." in table


def test_consent_add_human_output_is_the_id(cli: Checked) -> None:
    result = ok(cli("consent", "add", "--subject", "A", "--purpose", "p", "--category", "c"))
    consent_id = result.stdout.strip()
    assert consent_id.startswith("C-")
    assert consent_id in result.stderr


def test_under_16_needs_a_guardian(cli: Checked) -> None:
    base = ("consent", "add", "--subject", "Liten", "--purpose", "p", "--category", "c")
    fails(cli(*base, "--under-16"), 2)
    assert state(cli) == (0, 0, 0)
    consent_id = json.loads(ok(cli(*base, "--under-16", "--guardian", "Mor", "--json")).stdout)[
        "id"
    ]
    shown = json.loads(ok(cli("consent", "show", consent_id, "--json")).stdout)
    assert shown["under_16"] is True
    assert shown["guardian"] == "Mor"


@pytest.mark.parametrize(
    "args",
    [
        ("--subject", "A", "--category", "c"),
        ("--subject", "A", "--purpose", "p"),
        ("--purpose", "p", "--category", "c"),
        ("--subject", "A", "--purpose", "p", "--category", "c", "--retain-days", "ten"),
    ],
)
def test_consent_add_missing_options_is_a_usage_error(cli: Checked, args: tuple[str, ...]) -> None:
    result = cli("consent", "add", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert state(cli) == (0, 0, 0)


@pytest.mark.parametrize(
    "args",
    [
        ("--subject", " ", "--purpose", "p", "--category", "c"),
        ("--subject", "A", "--purpose", "p", "--category", " "),
        ("--subject", "A", "--purpose", "p", "--category", "c", "--retain-days", "0"),
        ("--subject", "A", "--purpose", "p", "--category", "c", "--given", "2999-01-01"),
        ("--subject", "A", "--purpose", "p", "--category", "c", "--given", "1.1.2026"),
    ],
)
def test_consent_add_bad_values(cli: Checked, args: tuple[str, ...]) -> None:
    fails(cli("consent", "add", *args), 2)
    assert state(cli) == (0, 0, 0)


def test_consent_unknown_and_malformed_ids(cli: Checked) -> None:
    assert "C-0000-0000" in fails(cli("consent", "show", "C-0000-0000"), 6)
    fails(cli("consent", "show", "hello"), 2)


def test_empty_lists(cli: Checked) -> None:
    assert json.loads(ok(cli("consent", "list", "--json")).stdout) == []
    assert json.loads(ok(cli("note", "list", "--json")).stdout) == []
    result = ok(cli("consent", "list"))
    assert result.stdout == ""
    assert "no consents" in result.stderr


# -- notes -------------------------------------------------------------------------------

NOTE_KEYS = {"id", "consent_id", "date", "kind", "text"}


def test_note_add_list_show(cli: Checked) -> None:
    consent = add_consent(cli, "--given", days_ago(30))
    first = add_note(cli, consent, "Første samtale.", "--date", days_ago(20))
    piped = ok(cli("note", "add", consent, "--kind", "phone", input="Ringte, avtalte ny tid.\n"))
    second = piped.stdout.strip()
    assert second.startswith("N-")
    listed = json.loads(ok(cli("note", "list", "--json")).stdout)
    assert [n["id"] for n in listed] == [first, second]
    assert all(set(n) >= NOTE_KEYS for n in listed)
    assert listed[0]["text"] == "Første samtale."
    assert listed[0]["date"] == days_ago(20)
    assert listed[0]["kind"] == "one-to-one"
    assert listed[0]["consent_id"] == consent
    assert listed[1]["text"] == "Ringte, avtalte ny tid."
    assert listed[1]["kind"] == "phone"
    assert listed[1]["date"] == TODAY.isoformat()
    shown = json.loads(ok(cli("note", "show", second, "--json")).stdout)
    assert shown == listed[1]
    human = ok(cli("note", "show", first)).stdout
    assert "Første samtale." in human
    assert consent in human


def test_note_list_filters(cli: Checked) -> None:
    a = add_consent(cli, "--given", days_ago(30))
    b = add_consent(cli, "--given", days_ago(30))
    old = add_note(cli, a, "old", "--date", days_ago(10))
    new_a = add_note(cli, a, "new a")
    new_b = add_note(cli, b, "new b")

    def ids(*args: str) -> list[str]:
        return [n["id"] for n in json.loads(ok(cli("note", "list", *args, "--json")).stdout)]

    assert ids("--consent", a) == [old, new_a]
    assert ids("--consent", b.lower()) == [new_b]
    assert ids("--since", days_ago(5)) == [new_a, new_b]
    assert ids("--since", days_ago(5), "--consent", a) == [new_a]
    table = ok(cli("note", "list")).stdout
    assert old in table
    assert new_b in table
    fails(cli("note", "list", "--since", "last week"), 2)
    fails(cli("note", "list", "--consent", "C-0000-0000"), 6)


def test_note_kinds(cli: Checked) -> None:
    consent = add_consent(cli)
    for kind in ("phone", "group", "next-of-kin", "open-house", "outreach", "other"):
        note = add_note(cli, consent, "x", "--kind", kind)
        assert json.loads(ok(cli("note", "show", note, "--json")).stdout)["kind"] == kind
    assert "therapy" in fails(cli("note", "add", consent, "--kind", "therapy", "--text", "x"), 2)
    assert state(cli) == (1, 0, 6)


def test_note_dates(cli: Checked) -> None:
    consent = add_consent(cli, "--given", days_ago(10))
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    assert "future" in fails(cli("note", "add", consent, "--text", "x", "--date", tomorrow), 2)
    fails(cli("note", "add", consent, "--text", "x", "--date", days_ago(11)), 2)
    fails(cli("note", "add", consent, "--text", "x", "--date", "31.12.2025"), 2)
    assert state(cli) == (1, 0, 0)
    add_note(cli, consent, "x", "--date", days_ago(10))


def test_long_note_from_a_script_warns_and_saves(cli: Checked) -> None:
    consent = add_consent(cli)
    text = "ord " * 400
    result = ok(cli("note", "add", consent, input=text))
    assert "warning" in result.stderr
    assert "1500" in result.stderr
    note = result.stdout.strip()
    assert json.loads(ok(cli("note", "show", note, "--json")).stdout)["text"] == text.strip()


def test_too_long_note_is_refused(cli: Checked) -> None:
    consent = add_consent(cli)
    line = fails(cli("note", "add", consent, input="x" * 20001), 2)
    assert "20000" in line
    assert state(cli) == (1, 0, 0)
    add_note(cli, consent, "x" * 20000)


def test_empty_note_is_refused(cli: Checked) -> None:
    consent = add_consent(cli)
    fails(cli("note", "add", consent, input="  \n"), 2)
    fails(cli("note", "add", consent, "--text", ""), 2)
    assert state(cli) == (1, 0, 0)


def test_notes_need_an_active_consent(cli: Checked, vault_path: Path) -> None:
    consent = add_consent(cli)
    fails(cli("note", "add", "C-0000-0000", "--text", "x"), 6)
    fails(cli("note", "add", "hello", "--text", "x"), 2)
    conn = sqlite3.connect(vault_path)
    conn.execute("UPDATE consents SET status = 'withdrawn' WHERE id = ?", [consent])
    conn.commit()
    conn.close()
    assert "withdrawn" in fails(cli("note", "add", consent, "--text", "x"), 9)
    assert state(cli) == (0, 1, 0)


def test_note_unknown_ids(cli: Checked) -> None:
    fails(cli("note", "show", "N-0000-0000-0"), 6)
    fails(cli("note", "show", "C-0000-0000"), 2)


# -- the editor --------------------------------------------------------------------------


def fake_editor(tmp_path: Path, body: str, exit_code: int = 0) -> tuple[Path, Path]:
    """A shell script that records where and how it was asked to edit, then writes ``body``."""
    log = tmp_path / "editor.log"
    script = tmp_path / "fake-editor"
    script.write_text(
        "#!/bin/sh\n"
        f'log="{log}"\n'
        'echo "passphrase in my environment: ${NOK_PASSPHRASE:-none}" >> "$log"\n'
        'stat -c "%a %u" "$(dirname "$1")" >> "$log"\n'
        'stat -c "%a" "$1" >> "$log"\n'
        'echo "$1" >> "$log"\n'
        f"printf '%s\\n' '{body}' >> \"$1\"\n"
        f"exit {exit_code}\n"
    )
    script.chmod(0o700)
    return script, log


def run_on_a_terminal(
    *args: str, env: dict[str, str], answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run nok with a pseudo-terminal as standard input (so it reaches for $EDITOR)."""
    master, slave = pty.openpty()
    try:
        if answer is not None:
            os.write(master, answer.encode())
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
        full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "nokcli", *args],
            stdin=slave,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(slave)
        os.close(master)


def editor_log(log: Path) -> tuple[str, str, Path]:
    dir_line, file_mode, path = log.read_text().splitlines()[-3:]
    return dir_line, file_mode, Path(path)


def test_note_from_the_editor(cli: Checked, nok_env: dict[str, str], tmp_path: Path) -> None:
    consent = add_consent(cli)
    script, log = fake_editor(tmp_path, "EDITOR-MARKER written in an editor")
    result = run_on_a_terminal(
        "note", "add", consent, "--json", env={**nok_env, "EDITOR": str(script)}
    )
    assert result.returncode == 0, result.stderr
    note = json.loads(result.stdout)["id"]
    dir_line, file_mode, path = editor_log(log)
    assert dir_line == f"700 {os.getuid()}"
    assert file_mode == "600"
    assert path.parent.parent == editor.private_dir()
    assert path.name.startswith("note-")
    assert not path.exists()
    assert not path.parent.exists()
    # Editor plugins and shell escapes must not see the passphrase.
    assert "passphrase in my environment: none" in log.read_text()
    shown = json.loads(ok(cli("note", "show", note, "--json")).stdout)
    assert shown["text"] == "EDITOR-MARKER written in an editor"


def test_editor_failure_or_empty_note_saves_nothing(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    # A failed editor is an error (2); a note left empty is the cancel the header offers
    # (130, as a declined question).
    for body, code, expected in (("some text", 1, 2), ("# only a comment", 0, 130)):
        script, log = fake_editor(tmp_path, body, exit_code=code)
        result = run_on_a_terminal("note", "add", consent, env={**nok_env, "EDITOR": str(script)})
        assert result.returncode == expected, result.stderr
        assert "Traceback" not in result.stderr
        assert not editor_log(log)[2].exists()
    assert state(cli) == (1, 0, 0)


def test_long_note_on_a_terminal_asks_first(cli: Checked, nok_env: dict[str, str]) -> None:
    consent = add_consent(cli)
    text = "ord " * 400
    refused = run_on_a_terminal("note", "add", consent, "--text", text, env=nok_env, answer="n\n")
    assert refused.returncode == 130
    assert "1500" in refused.stderr
    assert refused.stdout.strip() == ""
    assert state(cli) == (1, 0, 0)
    agreed = run_on_a_terminal("note", "add", consent, "--text", text, env=nok_env, answer="y\n")
    assert agreed.returncode == 0, agreed.stderr
    assert state(cli) == (1, 0, 1)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_an_editor_file_left_by_a_crash_is_wiped_at_the_next_run(cli: Checked) -> None:
    directory = editor.private_dir()
    leftover = directory / f"note-{dead_pid()}-crashtest.txt"
    leftover.write_text("LEFTOVER plaintext from a crashed nok")
    alive = directory / f"note-{os.getpid()}-livetest.txt"
    alive.write_text("an editor still open in another nok")
    try:
        ok(cli("status"))
        assert not leftover.exists()
        assert alive.exists()
    finally:
        leftover.unlink(missing_ok=True)
        alive.unlink(missing_ok=True)


def crashing_editor(tmp_path: Path) -> Path:
    """Writes the note, a swap file beside it holding the text (as vim does) and a backup
    file, then kills the nok that started it (its parent) and dies with it."""
    script = tmp_path / "vim-like"
    script.write_text(
        "#!/bin/sh\n"
        'dir="$(dirname "$1")"; base="$(basename "$1")"\n'
        "printf 'SWAP-MARKER plaintext\\n' > \"$dir/.$base.swp\"\n"
        "printf 'SWAP-MARKER plaintext\\n' > \"$1~\"\n"
        "printf 'SWAP-MARKER plaintext\\n' >> \"$1\"\n"
        'kill -9 "$PPID"\n'
    )
    script.chmod(0o700)
    return script


def private_files() -> list[Path]:
    return [p for p in editor.private_dir().rglob("*") if p.is_file()]


def test_editor_swap_and_backup_files_go_with_the_note(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    script = tmp_path / "keeps-swap"
    script.write_text(
        "#!/bin/sh\n"
        'dir="$(dirname "$1")"; base="$(basename "$1")"\n'
        "printf 'SWAP-MARKER plaintext\\n' > \"$dir/.$base.swp\"\n"
        "printf 'SWAP-MARKER plaintext\\n' >> \"$1\"\n"
    )
    script.chmod(0o700)
    result = run_on_a_terminal("note", "add", consent, env={**nok_env, "EDITOR": str(script)})
    assert result.returncode == 0, result.stderr
    assert private_files() == []


def test_a_swap_file_left_by_a_killed_nok_is_wiped_at_the_next_run(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    script = crashing_editor(tmp_path)
    killed = run_on_a_terminal("note", "add", consent, env={**nok_env, "EDITOR": str(script)})
    assert killed.returncode == -9
    left = private_files()
    assert any(p.name.endswith(".swp") for p in left)
    assert any(b"SWAP-MARKER" in p.read_bytes() for p in left)
    ok(cli("status"))
    assert private_files() == []
    assert list(editor.private_dir().iterdir()) == []


def test_leftover_cleanup_never_touches_what_is_not_nok_s(cli: Checked, tmp_path: Path) -> None:
    directory = editor.private_dir()
    outside = tmp_path / "precious"
    outside.write_text("not nok's")
    link = directory / f"edit-{dead_pid()}-link"
    link.symlink_to(tmp_path)
    try:
        ok(cli("status"))
        assert not link.is_symlink()
        assert outside.read_text() == "not nok's"
    finally:
        link.unlink(missing_ok=True)


# -- the whole first path, as real processes ---------------------------------------------

PLAINTEXT = [
    "Solveig Marker-Alias",
    "oppfølging etter overgrep MARKER",
    "MARKER-category-safety-plan",
    "MARKER note from text æøå",
    "MARKER note from stdin",
    "MARKER note from the editor",
    "MARKER guardian name",
    "MARKER binder 7",
]


def test_done_when_path(nok_env: dict[str, str], vault_path: Path, tmp_path: Path) -> None:
    env = dict(nok_env)

    def nok(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = run_nok(*args, env=env, input=input)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert PASSPHRASE not in result.stdout + result.stderr
        return result

    nok(*init_args(tmp_path))
    consent = json.loads(
        nok(
            "consent",
            "add",
            "--subject",
            PLAINTEXT[0],
            "--purpose",
            PLAINTEXT[1],
            "--category",
            PLAINTEXT[2],
            "--guardian",
            PLAINTEXT[6],
            "--under-16",
            "--form-ref",
            PLAINTEXT[7],
            "--json",
        ).stdout
    )["id"]
    first = nok("note", "add", consent, "--text", PLAINTEXT[3]).stdout.strip()
    second = nok("note", "add", consent, input=PLAINTEXT[4] + "\n").stdout.strip()
    script, _ = fake_editor(tmp_path, PLAINTEXT[5])
    edited = run_on_a_terminal("note", "add", consent, env={**env, "EDITOR": str(script)})
    assert edited.returncode == 0, edited.stderr
    third = edited.stdout.strip()

    listed = json.loads(nok("note", "list", "--json").stdout)
    assert [n["id"] for n in listed] == [first, second, third]
    assert [n["text"] for n in listed] == PLAINTEXT[3:6]
    assert PLAINTEXT[5] in nok("note", "show", third).stdout
    assert PLAINTEXT[0] in nok("consent", "list").stdout

    files = [p for p in vault_path.parent.iterdir() if p.name.startswith(vault_path.name)]
    assert vault_path in files
    for path in files:
        raw = path.read_bytes()
        for text in PLAINTEXT:
            assert text.encode("utf-8") not in raw, (path.name, text)
        assert b"MARKER" not in raw
    # While a connection holds the WAL open, the -wal file must be clean too.
    conn = sqlite3.connect(vault_path)
    conn.execute("PRAGMA journal_mode")
    try:
        nok("note", "add", consent, "--text", "MARKER while the wal is held")
        wal = vault_path.with_name(vault_path.name + "-wal")
        assert wal.exists()
        assert b"MARKER" not in wal.read_bytes()
        assert b"MARKER" not in vault_path.read_bytes()
    finally:
        conn.close()


def test_nok_disables_core_dumps_and_sets_a_private_umask(tmp_path: Path) -> None:
    probe = (
        "import os, resource, sys\n"
        "sys.argv = ['nok', '--vault', sys.argv[1], 'status']\n"
        "from nokcli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrlimit(resource.RLIMIT_CORE), oct(os.umask(0)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "missing.db")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.strip() == "(0, 0) 0o77", result.stderr


def test_end_of_input_at_the_passphrase_prompt_is_an_interruption(
    cli: Checked, nok_env: dict[str, str]
) -> None:
    add_consent(cli)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update({k: v for k, v in nok_env.items() if k != "NOK_PASSPHRASE"})
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", "note", "list", "--json"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    os.close(follower)
    try:
        # The hidden prompt flushes pending input when it starts: keep typing Ctrl-D.
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            os.write(leader, b"\x04")
            time.sleep(0.2)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(leader)
    assert proc.returncode == 130, err
    assert out == ""
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("nok: error: interrupted")


def test_a_bug_while_reading_the_command_line_is_one_line_not_a_traceback(
    nok_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any command runs (typer converting --vault), a bug still gives one line."""
    from nokcli import app, coercion

    def broken(self: object, value: object, param: object, ctx: object) -> object:
        raise RuntimeError("a bug with /secret/path in it")

    monkeypatch.setattr(coercion._Deferred, "_coerce_value", broken)
    monkeypatch.setattr(sys, "argv", ["nok", "--vault", "/tmp/x.db", "status"])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("nok: error: internal error (RuntimeError); this is a bug in nok")
    assert "Traceback" not in err
    assert "/secret/path" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--version"], ["completion", "bash"]])
def test_the_fast_answers_report_a_full_disk_in_one_line(args: list[str]) -> None:
    """`nok --version` and `nok completion SHELL` answer before the command line is loaded,
    and still keep the contract: one line and exit 12 when the output cannot be written."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "nokcli", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    assert done.returncode == 12
    assert done.stderr.startswith("nok: error: cannot write to standard output")
    assert len(done.stderr.strip().splitlines()) == 1
