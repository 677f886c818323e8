"""``nok purge``: erase every consent past its retention deadline; needs no passphrase."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, output, reach
from nokcli.i18n import N_, _, consents_counted, notes_counted, render
from vault.errors import ExitCode, NokError, PassphraseUnavailable

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

    from vault.erasure import Erasure, PurgeResult, Refusal
    from vault.jobs import JobUnlocked
    from vault.session import Vault

app = typer.Typer()

# Below this many consents a terminal gets plain lines too; above it, a progress bar.
PROGRESS_BAR_FROM = 50


@app.command()
def purge(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=_("List what is due and change nothing."))
    ] = False,
    now_text: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="YYYY-MM-DD",
            help=_(
                "Purge as of this date instead of today (a later date only with --dry-run, "
                "to preview)."
            ),
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help=_("Do not ask on a terminal (scheduled jobs are never asked).")
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the result as JSON."))] = False,
) -> None:
    """Erase every consent whose retention period has run out (the job's credential, no
    passphrase).

    Each one is erased as a withdrawal is: notes, personal fields and data key go, a
    tombstone stays (reason: expired). Only consents whose signed state says they are due
    are erased; the others are named and left. Needs the scheduled job's credential
    (--job-credential or NOK_JOB_CREDENTIAL, made by 'nok key job-credential'); without
    one it lists what is due, erases nothing and exits 4. Safe to run from cron or a
    systemd timer: a second run has nothing to do; exit 0 when done or nothing was due,
    non-zero with one line on stderr otherwise. See examples/ for a nightly timer.
    """
    from vault import erasure
    from vault.dates import utcnow
    from vault.errors import BadInput, VaultBusy

    state = context.get(ctx)
    now = context.parse_now(now_text)
    job = state.job()
    vault = job.vault if job is not None else state.open()
    try:
        if not dry_run and vault.today(now) > vault.today(utcnow()):
            raise BadInput(
                "--now {date} is after today; a purge never erases ahead of the calendar "
                "(use --dry-run to preview)",
                date=now_text,
            )
        due = erasure.due(vault, now)
        if due and job is not None and not dry_run and not yes and sys.stdin.isatty():
            _confirm(erasure.purge(vault, now, dry_run=True, actor=job))
        if dry_run or not due or job is None:
            result = erasure.purge(vault, now, dry_run=dry_run, actor=job)
        else:
            result = _run(vault, job, now, len(due), quiet=json_out)
    finally:
        vault.close()
    if json_out:
        output.emit_json(
            {
                "purged": list(result.purged),
                "dry_run": result.dry_run,
                "checked_at": result.checked_at,
                "date": result.today,
                "consents": len(result.purged),
                "notes": result.notes,
                "wal_clean": result.wal_clean,
                "refused": [r.to_json() for r in result.refused],
                **result.copies.to_json(),
            }
        )
    else:
        _summary(result.dry_run, result.purged, result.notes, result.today)
    reach.copies(result.copies)
    _refusals(result.refused)
    if job is None and result.refused:
        raise NoCredential(count=len(result.refused))
    if result.refused:
        # Exit 0 would tell cron and systemd all is well, and a consent kept past its
        # deadline because its records were altered must reach an admin.
        raise Refused(count=len(result.refused))
    if not result.wal_clean:
        raise VaultBusy(
            "erased {consents}, but another process kept an old snapshot open, so "
            "erased pages may remain in the vault's -wal file until the next purge",
            consents=consents_counted(len(result.purged)),
        )


class NoCredential(PassphraseUnavailable):
    template = (
        "{count} consent(s) are past their deadline, but nothing was erased: the purge holds "
        "no job credential"
    )
    hint_template = (
        "an admin makes one with 'nok key job-credential --output FILE'; the job passes it "
        "with --job-credential FILE or NOK_JOB_CREDENTIAL (examples/ shows how)"
    )


class Refused(NokError):
    exit_code = ExitCode.INTEGRITY
    template = (
        "{count} consent(s) past their stored deadline cannot be erased: their records do "
        "not check out (named above)"
    )
    hint_template = "an admin should run 'nok verify' and look at each one named"


REFUSAL_TEXTS = {
    "cannot-check": N_("the job cannot check its state (its proof key is missing or altered)"),
    "state-forged": N_("its state is not signed by a staff member with its key"),
    "stale": N_("its state is older than the newest one the audit trail records (rolled back)"),
    "notes-changed": N_("its notes do not match its signed state (changed outside nok)"),
    "not-due": N_("its signed dates put its deadline later than the file says"),
    "trail": N_("the audit trail does not verify, so nothing is erased until an admin looks"),
}


def _refusals(refused: "Sequence[Refusal]") -> None:
    for r in refused:
        if r.why == "no-credential":
            continue
        output.warn(
            "consent {id} is past its stored deadline but was not erased: {why}",
            id=r.consent_id,
            why=_(REFUSAL_TEXTS.get(r.why, r.why)),
        )


def _run(
    vault: "Vault", job: "JobUnlocked", now: "dt.datetime", total: int, *, quiet: bool
) -> "PurgeResult":
    from vault import erasure

    if quiet:
        return erasure.purge(vault, now, dry_run=False, actor=job)
    if total >= PROGRESS_BAR_FROM and sys.stderr.isatty():
        with typer.progressbar(
            length=total, label=_("erasing expired consents"), file=sys.stderr
        ) as bar:
            return erasure.purge(
                vault, now, dry_run=False, actor=job, progress=lambda batch: bar.update(len(batch))
            )
    return erasure.purge(vault, now, dry_run=False, actor=job, progress=_lines)


def _confirm(plan: "PurgeResult") -> None:
    question = render(
        "{consents} with {notes} are past their retention deadline. Erase them for good now?",
        consents=consents_counted(len(plan.purged)),
        notes=notes_counted(plan.notes),
    )
    output.confirm(question)


def _lines(batch: "Sequence[Erasure]") -> None:
    for e in batch:
        output.info(
            "erased consent {id}: retention expired, {notes} deleted",
            id=e.consent_id,
            notes=notes_counted(e.notes),
        )


def _summary(dry_run: bool, purged: "Sequence[str]", notes: int, today: str) -> None:
    if dry_run:
        for consent_id in purged:
            typer.echo(consent_id)
        output.info(
            "dry run: {consents} with {notes} are past their deadline on {date}; "
            "nothing was changed",
            consents=consents_counted(len(purged)),
            notes=notes_counted(notes),
            date=today,
        )
    elif purged:
        output.info(
            "purge done: {consents} erased, {notes} deleted",
            consents=consents_counted(len(purged)),
            notes=notes_counted(notes),
        )
    else:
        output.info("nothing is past its retention deadline on {date}", date=today)
