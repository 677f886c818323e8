"""Keys that stop counting: a leaver, a revoked job credential, a key replaced by a reset.

The holder keeps her secret key, and with a copy of the file (or write access to a shared
one) can sign anything naming the epoch in which she was listed. Each test attacks the file
as she would after she left; what she signed while she counted stays valid.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ADMIN, NOW, PASSPHRASE
from vault import (
    Vault,
    audit,
    consents,
    endings,
    erasure,
    identity,
    jobs,
    notes,
    staff,
    states,
    verify,
)
from vault.dates import timestamp
from vault.session import Unlocked
from vault.store import AuditRow

KARI = "kari"
KARI_PASS = "kari horse battery staple"
LATER = NOW + dt.timedelta(days=1)


def raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def as_(name: str, secret: str, path: Path, when: dt.datetime) -> Unlocked:
    return Vault.open(path).unlock(name, secret.encode(), now=when)


def add(u: Unlocked, subject: str, *, contact: str | None = None, note: str | None = None) -> str:
    c = consents.add(
        u,
        consents.ConsentInput(
            subject=subject, purpose="follow-up", categories=("safety",), contact=contact
        ),
    )
    if note is not None:
        notes.add(u, c.id, note)
    return c.id


class Leaver:
    """What kari takes with her: her identity key, the epoch she was listed in, and the
    data key of the consent she was contact person of."""

    def __init__(self, u: Unlocked, consent_id: str) -> None:
        self.keys: identity.KeySet = u.keys
        self.epoch = u.chain.current.number
        with u.store.read():
            row = u.store.get_consent(consent_id)
        assert row is not None
        self.data_key = u.data_key(row)


@pytest.fixture
def left(unlocked: Unlocked, vault_path: Path) -> tuple[Leaver, str, str]:
    """kari registered one consent and withdrew another; then anne removed her.
    Returns what kari kept, the consent she registered and the one she withdrew."""
    staff.add(unlocked, KARI, passphrase=KARI_PASS.encode())
    unlocked.close()
    kari = as_(KARI, KARI_PASS, vault_path, NOW + dt.timedelta(minutes=1))
    kept = add(kari, "KEPT-ALIAS", note="KEPT-NOTE")
    gone = add(kari, "GONE-ALIAS", note="GONE-NOTE")
    erasure.withdraw(kari, gone)
    taken = Leaver(kari, kept)
    kari.close()
    anne = as_(ADMIN, PASSPHRASE, vault_path, NOW + dt.timedelta(minutes=2))
    staff.remove(anne, KARI)
    anne.close()
    return taken, kept, gone


def test_what_a_leaver_signed_while_she_counted_stays_valid(
    left: tuple[Leaver, str, str], vault_path: Path
) -> None:
    _, kept, gone = left
    anne = as_(ADMIN, PASSPHRASE, vault_path, LATER)
    assert consents.show(anne, kept).subject == "KEPT-ALIAS"
    assert [n.text for n in notes.list_notes(anne, consent_id=kept)] == ["KEPT-NOTE"]
    report = verify.verify(anne)
    assert report.ok, [p.message for p in report.problems]
    anne.close()
    # Her withdrawal still erases: the erasure log holds an ending that checks out now.
    log = endings.read_log(endings.log_path(vault_path), chain=Vault.open(vault_path).chain())
    (record,) = [r for r in log.records if r.consent_id == gone]
    assert endings.signature_valid(Vault.open(vault_path).chain(), record)


def _forge_state(path: Path, leaver: Leaver, consent_id: str, **changes: object) -> None:
    """Change a consent's columns and give it a state signed by the leaver in her old
    epoch, with a proof made with the data key she kept."""
    vault = Vault.open(path)
    with vault.store.read():
        row = vault.store.get_consent(consent_id)
    assert row is not None
    for key, value in changes.items():
        setattr(row, key, value)
    digest = consents.state_digest(vault.chain().current.vault_id, row)
    sig = leaver.keys.sign(states.signed_message(digest, KARI, leaver.epoch))
    proof = states.proof(states.proof_key(leaver.data_key), digest)
    vault.close()
    db = raw(path)
    for column, value in changes.items():
        assert column in {"readers", "contact"}
        db.execute(f"UPDATE consents SET {column} = ? WHERE id = ?", [value, consent_id])  # noqa: S608
    db.execute(
        "UPDATE consents SET state_signer = ?, state_epoch = ?, state_sig = ?, proof = ?"
        " WHERE id = ?",
        [KARI, leaver.epoch, sig, proof, consent_id],
    )
    db.close()


def test_a_state_a_leaver_signs_after_she_left_is_refused(
    left: tuple[Leaver, str, str], vault_path: Path
) -> None:
    """She gives herself back as a reader of the consent she registered."""
    leaver, kept, _ = left
    readers = states.encode_readers([states.Reader(KARI)])
    _forge_state(vault_path, leaver, kept, readers=readers, contact=KARI)
    anne = as_(ADMIN, PASSPHRASE, vault_path, LATER)
    with pytest.raises(states.StateForged):
        consents.show(anne, kept)
    assert any(kept in p.message for p in verify.verify(anne).problems)
    anne.close()


def _plant_ending(
    path: Path,
    consent_id: str,
    *,
    status: str,
    ended: dt.datetime,
    signer: str,
    keys: identity.KeySet,
    epoch: int,
) -> None:
    """A line in the erasure log ending ``consent_id``, signed with ``keys`` as ``signer``
    naming ``epoch``: what a holder of a key writes without nok."""
    vault = Vault.open(path)
    with vault.store.read():
        row = vault.store.get_consent(consent_id)
    vault_id = vault.chain().current.vault_id
    vault.close()
    assert row is not None
    ending = states.Ending(
        consent_id, status, row.given, row.created, timestamp(ended), status, signer
    )
    sig = keys.sign(states.signed_message(states.ending_digest(vault_id, ending), signer, epoch))
    endings.append_log(endings.log_path(path), [endings.Signed(ending, epoch, sig)])


def _ending_line(leaver: Leaver, path: Path, consent_id: str, ended: dt.datetime) -> None:
    _plant_ending(
        path,
        consent_id,
        status="withdrawn",
        ended=ended,
        signer=KARI,
        keys=leaver.keys,
        epoch=leaver.epoch,
    )


@pytest.mark.parametrize("backdated", [False, True], ids=["dated now", "dated before she left"])
def test_an_ending_a_leaver_signs_after_she_left_erases_nothing(
    left: tuple[Leaver, str, str], vault_path: Path, backdated: bool
) -> None:
    leaver, kept, _ = left
    ended = NOW + dt.timedelta(minutes=1, seconds=30) if backdated else LATER
    _ending_line(leaver, vault_path, kept, ended)
    anne = as_(ADMIN, PASSPHRASE, vault_path, LATER)
    assert consents.show(anne, kept).subject == "KEPT-ALIAS"
    assert kept in erasure.reconcile(Vault.open(vault_path)).forged
    anne.close()


def _append_entry(path: Path, leaver: Leaver, ts: dt.datetime) -> int:
    """An entry appended at the end of the trail, signed by the leaver in her old epoch
    (nok's own writer refuses that: the attacker writes the row herself)."""
    vault = Vault.open(path)
    store = vault.store
    vault_id = vault.chain().current.vault_id
    with store.read():
        last = store.last_audit()
    assert last is not None
    row = AuditRow(
        seq=last.seq + 1,
        ts=timestamp(ts),
        actor=KARI,
        action="consent.withdraw",
        consent_id=None,
        object_id=None,
        prev=bytes(last.hash),
        hash=b"",
        mac=None,
        epoch=leaver.epoch,
    )
    row.hash = audit.entry_hash(bytes(last.hash), row)
    row.batch_start = row.seq
    row.sig = leaver.keys.sign(audit.batch_message(vault_id, row.seq, row))
    with store.write():
        store.insert_audit_many([row])
    vault.close()
    return row.seq


@pytest.mark.parametrize("backdated", [False, True], ids=["dated now", "dated before she left"])
def test_an_entry_a_leaver_appends_is_not_sealed(
    left: tuple[Leaver, str, str], vault_path: Path, backdated: bool
) -> None:
    leaver, _, _ = left
    when = NOW + dt.timedelta(minutes=1, seconds=30) if backdated else LATER
    seq = _append_entry(vault_path, leaver, when)
    vault = Vault.open(vault_path)
    chain = vault.chain()
    with vault.store.read():
        row = vault.store.audit_entry(seq)
    assert row is not None
    assert not audit.entry_signed(vault.store, chain, row)
    problems = audit.verify_chain(vault.store, chain, LATER)
    assert [p.kind for p in problems] == ["stale-key"], [p.message for p in problems]
    vault.close()


def test_her_entries_from_before_she_left_stay_sealed(
    left: tuple[Leaver, str, str], vault_path: Path
) -> None:
    vault = Vault.open(vault_path)
    chain = vault.chain()
    assert audit.verify_chain(vault.store, chain, LATER) == []
    with vault.store.read():
        hers = [r for r in vault.store.audit_entries() if r.actor == KARI and r.sig is not None]
    assert hers
    assert all(audit.entry_signed(vault.store, chain, r) for r in hers)
    vault.close()


def test_a_revoked_job_key_signs_no_expiry(unlocked: Unlocked, vault_path: Path) -> None:
    """The job's key outlives its revocation in every copy of the credential file."""
    cid = add(unlocked, "JOB-TARGET", note="JOB-NOTE")
    credential = jobs.issue(unlocked)
    old_epoch = unlocked.chain.current.number
    jobs.revoke(unlocked, credential.name)
    unlocked.close()
    _plant_ending(
        vault_path,
        cid,
        status="expired",
        ended=LATER,
        signer=credential.name,
        keys=identity.KeySet.from_seed(credential.seed),
        epoch=old_epoch,
    )
    anne = as_(ADMIN, PASSPHRASE, vault_path, LATER)
    assert consents.show(anne, cid).subject == "JOB-TARGET"
    anne.close()
    assert cid in erasure.reconcile(Vault.open(vault_path)).forged


# -- a key that counts, signing what it may not ----------------------------------------------


def test_the_job_cannot_date_an_expiry_ahead_to_make_a_consent_due(
    unlocked: Unlocked, vault_path: Path
) -> None:
    """Whoever holds the job credential signs endings; the date is hers to choose. An
    expiry dated past the consent's deadline, years ahead, erases nothing today."""
    cid = add(unlocked, "NOT-DUE", note="NOT-DUE-NOTE")
    credential = jobs.issue(unlocked)
    epoch = unlocked.chain.current.number
    unlocked.close()
    _plant_ending(
        vault_path,
        cid,
        status="expired",
        ended=NOW + dt.timedelta(days=3650),
        signer=credential.name,
        keys=identity.KeySet.from_seed(credential.seed),
        epoch=epoch,
    )
    anne = as_(ADMIN, PASSPHRASE, vault_path, LATER)
    assert consents.show(anne, cid).subject == "NOT-DUE"
    anne.close()


def test_revoking_the_job_countersigns_nothing_the_job_forged(
    unlocked: Unlocked, vault_path: Path
) -> None:
    """A thief of the job credential plants a pending note signed with the job's key
    (which never counts for one). When the admin revokes the credential, the
    countersignature that keeps the job's real work valid does not take the note in."""
    cid = add(unlocked, "CONTACT-READS", note="NOTE")
    credential = jobs.issue(unlocked)
    epoch = unlocked.chain.current.number
    with unlocked.store.write():
        planted = notes._add_pending(
            unlocked,
            unlocked.store.get_consent(cid),
            "PLANTED",
            kind="phone",
            date=unlocked.today(),
        )
    keys = identity.KeySet.from_seed(credential.seed)
    with unlocked.store.read():
        row = unlocked.store.get_note(planted.id)
    assert row is not None
    digest = notes.pending_digest_of(unlocked.vault_id, row)
    sig = keys.sign(states.signed_message(digest, credential.name, epoch))
    with unlocked.store.write():
        unlocked.store.countersign_pending(row.id, credential.name, epoch, sig)
    jobs.revoke(unlocked, credential.name)
    with unlocked.store.read():
        after = unlocked.store.get_note(planted.id)
    assert after is not None
    assert after.signer == credential.name
    with pytest.raises(states.StateForged):
        list(notes.list_notes(unlocked, consent_id=cid))


def test_a_state_forged_with_the_job_key_cannot_stop_its_revocation(
    unlocked: Unlocked, vault_path: Path
) -> None:
    """A thief of the job credential forges a consent state (the job holds every proof
    key), hoping the admin's revocation stops at it. The revocation goes through; the
    forged consent is never spread to the new keys, is closed to the old ones, and is
    refused and named by verify."""
    cid = add(unlocked, "FORGED-BY-JOB", note="NOTE")
    credential = jobs.issue(unlocked)
    epoch = unlocked.chain.current.number
    with unlocked.store.read():
        row = unlocked.store.get_consent(cid)
    assert row is not None
    proof_key = states.proof_key(unlocked.data_key(row))
    row.retain_days = 1
    digest = consents.state_digest(unlocked.vault_id, row)
    keys = identity.KeySet.from_seed(credential.seed)
    db = raw(vault_path)
    db.execute(
        "UPDATE consents SET retain_days = 1, state_signer = ?, state_epoch = ?, state_sig = ?,"
        " proof = ? WHERE id = ?",
        [
            credential.name,
            epoch,
            keys.sign(states.signed_message(digest, credential.name, epoch)),
            states.proof(proof_key, digest),
            cid,
        ],
    )
    db.close()
    jobs.revoke(unlocked, credential.name)
    assert credential.name not in unlocked.chain.current.jobs
    with unlocked.store.read():
        assert unlocked.store.wrap_for(cid, ["#admin", "#job"]) == []
    with pytest.raises(states.StateForged):
        consents.show(unlocked, cid)
    assert any(cid in p.message for p in verify.verify(unlocked).problems)
