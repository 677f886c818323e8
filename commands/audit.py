"""``nok audit``: read the audit trail and check that nobody rewrote it."""

from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, dates, output, vocab
from nokcli.i18n import N_, _, render, render_vault

if TYPE_CHECKING:
    from vault.audit import Entry

app = typer.Typer(
    help=_("The audit trail: who read or changed what, and when (ids only)."),
    no_args_is_help=True,
)

JSON_HELP = _("Print the result as JSON.")
HEADERS = (
    _("seq"),
    _("time (UTC)"),
    _("staff"),
    _("action"),
    _("consent"),
    _("object"),
    _("sealed"),
)


@app.command("list")
def list_(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help=_(
                "Only entries from this day on (UTC): YYYY-MM-DD, today, yesterday or a weekday."
            ),
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(metavar="NAME", help=_("Only entries by this staff member."))
    ] = None,
    consent: Annotated[
        str | None, typer.Option(metavar="ID", help=_("Only entries about this consent."))
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List audit entries, oldest first (admins only; reading the trail is recorded too)."""
    from vault import audit

    state = context.get(ctx)
    since = dates.resolve(since, state.now(), field="--since")
    with state.unlocked() as vault:
        entries = audit.read_trail(vault, since=since, actor=actor, consent_id=consent)
        if json_out:
            output.emit_json_array(e.to_json() for e in entries)
            return
        shown = output.emit_table(
            (
                (
                    e.seq,
                    e.ts,
                    e.actor,
                    e.action,
                    e.consent_id or "",
                    e.object_id or "",
                    _sealed_label(e),
                )
                for e in entries
            ),
            HEADERS,
        )
    if not shown:
        output.info("no audit entries match")


def _sealed_label(entry: "Entry") -> str:
    if entry.keyless:
        # Written without a passphrase or credential: nobody signed it, and nobody will.
        return _("no, keyless")
    return _("yes") if entry.sealed else _("no")


@app.command("verify")
def verify(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Check the audit chain and its signatures; exit 13 when an entry was edited,
    deleted, inserted, reordered or added without its author's key (the first broken
    link is listed first)."""
    from vault import audit
    from vault.errors import VerifyFailed

    with context.get(ctx).unlocked() as vault:
        problems = audit.verify_chain(vault.store, vault.chain, vault.now)
        count = vault.store.count_audit()
        last = vault.store.last_audit()
    if json_out:
        output.emit_json(
            {
                "ok": not problems,
                "entries": count,
                "head": None if last is None else {"seq": last.seq, "hash": bytes(last.hash).hex()},
                "problems": [p.to_json() for p in problems],
                "warnings": [],
            }
        )
    else:
        for p in problems:
            typer.echo(render_vault(p.template, p.params))
        if not problems:
            output.info("the audit trail is intact: {count} entries checked", count=count)
    if problems:
        raise VerifyFailed(count=len(problems))


@app.command("reset-anchor")
def reset_anchor(
    ctx: typer.Context,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Accept the audit trail as it is now in your own record of this vault.

    nok keeps, in your state directory, where the trail ended when you last used the
    vault, and refuses a vault whose trail no longer holds it (entries cut, an older file
    put back). After you have looked into such a refusal, this accepts the trail as it is
    now (as 'nok key accept' does for the vault's keys).
    """
    import sys

    from vault import recovery
    from vault.errors import BadInput
    from vault.session import Vault

    state = context.get(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(
                "resetting the audit anchor accepts the trail as it is now; pass --yes to confirm"
            )
        output.confirm(
            render(
                "Accept the audit trail as it is now? Entries cut from its end, or an "
                "older copy of the vault put back, are no longer reported after this."
            )
        )
    with Vault.open(state.vault_path, busy_timeout=state.busy_timeout, report=False) as vault:
        recovery.accept_here(vault)
        with vault.store.read():
            last = vault.store.last_audit()
            signed = next(vault.store.signed_audit_newest_first(), None)
    seq = last.seq if last is not None else 0
    head = signed.seq if signed is not None else 0
    if json_out:
        output.emit_json({"seq": seq, "head": head})
        return
    output.info(
        "your record of the audit trail now ends at entry {seq} (last signed entry {head})",
        seq=seq,
        head=head,
    )


REVIEW_LABELS = {
    "outside": N_("read outside her assignment"),
    "grant": N_("access given, or used"),
    "bulk": N_("many consents read in a short while"),
    "hours": N_("read outside working hours"),
    "failed": N_("failed unlocks in a row"),
}


@app.command("review")
def review(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help=_("Only what happened on or after this day (YYYY-MM-DD, or a weekday)."),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List what in the access log deserves a look (admins): reads outside one's
    assignment, grants and their use, bulk reads, reads outside working hours, failed
    unlocks. With the job credential (from cron) it prints only how many of each kind.

    docs/routines.md says how often to review. Settings: review-bulk-reads,
    review-bulk-minutes, working-hours.
    """
    from nokcli import dates
    from vault import review as log_review

    state = context.get(ctx)
    since = dates.resolve(since, state.now(), field="--since")
    job = state.job()
    if job is not None:
        try:
            found = log_review.review(job.store, job.chain, since=since)
        finally:
            job.close()
        tally = log_review.counts(found)
        if json_out:
            output.emit_json(tally)
            return
        for kind, n in tally.items():
            typer.echo(f"{_(REVIEW_LABELS[kind])}: {n}")
        return
    with state.unlocked() as vault:
        vault.require_admin("reviewing the audit trail")
        found = log_review.review(vault.store, vault.chain, since=since)
        with vault.store.write():
            vault.record("audit.review")
    if json_out:
        output.emit_json([f.to_json() for f in found])
        return
    output.emit_table(
        (
            (
                f.ts[:16].replace("T", " "),
                _(REVIEW_LABELS[f.kind]),
                f.actor,
                f.consent_id or "",
                vocab.reason_shown(f.detail) or "",
                f.count,
            )
            for f in found
        ),
        (_("when (UTC)"), _("what"), _("who"), _("consent"), _("detail"), _("count")),
    )
    if not found:
        output.info("nothing in the access log needs a look")
