"""Countersigning what a key signed when it stops counting (docs/security.md, "Keys that
stop counting").

A leaver keeps her identity key, a revoked job credential keeps working as a key, and a
reset leaves the old key with whoever held it. So a signature is trusted only while the
current epoch lists its signer with that key (vault.epochs.Chain.signer_key): nothing
such a key signs afterwards, dated as it likes and naming the old epoch, counts.

What the key signed while it counted must stay valid: the consents she registered, the
withdrawals she made, the notes she wrote without access. The admin who publishes the
epoch that drops the key countersigns each of those (the consent state, the tombstone's
ending, the pending note) with her own key in the new epoch, after checking the old
signature; countersigned endings also go to the erasure log, so restores of older
backups still erase what she withdrew. The audit trail needs none of this: it is walked
in order, and a dropped key's entries count only when dated before the drop and in
order (vault.audit).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from vault import consents, endings, epochs, identity, notes, states
from vault.store import ConsentRow, NoteRow, Store

if TYPE_CHECKING:
    from vault.session import Unlocked


def dropped(
    before: epochs.Epoch,
    after_staff: Iterable[epochs.Member],
    after_jobs: Iterable[epochs.JobEntry],
) -> set[str]:
    """Who signs with a key in ``before`` that the next epoch no longer lists for her."""
    keys = {m.name: m.sign for m in after_staff} | {j.name: j.sign for j in after_jobs}
    out = set()
    for name, key in [(m.name, m.sign) for m in before.staff.values()] + [
        (j.name, j.sign) for j in before.jobs.values()
    ]:
        if keys.get(name) != key:
            out.add(name)
    return out


def countersign(unlocked: Unlocked, names: set[str], number: int) -> list[endings.Signed]:
    """Countersign, as ``unlocked`` (an admin) in epoch ``number``, every consent state,
    tombstone and pending note a key of ``names`` signed that still checks out. Inside the
    caller's write transaction; returns the countersigned endings (for the erasure log)."""
    if not names:
        return []
    store, chain = unlocked.store, unlocked.chain
    out = []
    for row in store.consents_signed_by(sorted(names)):
        if row.status == states.ACTIVE:
            _state(unlocked, store, row, number)
        else:
            signed = _ending(unlocked, store, row, number)
            if signed is not None:
                out.append(signed)
    for note in store.pending_notes_signed_by(sorted(names)):
        _pending(unlocked, store, chain, note, number)
    return out


def _staff_key(chain: epochs.Chain, name: str, epoch: int) -> bytes | None:
    """The key a staff member signed a state or pending note with in ``epoch``, stood it
    or not; never a job's (the job signs neither: Chain.staff_key)."""
    found = chain.at(epoch)
    if found is None or name not in found.staff:
        return None
    return chain.listed_key(name, epoch)


def _sign(keys: identity.KeySet, digest: bytes, name: str, number: int) -> bytes:
    return keys.sign(states.signed_message(digest, name, number))


def _state(unlocked: Unlocked, store: Store, row: ConsentRow, number: int) -> None:
    digest = consents.state_digest(unlocked.vault_id, row)
    key = _staff_key(unlocked.chain, str(row.state_signer), row.state_epoch or 0)
    if not states.signature_valid(digest, row.state_signer, row.state_epoch, row.state_sig, key):
        return
    store.update_consent_state(
        row.id,
        {
            "state_signer": unlocked.name,
            "state_epoch": number,
            "state_sig": _sign(unlocked.keys, digest, unlocked.name, number),
        },
    )


def _ending(
    unlocked: Unlocked, store: Store, row: ConsentRow, number: int
) -> endings.Signed | None:
    signed = endings.from_row(row)
    if signed is None:
        return None
    digest = states.ending_digest(unlocked.vault_id, signed.ending)
    key = unlocked.chain.listed_key(signed.signer, signed.epoch)
    if not states.signature_valid(digest, signed.signer, signed.epoch, signed.sig, key):
        return None
    sig = _sign(unlocked.keys, digest, unlocked.name, number)
    store.update_consent_state(
        row.id, {"state_signer": unlocked.name, "state_epoch": number, "state_sig": sig}
    )
    by = None if unlocked.name == signed.ending.ended_by else unlocked.name
    return endings.Signed(signed.ending, number, sig, by=by)


def _pending(
    unlocked: Unlocked, store: Store, chain: epochs.Chain, row: NoteRow, number: int
) -> None:
    digest = notes.pending_digest_of(unlocked.vault_id, row)
    key = _staff_key(chain, str(row.signer), row.sig_epoch or 0)
    if not states.signature_valid(digest, row.signer, row.sig_epoch, row.sig, key):
        return
    store.countersign_pending(
        row.id, unlocked.name, number, _sign(unlocked.keys, digest, unlocked.name, number)
    )
