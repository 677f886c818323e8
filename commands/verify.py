"""``nok verify``: check the whole vault, read-only."""

import sys
from typing import Annotated

import typer

from nokcli import context, output
from nokcli.i18n import _, render_vault

app = typer.Typer()

STAGE_LABELS = {
    "sqlite": _("checking the SQLite file"),
    "epochs": _("checking the vault's signed keys and settings"),
    "staff": _("checking staff key slots"),
    "consents": _("checking consents"),
    "notes": _("checking notes"),
    "tombstones": _("checking tombstones"),
    "audit": _("checking the audit trail"),
}


def _terminal_progress(stage: str, done: int, total: int) -> None:
    label = STAGE_LABELS.get(stage, stage)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{label}: {done}/{total}{end}")
    sys.stderr.flush()


def _no_progress(stage: str, done: int, total: int) -> None:
    """Progress goes nowhere when stderr is not a terminal (cron, pipes)."""


@app.command()
def verify(
    ctx: typer.Context,
    json_out: Annotated[
        bool, typer.Option("--json", help=_("Print the report as JSON (for monitoring)."))
    ] = False,
) -> None:
    """Check the whole vault read-only: SQLite pages, schema, the signed keys and staff
    list, key slots, every signed state, key and ciphertext you can open (an admin: all),
    tombstones, the erasure log and the audit chain. One line per problem, then a
    summary; exit 0 only when all is intact, 13 otherwise."""
    from vault import verify as checks
    from vault.errors import VerifyFailed

    progress = _terminal_progress if sys.stderr.isatty() and not json_out else _no_progress
    state = context.get(ctx)
    with state.unlocked(read_only=True) as vault:
        report = checks.verify(vault, progress=progress)
    for done in state.reconciled:
        if done.erased_again:
            report.add(
                "erased-again",
                "consent(s) {ids} were recorded as erased but the vault held them again; "
                "nok erased them again when this command opened the vault",
                ids=", ".join(done.erased_again),
            )
        if done.emptied:
            report.add(
                "emptied-again",
                "tombstone(s) {ids} held personal data or notes again; nok emptied them "
                "again when this command opened the vault",
                ids=", ".join(done.emptied),
            )
    for repair in state.repairs:
        report.add(
            "correction",
            "consent {id} held a state from before corrections the audit trail records (an "
            "older copy put back); nok applied them again when this command opened the vault",
            id=repair.consent_id,
        )
    if json_out:
        output.emit_json(report.to_json())
    else:
        for p in report.problems:
            typer.echo(render_vault(p.template, p.params))
        for w in report.warnings:
            output.warn(w.template, **w.params)
        c = report.checked
        if c.get("consents_not_opened"):
            output.info(
                "{count} consent(s) you may not open were checked only for their signatures "
                "(an admin's verify checks them whole)",
                count=c["consents_not_opened"],
            )
        output.info(
            "checked {consents} consent(s), {notes} note(s), {ciphertexts} ciphertext(s), "
            "{staff} key slot(s), {tombstones} tombstone(s) and {audit} audit entries",
            consents=c.get("consents", 0),
            notes=c.get("notes", 0),
            ciphertexts=c.get("ciphertexts", 0),
            staff=c.get("staff", 0),
            tombstones=c.get("tombstones", 0),
            audit=c.get("audit_entries", 0),
        )
        if report.ok:
            output.info("the vault is intact")
    if not report.ok:
        raise VerifyFailed(count=len(report.problems))
