"""``nok consent``: register, list and show written consent declarations."""

from __future__ import annotations

from typing import Annotated

import typer

from nokcli import context, output, records
from nokcli.i18n import _

app = typer.Typer(
    help=_("Written consent declarations: every note hangs off one."), no_args_is_help=True
)

JSON_HELP = _("Print the result as JSON.")


@app.command("add")
def add(
    ctx: typer.Context,
    subject: Annotated[
        str, typer.Option(help=_("Alias of the person (as little as identifies them to you)."))
    ],
    purpose: Annotated[str, typer.Option(help=_("What the notes are for, as in the signed form."))],
    category: Annotated[
        list[str],
        typer.Option(
            help=_(
                "A data category the consent covers; repeat for each (e.g. conversation-notes)."
            ),
        ),
    ],
    under_16: Annotated[
        bool, typer.Option("--under-16", help=_("The person is under 16 (needs --guardian)."))
    ] = False,
    guardian: Annotated[
        str | None, typer.Option(help=_("Guardian who gave or co-signed the consent."))
    ] = None,
    form_ref: Annotated[
        str | None, typer.Option(help=_("Where the signed form is (binder, scan reference)."))
    ] = None,
    retain_days: Annotated[
        int | None,
        typer.Option(help=_("Retention in days for this consent instead of the vault default.")),
    ] = None,
    given: Annotated[
        str | None,
        typer.Option(help=_("Date the form was signed, YYYY-MM-DD. Default: today.")),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Register a signed consent declaration; prints its id."""
    from vault import consents

    data = consents.ConsentInput(
        subject=subject,
        purpose=purpose,
        categories=tuple(category),
        under_16=under_16,
        guardian=guardian,
        form_ref=form_ref,
        retain_days=retain_days,
        given=given,
    )
    with context.get(ctx).unlocked() as vault:
        consent = consents.add(vault, data)
    if json_out:
        output.emit_json({"id": consent.id, "retain_until": consent.retain_until})
        return
    typer.echo(consent.id)
    output.info(
        "registered consent {id}; data kept until {until} unless renewed by new notes",
        id=consent.id,
        until=consent.retain_until,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", help=_("Include withdrawn and expired consents (tombstones)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List active consents (with --all, also the tombstones of ended ones)."""
    from vault import consents

    with context.get(ctx).unlocked() as vault:
        items = consents.list_all(vault, include_ended=all_)
        if json_out:
            output.emit_json_array(records.consent_json(c) for c in items)
            return
        shown = output.emit_table((records.consent_row(c) for c in items), records.CONSENT_HEADERS)
    if not shown:
        output.info("no consents yet; register one with 'nok consent add'")


@app.command("show")
def show(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
    ],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show one consent declaration (or its tombstone)."""
    from vault import consents

    with context.get(ctx).unlocked() as vault:
        consent = consents.show(vault, consent_id)
    if json_out:
        output.emit_json(records.consent_json(consent))
        return
    output.emit_record(records.consent_pairs(consent))
