"""``nok import``: bring consents and notes over from another system (JSON Lines)."""

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from nokcli import context, output
from nokcli.i18n import _, consents_counted, notes_counted, render_vault

if TYPE_CHECKING:
    from vault.importer import ImportRejected, Progress, Summary

app = typer.Typer()

STDIN = "-"


@contextlib.contextmanager
def _source(name: str) -> Iterator[IO[bytes]]:
    if name == STDIN:
        yield sys.stdin.buffer
        return
    from vault.errors import BadInput

    try:
        handle = Path(name).open("rb")  # noqa: SIM115 (closed below; also the stdin path)
    except OSError as exc:
        raise BadInput(
            "cannot read the import file {path}: {reason}",
            path=name,
            reason=exc.strerror or type(exc).__name__,
        ) from None
    with handle:
        yield handle


def _report(rejected: "ImportRejected") -> None:
    for problem in rejected.problems:
        text = render_vault(problem.error.template, problem.error.params)
        if problem.note is None:
            output.info("line {line}: {problem}", line=problem.line, problem=text)
        else:
            output.info(
                "line {line}, note {note}: {problem}",
                line=problem.line,
                note=problem.note,
                problem=text,
            )
    hidden = int(str(rejected.params["bad"])) - len(rejected.problems)
    if hidden > 0:
        output.info("{count} more bad line(s) are not shown", count=hidden)


def _warnings(summary: "Summary") -> None:
    if summary.imported_before:
        output.warn(
            "this file was imported before, on {when}",
            when=summary.imported_before,
        )
    if summary.long_notes:
        output.warn(
            "{count} note(s) are longer than the guideline (a short note is enough)",
            count=summary.long_notes,
        )
    if summary.past_retention:
        output.warn(
            "{count} consent(s) are past their retention deadline; "
            "the next 'nok purge' erases them",
            count=summary.past_retention,
        )


class _Bar:
    """A progress bar on a terminal (stderr); silent otherwise."""

    def __init__(self, total: int | None) -> None:
        self.done = 0
        self.bar = None
        if total and sys.stderr.isatty():
            self.bar = typer.progressbar(length=total, label=_("importing notes"), file=sys.stderr)
            self.bar.__enter__()

    def __call__(self, progress: "Progress") -> None:
        if self.bar is not None:
            self.bar.update(progress.notes - self.done)
        self.done = progress.notes

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help=_("JSON Lines file, one consent with its notes per line; - for standard input."),
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=_("Only check the file; import nothing."))
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help=_(
                "Import a file that was imported before (every consent and note again; "
                "without it nok refuses a repeat)."
            ),
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Import consents and their notes; nothing is imported unless every line is valid."""
    from vault import importer

    with _source(file) as source, context.get(ctx).unlocked() as vault:
        try:
            if dry_run:
                summary = importer.check(vault, source)
            elif source.seekable():
                # A repeat is refused before anything is encrypted. On a terminal the
                # whole file is checked first, so a bad line fails fast and the bar knows
                # its total; a script gets the same errors from the write itself, which
                # keeps nothing unless every line is valid.
                total = None
                if sys.stderr.isatty():
                    checked = importer.check(vault, source)
                    before, total = checked.imported_before, checked.notes
                else:
                    before = importer.imported_before(vault, source)
                if before is not None and not force:
                    raise importer.AlreadyImported(when=before)
                source.seek(0)
                bar = _Bar(total)
                try:
                    summary = importer.write(vault, source, progress=bar, force=force)
                finally:
                    bar.close()
            else:
                summary = importer.write(vault, source, force=force)
        except importer.ImportRejected as rejected:
            _report(rejected)
            raise
    _warnings(summary)
    if json_out:
        output.emit_json({"consents": summary.consents, "notes": summary.notes, "dry_run": dry_run})
        return
    if dry_run:
        output.info(
            "the file is valid: {consents} with {notes}; nothing was imported",
            consents=consents_counted(summary.consents),
            notes=notes_counted(summary.notes),
        )
        return
    output.info(
        "imported {consents} with {notes}",
        consents=consents_counted(summary.consents),
        notes=notes_counted(summary.notes),
    )
