"""``nok status``: what the vault holds, without a passphrase."""

from typing import Annotated

import typer

from nokcli import context, output, reach
from nokcli.i18n import N_, _

app = typer.Typer()


LABELS = {
    "vault": N_("vault"),
    "vault_id": N_("vault id"),
    "schema_version": N_("schema version"),
    "master_key_version": N_("master key version"),
    "master_key_created": N_("master key created"),
    "master_key_age_days": N_("master key age (days)"),
    "active_consents": N_("active consents"),
    "ended_consents": N_("ended consents"),
    "notes": N_("notes"),
    "staff": N_("staff"),
    "next_deadline": N_("next deadline"),
    "rotation_pending": N_("rotation pending"),
    "backups_recorded": N_("backups recorded"),
}


@app.command()
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Show the vault's path, versions, counts and next retention deadline (no passphrase)."""
    from vault.backup import copies_status, set_aside
    from vault.rotation import master_key_age_days

    state = context.get(ctx)
    with state.open(read_only=True) as vault:
        st = vault.status()
    data = {
        "vault": str(st.path),
        "vault_id": st.vault_id,
        "schema_version": st.schema_version,
        "master_key_version": st.master_version,
        "master_key_created": st.master_created,
        "master_key_age_days": master_key_age_days(st.master_created, state.now()),
        "active_consents": st.active_consents,
        "ended_consents": st.ended_consents,
        "notes": st.notes,
        "staff": st.staff,
        "next_deadline": st.next_deadline,
        "rotation_pending": st.rotation_pending,
    }
    aside = set_aside(st.path)
    backups = copies_status(st.path)
    if json_out:
        output.emit_json({**data, "set_aside_files": [str(p) for p in aside], **backups.to_json()})
        return
    data["backups_recorded"] = backups.recorded
    output.emit_record([(_(LABELS.get(k, k)), v) for k, v in data.items()])
    if st.rotation_pending:
        output.warn("a key rotation is unfinished; finish it with 'nok key rotate --resume'")
    for path in aside:
        output.warn(
            "{path} was set aside by a restore: it holds everything the vault held then, and "
            "erasures never reach it; delete it once the restore is checked",
            path=str(path),
        )
    for u in backups.unreachable:
        reach.unreachable(u)
    for partial in backups.partials:
        output.warn(
            "{path} was left by a backup that was killed: it holds a copy of the vault that "
            "later erasures do not update; the next nok backup, withdrawal or purge removes it",
            path=str(partial),
        )
    if backups.problem is not None:
        output.warn(
            "the list of backups beside the vault cannot be used ({problem}): erasures do "
            "not reach the backups nok made until it is repaired",
            problem=backups.problem,
        )
