"""What an erasure did beyond the vault: the backups it reached, those it could not, and
consents erased again because they came back. Messages only, on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nokcli import output

if TYPE_CHECKING:
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
    if result.caught_up:
        output.warn(
            "an earlier withdrawal or purge was interrupted before it reached the backups "
            "nok made; they were brought up to date now"
        )
    if result.any:
        copies(result.copies)
