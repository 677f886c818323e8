"""Backups that stay encrypted, and restores that never bring erased data back.

:func:`backup` needs no passphrase: it copies ciphertexts and never decrypts, so a cron
job can run it without holding a secret. It uses SQLite's ``VACUUM INTO``: one read
snapshot (writers go on meanwhile), rebuilt row by row, so the copy holds exactly the
committed rows of that moment; no freed page, no ``-wal`` frame of an erased row.

:func:`restore` replaces the live vault with a backup, keeps the replaced file aside,
then erases again every consent that was erased after the backup was taken, as recorded
by the live vault's tombstones and by the erasure log beside it (or a copy of that log
given explicitly, which is all there is when the live vault is lost). Staff removed from
the live vault since the backup are removed again too. It too is keyless.

Every backup is recorded beside the vault (:mod:`vault.copies`), so later withdrawals
and purges erase in it too (:func:`vault.erasure.reach_copies`); ``keep``/``keep_days``
delete old ones so the time a backup out of reach may hold erased data is bounded.

A backup holds the staff slots and master key of its day: it opens with the
passphrases that were valid then (docs/backup.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from vault import audit, copies, endings, epochs, erasure, files, pins, session, slots
from vault.dates import timestamp
from vault.errors import (
    Conflict,
    DamagedBackup,
    NokError,
    StorageError,
    SymlinkRefused,
    UnsafePermissions,
    VaultBusy,
)
from vault.jobs import JobUnlocked
from vault.session import DEFAULT_PINS, PinsArg, Unlocked, Vault
from vault.store import Store

LAST_BACKUP = "last_backup"
RESTORED = "restored"
SET_ASIDE_MARK = ".replaced-"


@dataclass(frozen=True)
class BackupInfo:
    """What a backup file holds (read from the file itself)."""

    path: Path
    vault_id: str
    taken: str | None
    audit_seq: int
    master_version: int
    schema_version: int
    consent_ids: frozenset[str]
    ended_ids: frozenset[str]
    size: int
    group: str | None = None
    # Set by backup() only: backups deleted by --keep/--keep-days, and what bringing the
    # recorded backups up to date did.
    pruned: tuple[Path, ...] = ()
    forgotten: tuple[Path, ...] = ()
    reached: erasure.CopiesReached = field(default_factory=erasure.CopiesReached)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "vault_id": self.vault_id,
            "taken": self.taken,
            "audit_seq": self.audit_seq,
            "master_key_version": self.master_version,
            "schema_version": self.schema_version,
            "active_consents": len(self.consent_ids),
            "ended_consents": len(self.ended_ids),
            "size": self.size,
        }


def _stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


Source = Vault | Unlocked | JobUnlocked


def _store_of(source: Source) -> Store:
    return source.store


def default_name(vault_path: Path, now: dt.datetime) -> str:
    """``vault.db`` -> ``vault-backup-20261123T100000Z.db``."""
    return f"{vault_path.stem}-backup-{_stamp(now)}{vault_path.suffix or '.db'}"


def _check_private_dir(directory: Path) -> None:
    """Raises UnsafePermissions when other users can enter or list ``directory``."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o007:
        raise UnsafePermissions(
            path=str(directory), who="every user", mode=f"{mode:04o}", fix="o-rwx"
        )


def _target(
    store: Store, dest: Path, now: dt.datetime, *, into_directory: bool, group: str | None
) -> Path:
    dest = dest.expanduser()
    if into_directory and not dest.exists():
        files.prepare_directory(dest, group)
    if dest.is_dir():
        dest = dest / default_name(store.path, now)
    if dest.is_symlink() or dest.exists():
        raise Conflict("{path} already exists; nok backup never overwrites a file", path=str(dest))
    if dest.absolute() in {
        store.path.absolute(),
        *(p.absolute() for p in files.side_files(store.path)),
    }:
        raise Conflict("{path} is the vault itself", path=str(dest))
    if group is None:
        # Backups of a vault made without --group are for its owner alone.
        files.prepare_directory(dest.parent, None, group_ok=False)
        _check_private_dir(dest.parent)
    else:
        # Every erasure must reach the backup, whoever runs it: a colleague's withdrawal,
        # the purge user's job. So the file is the group's (0660) in a directory of the
        # group (2770), where SQLite can write the journal of an erasure beside it.
        files.check_group_directory(dest.parent, group)
    return dest


def _record(source: Source, now: dt.datetime, actor: str) -> None:
    """Note the backup in the trail and in settings (so the copy carries them too)."""
    store = _store_of(source)
    with store.write():
        if isinstance(source, Vault):
            audit.append(store, now=now, signer=None, actor=actor, action="vault.backup")
        else:
            source.record("vault.backup")
        last = store.last_audit()
        meta = {"taken": timestamp(now), "audit_seq": last.seq if last else 0}
        store.set_setting(LAST_BACKUP, json.dumps(meta, separators=(",", ":")))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(
    source: Source,
    dest: Path,
    *,
    now: dt.datetime,
    actor: str,
    into_directory: bool = False,
    keep: int | None = None,
    keep_days: int | None = None,
) -> BackupInfo:
    """Copy the vault to ``dest`` (a new file, or a directory to put a dated file in).

    With ``into_directory``, a missing ``dest`` is created (0700; 2770 of the group for
    a shared vault) as that directory.

    The copy is one consistent snapshot even while others write, still encrypted,
    created 0600 in a directory other users cannot enter (for a shared vault: 0660 of
    the vault's group, in a 2770 directory of that group, so that every member's erasure
    and the purge user's reach it), and holds nothing already erased. It is recorded
    beside the vault before it is written (so a killed backup's partial file is found
    and removed later), and every recorded backup nok can reach is
    then brought up to date with the vault's erasures. ``keep`` keeps only that many of
    the newest recorded backups, ``keep_days`` only those taken in that many days; older
    ones that nok can reach are deleted. The backup is recorded in the trail
    (``vault.backup``; keyless when ``source`` is not unlocked).

    Raises:
        BadInput: ``keep`` below 1 or ``keep_days`` below 1.
        Conflict: ``dest`` exists (a backup never overwrites).
        UnsafePermissions: other users can enter the destination directory.
        UnsharedDirectory: a shared vault's backup in a directory its group does not share.
        StorageError: the disk is full or not writable; no partial file is left.
        VaultBusy: another process held the vault for longer than the busy timeout.
        IntegrityError: the list of backups beside the vault is damaged.
    """
    _check_policy(keep, keep_days)
    store = _store_of(source)
    # The group as the signed epoch states it: a colleague who edits the plain setting
    # must not make the next backup private, out of the others' erasures.
    group = Vault(store).settings().group
    target = _target(store, dest, now, into_directory=into_directory, group=group).absolute()
    keep_until = None if keep_days is None else _plus_days(timestamp(now), keep_days)
    entry = copies.BackupEntry(target, timestamp(now), keep_until, writer=os.getpid())
    _register(store, add=entry)
    try:
        _record(source, now, actor)
        _write_copy(store, target, entry, group)
    except BaseException:
        _register(store, drop=target)
        raise
    _register(store, add=entry.done())
    reached = erasure.reach_copies(store, None if isinstance(source, Vault) else source)
    pruned, forgotten = prune(store, keep=keep, keep_days=keep_days, now=now, spare=target)
    return replace(inspect(target), pruned=pruned, forgotten=forgotten, reached=reached)


def _check_policy(keep: int | None, keep_days: int | None) -> None:
    from vault.errors import BadInput

    if keep is not None and keep < 1:
        raise BadInput("--keep must be at least 1, not {keep}", keep=keep)
    if keep_days is not None and not 1 <= keep_days <= 36500:
        raise BadInput("--keep-days must be between 1 and 36500, not {days}", days=keep_days)


def _plus_days(taken: str, days: int) -> str:
    return (dt.date.fromisoformat(taken[:10]) + dt.timedelta(days=days)).isoformat()


def _register(
    store: Store, *, add: copies.BackupEntry | None = None, drop: Path | None = None
) -> list[copies.BackupEntry]:
    """Change the list of backups under the vault's write lock; returns the new list."""
    with store.write():
        entries = [
            e for e in copies.read(store.path) if e.path not in (drop, getattr(add, "path", None))
        ]
        if add is not None:
            entries.append(add)
        copies.write(store.path, entries, group=store.get_setting("group"))
    return entries


def _write_copy(store: Store, target: Path, entry: copies.BackupEntry, group: str | None) -> None:
    partial = entry.partial
    assert partial is not None
    try:
        files.create_private_file(partial, group)
        store.vacuum_into(partial)
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(partial, target)
        _fsync_dir(target.parent)
    except FileExistsError:
        raise Conflict(
            "{path} already exists; nok backup never overwrites a file", path=str(target)
        ) from None
    except OSError as exc:
        raise StorageError(
            "could not write the backup {path}: {reason}",
            path=str(target),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _is_backup_of(path: Path, vault_id: str) -> bool:
    try:
        info = inspect(path)
    except NokError:
        return False
    return info.vault_id == vault_id and info.taken is not None


def prune(
    store: Store,
    *,
    keep: int | None,
    keep_days: int | None,
    now: dt.datetime,
    spare: Path | None = None,
) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """Delete the recorded backups beyond ``keep`` newest or older than ``keep_days``.

    Days are the vault's calendar days.

    Only files nok can reach that open as backups of this vault are deleted (never the
    vault, never ``spare``); the others stay listed, with the day they should have gone
    by (``keep_until``), and ``nok status`` names them, until that day has passed and
    the file is nowhere to be found: the policy says it was deleted by then, and it is
    forgotten. With ``keep_days``, every recorded backup's ``keep_until`` becomes the day
    it was taken plus ``keep_days``. Returns (deleted paths, forgotten paths).

    Raises IntegrityError (a damaged list), StorageError, VaultBusy.
    """
    if keep is None and keep_days is None:
        return (), ()
    today = Vault(store).today(now)
    with store.read():
        vault_id = store.get_setting("vault_id") or ""
    entries = [e for e in copies.read(store.path) if e.writer is None]
    if keep_days is not None:
        entries = [replace(e, keep_until=_plus_days(e.taken, keep_days)) for e in entries]
    newest = sorted(entries, key=lambda e: e.taken, reverse=True)
    over = {e.path for e in newest[keep:]} if keep is not None else set()
    doomed = [
        e for e in entries if e.path in over or (e.keep_until is not None and e.keep_until < today)
    ]
    deleted, forgotten = [], []
    for entry in doomed:
        past = entry.keep_until is not None and entry.keep_until < today
        if past and not entry.path.exists() and not entry.path.is_symlink():
            forgotten.append(entry.path)
            continue
        if entry.path == spare or copies.unreachable_reason(entry.path, store.path) is not None:
            continue
        if not _is_backup_of(entry.path, vault_id):
            continue
        for path in (entry.path, entry.path.with_name(entry.path.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        deleted.append(entry.path)
    with store.write():
        current = {e.path: e for e in copies.read(store.path)}
        for entry in entries:
            if entry.path in current:
                current[entry.path] = replace(current[entry.path], keep_until=entry.keep_until)
        for path in deleted + forgotten:
            current.pop(path, None)
        copies.write(store.path, list(current.values()), group=store.get_setting("group"))
    return tuple(deleted), tuple(forgotten)


@dataclass(frozen=True)
class CopiesStatus:
    """What ``nok status`` says about the backups nok made (no backup is opened)."""

    recorded: int
    unreachable: tuple[erasure.Unreachable, ...]
    partials: tuple[Path, ...]
    problem: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "backups_recorded": self.recorded,
            "unreachable_backups": [u.to_json() for u in self.unreachable],
            "partial_backups": [str(p) for p in self.partials],
            "backup_list_problem": self.problem,
        }


def copies_status(vault_path: Path) -> CopiesStatus:
    """The recorded backups nok cannot reach (each may hold data erased since it was
    taken, until it is deleted) and partial files of killed backups. Changes nothing."""
    try:
        entries = copies.read(vault_path)
    except NokError as exc:
        return CopiesStatus(0, (), (), exc.message)
    unreachable, partials = [], []
    for entry in entries:
        if entry.writer is not None:
            if copies.writer_alive(entry):
                continue
            if entry.partial is not None and entry.partial.exists():
                partials.append(entry.partial)
            if not entry.path.exists():
                continue
        reason = copies.unreachable_reason(entry.path, vault_path)
        if reason is not None:
            unreachable.append(
                erasure.Unreachable(entry.path, entry.taken, entry.keep_until, reason)
            )
    for directory in dict.fromkeys(e.path.parent for e in entries):
        partials += copies.stray_partials(directory, vault_path)
    return CopiesStatus(len(entries), tuple(unreachable), tuple(dict.fromkeys(partials)))


def _keys_version(store: Store) -> int:
    """The backup's vault-keys version (Vault.master_version), from its epochs (0 when
    they do not verify)."""
    try:
        chain = epochs.verify(store.epoch_rows(), vault_id=store.get_setting("vault_id") or "")
    except NokError:
        return 0
    return chain.current.keys.team_version


def inspect(path: Path) -> BackupInfo:
    """Read what a backup file holds, without a key and without changing it.

    Raises:
        VaultNotFound, NotAVault, UnsupportedVersion, IntegrityError: no usable backup.
        Conflict: a ``-wal`` file lies beside it (a live vault, not a backup).
    """
    wal = files.side_files(path)[0]
    if wal.exists() and wal.stat().st_size > 0:
        raise Conflict(
            "{path} has a -wal file beside it: it is a live vault, not a backup "
            "(make one with 'nok backup')",
            path=str(path),
        )
    store = Store.open_copy(path)
    try:
        with store.read():
            problems = store.integrity_problems()
            if problems:
                raise DamagedBackup(where=f"the backup {path} (damaged SQLite pages)")
            meta = json.loads(store.get_setting(LAST_BACKUP) or "{}")
            last = store.last_audit()
            ended = frozenset(row.id for row in store.ended_consents())
            active = frozenset(row.id for row in store.iter_consents(include_ended=False))
            return BackupInfo(
                path=path,
                vault_id=store.get_setting("vault_id") or "",
                taken=meta.get("taken") if isinstance(meta, dict) else None,
                audit_seq=last.seq if last else 0,
                master_version=_keys_version(store),
                schema_version=store.schema_version(),
                consent_ids=active,
                ended_ids=ended,
                size=path.stat().st_size,
                group=store.get_setting("group"),
            )
    finally:
        store.close()


# -- restore -------------------------------------------------------------------------------


def _copy_in(backup_path: Path, tmp: Path, group: str | None) -> None:
    files.create_private_file(tmp, group)
    src_fd = files.open_regular(backup_path, os.O_RDONLY)
    with os.fdopen(src_fd, "rb") as src, tmp.open("r+b") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def set_aside(vault_path: Path) -> list[Path]:
    """Files a restore set aside beside the vault (``<vault>.replaced-<time>`` and its side
    files), by name. They hold everything of their day; a restore records them beside the
    vault so that later erasures reach them like backups, until they are deleted."""
    prefix = vault_path.name + SET_ASIDE_MARK
    try:
        entries = list(vault_path.parent.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if p.name.startswith(prefix))


def _swap(tmp: Path, live_path: Path, now: dt.datetime) -> Path | None:
    """Put ``tmp`` in place of the live vault; the old file stays aside, 0600 (0660 in a
    group vault, so every member's erasures reach it)."""
    replaced = None
    if live_path.exists():
        replaced = live_path.with_name(f"{live_path.name}{SET_ASIDE_MARK}{_stamp(now)}")
        if replaced.exists() or replaced.is_symlink():
            raise Conflict(
                "{path} already exists; nothing was restored (wait a second and retry)",
                path=str(replaced),
            )
        mode = stat.S_IMODE(live_path.stat().st_mode) & 0o660
        # A hard link keeps the old file whole while os.replace swaps the name atomically.
        os.link(live_path, replaced)
        os.chmod(replaced, mode)
        for side, aside in zip(
            files.side_files(live_path), files.side_files(replaced), strict=True
        ):
            if side.exists():
                os.rename(side, aside)
                os.chmod(aside, mode)
    os.replace(tmp, live_path)
    _fsync_dir(live_path.parent)
    if replaced is not None:
        # Fold its -wal in, so the file set aside is one file, like a backup that later
        # erasures can reach. A session still open on the old file (a nok shell) keeps
        # SQLite from leaving WAL mode: the -wal then stays beside it and the first erasure
        # that reaches it folds it in. The swap is done by now, so the restore must go on
        # and record the file, or no erasure would ever reach it.
        # A short wait: a session that holds it does not let go within seconds.
        with contextlib.suppress(VaultBusy):
            Store.open_copy(replaced, writable=True, busy_timeout=1.0).close()
    return replaced


@dataclass(frozen=True)
class RestoreResult:
    vault_path: Path
    replaced: Path | None
    backup: BackupInfo
    reapplied: tuple[str, ...]
    erasures_known: int
    sources: tuple[str, ...]
    live_master_version: int | None
    staff_removed: tuple[str, ...] = ()
    staff_added_since: tuple[str, ...] = ()
    staff_roles_set: tuple[str, ...] = ()
    warnings: list[audit.Problem] = field(default_factory=list)
    # Until when the file set aside may hold erased data (the --keep-days of the newest
    # policy, else None: until it is deleted).
    replaced_keep_until: str | None = None
    # Consents an erasure named that the restoring admin could not check (the job will).
    deferred: tuple[str, ...] = ()
    # Consents and notes in the live vault (written after the backup) that the restore
    # takes away.
    lost_consents: tuple[str, ...] = ()
    lost_notes: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "vault": str(self.vault_path),
            "replaced": None if self.replaced is None else str(self.replaced),
            "replaced_may_hold_erased_data_until": self.replaced_keep_until,
            "backup": self.backup.to_json(),
            "reapplied": list(self.reapplied),
            "deferred": list(self.deferred),
            "erasures_known": self.erasures_known,
            "erasure_sources": list(self.sources),
            "live_master_key_version": self.live_master_version,
            "staff_removed": list(self.staff_removed),
            "staff_added_since": list(self.staff_added_since),
            "staff_roles_set": list(self.staff_roles_set),
            "lost_consents": list(self.lost_consents),
            "lost_notes": self.lost_notes,
            "warnings": [w.to_json() for w in self.warnings],
        }


@dataclass
class _Live:
    """What the live vault says before it is replaced."""

    exists: bool
    readable: bool = False
    vault_id: str | None = None
    group: str | None = None


def _read_live(path: Path) -> _Live:
    """A damaged or unreadable live vault counts as lost."""
    if not path.exists() and not path.is_symlink():
        return _Live(exists=False)
    try:
        store = Store.open(path)
    except (VaultBusy, UnsafePermissions, SymlinkRefused):
        raise
    except NokError:
        return _Live(exists=True)
    try:
        with store.read():
            live = _Live(
                exists=True,
                readable=True,
                vault_id=store.get_setting("vault_id"),
                group=store.get_setting("group"),
            )
        store.checkpoint()
    finally:
        store.close()
    return live


def _gather(
    live_path: Path, live: Unlocked | None, erasures_file: Path | None
) -> tuple[dict[str, endings.Signed], list[str]]:
    """Every ending known from the live vault and the logs, with where they came from.

    Raises Conflict when there is no record of erasures at all.
    """
    known: dict[str, endings.Signed] = {}
    sources = []
    if live is not None:
        known.update(erasure.known_endings(live.store, live.chain))
        sources.append("live vault")
    beside = endings.log_path(live_path)
    for path in dict.fromkeys(p for p in (beside, erasures_file) if p is not None):
        if path == erasures_file or path.exists():
            chain = live.chain if live is not None else None
            for record in endings.read_log(path, chain=chain).records:
                known.setdefault(record.consent_id, record)
            sources.append(str(path))
    if not sources:
        raise Conflict(
            "neither the live vault nor its erasure log {log} can be read, so nok cannot "
            "tell which people's data was erased since the backup; nothing was restored",
            log=str(beside),
        )
    return known, sources


def preview_restore(backup_path: Path, live_path: Path) -> tuple[tuple[str, ...], int]:
    """What a restore of ``backup_path`` would take from the live vault: the consents the
    live vault holds that the backup does not, and the notes written after the backup
    (counts and ids only; keyless).

    Raises what :func:`inspect` raises.
    """
    info = inspect(backup_path)
    if not live_path.exists():
        return (), 0
    with Vault.open(live_path, read_only=True) as live, live.store.read():
        active = {r.id for r in live.store.iter_consents(include_ended=False)}
        lost = tuple(sorted(active - info.consent_ids))
        taken = info.taken or ""
        notes = live.store.count_notes_created_after(taken)
    return lost, notes


def restore(
    backup_path: Path,
    live_path: Path,
    *,
    erasures_file: Path | None,
    now: dt.datetime,
    actor: str,
    passphrase: bytes,
    pin_store: PinsArg = DEFAULT_PINS,
) -> RestoreResult:
    """Replace the live vault with a backup, then erase again what was erased since.

    Only an admin may restore: ``actor`` and ``passphrase`` must unlock the live vault as
    an admin, or, when the live vault cannot be read, the backup itself; and she must be
    an admin of the backup's day (its keys are needed to give it new ones), whose keys
    the live vault gave her open it (a passphrase changed since changes no key). Staff
    who stay keep the slots, so the passphrases, of the live vault.

    The restored vault gets new vault seeds (a rotation), in an epoch signed with the key
    of the newest state this admin holds: the live vault's, whose chain it carries on, so
    colleagues' pins accept it; or, when the live vault is lost, the backup's, which
    colleagues who saw a newer vault refuse until the recovery key (or each of them)
    accepts it. Staff are those the live vault lists whose slot in the backup is still
    theirs; roles are the live vault's. The erasures come from the live vault's
    tombstones and trail (when it can still be read), the erasure log beside it, and
    ``erasures_file``; with none of these, nothing is restored. The replaced vault is kept
    aside as ``<vault>.replaced-<UTC time>`` and recorded beside the vault like a backup,
    so later erasures reach it. Stop other nok processes first.

    Raises:
        VaultNotFound, NotAVault, UnsupportedVersion, IntegrityError: the backup is
            missing, not a vault, too new or damaged.
        NotFound: ``erasures_file`` does not exist.
        Conflict: the backup is of another vault, or no erasure record can be read.
        NoSuchStaff, WrongPassphrase, NotAllowed: not an admin's passphrase here or in the
            backup; nothing was changed.
        SymlinkRefused, UnsafePermissions, VaultBusy, StorageError: nothing was changed.
    """
    files.refuse_symlinks(live_path)
    info = inspect(backup_path)
    live = _read_live(live_path)
    if live.vault_id and info.vault_id and live.vault_id != info.vault_id:
        raise Conflict(
            "the backup is of another vault ({backup}) than the one at {path} ({live}); "
            "nothing was restored",
            backup=info.vault_id,
            path=str(live_path),
            live=live.vault_id,
        )
    lost, lost_notes = preview_restore(backup_path, live_path) if live.readable else ((), 0)
    live_u = None
    if live.readable:
        live_u = Vault.open(live_path).unlock(actor, passphrase, now=now, pin_store=pin_store)
    try:
        if live_u is not None:
            live_u.require_admin("nok restore")
        known, sources = _gather(live_path, live_u, erasures_file)
        group = live.group if live.readable else info.group
        files.prepare_directory(live_path.parent, group)
        tmp = live_path.with_name(f".{live_path.name}.restore-{os.getpid()}")
        try:
            _copy_in(backup_path, tmp, group)
            with Vault(Store.open(tmp)) as copy:
                copy_u = _unlock_copy(copy, live_u, actor, passphrase, now)
                copy_u.require_admin("nok restore")
                changes = _new_epoch(copy_u, live_u, now)
                with copy.store.write():
                    meta = {"at": timestamp(now), "backup_taken": info.taken}
                    copy.store.set_setting(RESTORED, json.dumps(meta, separators=(",", ":")))
                applied = erasure.apply_endings(
                    copy_u, live_u.store if live_u is not None else copy.store, copy.store, known
                )
                # Rebuild the file so that no page of an erased row survives in it.
                copy.store.vacuum()
                copy.store.checkpoint()
                chain = copy_u.chain
            live_version = None if live_u is None else live_u.master_version
            if live_u is not None:
                # Its connection would hold the file about to be set aside.
                live_u.close()
                live_u = None
            replaced = _swap(tmp, live_path, now)
        except OSError as exc:
            raise StorageError(
                "could not restore into {path}: {reason}",
                path=str(live_path),
                reason=exc.strerror or type(exc).__name__,
            ) from None
        finally:
            for leftover in (tmp, *files.side_files(tmp)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    finally:
        if live_u is not None:
            live_u.close()
    keep_until = None
    with Vault.open(live_path) as restored:
        if replaced is not None:
            keep_until = _register_set_aside(restored.store, replaced, now)
        _pin_restored(restored, chain, pin_store)
    return RestoreResult(
        vault_path=live_path,
        replaced=replaced,
        backup=info,
        reapplied=applied.erased,
        erasures_known=len(known),
        sources=tuple(sources),
        live_master_version=live_version,
        staff_removed=changes.removed,
        staff_added_since=changes.added_since,
        staff_roles_set=changes.roles,
        warnings=_warnings(changes, live.readable),
        replaced_keep_until=keep_until,
        deferred=applied.deferred,
        lost_consents=lost,
        lost_notes=lost_notes,
    )


def _unlock_copy(
    copy: Vault, live_u: Unlocked | None, actor: str, passphrase: bytes, now: dt.datetime
) -> Unlocked:
    """The backup as the restoring admin opens it: with the keys the live vault gave her,
    when it lists her with the same keys (a passphrase changed since the backup leaves
    them as they were, so today's passphrase restores it); else with the passphrase, which
    must be the one of the backup's day.

    Raises NoSuchStaff, WrongPassphrase, IntegrityError (seeds.KeyReplaced: a planted key).
    """
    if live_u is not None:
        chain = copy.chain()
        # Reset since the backup (other keys), or added after it: only a slot can tell.
        with contextlib.suppress(session.StaleSlot):
            member = session._member(chain, live_u.name, live_u.keys)
            team, admin = session._open_seeds(
                copy.store, chain, live_u.name, live_u.keys, member.role
            )
            unlocked = Unlocked(
                copy, live_u.name, member.role, live_u.keys, chain, now, team, admin
            )
            unlocked.catch_up()
            return unlocked
    return copy.unlock(actor, passphrase, now=now, pin_store=None)


def _live_slots(copy_u: Unlocked, live_u: Unlocked, kept: list[epochs.Member]) -> None:
    """Give the staff who stay the key slots of the live vault (inside the caller's write
    transaction): the same keys under the passphrase each has today, so a passphrase
    changed since the backup (perhaps because it leaked) does not open the vault again."""
    store = copy_u.store
    for member in kept:
        live_row = live_u.store.get_staff(member.name)
        copy_row = store.get_staff(member.name)
        if live_row is None or copy_row is None or live_row.slot == copy_row.slot:
            continue
        if slots.read_header(live_row.slot, name=member.name).version != slots.SLOT_V2:
            continue
        store.update_staff_slot(member.name, live_row.slot, was=copy_row.slot)


@dataclass(frozen=True)
class _StaffChanges:
    removed: tuple[str, ...] = ()
    added_since: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    reset_since: tuple[str, ...] = ()


def _new_epoch(copy_u: Unlocked, live_u: Unlocked | None, now: dt.datetime) -> _StaffChanges:
    """Give the restored copy new seeds in an epoch that follows the newest chain this
    admin holds, listing the staff that still belong (inside its own transaction)."""
    from vault import rotation

    store = copy_u.store
    backup_staff = copy_u.epoch.staff
    if live_u is None:
        staff = list(backup_staff.values())
        signer = None
        changes = _StaffChanges()
    else:
        live_staff = live_u.epoch.staff
        keep, reset_since = [], []
        for name, member in sorted(live_staff.items()):
            old = backup_staff.get(name)
            if old is None:
                continue
            if old.box != member.box or old.sign != member.sign:
                reset_since.append(name)
                continue
            keep.append(member)
        removed = tuple(sorted(set(backup_staff) - set(live_staff)))
        added = tuple(sorted(set(live_staff) - set(backup_staff)))
        roles = tuple(m.name for m in keep if backup_staff[m.name].role != m.role)
        staff = keep
        signer = live_u.admin
        changes = _StaffChanges(removed, added, roles, tuple(reset_since))
    names = {m.name for m in staff}
    if copy_u.name not in names or not any(m.role == "admin" for m in staff):
        staff = [m for m in staff if m.name != copy_u.name] + [backup_staff[copy_u.name]]
    with store.write():
        if live_u is not None:
            store.replace_epochs((e.number, e.body, e.sig) for e in live_u.chain.epochs)
            copy_u.chain = live_u.chain
            copy_u.vault._chain = None
        for row in store.list_staff():
            if row.name not in {m.name for m in staff}:
                store.delete_staff(row.name)
                store.delete_sealed(row.name)
                store.delete_reader(row.name)
        settings = dict((live_u or copy_u).epoch.settings)
        rotation.new_seeds(
            copy_u,
            admin=True,
            team=True,
            job=True,
            event="restore",
            staff=staff,
            signer=signer,
            settings=settings,
        )
        for member in staff:
            store.update_staff_role(member.name, member.role, b"")
        if live_u is not None:
            _live_slots(copy_u, live_u, staff)
        copy_u.record("vault.restore")
    return changes


def _register_set_aside(store: Store, replaced: Path, now: dt.datetime) -> str | None:
    """Record the file a restore set aside with the backups, so erasures reach it; the day
    the newest --keep-days policy would delete it, if there is one."""
    entries = copies.read(store.path)
    keep_until = max((e.keep_until for e in entries if e.keep_until), default=None)
    entry = copies.BackupEntry(replaced.absolute(), timestamp(now), keep_until)
    _register(store, add=entry)
    return keep_until


def _pin_restored(restored: Vault, chain: epochs.Chain, pin_store: PinsArg) -> None:
    from vault import session

    store_ = session._pins(pin_store)
    if store_ is None:
        return
    with restored.store.read():
        last = restored.store.last_audit()
        current = restored.chain()
    seq, digest = (last.seq, bytes(last.hash)) if last is not None else (0, b"")
    store_.put(pins.pin_of(current, seq, digest))
    del chain


def _warnings(changes: _StaffChanges, live_read: bool) -> list[audit.Problem]:
    problems = []
    if not live_read:
        problems.append(
            audit.Problem(
                "staff-unknown",
                "the live vault could not be read, so the restored vault keeps the staff "
                "and keys of the backup's day; colleagues who used a newer vault will be "
                "refused until the recovery key accepts it (nok key accept --recovery-file)",
            )
        )
    if changes.added_since:
        problems.append(
            audit.Problem(
                "staff-added",
                "{names} were added after the backup and have no key slot in the restored "
                "vault: add them again (nok staff add)",
                {"names": ", ".join(changes.added_since)},
            )
        )
    if changes.reset_since:
        problems.append(
            audit.Problem(
                "staff-reset",
                "{names} got new keys after the backup, so their slots in it are no longer "
                "theirs: add them again (nok staff add)",
                {"names": ", ".join(changes.reset_since)},
            )
        )
    return problems
