"""``nok upgrade``: bring a format-2 vault to format 3 (admins; a backup first)."""

from typing import Annotated

import typer

from nokcli import context, output, passphrase
from nokcli.i18n import _, render

app = typer.Typer()


@app.command()
def upgrade(
    ctx: typer.Context,
    recovery_file: Annotated[
        str | None,
        typer.Option(
            "--recovery-file",
            metavar="FILE",
            help=_("Write the new recovery key to this new file (0600) instead of the screen."),
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Upgrade a vault made by an older nok (format 2) to signed keys and need-to-know.

    Admins only. nok checks the old vault first and refuses to go on if anything fails,
    then makes a backup beside it, then gives every staff member new keys (each colleague
    moves to them at her next unlock, with her own passphrase) and every consent a signed
    state. Consents registered before stay readable by the whole team; new ones are
    need-to-know. Backups made before the upgrade stay in format 2: keep them out of use.
    """
    import sys
    from pathlib import Path

    from commands.key import show_recovery
    from vault import upgrade as up
    from vault.errors import BadInput

    state = context.get(ctx)
    if not up.needs_upgrade(state.vault_path):
        if json_out:
            output.emit_json({"upgraded": False})
            return
        output.info("the vault is in the current format already; nothing to do")
        return
    out = Path(recovery_file) if recovery_file is not None else None
    if out is not None and (out.exists() or out.is_symlink() or not out.parent.is_dir()):
        # Checked before anything changes: the key is made once, with the upgrade.
        raise BadInput(
            "{path} exists or its directory does not; give a new file for the recovery key",
            path=str(out),
        )
    if out is None and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise BadInput(
            "the upgrade makes a recovery key, which is shown only at a terminal; in scripts "
            "give --recovery-file FILE"
        )
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput("upgrading the vault needs confirmation; pass --yes in scripts")
        output.confirm(
            render(
                "Upgrade the vault at {path} to the current format? A backup is made first.",
                path=str(state.vault_path),
            )
        )
    secret = passphrase.current(state.passphrase_file, who=state.user)
    result = up.upgrade(state.vault_path, admin=state.user, passphrase=secret, now=state.now())
    show_recovery(result.recovery_seed, out)
    if result.dropped_log_lines:
        output.warn(
            "{count} line(s) of the old erasure log named no tombstone of this vault; they "
            "are kept aside (<vault>.erasures-format2), not in the new log",
            count=result.dropped_log_lines,
        )
    if json_out:
        output.emit_json(
            {
                "upgraded": True,
                "consents": result.consents,
                "tombstones": result.tombstones,
                "staff": list(result.staff),
                "backup": str(result.backup),
                "dropped_log_lines": result.dropped_log_lines,
                "recovery_file": None if out is None else str(out),
            }
        )
        return
    output.info(
        "upgraded: {consents} consent(s) and {ended} tombstone(s) signed; the format-2 file "
        "is kept at {backup}",
        consents=result.consents,
        ended=result.tombstones,
        backup=str(result.backup),
    )
