"""``nok staff``: who holds a key slot, with which role."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.passwd import ENV_NEW, NEW_FILE_HELP
from nokcli import context, output, passphrase, records
from nokcli.i18n import N_, _, render

if TYPE_CHECKING:
    from vault.staff import Removal

app = typer.Typer(
    help=_(
        "Staff key slots: add and remove people, roles, passphrase resets. A staff member "
        "decrypts the consents she works with; an admin, every consent."
    ),
    no_args_is_help=True,
)

JSON_HELP = _("Print the result as JSON.")
ROLE_HELP = _("staff (consents and notes) or admin (also staff, settings and keys).")
NAME_HELP = _("Staff name (what they pass as --as / NOK_USER).")
STAFF_HEADERS = (
    _("name"),
    _("role"),
    _("created"),
    _("last used"),
    _("slot cost"),
    _("contact for"),
    _("granted"),
)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "staff",
    new_passphrase_file: Annotated[
        Path | None,
        typer.Option("--new-passphrase-file", help=NEW_FILE_HELP, show_default=False),
    ] = None,
    kdf: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Argon2id cost of the new slot: interactive, moderate or sensitive. "
                "Default: as costly as yours, and never below the vault minimum."
            ),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Give a new staff member a key slot (admins only).

    The new member types their own passphrase at the hidden prompt (twice); scripts
    use --new-passphrase-file or NOK_NEW_PASSPHRASE.
    """
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        clean = staff.check_new(vault, name, role)
        secret = passphrase.new(new_passphrase_file, who=clean, env=ENV_NEW)
        member = staff.add(vault, clean, passphrase=secret, role=role, kdf=kdf)
    if json_out:
        output.emit_json(records.member_json(member))
        return
    output.info(
        "added {name} with role {role}; they unlock with --as {name} and their own passphrase",
        name=member.name,
        role=member.role,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List everyone the vault's signed staff list names: name, role, created, last used,
    slot cost, and how many consents each is contact person for or was granted.

    A slot or role in the file that the signed list does not match is named on stderr.
    """
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        found = staff.listing(vault)
    for name in found.problems:
        output.warn(
            "the key slot or role of {name} in the file does not match the vault's signed "
            "staff list: it was changed outside nok (nok uses the signed one); run 'nok verify'",
            name=name,
        )
    members = found.members
    if json_out:
        output.emit_json([records.member_json(m) for m in members])
        return
    output.emit_table(
        [
            (m.name, m.role, m.created, m.last_used or _("never"), m.kdf, m.contact_for, m.granted)
            for m in members
        ],
        STAFF_HEADERS,
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    rotate: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Then rotate keys: 'deep' gives every consent new data keys (when they may "
                "have kept keys); 'master' only replaces the vault keys again, which the "
                "removal already does. Default: ask on a terminal, none in scripts."
            ),
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Delete a staff member's key slot (admins only; never the last admin).

    Their passphrase no longer opens this vault, and the vault keys they held are replaced
    at once. nok then says what they could still read (old copies of the file, data keys
    they may have kept) and which rotation closes it.
    """
    from commands.key import report, run_rotation
    from vault import staff
    from vault.errors import BadInput

    if rotate not in (None, "master", "deep"):
        raise BadInput("--rotate takes master or deep, not {value!r}", value=rotate)
    with context.get(ctx).unlocked() as vault:
        vault.require_admin("removing staff")
        if not yes:
            _confirm_remove(name)
        removal = staff.remove(vault, name)
        if not json_out:
            _explain(removal)
        if rotate is None and not yes and sys.stdin.isatty() and removal.consents:
            rotate = _offer_rotation(removal)
        result = run_rotation(vault, deep=rotate == "deep") if rotate else None
    if json_out:
        output.emit_json(_removal_json(removal, result.kind if result else None))
        return
    if result is not None:
        report(result, json_out=False)


def _confirm_remove(name: str) -> None:
    from vault.errors import BadInput

    if not sys.stdin.isatty():
        raise BadInput("removing {name} needs confirmation; pass --yes in scripts", name=name)
    question = render(
        "Remove the key slot of {name}? Their passphrase will no longer open this vault.",
        name=name,
    )
    output.confirm(question)


def _offer_rotation(r: "Removal") -> str | None:
    # The removal is already committed: Ctrl-C here declines the rotation, it does not
    # mean "nothing was changed" (exit 130).
    try:
        agreed = output.ask(
            render(
                "Give every consent new data keys now (a deep rotation; needed if {name} "
                "may have kept keys)?",
                name=r.name,
            )
            if r.group is None
            else render(
                "Give every consent new data keys now (a deep rotation of {notes} note(s), "
                "about {seconds:.0f} s)? It is what shuts {name} out of the file for good "
                "once she is out of the group {group}.",
                name=r.name,
                notes=r.vault_notes,
                seconds=r.deep_rotation_seconds,
                group=r.group,
            ),
            default=False,
        )
    except typer.Abort:
        agreed = False
    if agreed:
        return "deep"
    output.info("no deep rotation was run; run 'nok key rotate --deep' if it is needed")
    return None


CLOSERS = {"rotate": "nok key rotate", "rotate-deep": "nok key rotate --deep"}


def _explain(r: "Removal") -> None:
    output.info("removed the key slot of {name} ({role})", name=r.name, role=r.role)
    output.info("what {name} may still be able to read, and what closes it:", name=r.name)
    for gap in r.gaps:
        if gap.what == "group-membership":
            text = _GROUP_TEXT[r.in_group]
        else:
            shown = DATA_KEYS_CLOSED if gap.what == "data-keys" and gap.closed else gap.what
            text = _GAP_TEXT[shown]
        output.info(
            text,
            name=r.name,
            consents=r.consents,
            notes=r.notes,
            version=r.master_version,
            created=r.master_created,
            group=r.group,
            all_notes=r.vault_notes,
            seconds=r.deep_rotation_seconds,
        )


# Templates, translated when output.info renders them.
DATA_KEYS_CLOSED = "data-keys-closed"
_GAP_TEXT = {
    "old-copy": N_(
        "  - an old copy of the vault file (a backup, a copy on a laptop) still opens with "
        "{name}'s passphrase and shows what it held then; no rotation closes this: delete "
        "or lock away old copies, and let old backups expire"
    ),
    "master-key": N_(
        "  - the vault keys {name} held were replaced as the slot was removed (now version "
        "{version}): keys {name} may have kept open nothing written or shared from now on"
    ),
    "data-keys": N_(
        "  - {name} could open {consents} consent(s) with {notes} note(s) and may have kept "
        "their data keys; with them and a later copy of the file they could read those "
        "consents' notes, new ones too; close this with 'nok key rotate --deep'"
    ),
    DATA_KEYS_CLOSED: N_(
        "  - {name} could open no consent, so there are no data keys they may have kept"
    ),
}


# The group gap, by what nok found of her Unix login: still in the group, out of it, or
# no login of that name here (the staff name may not be her login).
_GROUP_TEXT = {
    True: N_(
        "  - her Unix login {name} is still in the vault's group {group}: she can still "
        "read the live file, and with data keys she kept, every note under the consents "
        "she could open, new ones too; take her out (gpasswd -d {name} {group}), then run "
        "'nok key rotate --deep' ({all_notes} note(s), about {seconds:.0f} s)"
    ),
    False: N_(
        "  - her Unix login {name} is not in the vault's group {group}: she cannot read "
        "the live file any more; 'nok key rotate --deep' ({all_notes} note(s), about "
        "{seconds:.0f} s) still closes what a copy she made beforehand would open"
    ),
    None: N_(
        "  - there is no Unix login {name} here to check: make sure her own login is out "
        "of the vault's group {group} (gpasswd -d LOGIN {group}), then run 'nok key rotate "
        "--deep' ({all_notes} note(s), about {seconds:.0f} s)"
    ),
}


def _closer(r: "Removal", closed_by: str | None) -> str | None:
    if closed_by == "leave-group":
        return f"gpasswd -d {r.name} {r.group}"
    return CLOSERS.get(closed_by or "")


def _removal_json(r: "Removal", rotated: str | None) -> dict[str, Any]:
    return {
        "removed": r.name,
        "role": r.role,
        "last_used": r.last_used,
        "consents": r.consents,
        "notes": r.notes,
        "gaps": [
            {"what": g.what, "closed_by": _closer(r, g.closed_by), "closed": g.closed}
            for g in r.gaps
        ],
        "group": None
        if r.group is None
        else {"name": r.group, "login": r.name, "login_in_group": r.in_group},
        "deep_rotation": {"notes": r.vault_notes, "seconds": round(r.deep_rotation_seconds)},
        "rotated": rotated,
    }


@app.command("role")
def role(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    new_role: Annotated[str, typer.Argument(metavar="ROLE", help=ROLE_HELP)],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Change a staff member's role (admins only; there is always at least one admin)."""
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        member = staff.set_role(vault, name, new_role)
    if json_out:
        output.emit_json(records.member_json(member))
        return
    output.info("{name} now has role {role}", name=member.name, role=member.role)


@app.command("reset")
def reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help=NAME_HELP)],
    new_passphrase_file: Annotated[
        Path | None,
        typer.Option("--new-passphrase-file", help=NEW_FILE_HELP, show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Give someone who forgot their passphrase a new key slot (admins only).

    They type the new passphrase at the hidden prompt (twice). Their old passphrase
    stops opening this vault.
    """
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        vault.require_admin("resetting a passphrase")
        secret = passphrase.new(new_passphrase_file, who=name, env=ENV_NEW)
        member = staff.reset(vault, name, secret)
    if json_out:
        output.emit_json(records.member_json(member))
        return
    output.info(
        "{name} has a new key slot; the old passphrase no longer opens this vault",
        name=member.name,
    )
