"""``nok shell`` (one unlock for a working session) and shell completion.

The adversaries: someone at the terminal after the counselor walked away (idle lock; no
history to scroll back through, in memory or on disk), a file reader after the session
(no history file anywhere), another process that rotates the keys, resets the slot or
restores the vault while the session holds its unlock, and a completion script that must
never unlock anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ADMIN, CLOCK_ENV, NOW, PASSPHRASE, Nok, run_nok

from nokcli import complete
from vault import consents, copies, crypto, notes, rotation, staff
from vault.errors import KeysRotated, SlotChanged, VaultReplaced
from vault.session import Unlocked, Vault

SUBJECT = "KARI-SUBJECT-MARKER"


def add_consent(cli: Nok) -> str:
    result = cli(
        "consent", "add", "--subject", SUBJECT, "--purpose", "follow-up",
        "--category", "safety",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def add_note(cli: Nok, consent: str, text: str) -> str:
    result = cli("note", "add", consent, "--text", text)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def kdf_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2id derivation made in this process, by staff name."""
    calls: list[str] = []
    real = crypto.derive_kek

    def counting(passphrase: bytes, salt: bytes, params: crypto.KdfParams, *, name: str) -> bytes:
        calls.append(name)
        return real(passphrase, salt, params, name=name)

    monkeypatch.setattr(crypto, "derive_kek", counting)
    return calls


def trail(cli: Nok) -> list[dict[str, str]]:
    result = cli("audit", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# -- one unlock ---------------------------------------------------------------------------


def twenty_commands(consent: str, note: str) -> list[str]:
    return [
        f"note add {consent} --text 'Snakket om søvn.'",
        f"note add {consent} --kind phone --text Ringte.",
        "note list",
        f"note list --consent {consent}",
        f"note show {note}",
        "note search søvn",
        "consent list",
        f"consent show {consent}",
        "consent list --all --json",
        "status",
        "settings show",
        f"consent extend {consent} --days 30",
        "staff list",
        "audit verify",
        f"note show {note} --json",
        "note search ringte --json",
        f"note add {consent} --text 'Tredje notat.'",
        "key status",
        "note list --json",
        "audit list",
    ]


def test_twenty_commands_after_one_unlock_run_no_more_argon2id(
    cli_vault: Nok, kdf_calls: list[str]
) -> None:
    consent = add_consent(cli_vault)
    note = add_note(cli_vault, consent, "Første samtale.")
    lines = twenty_commands(consent, note)
    kdf_calls.clear()

    result = cli_vault("shell", input="\n".join(lines) + "\n")

    assert result.exit_code == 0, result.stderr
    assert kdf_calls == [ADMIN]
    assert "nok: error" not in result.stderr
    assert "Snakket om søvn." in result.stdout
    # The same twenty as separate commands pay one Argon2id each (of those that unlock).
    kdf_calls.clear()
    for line in lines:
        assert cli_vault(*shlex.split(line)).exit_code == 0
    assert len(kdf_calls) >= 17


def test_audit_entries_are_those_of_the_command_line(cli_vault: Nok, tmp_path: Path) -> None:
    consent = add_consent(cli_vault)
    note = add_note(cli_vault, consent, "Første samtale.")
    lines = [
        f"consent show {consent}",
        f"note list --consent {consent}",
        f"note show {note}",
        "note search samtale",
        f"export {consent} --output {tmp_path / 'copy.md'}",
        f"consent extend {consent} --days 10",
        f"note add {consent} --text Ny.",
        "settings set note-guideline 1600",
        "audit list",
        "purge --dry-run",
    ]

    def entries_made_by(run: Callable[[], None]) -> list[tuple[str, str, str | None, str | None]]:
        before = len(trail(cli_vault))
        run()
        made = trail(cli_vault)[before:-1]  # the last is this audit list's own entry
        return [
            (
                e["actor"],
                e["action"],
                e["consent_id"],
                None if e["action"] == "note.add" else e["object_id"],
            )
            for e in made
        ]

    def by_cli() -> None:
        for line in lines:
            (tmp_path / "copy.md").unlink(missing_ok=True)
            assert cli_vault(*shlex.split(line)).exit_code == 0, line

    def by_shell() -> None:
        (tmp_path / "copy.md").unlink(missing_ok=True)
        result = cli_vault("shell", input="".join(f"{line}\n" for line in lines))
        assert result.exit_code == 0, result.stderr
        assert "nok: error" not in result.stderr

    on_the_command_line = entries_made_by(by_cli)
    in_the_shell = entries_made_by(by_shell)
    assert len(on_the_command_line) >= len(lines) - 2
    assert in_the_shell == on_the_command_line


def test_commands_that_change_who_can_open_the_vault_ask_for_the_passphrase_again(
    cli_vault: Nok, kdf_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", "an intruder's own passphrase")
    kdf_calls.clear()
    result = cli_vault("shell", input="consent list\nkey rotate --yes\nconsent list\npasswd\n")
    assert result.exit_code == 0, result.stderr
    # The unlock, then each of the two asks again (passwd also makes and proves the new
    # slot: two more derivations of its own).
    assert kdf_calls[:3] == [ADMIN, ADMIN, ADMIN]
    assert "'nok key rotate' changes who can open the vault" in result.stderr
    assert "'nok passwd' changes who can open the vault" in result.stderr


def test_an_open_session_cannot_change_the_passphrase_without_it(
    cli_vault: Nok, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nokcli import passphrase

    # The counselor unlocks; someone else at the terminal then tries passwd.
    typed = iter([PASSPHRASE.encode(), b"a guess", b"another guess"])
    real = passphrase.current
    monkeypatch.setattr(passphrase, "current", lambda file, *, who: next(typed))
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", "an intruder's own passphrase")
    result = cli_vault("shell", input="consent list\npasswd\nconsent list\n")
    assert result.exit_code == 0
    assert result.stderr.count("nok: error: wrong passphrase for anne") == 2
    monkeypatch.setattr(passphrase, "current", real)
    # Unchanged: the old passphrase still opens the vault, the intruder's does not.
    assert cli_vault("consent", "list").exit_code == 0
    monkeypatch.setenv("NOK_PASSPHRASE", "an intruder's own passphrase")
    assert cli_vault("consent", "list").exit_code == 4


def test_commands_that_make_no_sense_inside_are_refused(cli_vault: Nok) -> None:
    result = cli_vault("shell", input="init\nshell\n--vault /tmp/other.db status\nstatus --json\n")
    assert result.exit_code == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("nok: error:")]
    assert len(errors) == 3
    assert "'nok init' does not run inside nok shell" in errors[0]
    assert "'nok shell' does not run inside nok shell" in errors[1]
    assert "--vault is set when nok shell starts" in errors[2]
    assert json.loads(result.stdout)["staff"] == 1


def test_a_failed_command_leaves_the_session_open(cli_vault: Nok, kdf_calls: list[str]) -> None:
    consent = add_consent(cli_vault)
    kdf_calls.clear()
    result = cli_vault(
        "shell", input=f"note show N-0000-0000-0\nnote add {consent} --kind nope\nconsent list\n"
    )
    assert result.exit_code == 0
    assert "no note with id N-0000-0000-0" in result.stderr
    assert consent in result.stdout
    assert kdf_calls == [ADMIN]


def test_a_wrong_passphrase_at_the_start_ends_it(cli_vault: Nok, monkeypatch) -> None:
    monkeypatch.setenv("NOK_PASSPHRASE", "not the passphrase")
    result = cli_vault("shell", input="status\n")
    assert result.exit_code == 4
    assert result.stderr.startswith("nok: error: wrong passphrase for anne")
    assert result.stdout == ""


@pytest.mark.parametrize("minutes", ["0", "-1", "2000"])
def test_an_idle_lock_out_of_range_is_refused(cli_vault: Nok, minutes: str) -> None:
    result = cli_vault("shell", "--idle-minutes", minutes, input="status\n")
    assert result.exit_code == 2
    assert "the idle lock must be more than 0" in result.stderr


# -- what must be looked at again between commands ----------------------------------------


@pytest.fixture
def second(unlocked: Unlocked, vault_path: Path) -> Iterator[Unlocked]:
    """Another process's unlock of the same vault, as a second admin."""
    staff.add(unlocked, "bo", passphrase=b"bo's own passphrase", role="admin")
    other = Vault.open(vault_path).unlock("bo", b"bo's own passphrase", now=NOW)
    try:
        yield other
    finally:
        other.close()


def add_api_consent(u: Unlocked) -> str:
    data = consents.ConsentInput(subject="S", purpose="p", categories=("safety",))
    return consents.add(u, data).id


def test_a_rotation_by_another_process_outdates_a_held_unlock(
    unlocked: Unlocked, second: Unlocked
) -> None:
    held = Vault.open(unlocked.vault.path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        held.resume(NOW)
        rotation.rotate(second)
        with pytest.raises(KeysRotated):
            held.resume(NOW)
    finally:
        held.close()


CHANGES = {
    "reset": lambda other: staff.reset(other, ADMIN, b"a new passphrase for anne"),
    "role": lambda other: staff.set_role(other, ADMIN, "staff"),
    "removal": lambda other: staff.remove(other, ADMIN),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_reset_role_change_or_removal_outdates_a_held_unlock(
    unlocked: Unlocked, second: Unlocked, vault_path: Path, change: str
) -> None:
    held = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        held.resume(NOW)
        CHANGES[change](second)
        with pytest.raises(SlotChanged):
            held.resume(NOW)
    finally:
        held.close()


def test_a_restored_vault_outdates_a_held_unlock(unlocked: Unlocked, vault_path: Path) -> None:
    from vault import backup

    copy = backup.backup(unlocked, vault_path.parent / "copy.db", now=NOW, actor=ADMIN).path
    held = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        # The session open on the old file does not stop the restore half-way: the file set
        # aside is recorded, so later withdrawals reach it.
        restored = backup.restore(
            copy,
            vault_path,
            erasures_file=None,
            now=NOW,
            actor=ADMIN,
            passphrase=PASSPHRASE.encode(),
        )
        assert restored.replaced is not None
        assert restored.replaced.absolute() in {e.path for e in copies.read(vault_path)}
        with pytest.raises(VaultReplaced):
            held.resume(NOW)
    finally:
        held.close()


def test_an_interrupted_command_leaves_no_open_transaction(unlocked: Unlocked) -> None:
    consent = add_api_consent(unlocked)
    unlocked.store.conn.execute("BEGIN")
    unlocked.store.conn.execute("SELECT 1 FROM notes").fetchall()
    unlocked.resume(NOW)
    assert not unlocked.store.conn.in_transaction
    # The next write commits on its own instead of joining a transaction never committed.
    notes.add(unlocked, consent, "after the interruption")
    other = Vault.open(unlocked.vault.path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    try:
        assert [n.text for n in notes.list_notes(other, consent_id=consent)] == [
            "after the interruption"
        ]
    finally:
        other.close()


def test_the_shell_asks_again_after_a_rotation_elsewhere(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    consent = add_consent(cli_vault)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", "shell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("NOK_")}, **nok_env},
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("consent list --json\n")
    proc.stdin.flush()
    first = proc.stdout.readline()
    assert first == "[\n"
    rotated = run_nok("key", "rotate", "--yes", env=nok_env)
    assert rotated.returncode == 0, rotated.stderr
    out, err = proc.communicate(f"note add {consent} --text efter\nexit\n", timeout=60)
    assert proc.returncode == 0, err
    assert "the vault's keys were rotated since you unlocked; unlock again" in err
    assert re.search(r"^N-", out, re.M), err


# -- on a terminal ------------------------------------------------------------------------


class Terminal:
    """``nok shell`` on a pseudo-terminal, read and typed at like a person would."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.leader, follower = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nokcli", *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
            start_new_session=True,
        )
        os.close(follower)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30) -> str:
        """Everything shown up to and including ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}; the screen shows:\n{self.seen}")
            ready, _, _ = select.select([self.leader], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.leader, 4096)
            except OSError:
                raise AssertionError(f"gone before {text!r}:\n{self.seen}") from None
            self.seen += chunk.decode(errors="replace")
        shown, _, self.seen = self.seen.partition(text)
        return shown + text

    def type_hidden(self, text: str) -> None:
        """Type at a hidden prompt once it hides what is typed (it drops earlier input)."""
        deadline = time.monotonic() + 30
        while termios.tcgetattr(self.leader)[3] & termios.ECHO:
            assert time.monotonic() < deadline, "the prompt never hid the input"
            time.sleep(0.02)
        self.type(text)

    def type(self, text: str) -> None:
        os.write(self.leader, text.encode())

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.leader)


def terminal_env(nok_env: dict[str, str], home: Path, *, passphrase: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOK_", "XDG_"))}
    env.update({k: v for k, v in nok_env.items() if passphrase or k != "NOK_PASSPHRASE"})
    env.update({"HOME": str(home), "TERM": "xterm", "INPUTRC": "/dev/null", **CLOCK_ENV})
    return env


def files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*")}


def test_idle_lock_drops_the_keys_and_asks_again_and_nothing_is_saved(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli_vault)
    home = tmp_path / "home"
    home.mkdir()
    before = files_under(tmp_path)
    term = Terminal(
        ["shell", "--idle-minutes", "0.1"], terminal_env(nok_env, home, passphrase=False)
    )
    try:
        term.expect("Passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("nok> ")
        term.type("note search HISTORY-MARKER\n")
        term.expect("no notes found")
        term.type(f"consent show {consent}\n")
        term.expect(SUBJECT)
        term.expect("nok> ")
        # Six seconds without a command: locked.
        locked = term.expect("nok (locked)> ", timeout=20)
        assert "locked after" in locked
        # Up-arrow brings back nothing typed before the lock.
        term.type("\x1b[A")
        term.type("\n")
        term.expect("nok (locked)> ")
        term.type("consent list\n")
        term.expect("Passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        assert consent in term.expect("nok> ")
        term.type("\x04")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert "HISTORY-MARKER" not in term.seen
    new = files_under(tmp_path) - before
    # Nothing new in HOME, and no new file anywhere holds what was typed.
    assert [p for p in new if home in p.parents] == []
    for path in new:
        if path.is_file():
            assert b"HISTORY-MARKER" not in path.read_bytes(), path
    assert not (home / ".python_history").exists()


def test_pythons_interactive_history_hook_cannot_save_the_session(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    env = terminal_env(nok_env, tmp_path, passphrase=True)
    script = "note search HISTORY-MARKER\nexit\nprint('the interpreter')\n"

    def interactive(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-i", *args], env=env, input=script, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip

    # Without nok, Python's interactive start saves ~/.python_history at exit...
    assert "the interpreter" in interactive("-c", "pass").stdout
    assert (tmp_path / ".python_history").exists()
    (tmp_path / ".python_history").unlink()
    # ...after nok shell under python -i (the interpreter's prompt came) it does not.
    assert ">>>" in interactive("-m", "nokcli", "shell").stderr
    assert not (tmp_path / ".python_history").exists()


def test_ctrl_c_cancels_the_command_not_the_session(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli_vault)
    term = Terminal(["shell"], terminal_env(nok_env, tmp_path, passphrase=True))
    try:
        term.expect("nok> ")
        term.type(f"consent withdraw {consent}\n")
        term.expect("[y/N]")
        term.interrupt()
        term.expect("nok: error: interrupted")
        term.expect("nok> ")
        # Ctrl-C at the prompt only clears the line.
        term.type("status")
        term.expect("status")
        # Readline looks for signals only while it waits for a key, as it does when a
        # person presses Ctrl-C; one that lands while it handles a key waits: press again.
        for _ in range(30):
            term.interrupt()
            with contextlib.suppress(AssertionError):
                term.expect("nok> ", timeout=1)
                break
        else:
            raise AssertionError(f"Ctrl-C at the prompt gave no new prompt:\n{term.seen}")
        term.type("consent list --json\n")
        shown = term.expect("nok> ")
        assert '"status": "active"' in shown
        assert consent in shown
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_tab_completes_commands_options_and_ids(
    cli_vault: Nok, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli_vault)
    term = Terminal(["shell"], terminal_env(nok_env, tmp_path, passphrase=True))
    try:
        term.expect("nok> ")
        term.type("cons\tsh\t\t\n")
        assert SUBJECT in term.expect("nok> ")
        term.type("consent list --j\t\n")
        assert f'"id": "{consent}"' in term.expect("nok> ")
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


# -- completion for bash, zsh and fish ----------------------------------------------------


def completion_env(nok_env: dict[str, str], line: str) -> dict[str, str]:
    env = {k: v for k, v in nok_env.items() if k != "NOK_PASSPHRASE"}
    return {**env, "NOK_COMPLETE": "bash", "NOK_COMPLETE_LINE": line}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("nok no", ["note"]),
        ("nok note ", ["add", "amend", "delete", "list", "search", "show"]),
        ("nok note list --", ["--consent", "--help", "--json", "--reason", "--since"]),
        ("nok --as anne consent sh", ["show"]),
        ("nok nothing ", []),
        ("nok note add C-7K2M-9Q4F --kind ph", ["phone"]),
        ("nok consent add --category s", ["safety"]),
    ],
)
def test_completion_of_commands_and_options(
    cli_vault: Nok, nok_env: dict[str, str], line: str, expected: list[str]
) -> None:
    result = run_nok(env=completion_env(nok_env, line))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_completion_offers_kinds_and_categories_in_the_users_language(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    env = {**completion_env(nok_env, "nok note add C-7K2M-9Q4F --kind "), "NOK_LANG": "nb"}
    kinds = run_nok(env=env).stdout.splitlines()
    assert "telefon" in kinds
    assert "'åpent hus'" in kinds
    env = {**completion_env(nok_env, "nok consent add --category sam"), "NOK_LANG": "nb"}
    assert run_nok(env=env).stdout.split() == ["samtalenotater"]


def test_completion_of_ids_is_keyless_and_shows_no_names(
    cli_vault: Nok, nok_env: dict[str, str]
) -> None:
    consent = add_consent(cli_vault)
    note = add_note(cli_vault, consent, "NOTE-TEXT-MARKER")
    entries = len(trail(cli_vault))
    typed_lower = consent[:6].lower().replace("-", "")
    for line, wanted in (
        ("nok note add ", consent),
        (f"nok note add {typed_lower}", consent),
        ("nok note list --consent C", consent),
        ("nok export ", consent),
        ("nok note show n", note),
        ("nok note show " + note[:7], note),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "nokcli"],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("NOK_")},
                 **completion_env(nok_env, line)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [wanted], line
        assert result.stderr == ""
        assert SUBJECT not in result.stdout
        assert "NOTE-TEXT-MARKER" not in result.stdout
    # Nothing was unlocked: not one entry in the trail (the trail read below adds one).
    assert len(trail(cli_vault)) == entries + 1


def test_completion_never_derives_a_key(
    cli_vault: Nok, nok_env: dict[str, str], monkeypatch, capsys, kdf_calls: list[str]
) -> None:
    consent = add_consent(cli_vault)
    kdf_calls.clear()
    monkeypatch.setenv("NOK_COMPLETE", "zsh")
    monkeypatch.setenv("NOK_COMPLETE_LINE", "nok consent show ")
    from nokcli.app import main

    main()
    assert capsys.readouterr().out.split() == [consent]
    assert kdf_calls == []


def test_bash_completes_through_the_printed_script(cli_vault: Nok, nok_env: dict[str, str]) -> None:
    consent = add_consent(cli_vault)
    script = run_nok("completion", "bash", env=nok_env)
    assert script.returncode == 0, script.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update({k: v for k, v in nok_env.items() if k != "NOK_PASSPHRASE"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    probe = (
        script.stdout
        + 'COMP_LINE="nok consent show "; COMP_POINT=${#COMP_LINE}\n'
        + '_nok_complete; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == [consent], result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_completion_script_hands_its_line_to_nok(cli_vault: Nok, shell: str) -> None:
    result = cli_vault("completion", shell)
    assert result.exit_code == 0
    assert f"NOK_COMPLETE={shell}" in result.stdout
    assert "NOK_COMPLETE_LINE=" in result.stdout


def test_completion_for_an_unknown_shell_is_a_usage_error(cli_vault: Nok) -> None:
    result = cli_vault("completion", "tcsh")
    assert result.exit_code == 2
    assert "use bash, zsh or fish" in result.stderr


@pytest.mark.parametrize(
    ("line", "words", "typed"),
    [
        ("", [], ""),
        ("note ", ["note"], ""),
        ("note sh", ["note"], "sh"),
        ('note search "two wo', ["note", "search"], "two wo"),
    ],
)
def test_a_line_splits_like_a_shell_would(line: str, words: list[str], typed: str) -> None:
    assert complete.split_line(line) == (words, typed)
