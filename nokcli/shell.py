"""``nok shell``: one unlock for a working session, then nok commands at a prompt.

Each line is split as a POSIX shell would (shlex) and run by the same Typer application as
``nok WORDS``, so commands, options, output, exit codes and audit entries are those of the
command line. Only where the keys come from differs: a :class:`Session` lends one unlock
to every command (``Context.unlocked``), checks before each that it still matches the vault
(``Unlocked.resume``: a rotation, a reset, a restore since means the passphrase again),
and drops it after an idle period.

Nothing typed is written anywhere: readline keeps its history in memory only, cleared at
every lock and at exit, and Python's interactive history hook is disarmed. Python cannot
wipe memory: dropping the keys means closing the vault and letting go of every reference.
"""

from __future__ import annotations

import gc
import os
import shlex
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from nokcli import complete, output
from nokcli.context import Context
from nokcli.i18n import _, render, render_vault
from vault.errors import BadInput, ExitCode, KeysRotated, SlotChanged, VaultReplaced

if TYPE_CHECKING:
    from vault.session import Unlocked

DEFAULT_IDLE_MINUTES = 10.0
MAX_IDLE_MINUTES = 24 * 60.0
# The words that leave and that ask for help, in English and Norwegian (any language).
LEAVE = ("exit", "quit", "avslutt")
HELP = ("help", "hjelp", "?")
# Commands that make no sense inside a session.
REFUSED = ("init", "shell")
# Commands that change who can open the vault ask for the passphrase again even inside, so
# that a session left open cannot be turned into lasting access (a passphrase or a key
# slot of the intruder's own).
REPROVE = (
    ("passwd",),
    ("staff", "add"),
    ("staff", "remove"),
    ("staff", "reset"),
    ("staff", "role"),
    ("key", "rotate"),
    ("key", "kdf"),
)
# The root options a line may carry; the others (--vault, --as...) are the session's.
ROOT_ALLOWED = ("--help", "-h", "--version")
PROMPT = "nok> "


def idle_seconds(minutes: float | None, configured: float | None) -> float:
    """The idle lock in seconds: the option, else the configuration file, else 10 minutes.

    Raises BadInput outside (0, 1440] minutes.
    """
    chosen = minutes if minutes is not None else configured
    chosen = DEFAULT_IDLE_MINUTES if chosen is None else chosen
    if not 0 < chosen <= MAX_IDLE_MINUTES:
        raise BadInput(
            "the idle lock must be more than 0 and at most {max:g} minutes, not {minutes:g}",
            max=MAX_IDLE_MINUTES,
            minutes=chosen,
        )
    return chosen * 60


class Session:
    """The session's one unlock, lent to each command and dropped at lock and exit."""

    def __init__(self, state: Context) -> None:
        self._state = state
        self._held: Unlocked | None = None

    @property
    def unlocked(self) -> bool:
        return self._held is not None

    def current(self) -> Unlocked:
        """The held unlock made current for one more command, else a new one (asks)."""
        held = self._held
        if held is not None:
            try:
                held.resume(self._state.now())
                self._state.reconcile_held(held)
                return held
            except KeysRotated:
                self.lock()
                output.info("the vault's keys were rotated since you unlocked; unlock again")
            except (SlotChanged, VaultReplaced) as exc:
                self.lock()
                typer.echo(render_vault(exc.template, exc.params), err=True)
                output.info("unlock again")
        self._held = self._state.unlock()
        return self._held

    def lock(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()
            del held
            # Tracebacks of interrupted commands may still reach the object through cycles.
            gc.collect()


class Idle(Exception):
    """Raised at the prompt when no command came within the idle period."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Idle()


class Prompt:
    """Reads lines: with readline on a terminal (completion, history in memory only),
    else plain lines from standard input without a prompt."""

    def __init__(self, root: Any, state: Context) -> None:
        self._root = root
        self._state = state
        self._matches: list[str] = []
        self._readline: Any = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            self._readline = _readline()
        if self._readline is not None:
            rl = self._readline
            rl.clear_history()
            rl.set_completer_delims(" \t\n")
            rl.set_completer(self._complete)
            binding = "bind ^I rl_complete" if "libedit" in (rl.__doc__ or "") else "tab: complete"
            rl.parse_and_bind(binding)

    def read(self, prompt: str, idle: float | None) -> str:
        """One line; EOFError at end of input, KeyboardInterrupt, or Idle after ``idle`` s."""
        previous = None
        if idle is not None:
            previous = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, idle)
        try:
            if self._readline is not None:
                return input(prompt)
            if sys.stdin.isatty():
                sys.stderr.write(prompt)
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line
        finally:
            if idle is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)

    def forget(self) -> None:
        """Clear the in-memory history (lines may hold note text or search words)."""
        if self._readline is not None:
            self._readline.clear_history()

    def close(self) -> None:
        self.forget()
        if self._readline is not None:
            self._readline.set_completer(None)

    def _complete(self, text: str, index: int) -> str | None:
        if index == 0:
            rl = self._readline
            line = rl.get_line_buffer()[: rl.get_endidx()]
            words, typed = complete.split_line(line)
            find = complete.vault_ids(self._state.vault_path)
            try:
                found = complete.candidates(self._root, words, typed, find)
                # Python's readline adds no space after a whole word; a shell would.
                self._matches = [f"{word} " for word in found]
            except Exception:
                # A completion failure must never end the session.
                self._matches = []
        return self._matches[index] if index < len(self._matches) else None


def _readline() -> Any:
    try:
        import readline
    except ImportError:
        return None
    return readline


def _no_history() -> None:
    """Stands in for site's hook, which would save readline's history to ~/.python_history."""


def run(state: Context, idle: float, root: Any) -> int:
    """Unlock once, then read and run commands until end of input or ``exit``."""
    # Only an interactive interpreter (python -i) would run it, but then after this shell.
    setattr(sys, "__interactivehook__", _no_history)  # noqa: B010
    session = Session(state)
    state.session = session
    prompt = Prompt(root, state)
    output.INSIDE_SHELL = True
    try:
        if os.environ.pop(RELOCKED, None) is None:
            session.current()
            output.info(
                "unlocked as {name}; type nok commands without 'nok' (help, exit or Ctrl-D)",
                name=state.user,
            )
        _loop(session, prompt, idle, lambda words: _run(session, root, words, state))
    finally:
        output.INSIDE_SHELL = False
        state.session = None
        session.lock()
        prompt.close()
    return ExitCode.OK


def _loop(
    session: Session, prompt: Prompt, idle: float, run_words: Callable[[list[str]], int]
) -> None:
    while True:
        shown = PROMPT if session.unlocked else f"nok ({_('locked')})> "
        try:
            line = prompt.read(shown, idle if session.unlocked else None)
        except EOFError:
            typer.echo("", err=True)
            return
        except KeyboardInterrupt:
            typer.echo("", err=True)
            continue
        except Idle:
            session.lock()
            prompt.forget()
            clear_screen()
            output.info(
                "locked after {minutes:g} minutes without a command; the keys are dropped "
                "and the next command asks for the passphrase",
                minutes=idle / 60,
            )
            start_afresh()
            continue
        words = _words(line)
        if not words:
            continue
        if words[0] in LEAVE:
            return
        run_words(words)


# Home, erase the screen, erase the scrollback (xterm's E3, which most terminals follow):
# the notes and names shown must not stay on a screen left unattended.
CLEAR = "\x1b[H\x1b[2J\x1b[3J"


def clear_screen() -> None:
    """Clear the terminal the session writes to, scrollback included (nothing when
    neither output is a terminal: a script's output is its own)."""
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            stream.write(CLEAR)
            stream.flush()
            return
    typer.echo("", err=True)


# Set for the process that replaces a locked session (start_afresh): it starts locked.
RELOCKED = "NOK_SHELL_LOCKED"


def start_afresh() -> None:
    """Replace this process with a new, locked ``nok shell`` (the same process id, the same
    terminal), at a terminal only.

    Python cannot wipe its objects: after the lock, the keys and every note shown would
    stay in freed memory that /proc/PID/mem, a core dump or swap still hold. A process
    that replaces itself keeps none of its memory. Piped input is left alone: its unread
    lines sit in this process's buffer and would be lost."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, RELOCKED: "1"})  # noqa: S606


def _words(line: str) -> list[str] | None:
    try:
        words = shlex.split(line)
    except ValueError:
        output.error(_("a quote is not closed; nothing was run"))
        return None
    if words[:1] == ["nok"]:
        words = words[1:]
    if words[:1] and words[0] in HELP:
        words = [*words[1:], "--help"]
    return words


def _run(session: Session, root: Any, words: list[str], state: Context) -> int:
    if session.unlocked and "--help" not in words and "-h" not in words:
        changes = next((p for p in REPROVE if tuple(words[: len(p)]) == p), None)
        if changes is not None:
            session.lock()
            output.info(
                "'nok {command}' changes who can open the vault: it asks for your passphrase again",
                command=" ".join(changes),
            )
    return dispatch(root, words, state)


def dispatch(root: Any, words: list[str], state: Context) -> int:
    """Run one command line as ``nok WORDS`` would, with the session's Context."""
    refusal = _refusal(words)
    if refusal is not None:
        output.error(refusal)
        return ExitCode.USAGE
    state.reconciled.clear()  # what one command found, as on the command line
    try:
        root.main(args=words, prog_name="nok", standalone_mode=True, obj=state)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except KeyboardInterrupt:
        # Between the command's own handling and the prompt.
        output.error(_("interrupted; the vault is unchanged by the unfinished step"))
        return ExitCode.INTERRUPTED
    return ExitCode.OK


def _refusal(words: list[str]) -> str | None:
    first = words[0]
    if first in REFUSED:
        return render(
            "'nok {command}' does not run inside nok shell; leave the shell (exit) to run it",
            command=first,
        )
    if first.startswith("-") and first not in ROOT_ALLOWED:
        return render(
            "{option} is set when nok shell starts (nok {option} ... shell), not per command",
            option=first.split("=", 1)[0],
        )
    return None
