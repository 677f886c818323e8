"""Where passphrases come from: a file, an environment variable, or a hidden prompt.

Never from a command-line argument (the process list shows those to every user).
Order: ``--passphrase-file`` / ``NOK_PASSPHRASE_FILE``, then ``NOK_PASSPHRASE``, then a
hidden prompt when standard input is a terminal.
"""

from __future__ import annotations

import os
import stat
import sys
import unicodedata
from pathlib import Path

import typer

from nokcli.i18n import _
from vault.errors import (
    BadInput,
    ForeignFile,
    PassphraseFileUnreadable,
    PassphraseUnavailable,
    UnsafePermissions,
)

ENV_FILE = "NOK_PASSPHRASE_FILE"
ENV_VALUE = "NOK_PASSPHRASE"
MIN_NEW_LENGTH = 8
# How often a person at a terminal may type a passphrase before nok gives up: a typo
# must not end a session, an install chain or a note written in the editor.
TRIES = 3


def _normalise(text: str) -> bytes:
    # NFC so that the same passphrase typed on another system's keyboard still opens.
    return unicodedata.normalize("NFC", text).encode("utf-8")


def read_file(path: Path) -> bytes:
    """The first line of ``path``; refuses a file another user owns or can read.

    A pipe (``--passphrase-file <(pass show nok)``) is checked like a file: the shell
    makes it 0600 and owned by you.
    """
    try:
        # Checked before opening (opening a FIFO waits for its writer) and again after
        # (the name could have been swapped in between).
        _check_passphrase_file(path, path.stat())
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        try:
            _check_passphrase_file(path, os.fstat(fd))
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
        finally:
            os.close(fd)
    except OSError as exc:
        raise PassphraseFileUnreadable(
            "cannot read the passphrase file {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseFileUnreadable(
            "the passphrase file {path} is not UTF-8 text", path=str(path)
        ) from None
    line = text.splitlines()[0] if text else ""
    if not line:
        raise PassphraseFileUnreadable("the passphrase file {path} is empty", path=str(path))
    return _normalise(line)


def _check_passphrase_file(path: Path, st: os.stat_result) -> None:
    """Raises UnsafePermissions unless only this user owns and can read the file."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.getuid():
        raise ForeignFile(path=str(path), uid=st.st_uid)
    if mode & 0o077:
        raise UnsafePermissions(path=str(path), who="other users", mode=f"{mode:04o}", fix="600")


def interactive() -> bool:
    """Whether a person can be asked: standard input is a terminal, or text is piped into
    nok run at a terminal (``echo … | nok note add``), whose prompt then reads /dev/tty."""
    return sys.stdin.isatty() or _controlling_terminal()


def _controlling_terminal() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        # Standard input replaced in-process (a test runner): no real terminal behind it.
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def prompted(file: Path | None) -> bool:
    """Whether :func:`current` asks a person (so a wrong entry may be typed again)."""
    return file is None and not os.environ.get(ENV_VALUE) and interactive()


def current(file: Path | None, *, who: str) -> bytes:
    """The passphrase to unlock with, for staff member ``who``.

    Raises:
        PassphraseUnavailable: no file, no variable, and no terminal to ask on.
    """
    if file is not None:
        return read_file(file)
    value = os.environ.get(ENV_VALUE)
    if value:
        return _normalise(value)
    if interactive():
        entered = typer.prompt(_("Passphrase for {who}").format(who=who), hide_input=True, err=True)
        return _normalise(entered)
    raise PassphraseUnavailable("no passphrase given and no terminal to ask on")


def new(file: Path | None, *, who: str, env: str | None = None) -> bytes:
    """A new passphrase: from ``file``, an env variable, or asked twice on a terminal.

    Raises:
        PassphraseUnavailable: nowhere to read it from.
        BadInput: shorter than MIN_NEW_LENGTH characters, or the two entries differ.
    """
    if file is not None:
        value = read_file(file)
    elif env and os.environ.get(env):
        value = _normalise(os.environ[env])
    elif interactive():
        return _ask_new(who)
    else:
        raise PassphraseUnavailable("no new passphrase given and no terminal to ask on")
    if len(value.decode("utf-8")) < MIN_NEW_LENGTH:
        raise BadInput(
            "a passphrase needs at least {n} characters; a few words make a good one",
            n=MIN_NEW_LENGTH,
        )
    return value


def _ask_new(who: str) -> bytes:
    """Ask for a new passphrase on the terminal: a too short one is refused as soon as it
    is typed, and a too short or mismatched entry is asked for again, up to TRIES times.

    Raises BadInput after the last try."""
    from nokcli import output

    for attempt in range(1, TRIES + 1):
        last = attempt == TRIES
        first = typer.prompt(
            _("New passphrase for {who}").format(who=who), hide_input=True, err=True
        )
        if len(unicodedata.normalize("NFC", first)) < MIN_NEW_LENGTH:
            if last:
                raise BadInput(
                    "a passphrase needs at least {n} characters; a few words make a good one",
                    n=MIN_NEW_LENGTH,
                )
            output.info(
                "a passphrase needs at least {n} characters; a few words make a good one",
                n=MIN_NEW_LENGTH,
            )
            continue
        second = typer.prompt(_("Repeat the passphrase"), hide_input=True, err=True)
        if first == second:
            return _normalise(first)
        if last:
            raise BadInput("the two passphrases differ; nothing was changed")
        output.info("the two passphrases differ; type them again")
    raise AssertionError("unreachable: the last try returns or raises")
