"""``nok init``: create a vault and its first admin key slot."""

from pathlib import Path
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
    timezone: Annotated[
        str,
        typer.Option(
            help=_(
                "The time zone of the vault's calendar: deadlines and 'today' are its days, "
                "whatever TZ a job runs under."
            ),
        ),
    ] = "Europe/Oslo",
    access: Annotated[
        str,
        typer.Option(
            help=_(
                "Who reads new consents: need-to-know (their contact person, those granted "
                "access and the admins; the default) or team (every staff member)."
            ),
        ),
    ] = "need-to-know",
    recovery_file: Annotated[
        Path | None,
        typer.Option(
            "--recovery-file",
            metavar="FILE",
            help=_(
                "Write the vault's recovery key to this new file (0600) instead of showing "
                "it once at the terminal; print it for the center's safe, then delete it."
            ),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Create a new vault with you as its first admin (asks for a passphrase twice).

    It also makes the vault's recovery key, shown once (or written with --recovery-file):
    keep it in the center's safe. With it an admin slot can be made again when no admin
    is left, and a restore of an older backup accepted.
    """
    import sys

    from commands.key import show_recovery
    from vault.dates import zone
    from vault.errors import BadInput
    from vault.session import (
        Vault,
        check_access_mode,
        check_free,
        check_retention_days,
        check_staff_name,
        kdf_params,
    )

    state = context.get(ctx)
    name = check_staff_name(admin or state.user)
    kdf_params(kdf)
    check_retention_days(retain_days)
    zone(timezone)
    check_access_mode(access)
    check_free(state.vault_path)
    if recovery_file is None and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise BadInput(
            "nok init makes a recovery key, which is shown only at a terminal; in scripts "
            "give --recovery-file FILE"
        )
    if recovery_file is not None and (recovery_file.exists() or recovery_file.is_symlink()):
        raise BadInput("{path} exists already; nok never replaces a file", path=str(recovery_file))
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
        timezone=timezone,
        access=access,
    )
    seed = unlocked.recovery_seed
    unlocked.close()
    assert seed is not None
    show_recovery(seed, recovery_file)
    if json_out:
        output.emit_json({"vault": str(state.vault_path), "admin": name, "kdf": kdf})
        return
    output.info("created the vault {path} with admin {name}", path=state.vault_path, name=name)
    output.info("next: nok consent add --subject ALIAS --purpose TEXT --category CAT")
