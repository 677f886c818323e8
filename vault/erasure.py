"""Erasure: consent withdrawal, the retention purge, and erasure that reaches copies.

Both ways out erase a consent the same way, in one transaction: every note under it and
every wrap of its data key are deleted, its sealed record and key material set to NULL
(crypto-shredding: a copy of its ciphertexts elsewhere cannot be opened with the live
vault's keys), and the row stays as a tombstone holding its id, dates, how it ended and
who ended it, as a signed ending (vault.endings). ``secure_delete`` zeroes the freed cells
and pages; after committing, the WAL is checkpointed and truncated so no old page image
stays in ``-wal``. The ending is also appended to ``<vault>.erasures`` before the
transaction commits, so that a restore from an older backup can apply it again even when
the vault itself was lost.

What is erased always rests on something a file writer without a staff secret cannot
make:

* a withdrawal is made by a staff member who can open the consent;
* the purge runs as the scheduled job with its credential (vault.jobs) and erases a
  consent only when its state is signed by a staff member, carries a proof made with its
  data key, is the newest one the signed trail records, covers every note, and is past
  its deadline in the vault's calendar (:func:`check_due`);
* erasing again (in a backup, in an older copy put back, in rows pasted in) happens only
  on an authentic ending (:func:`vault.endings.authentic`), by someone who can check the
  copy's state: a staff member with access to that consent, an admin, or the job.

Without a passphrase or a credential nok only reports (:func:`reconcile`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from vault import access, audit, consents, copies, crypto, endings, files, states
from vault.dates import timestamp, utcnow
from vault.endings import EXPIRED, WITHDRAWN, Actor, Signed, log_path
from vault.epochs import Chain
from vault.errors import BadInput, ClockError, Conflict, NokError
from vault.session import MAX_RETENTION_DAYS, Unlocked, Vault, check_retention_days
from vault.store import ConsentRow, Store

# Fixed reasons only: free text in a tombstone could carry the personal data it must not.
WITHDRAW_REASONS = ("withdrawn", "withdrawn-by-guardian", "registered-in-error")
CHECKPOINT_ATTEMPTS = 2
CHECKPOINT_PAUSE = 0.3
# A purge commits a batch of whole consents at a time: each consent is still erased
# wholly or not at all, and a writer waiting on the purge waits at most about this long.
BATCH_SECONDS = 0.25
ERASE_ACTIONS = ("consent.withdraw", "consent.expire")
AGAIN_ACTION = "consent.erased-again"


@dataclass(frozen=True)
class Preview:
    """What withdrawing a consent would erase (counts only, for the confirmation)."""

    consent_id: str
    given: str
    notes: int


@dataclass(frozen=True)
class Erasure:
    """One consent erased."""

    consent_id: str
    status: str
    ended: str
    notes: int


@dataclass(frozen=True)
class Refusal:
    """A consent nok did not erase, and why (one of :data:`REFUSALS`)."""

    consent_id: str
    why: str

    def to_json(self) -> dict[str, object]:
        return {"consent_id": self.consent_id, "why": self.why}


# Why the purge did not erase a consent the plaintext says is due (the command line
# explains each in the user's language).
REFUSALS = (
    "no-credential",
    "cannot-check",
    "state-forged",
    "stale",
    "notes-changed",
    "not-due",
    "trail",
)


@dataclass(frozen=True)
class Unreachable:
    """A backup nok made but cannot erase in: it may still hold data erased since
    ``taken``, until it is deleted (``keep_until``: the day the --keep-days policy set)."""

    path: Path
    taken: str
    keep_until: str | None
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "taken": self.taken,
            "may_hold_erased_data_until": self.keep_until,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CopiesReached:
    """What bringing the recorded backups up to date did."""

    checked: int = 0
    updated: tuple[Path, ...] = ()
    unreachable: tuple[Unreachable, ...] = ()
    partials_removed: tuple[Path, ...] = ()
    # Consents a copy holds that this actor cannot check (someone with access, an admin
    # or the job will): by backup path.
    deferred: tuple[tuple[Path, tuple[str, ...]], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "backups_checked": self.checked,
            "backups_updated": len(self.updated),
            "backups_unreachable": [u.to_json() for u in self.unreachable],
            "backups_deferred": [
                {"path": str(p), "consents": list(ids_)} for p, ids_ in self.deferred
            ],
        }


@dataclass(frozen=True)
class Withdrawal:
    erasure: Erasure
    wal_clean: bool
    copies: CopiesReached = field(default_factory=CopiesReached)


@dataclass(frozen=True)
class PurgeResult:
    """What a purge erased (or, with ``dry_run``, would erase), and what it refused."""

    checked_at: str
    today: str
    dry_run: bool
    purged: tuple[str, ...]
    notes: int
    wal_clean: bool
    copies: CopiesReached = field(default_factory=CopiesReached)
    refused: tuple[Refusal, ...] = ()


@dataclass(frozen=True)
class Extension:
    consent_id: str
    retain_days: int
    old_until: str
    new_until: str


def _group(store: Store) -> str | None:
    return store.get_setting("group")


def checkpoint(store: Store) -> bool:
    """Truncate the WAL so no erased page image stays in ``-wal``; False if a reader blocked it.

    Each attempt waits up to the busy timeout for readers of older snapshots.
    """
    for attempt in range(CHECKPOINT_ATTEMPTS):
        if store.checkpoint():
            return True
        if attempt + 1 < CHECKPOINT_ATTEMPTS:
            time.sleep(CHECKPOINT_PAUSE)
    return False


# -- erasing one consent -------------------------------------------------------------------


def _erase(
    store: Store,
    actor: Actor,
    signed: Signed,
    row: ConsentRow,
    *,
    action: str,
    keep_figures: bool = True,
) -> Erasure:
    """Tombstone one active consent with ``signed`` as its ending and record ``action``
    (inside the caller's write transaction). ``keep_figures`` False (a copy): what it
    gave the yearly report is not kept there, the live vault kept it."""
    from vault import report  # builds on the consents this module erases

    notes = store.count_notes(row.id)
    e = signed.ending
    # Before the data goes: what the person contributed to the yearly figures is kept
    # without her (docs/report.md).
    if keep_figures:
        report.on_erase(store, actor, row, reason=e.reason)
    store.tombstone_consent(
        row.id,
        status=e.status,
        ended=e.ended,
        reason=e.reason,
        ended_by=e.ended_by,
        signer=signed.signer,
        epoch=signed.epoch,
        sig=signed.sig or None,
        retain_until=actor.today(),
    )
    audit.append(
        store,
        now=actor.now,
        signer=actor.signer(),
        action=action,
        consent_id=row.id,
        object_id=None if action in ERASE_ACTIONS else e.ended_by,
        detail=e.reason if action in ERASE_ACTIONS else e.status,
        rev=(row.rev or 0) + 1,
        state=states.ending_digest(actor.vault_id, e),
    )
    return Erasure(consent_id=row.id, status=e.status, ended=e.ended, notes=notes)


def _ending(actor: Actor, row: ConsentRow, status: str, reason: str) -> Signed:
    ending = states.Ending(
        row.id, status, row.given, row.created, timestamp(actor.now), reason, actor.name
    )
    return endings.sign(actor, ending)


def _active_row(store: Store, consent_id: str) -> ConsentRow:
    row = consents.get_row(store, consent_id)
    if row.status != consents.ACTIVE:
        raise Conflict(
            "consent {id} is already {status} (since {ended}); nothing was changed",
            id=row.id,
            status=row.status,
            ended=(row.ended or "")[:10],
        )
    return row


def preview(vault: Vault, consent_id: str) -> Preview:
    """What a withdrawal of ``consent_id`` would erase. Needs no key.

    Raises:
        BadInput: a malformed id. NotFound: no such consent.
        Conflict: the consent was already withdrawn or expired.
    """
    store = vault.store
    with store.read():
        row = _active_row(store, consent_id)
        return Preview(consent_id=row.id, given=row.given, notes=store.count_notes(row.id))


def withdraw(unlocked: Unlocked, consent_id: str, *, reason: str = WITHDRAWN) -> Withdrawal:
    """Erase a consent on withdrawal: notes, personal fields and data key, for good.

    Only someone who can open the consent (its contact person, a colleague granted
    access, or an admin) may withdraw it: the signed ending names her.

    ``wal_clean`` is False when another process kept an old snapshot open so the WAL
    could not be truncated: the erasure is committed, but old page images may remain
    in ``-wal`` until the next checkpoint (any later purge does one).

    Raises:
        BadInput: a malformed id or an unknown reason. NotFound: no such consent.
        Conflict: already withdrawn or expired; nothing changed.
        access.NoAccess: she cannot open the consent.
        IntegrityError: its state was altered outside nok.
        StorageError, VaultBusy: nothing changed.
    """
    if reason not in WITHDRAW_REASONS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=reason,
            choices=", ".join(WITHDRAW_REASONS),
        )
    store = unlocked.store
    mark_copies_pending(store.path, _group(store))
    with store.write():
        row = _active_row(store, consent_id)
        key = access.open_key(unlocked, row, admin_ok=True)
        consents.check_state(unlocked, row, key)
        signed = _ending(unlocked, row, WITHDRAWN, reason)
        erasure = _erase(store, unlocked, signed, row, action="consent.withdraw")
        endings.append_log(log_path(store.path), [signed], group=_group(store))
    unlocked.forget_data_key(erasure.consent_id)
    wal_clean = checkpoint(store)
    return Withdrawal(erasure=erasure, wal_clean=wal_clean, copies=reach_copies(store, unlocked))


# -- the retention purge -------------------------------------------------------------------


def _machine_clock(now: dt.datetime) -> dt.datetime:
    """The time that tells a planted future entry from real work: this computer's clock,
    not an earlier ``--now`` (against which all of today's work would look planted)."""
    return max(now, utcnow())


def check_clock(vault: Vault, now: dt.datetime) -> None:
    """Raises ClockError when ``now`` is before the vault's newest signed work
    (:func:`vault.audit.clock_floor`)."""
    chain = vault.chain()
    with vault.store.read():
        newest = audit.clock_floor(vault.store, chain)
    stamp = timestamp(now)
    if newest is not None and stamp < newest:
        raise ClockError(now=stamp, newest=newest)


def due(vault: Vault, now: dt.datetime) -> list[str]:
    """Ids of active consents whose stored deadline is past on ``now``'s day in the vault's
    calendar: what the plaintext says, before anything is checked (see :func:`check_due`).

    Raises ClockError (see :func:`check_clock`).
    """
    check_clock(vault, now)
    return vault.store.due_consents(vault.today(now))


def check_due(actor: Actor, vault: Vault, row: ConsentRow, today: str) -> str | None:
    """None when ``row`` really is due on ``today`` by what a file writer cannot make; else
    the code of why not (:data:`REFUSALS`)."""
    store = vault.store
    key = actor.proof_key(store, row)
    if key is None:
        return "cannot-check"
    digest = consents.state_digest(actor.vault_id, row)
    signer_key = actor.chain.staff_key(str(row.state_signer), row.state_epoch or 0)
    if not (
        states.proof_valid(key, digest, row.proof)
        and states.signature_valid(
            digest, row.state_signer, row.state_epoch, row.state_sig, signer_key
        )
    ):
        return "state-forged"
    latest = store.latest_state_entry(row.id)
    if (
        latest is None
        or latest.rev != row.rev
        or not crypto_same(latest.state, digest)
        or not audit.entry_signed(store, actor.chain, latest)
    ):
        return "stale"
    stored = [(i, s, states.record_tag(t)) for i, s, t in store.note_chain(row.id)]
    if not crypto_same(consents.notes_hash(actor.vault_id, row, stored), row.notes_hash):
        return "notes-changed"
    written = {n.id for n in store.iter_notes_by_consent_id(row.id)}
    later = [e for e in store.entries_of(["note.add"], row.id) if e.seq > latest.seq]
    if any(e.object_id not in written for e in later):
        return "notes-changed"
    last = row.last_activity
    for pending in store.pending_notes(row.id):
        last = max(last or pending.date, pending.date)
    retention = vault.settings().retention_days
    if consents.deadline(row.given, last, row.retain_days or retention) >= today:
        return "not-due"
    return None


def crypto_same(a: object, b: object) -> bool:
    return isinstance(a, bytes) and isinstance(b, bytes) and crypto.same(a, b)


def purge(
    vault: Vault,
    now: dt.datetime,
    *,
    dry_run: bool,
    actor: Actor | None,
    progress: Callable[[Sequence[Erasure]], None] | None = None,
) -> PurgeResult:
    """Erase every consent past its deadline, as a withdrawal does (status ``expired``).

    ``actor`` is the scheduled job (vault.jobs) or an unlocked admin; without one (None)
    nothing is erased and every due consent is refused as ``no-credential``. Each due
    consent is checked (:func:`check_due`) and re-checked inside the transaction that
    erases it; a killed purge leaves every consent wholly erased or wholly intact. It
    always ends with a WAL checkpoint, so a rerun also wipes what an earlier, blocked
    checkpoint left in ``-wal``. ``progress`` is called after each committed batch.

    Raises:
        ClockError: ``now`` is behind the vault's newest signed work; nothing changed.
        VaultBusy, StorageError: the batch in progress was rolled back.
    """
    store = vault.store
    pending = due(vault, now)
    today = vault.today(now)
    base = PurgeResult(
        checked_at=timestamp(now), today=today, dry_run=dry_run, purged=(), notes=0, wal_clean=True
    )
    if not pending:
        return replace(base, wal_clean=checkpoint(store) if not dry_run else True)
    if actor is None:
        if dry_run:
            # What the file says is due, unchecked: only a credential can check it.
            return replace(base, purged=tuple(pending))
        return replace(base, refused=tuple(Refusal(c, "no-credential") for c in pending))
    with store.read():
        if audit.verify_chain(store, actor.chain, _machine_clock(now), signed_only=True):
            return replace(base, refused=tuple(Refusal(c, "trail") for c in pending))
        rows = {c: store.get_consent(c) for c in pending}
        verdicts = {c: check_due(actor, vault, r, today) for c, r in rows.items() if r is not None}
    refused = tuple(Refusal(c, why) for c, why in verdicts.items() if why is not None)
    ok = [c for c, why in verdicts.items() if why is None]
    if dry_run:
        with store.read():
            notes = sum(store.count_notes(c) for c in ok)
        return replace(base, purged=tuple(ok), notes=notes, refused=refused)
    erased: list[Erasure] = []
    if ok:
        mark_copies_pending(store.path, _group(store))
    ok.reverse()
    while ok:
        batch = _purge_batch(actor, vault, ok, today=today)
        erased.extend(batch)
        if progress is not None and batch:
            progress(batch)
    return replace(
        base,
        purged=tuple(e.consent_id for e in erased),
        notes=sum(e.notes for e in erased),
        wal_clean=checkpoint(store),
        copies=reach_copies(store, actor),
        refused=refused,
    )


def _purge_batch(actor: Actor, vault: Vault, pending: list[str], *, today: str) -> list[Erasure]:
    """Erase consents from the end of ``pending`` in one transaction, for a short while."""
    store = vault.store
    batch: list[Erasure] = []
    records: list[Signed] = []
    with store.write():
        started = time.monotonic()
        while pending and time.monotonic() - started < BATCH_SECONDS:
            row = store.get_consent(pending.pop())
            # Another purge, a withdrawal or a new note may have got there first.
            if row is None or row.status != consents.ACTIVE or check_due(actor, vault, row, today):
                continue
            signed = _ending(actor, row, EXPIRED, EXPIRED)
            batch.append(_erase(store, actor, signed, row, action="consent.expire"))
            records.append(signed)
        endings.append_log(log_path(store.path), records, group=_group(store))
    return batch


# -- erasure that reaches copies -----------------------------------------------------------


def known_endings(store: Store, chain: Chain | None) -> dict[str, Signed]:
    """Every ending known beside ``store``: its signed tombstones, then its erasure log
    (signatures not yet checked: :func:`vault.endings.authentic` does).

    Raises StorageError, UnsafePermissions (a log that is not a regular file).
    """
    with store.read():
        known = {}
        for row in store.ended_consents():
            signed = endings.from_row(row)
            if signed is not None:
                known[row.id] = signed
    log = endings.read_log(log_path(store.path), missing_ok=True, chain=chain)
    for record in log.records:
        known.setdefault(record.consent_id, record)
    return known


def _trail_endings(
    actor: Actor, live: Store, target: Store, ids_: Iterable[str]
) -> dict[str, Signed]:
    """Endings the live vault's signed trail records for ``ids_`` (active in ``target``)."""
    out: dict[str, Signed] = {}
    for consent_id in ids_:
        row = target.get_consent(consent_id)
        if row is None:
            continue
        for entry in live.entries_of(ERASE_ACTIONS, consent_id):
            signed = endings.from_entry(actor.vault_id, entry, row)
            if signed is not None and audit.entry_signed(live, actor.chain, entry):
                out[consent_id] = signed
                break
    return out


@dataclass(frozen=True)
class Applied:
    erased: tuple[str, ...] = ()
    # Active here, named by an ending this actor could not check (another can).
    deferred: tuple[str, ...] = ()
    # Named by an ending that is not authentic: never acted on.
    refused: tuple[str, ...] = ()


def apply_endings(actor: Actor, live: Store, target: Store, known: dict[str, Signed]) -> Applied:
    """Erase in ``target`` (the vault itself, or a copy) every consent active there that an
    authentic ending names; keyed by the actor (inside its own transaction)."""
    with target.read():
        back = sorted(target.still_active(known))
    if not back:
        return Applied()
    zone = _zone(actor)
    trail = (
        _trail_endings(actor, live, target, [c for c in back if c not in known])
        if live is not target
        else {}
    )
    erased, deferred, refused = [], [], []
    with target.write():
        for consent_id in back:
            row = target.get_consent(consent_id)
            if row is None or row.status != consents.ACTIVE:
                continue
            signed = known.get(consent_id) or trail.get(consent_id)
            if signed is None:
                continue
            if actor.proof_key(target, row) is None:
                deferred.append(consent_id)
                continue
            if not endings.authentic(actor, target, signed, row, zone):
                refused.append(consent_id)
                continue
            _erase(target, actor, signed, row, action=AGAIN_ACTION, keep_figures=live is target)
            erased.append(consent_id)
    return Applied(tuple(erased), tuple(deferred), tuple(refused))


def _zone(actor: Actor) -> str:
    return str(actor.chain.current.settings.get("timezone", "Europe/Oslo"))


def _unreachable(entry: copies.BackupEntry, reason: str) -> Unreachable:
    return Unreachable(entry.path, entry.taken, entry.keep_until, reason)


def _remove_partial(entry: copies.BackupEntry) -> list[Path]:
    partial = entry.partial
    if partial is None or copies.unreachable_reason(partial) is not None:
        return []
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
        return [partial]
    return []


def reach_copies(store: Store, actor: Actor | None) -> CopiesReached:
    """Bring every backup recorded beside the vault up to date with its erasures (only an
    ``actor`` with a key can; without one, the backups are only checked for reach).

    Backups nok cannot reach are returned, not raised; so are the partial files of
    backups whose writer was killed, which are removed. Never raises for a backup.
    """
    mark = _mark_stamp(store.path)
    try:
        entries = copies.read(store.path)
        known = known_endings(store, None) if actor is not None else {}
        with store.read():
            vault_id = store.get_setting("vault_id") or ""
    except NokError as exc:
        where = copies.BackupEntry(copies.registry_path(store.path), "")
        return CopiesReached(unreachable=(_unreachable(where, exc.message),))
    checked, updated, unreachable, removed, deferred = 0, [], [], [], []
    all_done = True
    for entry in entries:
        if entry.writer is not None:
            if copies.writer_alive(entry):
                continue  # that nok brings its new backup up to date when it is written
            removed += _remove_partial(entry)
            if not entry.path.exists():
                continue
        reason = copies.unreachable_reason(entry.path, store.path, group=_group(store))
        if reason is not None:
            unreachable.append(_unreachable(entry, reason))
            continue
        if actor is None:
            all_done = False
            continue
        try:
            applied = erase_in_copy(actor, store, entry.path, known, vault_id=vault_id)
            if applied.erased:
                updated.append(entry.path)
            if applied.deferred:
                deferred.append((entry.path, applied.deferred))
                all_done = False
            checked += 1
        except NokError as exc:
            unreachable.append(_unreachable(entry, exc.message))
    for directory in dict.fromkeys(e.path.parent for e in entries):
        for stray in copies.stray_partials(directory, store.path):
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()
                removed.append(stray)
    # An erasure that marked again meanwhile has not been brought here yet: its mark stays.
    if all_done and mark is not None and _mark_stamp(store.path) == mark:
        with contextlib.suppress(FileNotFoundError):
            pending_path(store.path).unlink()
    return CopiesReached(
        checked, tuple(updated), tuple(unreachable), tuple(removed), tuple(deferred)
    )


def erase_in_copy(
    actor: Actor, live: Store, path: Path, known: dict[str, Signed], *, vault_id: str
) -> Applied:
    """Erase in the backup at ``path`` every consent an authentic ending names that is
    still active there, then rebuild it so no freed page keeps a byte of them.

    Raises:
        Conflict: the file is a backup of another vault (nothing is changed in it).
        NotAVault, IntegrityError, UnsupportedVersion, VaultBusy, StorageError: as opening
            or writing it does; a crash leaves a rollback journal that the next attempt
            plays back before erasing again.
    """
    store = Store.open_copy(path, writable=True)
    try:
        with store.read():
            if store.get_setting("vault_id") != vault_id:
                raise Conflict("{path} is a backup of another vault", path=str(path))
        applied = apply_endings(actor, live, store, known)
        if applied.erased:
            store.vacuum()
        return applied
    finally:
        store.close()


def pending_path(vault_path: Path) -> Path:
    """``<vault>.backups-pending``: there while an erasure may not yet have reached the
    recorded backups (a withdrawal or purge killed before it did, or a backup holding a
    consent its eraser could not check)."""
    return vault_path.with_name(vault_path.name + copies.REGISTRY_SUFFIX + "-pending")


def mark_copies_pending(vault_path: Path, group: str | None) -> None:
    """Before an erasure commits: say that the backups must be brought up to date.

    Only when backups are recorded; 0660 in a group vault, so any member's erasure can
    renew it. Best effort: without it, the next erasure or backup still catches up.
    """
    if not copies.registry_path(vault_path).exists():
        return
    mark = pending_path(vault_path)
    with contextlib.suppress(OSError):
        with contextlib.suppress(FileExistsError):
            files.create_private_file(mark, group)
        os.utime(mark, follow_symlinks=False)


def _mark_stamp(vault_path: Path) -> int | None:
    try:
        return pending_path(vault_path).lstat().st_mtime_ns
    except OSError:
        return None


# -- erasing again what came back ----------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    """What opening or unlocking found: consents erased again (``erased_again``: active
    though an authentic ending says they ended; ``emptied``: tombstones holding data
    again), and what was only reported: ``waiting`` (named by a signed ending this
    process could not check, for someone with access, an admin or the job), ``forged``
    (endings, log lines or tombstones that are not authentic: never acted on)."""

    erased_again: tuple[str, ...] = ()
    emptied: tuple[str, ...] = ()
    copies: CopiesReached = field(default_factory=CopiesReached)
    caught_up: bool = False
    waiting: tuple[str, ...] = ()
    forged: tuple[str, ...] = ()
    forged_lines: tuple[int, ...] = ()

    @property
    def any(self) -> bool:
        return bool(
            self.erased_again
            or self.emptied
            or self.caught_up
            or self.waiting
            or self.forged
            or self.forged_lines
        )

    def to_json(self) -> dict[str, object]:
        return {
            "erased_again": list(self.erased_again),
            "emptied": list(self.emptied),
            "waiting_for_a_key": list(self.waiting),
            "unauthenticated_erasures": list(self.forged),
            "unauthenticated_log_lines": list(self.forged_lines),
        }


def reconcile(vault: Vault) -> Reconciled:
    """What a process without a key can tell: consents the erasure log names that are
    active in the file (``waiting`` when the ending's signature checks out, ``forged``
    when it does not), tombstones without a signed ending, and log lines that are not
    endings. Changes nothing: without a passphrase or a credential nok never erases.

    Raises StorageError, UnsafePermissions (a log that is not a regular file),
    IntegrityError (a broken epoch chain).
    """
    store = vault.store
    chain = vault.chain()
    log = endings.read_log(log_path(store.path), missing_ok=True, chain=chain)
    with store.read():
        back = store.still_active(r.consent_id for r in log.records)
        forged_tombs = [
            row.id
            for row in store.ended_consents()
            if (signed := endings.from_row(row)) is None
            or not endings.signature_valid(chain, signed)
        ]
    waiting: list[str] = []
    forged = list(forged_tombs)
    for record in log.records:
        if record.consent_id not in back:
            continue
        (waiting if endings.signature_valid(chain, record) else forged).append(record.consent_id)
    return Reconciled(
        waiting=tuple(sorted(waiting)),
        forged=tuple(sorted(set(forged))),
        forged_lines=log.bad_lines,
    )


def replay(actor: Actor, vault: Vault) -> Reconciled:
    """Erase again, at once, what an authentic ending says ended but the file holds again
    (a withdrawal killed before its commit, an older copy of the vault put back, rows
    pasted in), for every consent ``actor`` can check; empty again tombstones with a
    signed ending that hold data again; and bring the backups up to date when an erasure
    was killed before it reached them. What ``actor`` cannot check is ``waiting``; what is
    not authentic, ``forged``. Each erasure is recorded, signed by ``actor``.

    Raises VaultBusy, StorageError: nothing was changed.
    """
    store = vault.store
    report = reconcile(vault)
    known = known_endings(store, actor.chain)
    with store.read():
        back = store.still_active(known)
        trail_back = [
            e.consent_id
            for e in store.erasures_of_active(ERASE_ACTIONS)
            if e.consent_id is not None
        ]
    applied = apply_endings(actor, store, store, known) if back else Applied()
    trail = _trail_endings(actor, store, store, sorted(set(trail_back) - set(known)))
    trail_applied = apply_endings(actor, store, store, trail) if trail else Applied()
    emptied = _empty_tombstones(actor, store)
    erased = (*applied.erased, *trail_applied.erased)
    waiting = tuple(
        sorted(
            set(report.waiting) - set(erased) | set(applied.deferred) | set(trail_applied.deferred)
        )
    )
    forged = tuple(sorted(set(report.forged) | set(applied.refused) | set(trail_applied.refused)))
    caught_up = _mark_stamp(store.path) is not None
    if erased or emptied or caught_up:
        checkpoint(store)
        reached = reach_copies(store, actor)
    else:
        reached = CopiesReached()
    return Reconciled(
        erased_again=tuple(erased),
        emptied=tuple(emptied),
        copies=reached,
        caught_up=caught_up and not (erased or emptied),
        waiting=waiting,
        forged=forged,
        forged_lines=report.forged_lines,
    )


def _empty_tombstones(actor: Actor, store: Store) -> list[str]:
    """Empty again every tombstone with a signed ending that holds data again (rows put
    back under it); a tombstone without one (a status edited in the file) is reported by
    :func:`reconcile`, never emptied: it may be an active consent."""
    with store.read():
        dirty = store.tombstones_with_data()
    emptied: list[str] = []
    if not dirty:
        return emptied
    with store.write():
        for consent_id in dirty:
            row = store.get_consent(consent_id)
            signed = None if row is None else endings.from_row(row)
            if row is None or signed is None or not endings.signature_valid(actor.chain, signed):
                continue
            e = signed.ending
            store.tombstone_consent(
                row.id,
                status=e.status,
                ended=e.ended,
                reason=e.reason,
                ended_by=e.ended_by,
                signer=signed.signer,
                epoch=signed.epoch,
                sig=signed.sig,
            )
            audit.append(
                store,
                now=actor.now,
                signer=actor.signer(),
                action=AGAIN_ACTION,
                consent_id=row.id,
                object_id=e.ended_by,
                detail=e.status,
            )
            emptied.append(row.id)
    return emptied


# -- retention -----------------------------------------------------------------------------


def extend(unlocked: Unlocked, consent_id: str, days: int) -> Extension:
    """Keep a consent's data ``days`` longer: its own retention period grows by ``days``.

    The deadline moves ``days`` later now, and every later note still counts the longer
    period from the note's date. Recorded in the audit trail.

    Raises:
        BadInput: ``days`` outside 1..36500, or a total retention over 36500 days.
        NotFound: no such consent. Conflict: it was already withdrawn or expired.
        access.NoAccess: she cannot open it.
    """
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise BadInput(
            "--days must be between 1 and {max}, not {days}", max=MAX_RETENTION_DAYS, days=days
        )
    store = unlocked.store
    default_days = unlocked.settings().retention_days
    with store.write():
        row = _active_row(store, consent_id)
        key = access.open_key(unlocked, row, admin_ok=True)
        consents.check_state(unlocked, row, key)
        retain_days = check_retention_days((row.retain_days or default_days) + days)
        moved = consents.commit_state(
            unlocked,
            replace(row, retain_days=retain_days),
            key,
            "consent.extend",
            detail=str(retain_days),
        )
    return Extension(row.id, retain_days, row.retain_until, moved.retain_until)
