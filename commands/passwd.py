"""``nok passwd``: change your own passphrase (only your own key slot changes)."""

from pathlib import Path
from typing import Annotated

import typer

from nokcli import context, output, passphrase, records
from nokcli.i18n import _

app = typer.Typer()

# The new passphrase for passwd, staff add and staff reset, for scripts.
ENV_NEW = "NOK_NEW_PASSPHRASE"
NEW_FILE_HELP = _(
    "Read the new passphrase from the first line of this file (mode 0600). "
    "Default: NOK_NEW_PASSPHRASE, else asked twice at a hidden prompt."
)


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    new_passphrase_file: Annotated[
        Path | None,
        typer.Option("--new-passphrase-file", help=NEW_FILE_HELP, show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Change your own passphrase; other people's key slots are not touched.

    Unlocks with your current passphrase, builds a new key slot, checks that it opens
    the vault, and only then replaces the old one. The old passphrase stops working here;
    copies of the vault made earlier still open with it.
    """
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        secret = passphrase.new(new_passphrase_file, who=vault.name, env=ENV_NEW)
        member = staff.passwd(vault, secret)
        name = vault.name
    if json_out:
        output.emit_json(records.member_json(member))
        return
    output.info(
        "changed the passphrase of {name}; the old one no longer opens this vault", name=name
    )
