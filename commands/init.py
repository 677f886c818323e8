"""``nok init``: create a vault and its first admin key slot."""

from typing import Annotated

import typer

from nokcli import context, output, passphrase
from nokcli.i18n import _

app = typer.Typer()

KDF_HELP = _(
    "Argon2id cost of the key slot: moderate (default), sensitive (slower, stronger), or "
    "interactive (fast; for test suites and slow machines only)."
)


@app.command()
def init(
    ctx: typer.Context,
    admin: Annotated[
        str | None,
        typer.Option(help=_("Name of the first admin. Default: --as, else your login name.")),
    ] = None,
    kdf: Annotated[str, typer.Option(help=KDF_HELP)] = "moderate",
    group: Annotated[
        str | None,
        typer.Option(
            help=_("Share the vault with this Unix group (file 0660, directory 2770)."),
        ),
    ] = None,
    retain_days: Annotated[
        int,
        typer.Option(
            help=_("Default retention in days, counted from the consent or its last note."),
        ),
    ] = 730,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Create a new vault with you as its first admin (asks for a passphrase twice)."""
    from vault.session import Vault, check_retention_days, check_staff_name, kdf_params

    state = context.get(ctx)
    name = check_staff_name(admin or state.user)
    kdf_params(kdf)
    check_retention_days(retain_days)
    from vault.errors import VaultExists

    if state.vault_path.exists() or state.vault_path.is_symlink():
        raise VaultExists(path=str(state.vault_path))
    if kdf == "interactive":
        output.warn(
            "the interactive Argon2id profile is fast to guess; use it only for tests "
            "or very slow machines"
        )
    secret = passphrase.new(state.passphrase_file, who=name, env=passphrase.ENV_VALUE)
    unlocked = Vault.create(
        state.vault_path,
        admin=name,
        passphrase=secret,
        now=state.now(),
        kdf=kdf,
        group=group,
        retention_days=retain_days,
    )
    unlocked.close()
    if json_out:
        output.emit_json({"vault": str(state.vault_path), "admin": name, "kdf": kdf})
        return
    output.info("created the vault {path} with admin {name}", path=state.vault_path, name=name)
    output.info("next: nok consent add --subject ALIAS --purpose TEXT --category CAT")
