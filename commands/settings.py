"""``nok settings``: the vault-wide retention period and note lengths."""

import dataclasses
import sys
from typing import Annotated

import typer

from nokcli import context, output
from nokcli.i18n import _, ngettext, render

app = typer.Typer(
    help=_(
        "Vault-wide settings: retention period, note lengths, the center's name, the "
        "calendar's time zone, who reads new consents."
    ),
    no_args_is_help=True,
)

KEYS_HELP = _(
    "retention-days: days data is kept after the consent date or the last note, whichever "
    "is later (1-36500); note-guideline: characters above which nok asks 'save anyway?' "
    "(50-100000); note-limit: hard maximum note length (100-100000); center-name: the "
    "center's name printed on the consent form (one line, up to 120 characters); "
    "timezone: the time zone of the vault's calendar (e.g. Europe/Oslo); access: who "
    "reads consents registered from now on, need-to-know (their contact person, those "
    "granted access and the admins) or team (every staff member); staff-count: the "
    "center's staff for the yearly report (a head count); staff-fte: their full-time "
    "equivalents (e.g. 4.6)."
)


@app.command("show")
def show(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Show the vault-wide settings (no passphrase needed)."""
    with context.get(ctx).open() as vault:
        s = vault.settings()
        raw = vault.chain().current.settings
    values = {
        "retention-days": s.retention_days,
        "note-guideline": s.note_guideline,
        "note-limit": s.note_limit,
        "center-name": s.center_name,
        "timezone": s.timezone,
        "access": s.access,
        "staff-count": raw.get("staff_count"),
        "staff-fte": raw.get("staff_fte"),
    }
    if json_out:
        output.emit_json(values)
        return
    output.emit_record(list(values.items()))


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(metavar="KEY", help=KEYS_HELP),
    ],
    value: Annotated[
        str,
        typer.Argument(metavar="VALUE", help=_("The new value (a number; text for center-name).")),
    ],
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help=_("Do not ask when a shorter retention makes consents due for erasure."),
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Change a vault-wide setting (admins only; recorded in the audit trail).

    A new retention-days also moves the deadline of every active consent that follows
    the vault default (those given their own period with 'consent add --retain-days' or
    'consent extend' keep theirs). If that makes consents overdue, the next 'nok purge'
    erases them: nok asks first on a terminal, and scripts must pass --yes.
    """
    from vault import settings

    if key in settings.TEXT_SETTINGS:
        _set_text(ctx, key, value)
        return
    spec, number = settings.parse_setting(key, value)
    with context.get(ctx).unlocked() as vault:
        vault.require_admin(f"nok settings set {spec.key}")
        if spec.key == "retention-days" and not yes:
            _confirm_retention(
                settings.retention_impact(vault.vault, number, vault.today())[1], number
            )
        change = settings.change_setting(vault, spec.key, value)
    if json_out:
        output.emit_json(dataclasses.asdict(change))
        return
    output.info("{key} changed from {old} to {new}", key=change.key, old=change.old, new=change.new)
    if spec.key == "retention-days":
        # ngettext has translated the template already; output renders it as it is.
        output.info(
            ngettext(
                "moved the deadline of {count} consent that follows the vault default",
                "moved the deadline of {count} consents that follow the vault default",
                change.recomputed,
            ),
            count=change.recomputed,
        )
        if change.now_due:
            output.warn(
                ngettext(
                    "{count} consent is now past its deadline; the next 'nok purge' erases it",
                    "{count} consents are now past their deadline; the next 'nok purge' "
                    "erases them",
                    change.now_due,
                ),
                count=change.now_due,
            )


def _confirm_retention(due_now: int, days: int) -> None:
    from vault.errors import BadInput

    if not due_now:
        return
    if not sys.stdin.isatty():
        raise BadInput(
            ngettext(
                "retention-days {days} puts {count} consent past its deadline, so the next "
                "purge erases it; pass --yes to confirm",
                "retention-days {days} puts {count} consents past their deadline, so the next "
                "purge erases them; pass --yes to confirm",
                due_now,
            ),
            days=days,
            count=due_now,
        )
    question = render(
        ngettext(
            "With retention-days {days}, {count} consent is past its deadline and the next "
            "purge erases it for good. Change it?",
            "With retention-days {days}, {count} consents are past their deadline and the "
            "next purge erases them for good. Change it?",
            due_now,
        ),
        days=days,
        count=due_now,
    )
    output.confirm(question)


def _set_text(ctx: typer.Context, key: str, value: str) -> None:
    from vault import settings

    with context.get(ctx).unlocked() as vault:
        change = settings.set_text(vault, key, value)
    output.info(
        "{key} changed from {old} to {new}",
        key=change.key,
        old=change.old if change.old is not None else _("none"),
        new=change.new,
    )
