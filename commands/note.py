"""``nok note``: add, list and read short journal notes under a consent."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, dates, output, records, stdin, vocab
from nokcli.i18n import _, render

if TYPE_CHECKING:
    from vault.notes import Note

app = typer.Typer(
    help=_("Short journal notes, each under an active consent."), no_args_is_help=True
)

JSON_HELP = _("Print the result as JSON.")
KIND_HELP = _(
    "one-to-one (default), phone, group, next-of-kin, open-house, outreach, follow-up-plan, other."
)
EDITOR_HEADER = _(
    "# Write a short note below. Lines starting with # are ignored.\n"
    "# The guidelines ask for a brief note: what matters for safety and follow-up.\n"
    "# Save and close the editor to store it encrypted; leave it empty to cancel.\n"
)


def _read_text(text: str | None) -> str:
    if text is not None:
        return text
    if not sys.stdin.isatty():
        return stdin.read()
    from nokcli import editor
    from vault.errors import ExitCode

    composed = editor.compose(EDITOR_HEADER)
    if not composed:
        output.info("the note was empty; nothing was saved")
        raise typer.Exit(ExitCode.INTERRUPTED)
    return composed


@app.command("add")
def add(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="CONSENT_ID", help=_("The consent the note belongs to."))
    ],
    text: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help=_(
                "The note. Avoid it: other users see it in the process list while nok runs, "
                "and it stays in your shell history. Default: standard input, else $EDITOR."
            ),
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help=KIND_HELP, show_default=False)] = "one-to-one",
    date: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Date of the contact: YYYY-MM-DD, today, yesterday or a weekday. Default: today."
            )
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help=_(
                "Save without asking: a note over the length guideline, or one that keeps a "
                "consent past its retention deadline."
            ),
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Add a note under an active consent; prints its id."""
    from vault import consents, notes
    from vault.errors import KeysRotated

    kind = vocab.kind(kind)
    output.exposed_option("--text", text)
    state = context.get(ctx)
    date = dates.resolve(date, state.now(), field="--date")
    with state.unlocked() as vault:
        overdue = consents.overdue(vault, consent_id)
        if overdue is not None and not yes:
            _confirm_revival(consent_id, overdue)
        body = _read_text(text)
        if notes.check_length(vault, body) is notes.Length.LONG and not yes:
            guideline = vault.vault.settings().note_guideline
            size = len(body.strip())
            if sys.stdin.isatty():
                question = render(
                    "The note is {size} characters; the guideline is {guideline}. Save it anyway?",
                    size=size,
                    guideline=guideline,
                )
                output.confirm(question, declined="nothing was saved")
            else:
                output.warn(
                    "the note is {size} characters; the guideline is {guideline} "
                    "(a short note is enough)",
                    size=size,
                    guideline=guideline,
                )
        try:
            note = notes.add(vault, consent_id, body, kind=kind, date=date)
        except KeysRotated:
            note = None
    if note is None:
        # Minutes in an editor can span an admin's key rotation; the text must not be lost.
        output.info("the vault's keys were rotated while you wrote; unlock again to save the note")
        with state.unlocked() as vault:
            note = notes.add(vault, consent_id, body, kind=kind, date=date)
    if json_out:
        output.emit_json({"id": note.id, "consent_id": note.consent_id})
        return
    typer.echo(note.id)


def _confirm_revival(consent_id: str, deadline: str) -> None:
    """A note renews retention: under an overdue consent it undoes the erasure due."""
    from vault.errors import BadInput

    if not sys.stdin.isatty():
        raise BadInput(
            "consent {id} passed its retention deadline on {deadline} and the next purge "
            "erases it; a note would keep it for another retention period: pass --yes if "
            "that is intended (or 'nok consent extend' first)",
            id=consent_id,
            deadline=deadline,
        )
    output.warn(
        "consent {id} passed its retention deadline on {deadline}; the next purge erases "
        "it, and a new note would keep it for another retention period",
        id=consent_id,
        deadline=deadline,
    )
    output.confirm(_("Add the note and keep the consent?"), declined="nothing was saved")


def _print_notes(items: Iterable[Note], json_out: bool) -> None:
    """Stream notes as one JSON array or as tables (decrypted while printed)."""
    if json_out:
        output.emit_json_array(n.to_json() for n in items)
    elif not output.emit_table((records.note_row(n) for n in items), records.NOTE_HEADERS):
        output.info("no notes found")


@app.command("list")
def list_(
    ctx: typer.Context,
    consent: Annotated[
        str | None, typer.Option("--consent", help=_("Only notes under this consent."))
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Only notes dated on or after this day: YYYY-MM-DD, today, yesterday or a weekday."
            )
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List notes by date (a preview of each; 'nok note show ID' for the whole note)."""
    from vault import notes

    state = context.get(ctx)
    since = dates.resolve(since, state.now(), field="--since")
    with state.unlocked() as vault:
        _print_notes(notes.list_notes(vault, consent_id=consent, since=since), json_out)


@app.command("search")
def search(
    ctx: typer.Context,
    text: Annotated[
        str,
        typer.Argument(
            metavar="TEXT",
            help=_(
                "Text to find in note bodies, ignoring case; - reads it from standard input "
                "(other users can see command-line arguments in the process list)."
            ),
        ),
    ],
    consent: Annotated[
        str | None, typer.Option("--consent", help=_("Only notes under this consent."))
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Only notes dated on or after this day: YYYY-MM-DD, today, yesterday or a weekday."
            )
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Find notes whose text contains TEXT (case-insensitive), by date."""
    from vault import search as vault_search

    if text == "-":
        text = stdin.read(line=True)
    state = context.get(ctx)
    since = dates.resolve(since, state.now(), field="--since")
    with state.unlocked() as vault:
        _print_notes(vault_search.search(vault, text, consent_id=consent, since=since), json_out)


@app.command("show")
def show(
    ctx: typer.Context,
    note_id: Annotated[str, typer.Argument(metavar="ID", help=_("Note id, e.g. N-3XH8-P2DW-5."))],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one note in full."""
    from vault import notes

    with context.get(ctx).unlocked() as vault:
        note = notes.show(vault, note_id)
    if json_out:
        output.emit_json(note.to_json())
        return
    output.emit_record(
        [
            (_("id"), note.id),
            (_("consent"), note.consent_id),
            (_("date"), note.date),
            (_("kind"), vocab.kind_shown(note.kind)),
            (_("author"), note.author),
        ]
    )
    typer.echo("")
    output.echo_text(note.text)
