"""``nok export``: the person's own copy of everything kept under their consent."""

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from nokcli import context, output, reasons, vocab
from nokcli.i18n import _, notes_counted

app = typer.Typer()


class Format(StrEnum):
    json = "json"
    markdown = "markdown"


@app.command()
def export(
    ctx: typer.Context,
    consent_id: Annotated[
        str,
        typer.Argument(metavar="CONSENT_ID", help=_("The consent to export, e.g. C-7K2M-9Q4F.")),
    ],
    fmt: Annotated[
        Format,
        typer.Option("--format", help=_("markdown for the person to read, json for a program.")),
    ] = Format.markdown,
    out: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help=_("Write to this new file (created 0600); - or no --output: standard output."),
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help=_("Replace FILE if it already exists."))
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help=_(
                "Print the result as JSON: with --output FILE, what was written; "
                "else the copy itself (as --format json)."
            ),
        ),
    ] = False,
    reason: reasons.ReasonOption = None,
) -> None:
    """Export everything the vault holds about one person, as their own copy.

    The consent declaration, every note, and the audit entries about their data (GDPR
    articles 15 and 20). Recorded in the trail."""
    import json

    from vault import export as exporter

    if out is not None and str(out) == "-":
        out = None
    if json_out and out is None:
        fmt = Format.json
    if out is not None and out.exists() and not force:
        from vault.errors import Conflict

        raise Conflict(
            "{path} already exists; nothing was written (use --force to replace it)",
            path=str(out),
        )
    context.use_reason(ctx, reason)
    state = context.get(ctx)
    with state.unlocked() as vault:
        data = reasons.retry(state, vault, lambda: exporter.export_consent(vault, consent_id))
    if fmt is Format.json:
        text = json.dumps(exporter.to_json(data), ensure_ascii=False, indent=2) + "\n"
    else:
        text = exporter.to_markdown(data, vocab.translate_export)
    if out is None:
        # A person's copy is exact in a file or a pipe; on a terminal, control characters
        # in a note must not reach it as escape sequences.
        typer.echo(output.safe(text) if sys.stdout.isatty() else text, nl=False)
        return
    exporter.write_file(out, text, force=force)
    if json_out:
        output.emit_json(
            {
                "consent_id": data.consent.id,
                "path": str(out),
                "format": fmt.value,
                "notes": len(data.notes),
            }
        )
        return
    output.info(
        "wrote the copy of consent {id} to {path} ({notes}); hand it over safely and "
        "delete it afterwards",
        id=data.consent.id,
        path=str(out),
        notes=notes_counted(len(data.notes)),
    )
