"""What an erasure did beyond the vault: the backups it reached, those it could not, and
consents erased again because they came back. Messages only, on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nokcli import output

if TYPE_CHECKING:
    from collections.abc import Sequence

    from vault.corrections import Repair
    from vault.erasure import CopiesReached, Reconciled, Unreachable


def unreachable(u: Unreachable) -> None:
    """One warning for a backup nok made and cannot erase in."""
    if u.keep_until is None:
        output.warn(
            "the backup {path} (taken {taken}) cannot be reached ({reason}): it may still "
            "hold the data of people erased since it was taken, until it is deleted",
            path=str(u.path),
            taken=u.taken,
            reason=u.reason,
        )
    else:
        output.warn(
            "the backup {path} (taken {taken}) cannot be reached ({reason}): it may still "
            "hold the data of people erased since it was taken, until it is deleted; by "
            "the --keep-days policy that is {until} at the latest",
            path=str(u.path),
            taken=u.taken,
            reason=u.reason,
            until=u.keep_until,
        )


def copies(reached: CopiesReached) -> None:
    """How many backups an erasure updated, and a warning for each it could not reach."""
    if reached.checked or reached.updated:
        output.info(
            "backups nok made and can reach: {checked}; erased in {updated} of them "
            "(a backup taken after an erasure has nothing left to erase)",
            updated=len(reached.updated),
            checked=reached.checked,
        )
    for path in reached.partials_removed:
        output.info("removed {path}, left by a backup that was killed", path=str(path))
    for path, ids in reached.deferred:
        output.warn(
            "the backup {path} still holds {ids}, erased here, which you cannot open: the "
            "nightly purge, an admin, or a colleague with access erases them there",
            path=str(path),
            ids=", ".join(ids),
        )
    for u in reached.unreachable:
        unreachable(u)


def reconciled(result: Reconciled) -> None:
    """Say what was erased again at open; nothing when nothing came back."""
    if result.erased_again:
        output.warn(
            "erased again {count} consent(s) that the erasure record says were erased, but "
            "that the vault held again (a withdrawal interrupted before it finished, or an "
            "older copy of the vault or its rows put back): {ids}; recorded in the audit trail",
            count=len(result.erased_again),
            ids=", ".join(result.erased_again),
        )
    if result.emptied:
        output.warn(
            "emptied again {count} tombstone(s) that held personal data or notes again "
            "(rows put back into the file): {ids}; recorded in the audit trail",
            count=len(result.emptied),
            ids=", ".join(result.emptied),
        )
    if result.waiting:
        output.warn(
            "the vault holds again {count} consent(s) that a signed withdrawal or expiry "
            "ended: {ids}; they are erased again at the next unlock by someone who can open "
            "them, or by the nightly purge",
            count=len(result.waiting),
            ids=", ".join(result.waiting),
        )
    if result.forged:
        output.warn(
            "{count} erasure record(s) are not signed by a staff member or the job (a status "
            "or a log line changed outside nok): {ids}; nok does not act on them; run "
            "'nok verify'",
            count=len(result.forged),
            ids=", ".join(result.forged),
        )
    if result.forged_lines:
        output.warn(
            "{count} line(s) of the erasure log are not signed endings: nok does not act on "
            "them; run 'nok verify'",
            count=len(result.forged_lines),
        )
    if result.caught_up:
        output.warn(
            "an earlier withdrawal or purge was interrupted before it reached the backups "
            "nok made; they were brought up to date now"
        )
    if result.any:
        copies(result.copies)


def repairs(done: Sequence[Repair], expired: Sequence[str]) -> None:
    """Say which rolled-back corrections were applied again, and which grants ran out."""
    for repair in done:
        output.warn(
            "consent {id} had been put back from a copy older than corrections made to it; "
            "they were applied again ({what})",
            id=repair.consent_id,
            what=", ".join(repair.done) or "-",
        )
        if repair.lost:
            output.warn(
                "notes {ids} of consent {id} were written after that copy was taken and are "
                "gone from the vault; check a newer backup",
                id=repair.consent_id,
                ids=", ".join(repair.lost),
            )
    if expired:
        output.info(
            "access that ran out was taken back, and those consents got new keys: {ids}",
            ids=", ".join(expired),
        )
