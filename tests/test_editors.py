"""What a counselor types in the editor is never lost, and never left behind in plaintext.

The adversaries: nok itself, refusing a note after the counselor spent ten minutes writing
it (a date before the consent, a note over the hard limit), and a later reader of the
machine's files (a colleague at the same account, a stolen laptop) looking for a note's
text in the editors' own files: vim's viminfo, swap and undo files, nano's backups,
anything under $HOME, /tmp, /var/tmp and /dev/shm. The editors are the real vim and nano
of this machine, driven in a pseudo-terminal as a person would; a missing editor skips.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import stat
import time
import uuid
from pathlib import Path

import pytest
from conftest import PASSPHRASE, run_nok
from test_cli_core import Checked, add_consent, ok, private_files, run_on_a_terminal, state
from test_shell import Terminal, terminal_env

from vault.errors import ExitCode


@pytest.fixture
def cli(cli_vault: Checked) -> Checked:
    return Checked(cli_vault, [PASSPHRASE])


def logging_editor(tmp_path: Path, *bodies: str) -> tuple[Path, Path]:
    """An editor that appends what it was opened on to a log, then writes the next of
    ``bodies`` over the file (the first run the first body, and so on)."""
    log = tmp_path / "opened.log"
    script = tmp_path / "editor"
    lines = ["#!/bin/sh", f'log="{log}"', 'n=$(cat "$log" 2>/dev/null | grep -c "^--- opened")']
    lines.append('echo "--- opened $n" >> "$log"; cat "$1" >> "$log"')
    for number, body in enumerate(bodies):
        lines.append(f"[ \"$n\" = {number} ] && printf '%s\\n' '{body}' > \"$1\"")
    lines.append("exit 0")
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o700)
    return script, log


def openings(log: Path) -> list[str]:
    """What the editor showed at each opening."""
    if not log.exists():
        return []
    return log.read_text().split("--- opened ")[1:]


# -- never lose what was typed ------------------------------------------------------------


def test_a_date_before_the_consent_is_refused_before_the_editor_opens(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)  # given today
    script, log = logging_editor(tmp_path, "Ti minutter med skriving.")
    for date in ("i går", "yesterday"):
        result = run_on_a_terminal(
            "note", "add", consent, "--date", date, env={**nok_env, "EDITOR": str(script)}
        )
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert "before the consent was given" in result.stderr
    assert openings(log) == [], "the editor opened for a note nok was going to refuse"
    assert state(cli) == (1, 0, 0)


def test_an_ended_consent_or_unknown_kind_is_refused_before_the_editor_opens(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    script, log = logging_editor(tmp_path, "Ti minutter med skriving.")
    env = {**nok_env, "EDITOR": str(script)}
    assert run_on_a_terminal("note", "add", "C-0000-0000", env=env).returncode != 0
    assert run_on_a_terminal("note", "add", consent, "--kind", "nonsense", env=env).returncode
    ok(cli("consent", "withdraw", consent, "--yes"))
    withdrawn = run_on_a_terminal("note", "add", consent, env=env)
    assert withdrawn.returncode != 0
    assert openings(log) == []


def test_a_note_over_the_limit_reopens_the_editor_with_the_text(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    ok(cli("settings", "set", "note-guideline", "100"))
    ok(cli("settings", "set", "note-limit", "100"))
    long = "LONG-MARKER " + "ord " * 40
    script, log = logging_editor(tmp_path, long, "Kort: avtalt ny samtale.")
    # Yes to opening it again.
    result = run_on_a_terminal(
        "note", "add", consent, "--json", env={**nok_env, "EDITOR": str(script)}, answer="\n"
    )
    assert result.returncode == 0, result.stderr
    assert "the limit is 100" in result.stderr
    shown = openings(log)
    assert len(shown) == 2
    assert "LONG-MARKER" in shown[1], "the second opening lost what was written"
    note = json.loads(result.stdout)["id"]
    assert json.loads(ok(cli("note", "show", note, "--json")).stdout)["text"] == (
        "Kort: avtalt ny samtale."
    )
    assert private_files() == []


def test_letting_a_refused_note_go_leaves_no_copy(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    ok(cli("settings", "set", "note-guideline", "100"))
    ok(cli("settings", "set", "note-limit", "100"))
    script, log = logging_editor(tmp_path, "LONG-MARKER " + "ord " * 40)
    result = run_on_a_terminal(
        "note", "add", consent, env={**nok_env, "EDITOR": str(script)}, answer="n\n"
    )
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert "nothing was saved" in result.stderr
    assert len(openings(log)) == 1
    assert state(cli) == (1, 0, 0)
    assert private_files() == []


def test_a_long_note_declined_can_be_shortened_in_the_editor(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    ok(cli("settings", "set", "note-guideline", "100"))
    script, log = logging_editor(tmp_path, "LONG-MARKER " + "ord " * 40, "Kortere nå.")
    # No to saving it as it is, yes to opening the editor again.
    result = run_on_a_terminal(
        "note", "add", consent, env={**nok_env, "EDITOR": str(script)}, answer="n\ny\n"
    )
    assert result.returncode == 0, result.stderr
    shown = openings(log)
    assert len(shown) == 2
    assert "LONG-MARKER" in shown[1]
    assert state(cli) == (1, 0, 1)


# -- a mistyped passphrase ----------------------------------------------------------------


def at_a_terminal(args: list[str], nok_env: dict[str, str], home: Path) -> Terminal:
    """nok on a pseudo-terminal, with no passphrase in its environment: it asks."""
    return Terminal(args, terminal_env(nok_env, home, passphrase=False))


def test_the_shell_gives_three_tries_at_the_start(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    term = at_a_terminal(["shell"], nok_env, tmp_path)
    try:
        for wrong in ("feil passordfrase", "en til feil"):
            term.expect("Passphrase for anne:")
            term.type_hidden(wrong + "\n")
            term.expect("wrong; try again")
        term.expect("Passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("nok> ")
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_three_wrong_passphrases_end_the_shell(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    term = at_a_terminal(["shell"], nok_env, tmp_path)
    try:
        for _ in range(3):
            term.expect("Passphrase for anne:")
            term.type_hidden("feil passordfrase\n")
        assert term.close() == ExitCode.WRONG_PASSPHRASE
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    # Each wrong try is in the trail, as three separate attempts would be.
    trail = json.loads(ok(cli("audit", "list", "--json")).stdout)
    assert sum(e["action"] == "unlock.failed" for e in trail) == 3


def test_after_the_idle_lock_a_mistyped_passphrase_is_asked_again(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    term = at_a_terminal(["shell", "--idle-minutes", "0.05"], nok_env, tmp_path)
    try:
        term.expect("Passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("nok> ")
        term.expect("nok (locked)> ", timeout=20)
        term.type("consent list\n")
        term.expect("Passphrase for anne:")
        term.type_hidden("feil passordfrase\n")
        term.expect("wrong; try again")
        term.type_hidden(PASSPHRASE + "\n")
        assert consent in term.expect("nok> ")
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_init_refuses_a_short_passphrase_at_once_and_asks_again(
    nok_env: dict[str, str], tmp_path: Path, vault_path: Path
) -> None:
    recovery = tmp_path / "recovery.txt"
    args = ["init", "--kdf", "interactive", "--recovery-file", str(recovery)]
    term = at_a_terminal(args, nok_env, tmp_path)
    try:
        term.expect("New passphrase for anne:")
        term.type_hidden("kort\n")
        # Refused before it is asked for a second time.
        refused = term.expect("New passphrase for anne:")
        assert "at least 8 characters" in refused
        assert "Repeat" not in refused
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("Repeat the passphrase:")
        term.type_hidden("noe annet enn det\n")
        assert "differ" in term.expect("New passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("Repeat the passphrase:")
        term.type_hidden(PASSPHRASE + "\n")
        assert term.close() == 0, term.seen
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert vault_path.exists()
    opened = run_nok("status", "--json", env={**nok_env, "NOK_PASSPHRASE": PASSPHRASE})
    assert opened.returncode == 0, opened.stderr


def test_init_gives_up_after_three_short_passphrases(
    nok_env: dict[str, str], tmp_path: Path, vault_path: Path
) -> None:
    args = ["init", "--kdf", "interactive", "--recovery-file", str(tmp_path / "r.txt")]
    term = at_a_terminal(args, nok_env, tmp_path)
    try:
        for _ in range(3):
            term.expect("New passphrase for anne:")
            term.type_hidden("kort\n")
        term.expect("at least 8 characters")
        assert term.close() == ExitCode.USAGE
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert not vault_path.exists()


# -- never leak what was typed: the real editors ------------------------------------------

SEARCHED = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def files_holding(marker: bytes, home: Path, since: float) -> list[Path]:
    """Every regular file under ``home``, /tmp, /var/tmp and /dev/shm written since
    ``since`` that holds ``marker``, as a later reader of the machine would find it.

    Also under the home directory the password database names: nano run as root takes
    its home from there, not from $HOME (and Debian's /etc/nanorc keeps search history)."""
    found = []
    real_home = Path(pwd.getpwuid(os.geteuid()).pw_dir)
    for top in dict.fromkeys((home, real_home, *SEARCHED)):
        for directory, _dirs, names in os.walk(top):
            for name in names:
                path = Path(directory) / name
                try:
                    st = path.lstat()
                    if not stat.S_ISREG(st.st_mode) or st.st_size > 20_000_000:
                        continue
                    if max(st.st_mtime, st.st_ctime) < since:
                        continue
                    if marker in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


def needs(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.skip(f"{program} is not installed here (apt-get install {program})")
    return found


@pytest.fixture
def marker() -> str:
    # New for each run, so that a file left by an earlier run cannot be mistaken for a leak.
    return f"NOTAT-{uuid.uuid4().hex[:12].upper()}"


def edit_a_note(
    cli: Checked, nok_env: dict[str, str], home: Path, editor_program: str, keys: list[str]
) -> tuple[str, str]:
    """``nok note add`` at a terminal with the real ``editor_program``, typed at with
    ``keys`` (a pause after each group, as a person types); returns the note's text and
    what the screen showed."""
    consent = add_consent(cli)
    env = {**terminal_env(nok_env, home, passphrase=True), "EDITOR": editor_program}
    term = Terminal(["note", "add", consent, "--json"], env)
    try:
        term.expect("Write a short note")
        for group in keys:
            time.sleep(0.3)
            term.type(group)
        shown = term.expect('"access"', timeout=30)
        assert term.close() == 0, shown
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    found = re.search(r'"id": "(N-[^"]+)"', shown)
    assert found is not None, shown
    return json.loads(ok(cli("note", "show", found[1], "--json")).stdout)["text"], shown


def test_vim_keeps_nothing_of_the_note_outside_nok(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    vim = needs("vim")
    home = tmp_path / "home"
    home.mkdir()
    # A counselor's own vimrc keeping undo files, backups and a long viminfo: nok's run
    # turns them off after it is read.
    (home / ".vimrc").write_text(
        "set undofile undodir=~/.vim/undo backup writebackup backupdir=~/.vim/backup\n"
        "set viminfo='100,<500,s100,h\n"
    )
    (home / ".vim" / "undo").mkdir(parents=True)
    (home / ".vim" / "backup").mkdir(parents=True)
    since = time.time() - 1
    keys = [
        f"i{marker} samtale om søvn", "\x1b",
        "yy", "p", "dd", "u",  # yank, put, delete, undo: all of it in registers
        f"o/{marker}", "\x1b", ":w\r", "oandre linje", "\x1b", ":wq\r",
    ]  # fmt: skip
    text, _shown = edit_a_note(cli, nok_env, home, vim, keys)
    assert marker in text
    assert files_holding(marker.encode(), home, since) == []
    assert not (home / ".viminfo").exists()


def test_nano_keeps_nothing_of_the_note_outside_nok(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    nano = needs("nano")
    home = tmp_path / "home"
    home.mkdir()
    # A nanorc keeping backups in a directory of their own, search history and positions.
    (home / ".nanorc").write_text(
        'set backup\nset backupdir "~/nano-backups"\nset historylog\nset positionlog\n'
    )
    (home / "nano-backups").mkdir()
    since = time.time() - 1
    keys = [
        f"{marker} samtale om søvn\r", "\x0b", "\x15", "\x15",  # cut the line, paste twice
        "\x17", f"{marker}\r",  # search for it: the search history
        "\x0f", "\r",  # write it once (the next write makes a backup of this one)
        "andre linje", "\x18", "y", "\r",  # exit, saving again
    ]  # fmt: skip
    text, _shown = edit_a_note(cli, nok_env, home, nano, keys)
    assert marker in text
    assert files_holding(marker.encode(), home, since) == []


# -- nok shell: what the screen and the warnings say ---------------------------------------


def test_the_idle_lock_clears_the_screen_and_its_scrollback(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    consent = add_consent(cli)
    ok(cli("note", "add", consent, "--text", f"{marker} om søvn"))
    term = Terminal(
        ["shell", "--idle-minutes", "0.05"], terminal_env(nok_env, tmp_path, passphrase=True)
    )
    try:
        term.expect("nok> ")
        term.type(f"note list --consent {consent}\n")
        term.expect(marker)
        term.expect("nok> ")
        locked = term.expect("nok (locked)> ", timeout=20)
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    # Erase the display and the scrollback (E3) before the lock says anything.
    assert "\x1b[2J" in locked
    assert "\x1b[3J" in locked
    assert locked.index("\x1b[3J") < locked.index("locked after")


def test_text_typed_inside_the_shell_is_not_warned_about(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    term = Terminal(["shell"], terminal_env(nok_env, tmp_path, passphrase=True))
    try:
        term.expect("nok> ")
        term.type(f"note add {consent} --text 'Kort notat.'\n")
        shown = term.expect("nok> ")
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert re.search(r"N-[0-9A-Z]{4}-", shown), shown
    # Inside the shell the line reaches neither the process list nor a history file.
    assert "process list" not in shown


def test_an_amendment_over_the_limit_reopens_the_editor_with_it(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path
) -> None:
    consent = add_consent(cli)
    note = ok(cli("note", "add", consent, "--text", "Første versjon.")).stdout.strip()
    ok(cli("settings", "set", "note-guideline", "100"))
    ok(cli("settings", "set", "note-limit", "100"))
    script, log = logging_editor(tmp_path, "LONG-MARKER " + "ord " * 40, "Rettet versjon.")
    # Yes to opening it again, yes to replacing the note.
    result = run_on_a_terminal(
        "note", "amend", note, env={**nok_env, "EDITOR": str(script)}, answer="\ny\n"
    )
    assert result.returncode == 0, result.stderr
    shown = openings(log)
    assert len(shown) == 2
    assert "LONG-MARKER" in shown[1], "the second opening lost the corrected text"
    text = json.loads(ok(cli("note", "show", note, "--json")).stdout)["text"]
    assert text == "Rettet versjon."
    assert private_files() == []


def readable_memory(pid: int) -> bytes:
    """Everything a process has mapped readable and writable (its heap, its stacks, its
    anonymous memory), as its parent reads it through /proc/PID/mem."""
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


def test_after_the_idle_lock_no_note_or_passphrase_is_left_in_memory(
    cli: Checked, nok_env: dict[str, str], tmp_path: Path, marker: str
) -> None:
    consent = add_consent(cli)
    for n in range(6):
        ok(cli("note", "add", consent, "--text", f"{marker} notat {n}"))
    term = Terminal(
        ["shell", "--idle-minutes", "0.05"], terminal_env(nok_env, tmp_path, passphrase=False)
    )
    try:
        term.expect("Passphrase for anne:")
        term.type_hidden(PASSPHRASE + "\n")
        term.expect("nok> ")
        term.type(f"note list --consent {consent}\n")
        term.expect(marker)
        term.expect("nok> ")
        try:
            before = readable_memory(term.proc.pid)
        except PermissionError:
            pytest.skip("this machine does not let a parent read its child's memory")
        assert marker.encode() in before, "the test must see the notes while unlocked"
        term.expect("nok (locked)> ", timeout=20)
        after = readable_memory(term.proc.pid)
        term.type("exit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert marker.encode() not in after
    assert PASSPHRASE.encode() not in after
