"""``nok contact``: a contact no one registers (an anonymous call, a chat), for the report."""

from typing import Annotated

import typer

from nokcli import context, dates, output
from nokcli.i18n import _

app = typer.Typer(
    help=_(
        "Contacts for the yearly report (Bufdir's form A): a phone call, e-mail, SMS, letter, "
        "chat or social-media message, counted without a name. The row holds no text and "
        "nothing that points to a person."
    ),
    no_args_is_help=True,
)

JSON_HELP = _("Print the result as JSON.")


@app.command("log")
def log(
    ctx: typer.Context,
    channel: Annotated[
        str,
        typer.Option(
            metavar="CHANNEL",
            help=_(
                "How the contact came: phone, email, sms, letter, chat, social-media, video "
                "(a planned phone or video call) or partner (from a partner service)."
            ),
        ),
    ],
    role: Annotated[
        str,
        typer.Option(
            metavar="ROLE",
            help=_("Who called: survivor, next-of-kin, both, professional or unknown."),
        ),
    ] = "unknown",
    new: Annotated[
        bool | None,
        typer.Option(
            "--new/--returning",
            help=_("A first contact with the center, or someone who has been in touch before."),
            show_default=False,
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help=_("The day of the contact (YYYY-MM-DD, today or yesterday). Default: today."),
            show_default=False,
        ),
    ] = None,
    consent_id: Annotated[
        str | None,
        typer.Option(
            "--consent",
            metavar="CONSENT_ID",
            help=_(
                "Count it for the person of this consent (once a day with her notes); it is "
                "erased with the consent. Without it the contact is anonymous."
            ),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Count one contact for the yearly report: no name, no text, nothing that points to a
    person (unless --consent names the person's consent)."""
    from vault import report

    state = context.get(ctx)
    day = dates.resolve(date, state.now(), field="--date")
    with state.unlocked() as vault:
        event = report.log_contact(
            vault,
            channel=channel,
            role=role,
            new="unknown" if new is None else ("new" if new else "returning"),
            date=day,
            consent_id=consent_id,
        )
    if json_out:
        output.emit_json(event.to_json())
        return
    output.info("contact {id} counted for {date}", id=event.id, date=event.date)


@app.command("delete")
def delete(
    ctx: typer.Context,
    event_id: Annotated[
        str,
        typer.Argument(metavar="ID", help=_("Id of the contact or activity, e.g. E-3XH8-P2DW-5.")),
    ],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Delete a contact or an activity counted by mistake; it leaves the figures
    (recorded in the audit trail)."""
    from vault import report

    with context.get(ctx).unlocked() as vault:
        event = report.delete_event(vault, event_id)
    if json_out:
        output.emit_json({"deleted": event.id, "kind": event.kind, "date": event.date})
        return
    output.info("{id} deleted; it is no longer counted", id=event.id)
