"""``nok backup`` and ``nok restore``: encrypted copies, and restores that keep erasures."""

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from nokcli import context, output, passphrase, reach
from nokcli.i18n import _, ngettext, render

app = typer.Typer()

JSON_HELP = _("Print the result as JSON.")


@app.command()
def backup(
    ctx: typer.Context,
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help=_(
                "A new file, or a directory to put a dated backup file in (a path ending"
                " in / is a directory, made 0700 if missing)."
            ),
        ),
    ],
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            metavar="N",
            help=_(
                "Afterwards, keep only the N newest backups nok made of this vault and delete "
                "older ones it can reach (those it cannot reach are named by nok status)."
            ),
        ),
    ] = None,
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days",
            metavar="D",
            help=_(
                "Afterwards, delete the backups nok made of this vault more than D days ago. "
                "A backup out of nok's reach may hold erased data until it is D days old: "
                "delete it by then."
            ),
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Make a consistent, still encrypted copy of the vault (0600) while others may write.

    Needs no passphrase, so a scheduled job can run it without a secret; with the job's
    credential (--job-credential) it also signs its entry and brings the other backups up
    to date with the vault's erasures. The copy holds nothing already erased, and nok
    records where it wrote it (<vault>.backups): every later withdrawal and purge erases
    in it too. Never overwrites a file.
    """
    state = context.get(ctx)
    from vault import backup as backups

    job = state.job()
    source = job if job is not None else state.open()
    try:
        info = backups.backup(
            source,
            Path(path),
            now=state.now(),
            actor=state.user,
            into_directory=path.endswith(os.sep),
            keep=keep,
            keep_days=keep_days,
        )
    finally:
        source.close()
    if json_out:
        output.emit_json(
            {
                **info.to_json(),
                "pruned": [str(p) for p in info.pruned],
                "forgotten": [str(p) for p in info.forgotten],
                **info.reached.to_json(),
            }
        )
    else:
        typer.echo(str(info.path))
        output.info(
            "backed up {consents} active consent(s) and {ended} tombstone(s) ({size} bytes) "
            "to {path}; it opens with the passphrases valid today",
            consents=len(info.consent_ids),
            ended=len(info.ended_ids),
            size=info.size,
            path=str(info.path),
        )
        for pruned in info.pruned:
            output.info("deleted the older backup {path}", path=str(pruned))
        for gone in info.forgotten:
            output.info(
                "no longer lists the backup {path}: it cannot be found, and by the "
                "--keep-days policy it had to be deleted by now",
                path=str(gone),
            )
    for removed in info.reached.partials_removed:
        output.info("removed {path}, left by a backup that was killed", path=str(removed))
    for u in info.reached.unreachable:
        reach.unreachable(u)


@app.command()
def restore(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help=_("The backup file to restore."))],
    erasures: Annotated[
        Path | None,
        typer.Option(
            "--erasures",
            metavar="FILE",
            help=_(
                "Another copy of the erasure log (<vault>.erasures); needed when the vault "
                "and the log beside it are lost."
            ),
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Replace the vault with a backup, then erase again everything erased since the backup.

    Needs an admin's passphrase (asked for): of the live vault, and of the backup's day.
    The restored vault gets new keys; staff keep their live roles, and staff removed
    since are removed again. The replaced vault is kept aside (named with the time) and
    erasures reach it like a backup's. Stop other nok processes and scheduled jobs first.
    """
    from vault import backup as backups
    from vault.errors import BadInput

    state = context.get(ctx)
    info = backups.inspect(path)
    lost, lost_notes = backups.preview_restore(path, state.vault_path)
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(
                "restoring replaces the vault at {vault}; pass --yes to confirm",
                vault=str(state.vault_path),
            )
        if lost or lost_notes:
            output.warn(
                "the live vault holds {consents} consent(s) the backup does not ({ids}) and "
                "{notes} note(s) written after it: they disappear from the vault (they stay "
                "in the file set aside)",
                consents=len(lost),
                ids=", ".join(lost) or "-",
                notes=lost_notes,
            )
        question = render(
            "Replace the vault at {vault} with the backup taken {taken}? The current vault is "
            "kept aside, and everything erased since the backup is erased again.",
            vault=str(state.vault_path),
            taken=info.taken or _("at an unknown time"),
        )
        output.confirm(question)
    secret = passphrase.current(state.passphrase_file, who=state.user)
    result = backups.restore(
        path,
        state.vault_path,
        erasures_file=erasures,
        now=state.now(),
        actor=state.user,
        passphrase=secret,
    )
    if json_out:
        output.emit_json(result.to_json())
    else:
        # ngettext has translated the template already; output renders it as it is.
        output.info(
            ngettext(
                "restored {vault} from the backup taken {taken}; {count} erasure made since "
                "then was applied again",
                "restored {vault} from the backup taken {taken}; {count} erasures made since "
                "then were applied again",
                len(result.reapplied),
            ),
            vault=str(result.vault_path),
            taken=info.taken or _("at an unknown time"),
            count=len(result.reapplied),
        )
        if result.staff_roles_set:
            output.info(
                "gave staff their roles of the live vault again: {names}",
                names=", ".join(result.staff_roles_set),
            )
        if result.staff_removed:
            output.info(
                "removed again the key slots of staff removed since the backup: {names}",
                names=", ".join(result.staff_removed),
            )
        if result.replaced is not None:
            output.info(
                "the replaced vault is kept at {path}: it holds everything it held, so delete "
                "it (rm {path} {path}-wal {path}-shm) once you have checked the restore; until "
                "then erasures reach it like a backup, and it may hold erased data until {until}",
                path=str(result.replaced),
                until=result.replaced_keep_until or _("it is deleted"),
            )
        if result.deferred:
            output.warn(
                "erasures of {ids} could not be checked by you in the restored vault; the "
                "nightly purge (or an admin) erases them",
                ids=", ".join(result.deferred),
            )
    for w in result.warnings:
        output.warn(w.template, **w.params)
