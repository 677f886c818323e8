"""``nok activity``: an event at or by the center, with a head count and no names."""

from typing import Annotated

import typer

from nokcli import context, dates, output
from nokcli.i18n import _

app = typer.Typer(
    help=_(
        "Activities for the yearly report: groups, open house, theme meetings, courses and "
        "social activities (Bufdir's form B), outreach and teaching (the center's own "
        "figures). A head count, never names."
    ),
    no_args_is_help=True,
)


@app.command("log")
def log(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Option(
            metavar="KIND",
            help=_("group, open-house, theme-meeting, course, social, outreach or teaching."),
        ),
    ],
    participants: Annotated[
        int,
        typer.Option(metavar="N", help=_("How many took part (a number, no names).")),
    ],
    audience: Annotated[
        str | None,
        typer.Option(
            metavar="AUDIENCE",
            help=_(
                "For outreach and teaching, who it was for: school, kindergarten, "
                "municipality, professionals, public, media or other."
            ),
            show_default=False,
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help=_("The day it took place (YYYY-MM-DD, today or yesterday). Default: today."),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Count one activity for the yearly report: its kind, the day and how many took part."""
    from vault import report

    state = context.get(ctx)
    day = dates.resolve(date, state.now(), field="--date")
    with state.unlocked() as vault:
        event = report.log_activity(
            vault, kind=kind, participants=participants, audience=audience, date=day
        )
    if json_out:
        output.emit_json(event.to_json())
        return
    output.info(
        "activity {id} counted for {date}: {n} taking part",
        id=event.id,
        date=event.date,
        n=event.participants,
    )
