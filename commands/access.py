"""``nok access``: who may read a consent (need-to-know), and giving or taking access."""

from typing import Annotated

import typer

from nokcli import context, dates, output, vocab
from nokcli.i18n import _

app = typer.Typer(
    help=_(
        "Who may read each consent: its contact person, colleagues granted access, and the "
        "admins. A colleague without access cannot decrypt it, with nok or without."
    ),
    no_args_is_help=True,
)

JSON_HELP = _("Print the result as JSON.")
ID_HELP = _("Consent id, e.g. C-7K2M-9Q4F.")
NAME_HELP = _("Staff name of the colleague.")


@app.command("grant")
def grant(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(metavar="CONSENT_ID", help=ID_HELP)],
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    reason: Annotated[
        str,
        typer.Option(
            metavar="REASON",
            help=_(
                "Why: covering, shared-follow-up, person-asked, emergency or other (a fixed "
                "word, in either language; the trail keeps no free text)."
            ),
        ),
    ],
    until: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help=_(
                "Last day of access (YYYY-MM-DD, tomorrow, or a weekday: the coming one); "
                "from the day after, nok "
                "refuses her, and the next command of the contact person or an admin gives "
                "the consent new keys. Default: until revoked."
            ),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Give a colleague access to one consent (its contact person or an admin)."""
    from vault import grants

    state = context.get(ctx)
    until = dates.resolve(until, state.now(), field="--until", ahead=True)
    with state.unlocked() as vault:
        done = grants.grant(vault, consent_id, name, reason=vocab.reason(reason), until=until)
    if json_out:
        output.emit_json(
            {
                "consent_id": done.consent_id,
                "name": done.name,
                "until": done.until,
                "reason": done.reason,
            }
        )
        return
    if done.until:
        output.info(
            "{name} may read consent {id} until {until}",
            name=done.name,
            id=done.consent_id,
            until=done.until,
        )
    else:
        output.info("{name} may read consent {id}", name=done.name, id=done.consent_id)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    consent_id: Annotated[str, typer.Argument(metavar="CONSENT_ID", help=ID_HELP)],
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Take a colleague's access to one consent back: the consent gets a new key.

    Every note under it is encrypted again, so a copy of her key taken before opens
    nothing written after. What she could read before stays readable in copies of the
    file she already had.
    """
    from vault import grants

    with context.get(ctx).unlocked() as vault:
        row = grants.revoke(vault, consent_id, name)
    if json_out:
        output.emit_json({"consent_id": row.id, "name": name, "key_version": row.key_version})
        return
    output.info(
        "{name} may no longer read consent {id}; it has a new key (version {version})",
        name=name,
        id=row.id,
        version=row.key_version,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    consent_id: Annotated[
        str | None, typer.Argument(metavar="[CONSENT_ID]", help=ID_HELP, show_default=False)
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Who may read each active consent (or one): contact person and those granted."""
    from vault import grants

    with context.get(ctx).unlocked() as vault:
        rows = grants.listing(vault, consent_id)
    if json_out:
        output.emit_json_array(r.to_json() for r in rows)
        return
    output.emit_table(
        (
            (
                r.consent_id,
                r.contact or "",
                _("the whole team") if r.access == "team" else _("need-to-know"),
                ", ".join(
                    f"{g.name} ({_('until')} {g.until})" if g.until else g.name for g in r.readers
                ),
            )
            for r in rows
        ),
        (_("consent"), _("contact person"), _("who reads"), _("granted")),
    )
