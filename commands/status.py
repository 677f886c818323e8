"""``nok status``: what the vault holds, without a passphrase."""

from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, output, reach
from nokcli.i18n import N_, _

if TYPE_CHECKING:
    import datetime as dt

    from vault.backup import CopiesStatus
    from vault.erasure import Reconciled, Unreachable
    from vault.session import Vault

app = typer.Typer()


LABELS = {
    "vault": N_("vault"),
    "vault_id": N_("vault id"),
    "schema_version": N_("schema version"),
    "master_key_version": N_("vault key version"),
    "master_key_created": N_("vault keys made"),
    "master_key_age_days": N_("vault key age (days)"),
    "active_consents": N_("active consents"),
    "ended_consents": N_("ended consents"),
    "notes": N_("notes"),
    "staff": N_("staff"),
    "next_deadline": N_("next deadline"),
    "rotation_pending": N_("rotation pending"),
    "key_epoch": N_("key epoch"),
    "fingerprint": N_("fingerprint"),
    "access": N_("who reads new consents"),
    "timezone": N_("calendar time zone"),
    "group": N_("shared with the group"),
    "backups_recorded": N_("backups recorded"),
}
# Datatilsynet expects erasure within a month: a copy out of reach longer than this may
# keep erased data too long.
ERASURE_WINDOW_DAYS = 30


@app.command()
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Show the vault's path, versions, counts and next retention deadline (no passphrase)."""
    from vault.backup import copies_status, set_aside
    from vault.rotation import master_key_age_days
    from vault.session import Vault

    state = context.get(ctx)
    with Vault.open(
        state.vault_path, busy_timeout=state.busy_timeout, read_only=True, report=False
    ) as vault:
        st = vault.status()
        found = _found(vault)
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
        "key_epoch": st.epoch,
        "fingerprint": st.fingerprint,
        "access": st.access,
        "timezone": st.timezone,
        "group": st.group,
    }
    aside = set_aside(st.path)
    backups = copies_status(st.path)
    long_kept = _kept_too_long(backups, state.now())
    if json_out:
        output.emit_json(
            {
                **data,
                "set_aside_files": [str(p) for p in aside],
                **backups.to_json(),
                **found.to_json(),
                "copies_past_erasure_window": [str(u.path) for u in long_kept],
            }
        )
        return
    data["backups_recorded"] = backups.recorded
    if st.group is None:
        del data["group"]
    output.emit_record([(_(LABELS.get(k, k)), v) for k, v in data.items()])
    if st.group is not None:
        output.info(
            "backups of this shared vault go in a directory of the group {group} (chgrp "
            "{group} DIR && chmod 2770 DIR; nok backup DIR/ makes a new one so): there, "
            "every member's withdrawals and the purge user's erase in them too",
            group=st.group,
        )
    if found.any:
        reach.reconciled(found)
    for u in long_kept:
        output.warn(
            "{path} is out of reach and may keep erased data for more than {days} days "
            "(until {until}); Datatilsynet expects erasure within a month: bring it back so "
            "erasures reach it, or delete it",
            path=str(u.path),
            days=ERASURE_WINDOW_DAYS,
            until=u.keep_until or "?",
        )
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


def _found(vault: "Vault") -> "Reconciled":
    """What only someone with a key may act on (reported, never acted on here)."""
    from vault import erasure

    return erasure.reconcile(vault)


def _kept_too_long(backups: "CopiesStatus", now: "dt.datetime") -> "list[Unreachable]":
    """Backups out of reach whose --keep-days (or none) lets them outlive the window."""
    import datetime as dt

    limit = (now + dt.timedelta(days=ERASURE_WINDOW_DAYS)).date().isoformat()
    return [u for u in backups.unreachable if u.keep_until is None or u.keep_until > limit]
