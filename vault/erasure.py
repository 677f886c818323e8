"""Erasure: consent withdrawal and the retention purge, plus retention and vault settings.

Both ways out erase a consent the same way, in one transaction: every note under it is
deleted, its personal fields and its wrapped data key are set to NULL (crypto-shredding:
a copy of its ciphertexts elsewhere, in a backup say, cannot be opened with the live
vault's keys), and the row stays as a tombstone holding only its id, dates, status,
reason and who recorded it. ``secure_delete`` zeroes the freed cells and pages; after
committing, the WAL is checkpointed and truncated so no old page image stays in ``-wal``.

Every erasure is also appended to ``<vault>.erasures`` (JSON Lines, ids and dates only)
before its transaction commits, so that a restore from an older backup can re-apply it
even when the vault itself was lost. A line may name an erasure whose transaction did not
commit (a crash in between); re-applying it erases what the person asked to have erased.

The purge needs no key: it runs on a :class:`vault.session.Vault` opened without a
passphrase and writes audit entries without a MAC, which the next unlock seals.

Erasure reaches copies. After every withdrawal and purge, each backup ``nok backup``
recorded (:mod:`vault.copies`) that nok can reach is brought up to date: every consent the
live vault or its erasure log says is erased is erased in the backup too, the same way,
then the backup is rebuilt (``VACUUM``) so no page of it keeps the old bytes. Backups nok
cannot reach are reported. And :func:`reconcile`, run on every open, erases again any
consent the erasure log names that is active in the file (a withdrawal killed before its
commit, an older copy of the vault put back, rows pasted in).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vault import audit, consents, copies, crypto, files, ids
from vault.dates import day, timestamp
from vault.errors import (
    BadInput,
    ClockError,
    Conflict,
    IntegrityError,
    NokError,
    NotFound,
    StorageError,
    SymlinkRefused,
)
from vault.session import MAX_RETENTION_DAYS, Unlocked, Vault, check_retention_days
from vault.store import AuditRow, ConsentRow, Store

WITHDRAWN = "withdrawn"
EXPIRED = "expired"
# Fixed reasons only: free text in a tombstone could carry the personal data it must not.
WITHDRAW_REASONS = ("withdrawn", "withdrawn-by-guardian", "registered-in-error")
LOG_SUFFIX = ".erasures"
CHECKPOINT_ATTEMPTS = 2
CHECKPOINT_PAUSE = 0.3
# A purge commits a batch of whole consents at a time: each consent is still erased
# wholly or not at all, and a writer waiting on the purge waits at most about this long.
BATCH_SECONDS = 0.25
# Who erases again, in the audit trail: nok itself, without a key, never a staff member.
ERASER = "nok"
ERASE_ACTIONS = ("consent.withdraw", "consent.expire")


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

    def to_json(self) -> dict[str, object]:
        return {
            "backups_checked": self.checked,
            "backups_updated": len(self.updated),
            "backups_unreachable": [u.to_json() for u in self.unreachable],
        }


@dataclass(frozen=True)
class Withdrawal:
    erasure: Erasure
    wal_clean: bool
    copies: CopiesReached = field(default_factory=CopiesReached)


@dataclass(frozen=True)
class PurgeResult:
    """What a purge erased (or, with ``dry_run``, would erase)."""

    checked_at: str
    today: str
    dry_run: bool
    purged: tuple[str, ...]
    notes: int
    wal_clean: bool
    copies: CopiesReached = field(default_factory=CopiesReached)


@dataclass(frozen=True)
class ErasureRecord:
    """One line of the erasure log: opaque id, UTC time, withdrawn or expired."""

    consent_id: str
    ended: str
    reason: str


@dataclass(frozen=True)
class Extension:
    consent_id: str
    retain_days: int
    old_until: str
    new_until: str


# -- the erasure log ------------------------------------------------------------------------


def log_path(vault_path: Path) -> Path:
    """The erasure log beside the vault: ``<vault path>.erasures``."""
    return vault_path.with_name(vault_path.name + LOG_SUFFIX)


def _open_log(path: Path, group: str | None) -> int:
    try:
        if not path.exists() and not path.is_symlink():
            with contextlib.suppress(FileExistsError):
                files.create_private_file(path, group)
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(path=str(path)) from None
        raise StorageError(
            "could not write the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None


def append_erasure_log(
    path: Path, records: Sequence[ErasureRecord], *, group: str | None = None
) -> None:
    """Append records to the erasure log (created 0600, or 0660 for a group vault), fsynced.

    Raises:
        SymlinkRefused: the log is a symbolic link.
        UnsafePermissions: other users can read the log.
        StorageError: it cannot be written (the caller's transaction then rolls back).
    """
    if not records:
        return
    fd = _open_log(path, group)
    try:
        files.check_mode(path, os.fstat(fd).st_mode, group_ok=group is not None)
        size = os.fstat(fd).st_size
        # A line torn by a crash must not swallow the next record.
        lead = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
        data = lead + b"".join(
            json.dumps(
                {"consent_id": r.consent_id, "ended": r.ended, "reason": r.reason},
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for r in records
        )
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(
            "could not write the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    finally:
        os.close(fd)


def _parse_record(line: str) -> ErasureRecord:
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    consent_id, ended, reason = raw.get("consent_id"), raw.get("ended"), raw.get("reason")
    if not (isinstance(consent_id, str) and isinstance(ended, str) and isinstance(reason, str)):
        raise ValueError("missing field")
    if reason not in (WITHDRAWN, EXPIRED):
        raise ValueError("unknown reason")
    dt.datetime.fromisoformat(ended)
    canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    return ErasureRecord(consent_id=canonical, ended=ended, reason=reason)


def read_erasure_log(path: Path, *, missing_ok: bool = False) -> list[ErasureRecord]:
    """The erasures recorded in ``path``, in file order, one per consent (the first).

    A last line without its newline (torn by a crash mid-write) is skipped.

    Raises:
        NotFound: no file at ``path`` (unless ``missing_ok``, which gives ``[]``).
        IntegrityError: a complete line is not an erasure record.
        StorageError: the file cannot be read.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        if missing_ok:
            return []
        raise NotFound("there is no erasure log at {path}", path=str(path)) from None
    except OSError as exc:
        raise StorageError(
            "could not read the erasure log {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    complete = text.split("\n")[:-1]
    seen: dict[str, ErasureRecord] = {}
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = _parse_record(line)
        except (ValueError, BadInput):
            raise IntegrityError(where=f"line {number} of the erasure log {path}") from None
        seen.setdefault(record.consent_id, record)
    return list(seen.values())


# -- erasing one consent -------------------------------------------------------------------


def _tombstone(
    store: Store,
    row: ConsentRow,
    *,
    status: str,
    reason: str,
    ended: str,
    actor: str,
    now: dt.datetime,
    audit_key: bytes | None,
) -> Erasure:
    """Erase one active consent inside the caller's write transaction."""
    notes = store.count_notes(row.id)
    store.tombstone_consent(row.id, status=status, ended=ended, reason=reason, ended_by=actor)
    # The last-note date says when the person was last in contact: it goes too.
    store.update_consent_retention(row.id, last_activity=None, retain_until=day(now))
    action = "consent.withdraw" if status == WITHDRAWN else "consent.expire"
    audit.append(store, now=now, actor=actor, action=action, consent_id=row.id, key=audit_key)
    return Erasure(consent_id=row.id, status=status, ended=ended, notes=notes)


def _record(e: Erasure) -> ErasureRecord:
    return ErasureRecord(consent_id=e.consent_id, ended=e.ended, reason=e.status)


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


def _ended_row(store: Store, consent_id: str) -> ConsentRow:
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
        row = _ended_row(store, consent_id)
        return Preview(consent_id=row.id, given=row.given, notes=store.count_notes(row.id))


def withdraw(unlocked: Unlocked, consent_id: str, *, reason: str = WITHDRAWN) -> Withdrawal:
    """Erase a consent on withdrawal: notes, personal fields and data key, for good.

    ``wal_clean`` is False when another process kept an old snapshot open so the WAL
    could not be truncated: the erasure is committed, but old page images may remain
    in ``-wal`` until the next checkpoint (any later purge does one).

    Raises:
        BadInput: a malformed id or an unknown reason. NotFound: no such consent.
        Conflict: already withdrawn or expired; nothing changed.
        StorageError, VaultBusy: nothing changed.
    """
    if reason not in WITHDRAW_REASONS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=reason,
            choices=", ".join(WITHDRAW_REASONS),
        )
    store = unlocked.store
    audit_key = unlocked.vault_key(audit.AUDIT_KEY)
    mark_copies_pending(store.path, _group(store))
    with store.write():
        row = _ended_row(store, consent_id)
        erasure = _tombstone(
            store,
            row,
            status=WITHDRAWN,
            reason=reason,
            ended=timestamp(unlocked.now),
            actor=unlocked.name,
            now=unlocked.now,
            audit_key=audit_key,
        )
        append_erasure_log(log_path(store.path), [_record(erasure)], group=_group(store))
    unlocked.forget_data_key(erasure.consent_id)
    wal_clean = checkpoint(store)
    return Withdrawal(
        erasure=erasure, wal_clean=wal_clean, copies=reach_copies(store, now=unlocked.now)
    )


def _group(store: Store) -> str | None:
    return store.get_setting("group")


# -- the retention purge -------------------------------------------------------------------


def check_clock(vault: Vault, now: dt.datetime) -> None:
    """Raises ClockError when ``now`` is before the vault's trusted newest time
    (:func:`vault.audit.clock_floor`)."""
    with vault.store.read():
        newest = audit.clock_floor(vault.store, now)
    stamp = timestamp(now)
    if newest is not None and stamp < newest:
        raise ClockError(now=stamp, newest=newest)


def due(vault: Vault, now: dt.datetime) -> list[str]:
    """Ids of active consents past their retention deadline on ``now``'s date.

    Raises ClockError (see :func:`check_clock`).
    """
    check_clock(vault, now)
    return vault.store.due_consents(day(now))


def purge(
    vault: Vault,
    now: dt.datetime,
    *,
    dry_run: bool,
    actor: str = "purge",
    progress: Callable[[Sequence[Erasure]], None] | None = None,
) -> PurgeResult:
    """Erase every consent past its deadline, as a withdrawal does (status ``expired``).

    Needs no key. Idempotent, and safe beside other purges and writers: each consent is
    re-checked inside the transaction that erases it, and a killed purge leaves every
    consent wholly erased or wholly intact. It always ends with a WAL checkpoint, so a
    rerun also wipes what an earlier, blocked checkpoint left in ``-wal``. ``progress``
    is called after each committed batch.

    Raises:
        ClockError: ``now`` is behind the vault's newest timestamp; nothing changed.
        VaultBusy, StorageError: the batch in progress was rolled back.
    """
    store = vault.store
    pending = due(vault, now)
    today = day(now)
    if dry_run:
        with store.read():
            notes = sum(store.count_notes(consent_id) for consent_id in pending)
        return PurgeResult(
            checked_at=timestamp(now),
            today=today,
            dry_run=True,
            purged=tuple(pending),
            notes=notes,
            wal_clean=True,
        )
    erased: list[Erasure] = []
    if pending:
        mark_copies_pending(store.path, _group(store))
    pending.reverse()
    while pending:
        batch = _purge_batch(store, pending, now=now, actor=actor)
        erased.extend(batch)
        if progress is not None and batch:
            progress(batch)
    wal_clean = checkpoint(store)
    return PurgeResult(
        checked_at=timestamp(now),
        today=today,
        dry_run=False,
        purged=tuple(e.consent_id for e in erased),
        notes=sum(e.notes for e in erased),
        wal_clean=wal_clean,
        copies=reach_copies(store, now=now),
    )


def _purge_batch(
    store: Store, pending: list[str], *, now: dt.datetime, actor: str
) -> list[Erasure]:
    """Erase consents from the end of ``pending`` in one transaction, for a short while."""
    today = day(now)
    ended = timestamp(now)
    batch: list[Erasure] = []
    with store.write():
        started = time.monotonic()
        while pending and time.monotonic() - started < BATCH_SECONDS:
            row = store.get_consent(pending.pop())
            # Another purge, a withdrawal or a new note may have got there first.
            if row is None or row.status != consents.ACTIVE or row.retain_until >= today:
                continue
            batch.append(
                _tombstone(
                    store,
                    row,
                    status=EXPIRED,
                    reason=EXPIRED,
                    ended=ended,
                    actor=actor,
                    now=now,
                    audit_key=None,
                )
            )
        append_erasure_log(log_path(store.path), [_record(e) for e in batch], group=_group(store))
    return batch


def reapply(
    vault: Vault, records: Iterable[ErasureRecord], *, now: dt.datetime, actor: str
) -> list[str]:
    """Erase again every consent in ``records`` that is still active (after a restore).

    The tombstone keeps the original time and reason. Needs no key; writes no log lines
    (the records come from a log). Returns the ids erased.

    Raises VaultBusy, StorageError: the transaction was rolled back.
    """
    erased = _erase_again(vault.store, records, now=now, actor=actor)
    checkpoint(vault.store)
    return erased


# -- erasure that reaches copies -----------------------------------------------------------


def erased_records(store: Store) -> dict[str, ErasureRecord]:
    """Every erasure known beside ``store``: its tombstones, then its erasure log.

    Raises IntegrityError (a damaged log line), StorageError.
    """
    with store.read():
        known = {
            row.id: ErasureRecord(row.id, row.ended or "", row.status)
            for row in store.ended_consents()
        }
    for record in read_erasure_log(log_path(store.path), missing_ok=True):
        known.setdefault(record.consent_id, record)
    return known


def pending_path(vault_path: Path) -> Path:
    """``<vault>.backups-pending``: there while an erasure may not yet have reached the
    recorded backups (a withdrawal or purge killed before it did)."""
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


def erase_in_copy(
    path: Path, erased: dict[str, ErasureRecord], *, vault_id: str, now: dt.datetime
) -> int:
    """Erase in the backup at ``path`` every consent of ``erased`` still active there, then
    rebuild it so no freed page keeps a byte of them; returns how many. Keyless.

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
            back = sorted(store.still_active(erased))
        if not back:
            return 0
        records = [erased[consent_id] for consent_id in back]
        _erase_again(store, records, now=now)
        store.vacuum()
        return len(back)
    finally:
        store.close()


def _erase_again(
    store: Store, records: Iterable[ErasureRecord], *, now: dt.datetime, actor: str = ERASER
) -> list[str]:
    """Tombstone, keyless, each consent of ``records`` still active; the ids erased."""
    erased = []
    with store.write():
        for record in records:
            row = store.get_consent(record.consent_id)
            if row is None or row.status != consents.ACTIVE:
                continue
            _tombstone(
                store,
                row,
                status=record.reason,
                reason=record.reason,
                ended=record.ended,
                actor=actor,
                now=now,
                audit_key=None,
            )
            erased.append(row.id)
    return erased


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


def reach_copies(store: Store, *, now: dt.datetime) -> CopiesReached:
    """Bring every backup recorded beside the vault up to date with its erasures.

    Backups nok cannot reach are returned, not raised; so are the partial files of
    backups whose writer was killed, which are removed. Never raises for a backup.
    """
    mark = _mark_stamp(store.path)
    try:
        entries = copies.read(store.path)
        erased = erased_records(store)
        with store.read():
            vault_id = store.get_setting("vault_id") or ""
    except NokError as exc:
        where = copies.BackupEntry(copies.registry_path(store.path), "")
        return CopiesReached(unreachable=(_unreachable(where, exc.message),))
    checked, updated, unreachable, removed = 0, [], [], []
    for entry in entries:
        if entry.writer is not None:
            if copies.writer_alive(entry):
                continue  # that nok brings its new backup up to date when it is written
            removed += _remove_partial(entry)
            if not entry.path.exists():
                continue
        reason = copies.unreachable_reason(entry.path, store.path)
        if reason is not None:
            unreachable.append(_unreachable(entry, reason))
            continue
        try:
            if erase_in_copy(entry.path, erased, vault_id=vault_id, now=now):
                updated.append(entry.path)
            checked += 1
        except NokError as exc:
            unreachable.append(_unreachable(entry, exc.message))
    for directory in dict.fromkeys(e.path.parent for e in entries):
        for stray in copies.stray_partials(directory, store.path):
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()
                removed.append(stray)
    # An erasure that marked again meanwhile has not been brought here yet: its mark stays.
    if mark is not None and _mark_stamp(store.path) == mark:
        with contextlib.suppress(FileNotFoundError):
            pending_path(store.path).unlink()
    return CopiesReached(checked, tuple(updated), tuple(unreachable), tuple(removed))


# -- erasing again what came back ----------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    """Consents erased again at open: ``erased_again`` were active though recorded as
    erased; ``emptied`` were tombstones holding data or notes again."""

    erased_again: tuple[str, ...] = ()
    emptied: tuple[str, ...] = ()
    copies: CopiesReached = field(default_factory=CopiesReached)
    # The backups were brought up to date for an erasure that was killed before it did.
    caught_up: bool = False

    @property
    def any(self) -> bool:
        return bool(self.erased_again or self.emptied or self.caught_up)


def reconcile(vault: Vault, *, now: dt.datetime) -> Reconciled:
    """Erase again, at once, what the erasure log says is erased but the file holds again.

    A consent in the log that is active in the file was withdrawn or expired and came
    back: a withdrawal killed after its log line and before its commit (this finishes
    it), an older copy of the vault put back, or its rows pasted in. A tombstone of the
    log holding personal data or notes again is emptied again (``nok verify`` looks at
    every tombstone). Each is recorded in the audit trail
    (keyless, actor ``nok``). When an erasure was killed before it reached the recorded
    backups (:func:`pending_path`), they are brought up to date. Needs no key; writes
    nothing when all is as it should be.

    Raises:
        IntegrityError: a damaged erasure log line.
        VaultBusy, StorageError: nothing was changed.
    """
    store = vault.store
    records = read_erasure_log(log_path(store.path), missing_ok=True)
    logged = [r.consent_id for r in records]
    with store.read():
        back = store.still_active(logged)
        dirty = sorted(store.holding_data(logged))
    if not back and not dirty:
        if _mark_stamp(store.path) is None:
            return Reconciled()
        # The erasure that left the mark may have died before its own checkpoint.
        checkpoint(store)
        return Reconciled(copies=reach_copies(store, now=now), caught_up=True)
    erased = _erase_again(store, [r for r in records if r.consent_id in back], now=now)
    emptied = _empty_tombstones(store, dirty, now=now)
    checkpoint(store)
    return Reconciled(tuple(erased), tuple(emptied), reach_copies(store, now=now))


def _empty_tombstones(store: Store, ids_: Iterable[str], *, now: dt.datetime) -> list[str]:
    emptied = []
    with store.write():
        for consent_id in ids_:
            row = store.get_consent(consent_id)
            if row is None or row.status == consents.ACTIVE:
                continue
            store.tombstone_consent(
                row.id,
                status=row.status,
                ended=row.ended or timestamp(now),
                reason=row.end_reason or row.status,
                ended_by=row.ended_by or ERASER,
            )
            audit.append(
                store,
                now=now,
                actor=ERASER,
                action="consent.expire" if row.status == EXPIRED else "consent.withdraw",
                consent_id=row.id,
            )
            emptied.append(row.id)
    return emptied


def authentic_entry(row: AuditRow, key: bytes) -> bool:
    """A sealed entry whose hash and MAC check out: written by a holder of the key."""
    if not isinstance(row.hash, bytes) or not isinstance(row.mac, bytes):
        return False
    prev = row.prev if isinstance(row.prev, bytes) else b""
    digest = audit.entry_hash(
        prev, row.seq, row.ts, row.actor, row.action, row.consent_id, row.object_id
    )
    return crypto.same(digest, row.hash) and crypto.same(crypto.mac(key, row.hash), row.mac)


def reconcile_sealed(unlocked: Unlocked) -> Reconciled:
    """Erase again every active consent that a sealed ``consent.withdraw`` or
    ``consent.expire`` audit entry says was erased (the erasure log may be gone too).

    Only entries whose MAC checks out count. Raises VaultBusy, StorageError.
    """
    store = unlocked.store
    key = unlocked.vault_key(audit.AUDIT_KEY)
    with store.read():
        rows = store.erasures_of_active(ERASE_ACTIONS)
    records = {
        row.consent_id: ErasureRecord(
            row.consent_id, row.ts, EXPIRED if row.action == "consent.expire" else WITHDRAWN
        )
        for row in rows
        if row.consent_id is not None and authentic_entry(row, key)
    }
    if not records:
        return Reconciled()
    erased = _erase_again(store, records.values(), now=unlocked.now)
    for consent_id in erased:
        unlocked.forget_data_key(consent_id)
    checkpoint(store)
    return Reconciled(tuple(erased), (), reach_copies(store, now=unlocked.now))


# -- retention -----------------------------------------------------------------------------


def extend(unlocked: Unlocked, consent_id: str, days: int) -> Extension:
    """Keep a consent's data ``days`` longer: its own retention period grows by ``days``.

    The deadline moves ``days`` later now, and every later note still counts the longer
    period from the note's date. Recorded in the audit trail.

    Raises:
        BadInput: ``days`` outside 1..36500, or a total retention over 36500 days.
        NotFound: no such consent. Conflict: it was already withdrawn or expired.
    """
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise BadInput(
            "--days must be between 1 and {max}, not {days}", max=MAX_RETENTION_DAYS, days=days
        )
    store = unlocked.store
    default_days = unlocked.vault.settings().retention_days
    with store.write():
        row = _ended_row(store, consent_id)
        retain_days = check_retention_days((row.retain_days or default_days) + days)
        new_until = consents.set_retain_days(unlocked, row, retain_days)
        unlocked.record("consent.extend", consent_id=row.id)
    return Extension(row.id, retain_days, row.retain_until, new_until)


# -- vault-wide settings -------------------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    key: str
    column: str
    low: int
    high: int


SETTINGS = {
    spec.key: spec
    for spec in (
        SettingSpec("retention-days", "retention_days", 1, MAX_RETENTION_DAYS),
        SettingSpec("note-guideline", "note_guideline", 50, 100_000),
        SettingSpec("note-limit", "note_limit", 100, 100_000),
    )
}


@dataclass(frozen=True)
class SettingChange:
    """A setting changed; for retention-days, how many deadlines moved and are now due."""

    key: str
    old: int
    new: int
    recomputed: int
    now_due: int


def parse_setting(key: str, value: str) -> tuple[SettingSpec, int]:
    """Raises BadInput for an unknown key, a non-integer or an out-of-range value."""
    spec = SETTINGS.get(key)
    if spec is None:
        raise BadInput(
            "unknown setting {key!r}; use one of: {choices}",
            key=key,
            choices=", ".join([*SETTINGS, CENTER_NAME]),
        )
    try:
        number = int(value.strip())
    except ValueError:
        raise BadInput(
            "{key} must be a whole number, not {value!r}", key=key, value=value
        ) from None
    if not spec.low <= number <= spec.high:
        raise BadInput(
            "{key} must be between {low} and {high}, not {value}",
            key=key,
            low=spec.low,
            high=spec.high,
            value=number,
        )
    return spec, number


def _following_default(store: Store) -> list[ConsentRow]:
    return [row for row in store.iter_consents(include_ended=False) if row.retain_days is None]


def retention_impact(vault: Vault, days: int, now: dt.datetime) -> tuple[int, int]:
    """For a new default retention: (consents following the default, those it makes due)."""
    today = day(now)
    with vault.store.read():
        rows = _following_default(vault.store)
    due_now = sum(1 for r in rows if consents.deadline(r.given, r.last_activity, days) < today)
    return len(rows), due_now


def _check_note_sizes(current: dict[str, int], key: str, number: int) -> None:
    guideline = number if key == "note-guideline" else current["note_guideline"]
    limit = number if key == "note-limit" else current["note_limit"]
    if guideline > limit:
        raise BadInput(
            "the note guideline ({guideline}) cannot be above the note limit ({limit})",
            guideline=guideline,
            limit=limit,
        )


def change_setting(unlocked: Unlocked, key: str, value: str) -> SettingChange:
    """Change a vault-wide setting (admins only), recorded in the audit trail.

    A new retention-days recomputes the deadline of every active consent that follows
    the vault default (not those given their own retention with --retain-days or
    extend), counted from the later of the date given and the last note.

    Raises:
        NotAllowed: not an admin. BadInput: see :func:`parse_setting`, or a guideline
            above the limit.
    """
    unlocked.require_admin(f"nok settings set {key}")
    spec, number = parse_setting(key, value)
    store = unlocked.store
    today = day(unlocked.now)
    with store.write():
        current = dataclasses.asdict(unlocked.vault.settings())
        _check_note_sizes(current, key, number)
        moved = due_now = 0
        if spec.column == "retention_days":
            for row in _following_default(store):
                until = consents.deadline(row.given, row.last_activity, number)
                store.update_consent_retention(
                    row.id, last_activity=row.last_activity, retain_until=until
                )
                moved += 1
                due_now += until < today
        unlocked.set_setting(spec.column, str(number))
        unlocked.record("settings.set", object_id=spec.column)
    return SettingChange(key, int(current[spec.column]), number, moved, due_now)


# The one text setting: the center's name, printed on the consent form.
CENTER_NAME = "center-name"
MAX_CENTER_NAME = 120


@dataclass(frozen=True)
class TextSettingChange:
    key: str
    old: str | None
    new: str


def check_center_name(value: str) -> str:
    """The name as stored: white space collapsed.

    Raises BadInput when it is empty, too long, or holds control characters (a line
    break would split the form's heading).
    """
    if not value.isprintable():
        raise BadInput("{key} must be one line of text", key=CENTER_NAME)
    clean = " ".join(value.split())
    if not clean:
        raise BadInput("{key} must not be empty", key=CENTER_NAME)
    if len(clean) > MAX_CENTER_NAME:
        raise BadInput(
            "{key} is {length} characters; the limit is {limit}",
            key=CENTER_NAME,
            length=len(clean),
            limit=MAX_CENTER_NAME,
        )
    return clean


def set_center_name(unlocked: Unlocked, value: str) -> TextSettingChange:
    """Set the center's name (admins only), recorded in the audit trail.

    Raises:
        NotAllowed: not an admin. BadInput: see :func:`check_center_name`.
    """
    unlocked.require_admin(f"nok settings set {CENTER_NAME}")
    name = check_center_name(value)
    store = unlocked.store
    with store.write():
        old = unlocked.vault.settings().center_name
        store.set_setting("center_name", name)
        unlocked.record("settings.set", object_id="center_name")
    return TextSettingChange(CENTER_NAME, old, name)
