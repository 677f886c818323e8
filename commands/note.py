"""``nok note``: add, list and read short journal notes under a consent."""

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, dates, output, reasons, records, stdin, vocab
from nokcli.i18n import _, consents_counted, notes_counted, render
from vault.errors import BadInput, ExitCode, NokError, VaultBusy

if TYPE_CHECKING:
    from vault.notes import Note, Plan
    from vault.session import Unlocked

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
    """Add a note under an active consent; prints its id.

    Everything that does not depend on the text (the consent, the date, the kind) is
    checked before the editor opens; if saving still fails, nok offers to open the
    editor again with the text.
    """
    from vault import consents, notes

    kind = vocab.kind(kind)
    output.exposed_option("--text", text)
    state = context.get(ctx)
    date = dates.resolve(date, state.now(), field="--date")
    with state.unlocked() as vault:
        planned = notes.plan(vault, consent_id, kind=kind, date=date)
        overdue = consents.overdue(vault, consent_id)
        if overdue is not None and not yes:
            _confirm_revival(consent_id, overdue)
        if text is None and sys.stdin.isatty():
            note = _compose_and_save(state, vault, planned, yes=yes)
        else:
            body = text if text is not None else stdin.read()
            # The text is the caller's (--text, a pipe): a refusal leaves it with her.
            if not _check_long(vault, body, yes=yes, terminal=sys.stdin.isatty()):
                output.info("nothing was saved")
                raise typer.Exit(ExitCode.INTERRUPTED)
            note = _save(state, vault, planned, body)
    if json_out:
        output.emit_json({"id": note.id, "consent_id": note.consent_id, "access": note.access})
        return
    typer.echo(note.id)
    if note.pending:
        output.info(
            "you cannot open consent {id}: the note is saved for its contact person, who sees "
            "you as its author; you cannot read it back",
            id=note.consent_id,
        )


def _compose_and_save(
    state: "context.Context", vault: "Unlocked", planned: "Plan", *, yes: bool
) -> "Note":
    """Write the note in $EDITOR and save it; when saving fails, the text is not dropped:
    nok says why and opens the editor again on it (in nok's private, wiped file), until
    it is saved or the counselor lets it go."""
    from nokcli import editor

    body = ""
    while True:
        body = editor.compose(EDITOR_HEADER, initial=body)
        if not body:
            output.info("the note was empty; nothing was saved")
            raise typer.Exit(ExitCode.INTERRUPTED)
        try:
            if _check_long(vault, body, yes=yes, terminal=True):
                return _save(state, vault, planned, body)
            question = _("Open the editor again to shorten it?")
        except NokError as exc:
            output.report(exc)
            question = _("Open the editor again with your text?")
        if not output.ask(question, default=True):
            output.info("nothing was saved, and nok kept no copy of the text")
            raise typer.Exit(ExitCode.INTERRUPTED)


def _check_long(vault: "Unlocked", body: str, *, yes: bool, terminal: bool) -> bool:
    """Whether to save ``body``: a note over the guideline is asked about at a terminal
    (False: she wants to shorten it) and warned about in a script.

    Raises BadInput when it is empty or over the hard limit."""
    from vault import notes

    if notes.check_length(vault, body) is not notes.Length.LONG or yes:
        return True
    guideline = vault.settings().note_guideline
    size = len(body.strip())
    if terminal:
        return output.ask(
            render(
                "The note is {size} characters; the guideline is {guideline}. Save it anyway?",
                size=size,
                guideline=guideline,
            )
        )
    output.warn(
        "the note is {size} characters; the guideline is {guideline} (a short note is enough)",
        size=size,
        guideline=guideline,
    )
    return True


def _save(state: "context.Context", vault: "Unlocked", planned: "Plan", body: str) -> "Note":
    from vault import notes
    from vault.errors import KeysRotated

    try:
        return notes.add(vault, planned.consent_id, body, kind=planned.kind, date=planned.date)
    except KeysRotated:
        # Minutes in an editor can span an admin's key rotation; the text must not be lost.
        output.info("the vault's keys were rotated while you wrote; unlock again to save the note")
    with state.unlocked() as again:
        return notes.add(again, planned.consent_id, body, kind=planned.kind, date=planned.date)


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


def _print_notes(items: "Iterable[Note]", json_out: bool) -> None:
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
    reason: reasons.ReasonOption = None,
) -> None:
    """List notes by date (a preview of each; 'nok note show ID' for the whole note).

    Only notes of consents you may open are listed; the others are counted on stderr.
    """
    from vault import notes

    context.use_reason(ctx, reason)
    state = context.get(ctx)
    since = dates.resolve(since, state.now(), field="--since")
    with state.unlocked() as vault:
        _print_notes(notes.list_notes(vault, consent_id=consent, since=since), json_out)
        if consent is None:
            hidden, people = notes.hidden(vault, since=since)
            if hidden:
                output.info(
                    "{notes} under {consents} you may not open are not shown",
                    notes=notes_counted(hidden),
                    consents=consents_counted(people),
                )


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
    reason: reasons.ReasonOption = None,
) -> None:
    """Find notes whose text contains TEXT (case-insensitive), by date, among the
    consents you may open."""
    from vault import search as vault_search

    context.use_reason(ctx, reason)
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
    reason: reasons.ReasonOption = None,
) -> None:
    """Show one note in full (only its id, consent and date when you may not open it)."""
    from vault import notes

    context.use_reason(ctx, reason)
    state = context.get(ctx)
    with state.unlocked() as vault:
        note = reasons.retry(state, vault, lambda: notes.show(vault, note_id))
    if json_out:
        output.emit_json(note.to_json())
        return
    pairs = [
        (_("id"), note.id),
        (_("consent"), note.consent_id),
        (_("date"), note.date),
        (_("kind"), vocab.kind_shown(note.kind)),
        (_("author"), note.author),
    ]
    if not note.access:
        pairs = [pairs[0], pairs[1], pairs[2], (_("text"), _("(no access)"))]
    if note.amended is not None:
        pairs.append((_("amended"), f"{note.amended[:16].replace('T', ' ')} UTC"))
        pairs.append((_("amended by"), note.amended_by))
    output.emit_record(pairs)
    if note.access:
        typer.echo("")
        output.echo_text(note.text)


# -- correcting the record (GDPR Art. 16 and 17) -------------------------------------------

AMEND_HEADER = _(
    "# Correct the note above. Lines starting with # are ignored.\n"
    "# Saving replaces the old text for good; nok asks before it stores the new one.\n"
    "# Leave it unchanged or empty to cancel.\n"
)
NOTE_ID_HELP = _("Note id, e.g. N-3XH8-P2DW-5.")
YES_HELP = _("Do not ask for confirmation (for scripts).")


def _new_text(
    old: str, *, terminal: bool, keep: bool, check: "Callable[[str], object]"
) -> str | None:
    """The corrected text, or None to keep the old one.

    From standard input when it is not a terminal (empty input keeps the text when
    --kind or --date changes); else from $EDITOR on the old text, unless --kind or
    --date alone was asked for. An edit that ``check`` refuses (over the length limit)
    is not dropped: nok says why and opens the editor again on it.
    """
    if not terminal:
        piped = stdin.read()
        return None if keep and not piped.strip() else piped
    if keep:
        return None
    from nokcli import editor

    if any(line.startswith(editor.COMMENT) for line in old.splitlines()):
        # The editor drops comment lines: those lines of the note would be lost unseen.
        raise BadInput(
            "this note has lines starting with #, which the editor would drop; pipe the "
            "corrected text to 'nok note amend ID --yes' on standard input instead"
        )
    draft = old
    while True:
        edited = editor.compose(AMEND_HEADER, initial=draft)
        if not edited.strip() or edited.strip() == old:
            output.info("nothing was changed")
            raise typer.Exit(ExitCode.INTERRUPTED)
        try:
            check(edited)
            return edited
        except NokError as exc:
            output.report(exc)
        if not output.ask(_("Open the editor again with your text?"), default=True):
            output.info("nothing was saved, and nok kept no copy of the text")
            raise typer.Exit(ExitCode.INTERRUPTED)
        draft = edited


def _report_wal(clean: bool, note_id: str) -> None:
    if not clean:
        raise VaultBusy(
            "note {id} is changed, but another process kept an old snapshot open, so the old "
            "text may remain in the vault's -wal file until the next 'nok purge'",
            id=note_id,
        )


@app.command("amend")
def amend(
    ctx: typer.Context,
    note_id: Annotated[str, typer.Argument(metavar="ID", help=NOTE_ID_HELP)],
    kind: Annotated[
        str | None,
        typer.Option(
            help=_(
                "The new kind: one-to-one, phone, group, next-of-kin, open-house, outreach, "
                "follow-up-plan, other."
            )
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help=_("A new date of the contact: YYYY-MM-DD, today, yesterday or a weekday.")
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Correct a note: replace its text (and kind or date); the old text is erased for good.

    The new text comes from standard input, or at a terminal from $EDITOR opened on the
    current text. With --kind or --date alone at a terminal the text stays as it is (and
    empty standard input keeps it too). The note keeps its id and shows when and by whom
    it was amended. Asks first at a terminal; scripts pass --yes.
    """
    from vault import corrections, notes
    from vault.errors import KeysRotated

    if kind is not None:
        kind = vocab.kind(kind)
    state = context.get(ctx)
    date = dates.resolve(date, state.now(), field="--date")
    terminal = sys.stdin.isatty()
    keep = kind is not None or date is not None
    with state.unlocked() as vault:
        current = notes.show(vault, note_id)
        corrections.check_may_change(vault, current)
        if not yes and not terminal:
            raise BadInput(
                "amending note {id} erases its old text for good; pass --yes to confirm",
                id=current.id,
            )
        text = _new_text(
            current.text,
            terminal=terminal,
            keep=keep,
            check=lambda edited: notes.check_length(vault, edited),
        )
        long = text is not None and notes.check_length(vault, text) is notes.Length.LONG
        if long:
            output.warn(
                "the note is {size} characters; the guideline is {guideline} "
                "(a short note is enough)",
                size=len((text or "").strip()),
                guideline=vault.vault.settings().note_guideline,
            )
        if not yes:
            output.confirm(
                render(
                    "Replace note {id} (dated {date}, {kind})? The old version is erased for "
                    "good; the note keeps its id and shows that it was amended.",
                    id=current.id,
                    date=current.date,
                    kind=vocab.kind_shown(current.kind),
                ),
                declined="nothing was saved",
            )
        try:
            result = corrections.amend_note(vault, current.id, text=text, kind=kind, date=date)
        except KeysRotated:
            result = None
    if result is None:
        # Minutes in an editor can span an admin's key rotation; the text must not be lost.
        output.info("the vault's keys were rotated while you wrote; unlock again to save the note")
        with state.unlocked() as vault:
            result = corrections.amend_note(vault, current.id, text=text, kind=kind, date=date)
    note = result.note
    if json_out:
        output.emit_json(
            {
                "id": note.id,
                "consent_id": note.consent_id,
                "date": note.date,
                "kind": note.kind,
                "amended": note.amended,
                "amended_by": note.amended_by,
                "retain_until": result.retain_until,
                "wal_clean": result.wal_clean,
            }
        )
    else:
        output.info("note {id} amended; the old version is erased", id=note.id)
    _report_wal(result.wal_clean, note.id)


def _delete_reason(typed: str | None) -> str:
    """The stored reason for a deletion: --reason in either language, else asked for at a
    terminal with the reasons in the user's words.

    Raises BadInput: an unknown reason, or none given in a script."""
    if typed is not None:
        return vocab.note_reason(typed)
    if not sys.stdin.isatty():
        raise BadInput(
            "say why the note is deleted: --reason {choices}",
            choices=" | ".join(vocab.note_reason_shown(r) for r in vocab.NOTE_REASON_WORDS),
        )
    while True:
        answer = typer.prompt(
            render("Why is the note deleted ({choices})?", choices=vocab.note_reasons_shown()),
            err=True,
        )
        try:
            return vocab.note_reason(answer)
        except BadInput as exc:
            output.report(exc)


@app.command("delete")
def delete(
    ctx: typer.Context,
    note_id: Annotated[str, typer.Argument(metavar="ID", help=NOTE_ID_HELP)],
    reason: Annotated[
        str | None,
        typer.Option(
            metavar="REASON",
            help=_(
                "Why: wrong-person (filed under the wrong person), person-asked (the "
                "person asked for it to go), or mistake. A fixed word only: the tombstone "
                "keeps no free text. Asked for at a terminal."
            ),
            show_default=False,
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Delete one note for good; a tombstone without its content stays.

    The tombstone keeps the note's id, its consent, when it was deleted, the reason and
    who deleted it, and shows in the person's export. Asks first at a terminal; scripts
    pass --yes.
    """
    from vault import corrections, notes

    reason = _delete_reason(reason)
    with context.get(ctx).unlocked() as vault:
        current = notes.show(vault, note_id)
        corrections.check_may_change(vault, current)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput(
                    "deleting note {id} erases its text for good; pass --yes to confirm",
                    id=current.id,
                )
            output.confirm(
                render(
                    "Delete note {id} (dated {date}, {kind}, by {author}, under consent "
                    "{consent}: “{preview}”)? Its text is erased for good; only a tombstone "
                    "without content stays.",
                    id=current.id,
                    date=current.date,
                    kind=vocab.kind_shown(current.kind),
                    author=output.safe(current.author),
                    consent=current.consent_id,
                    preview=output.safe(records.preview(current.text)),
                )
            )
        result = corrections.delete_note(vault, current.id, reason=reason)
    if json_out:
        output.emit_json(
            {
                "id": result.note_id,
                "consent_id": result.consent_id,
                "deleted": result.deleted,
                "reason": result.reason,
                "retain_until": result.retain_until,
                "wal_clean": result.wal_clean,
            }
        )
    else:
        output.info(
            "note {id} deleted: its text is erased; a tombstone without content remains",
            id=result.note_id,
        )
    _report_wal(result.wal_clean, result.note_id)
