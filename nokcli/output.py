"""Printing: tables for people, one JSON document for programs, messages on stderr.

Data goes to stdout; every message (errors, warnings, progress) goes to stderr, so
``nok ... --json | jq`` always sees exactly one JSON document.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import typer

from nokcli import i18n
from nokcli.i18n import N_, _, render, render_vault
from vault.errors import ExitCode, NokError

# Set while `nok shell` runs its commands: what a line typed there holds reaches neither
# the process list nor a shell history.
INSIDE_SHELL = False

# C0 controls but newline and tab, DEL, and the C1 block: on a terminal these start escape
# sequences (an imported note could set the window title, or write the clipboard with
# OSC 52), so human output shows them as visible escapes. --json keeps them exact.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: Any) -> Any:
    """``value`` with control characters shown as ``\\x1b``-style escapes (strings only)."""
    if not isinstance(value, str):
        return value
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def echo_text(text: str) -> None:
    """Print vault text for a person to read (control characters escaped)."""
    typer.echo(safe(text))


def emit_json(document: Any) -> None:
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


def emit_json_array(items: Iterable[Any]) -> None:
    """Stream a JSON array one element at a time (memory stays flat)."""
    out = sys.stdout
    out.write("[")
    first = True
    for item in items:
        out.write("\n  " if first else ",\n  ")
        out.write(json.dumps(item, ensure_ascii=False))
        first = False
    out.write("\n]\n" if not first else "]\n")
    out.flush()


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: str = "simple") -> str:
    from tabulate import tabulate

    shown = [[safe(cell) for cell in row] for row in rows]
    return tabulate(shown, headers=list(headers), tablefmt=fmt, disable_numparse=True)


def emit_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], *, chunk: int = 1000) -> int:
    """Print rows as tables of at most ``chunk`` rows each; returns how many rows."""
    count = 0
    for batch in _chunked(rows, chunk):
        if count:
            typer.echo("")
        typer.echo(table(batch, headers))
        count += len(batch)
    return count


def _chunked(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def emit_record(pairs: Sequence[tuple[str, Any]]) -> None:
    """A two-column key/value view of one record."""
    typer.echo(table([(k, _shown(v)) for k, v in pairs], headers=(), fmt="plain"))


def _shown(value: Any) -> Any:
    if value is None:
        return _("none")
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return value


# The answers a question takes, by language; English answers work in Norwegian too.
ANSWERS = {
    "en": ({"y", "yes"}, {"n", "no"}),
    "nb": ({"j", "ja", "y", "yes"}, {"n", "nei", "no"}),
}


def ask(question: str, *, default: bool = False) -> bool:
    """A yes/no question on stderr, answered j/ja/n/nei in Norwegian, y/yes/n/no in English.

    An empty answer is the default; anything else is asked again. Ctrl-C or end of input
    raise typer.Abort (exit 130 in nokcli.app).
    """
    yes, no = ANSWERS.get(i18n.LANGUAGE, ANSWERS["en"])
    choices = _("[Y/n]") if default else _("[y/N]")
    while True:
        answer = typer.prompt(
            f"{question} {choices}", default="", show_default=False, err=True
        ).strip()
        word = answer.casefold()
        if not word:
            return default
        if word in yes:
            return True
        if word in no:
            return False
        info("please answer {yes} or {no}", yes=_("y"), no=_("n"))


def confirm(question: str, *, declined: str | None = None) -> None:
    """Ask a yes/no question on stderr; anything but yes exits 130 having changed nothing.

    Ctrl-C or end of input at the question ends the same way (see nokcli.app).
    """
    if not ask(question):
        info(declined or N_("nothing was changed"))
        raise typer.Exit(ExitCode.INTERRUPTED)


def exposed_option(option: str, value: str | None) -> None:
    """Warn a person at a terminal that ``option``'s value is on display (process list,
    shell history); scripts stay quiet, their command lines are their author's choice."""
    if value is not None and sys.stderr.isatty() and not INSIDE_SHELL:
        warn(
            "{option} shows what you typed to other users in the process list and keeps it "
            "in your shell history; leave it out next time and nok asks for it (a note "
            "opens the editor)",
            option=option,
        )


def info(template: str, **params: object) -> None:
    typer.echo(render(template, **params), err=True)


def warn(template: str, **params: object) -> None:
    typer.echo(render("nok: warning: {message}", message=render(template, **params)), err=True)


def report(exc: NokError) -> None:
    """A library error as nok shows it when it ends a command: one line and its hint."""
    hint = render_vault(exc.hint_template, exc.params) if exc.hint_template else None
    error(render_vault(exc.template, exc.params), hint)


def error(message: str, hint: str | None = None) -> None:
    typer.echo(render("nok: error: {message}", message=message), err=True)
    if hint:
        typer.echo(render("nok: hint: {message}", message=hint), err=True)
