"""Key rotation: a new master key, and on demand new data keys for every consent.

A plain rotation makes a new master key and, in ONE transaction, rewraps every consent's
data key and every vault-wide key under it, reseals it to every staff member's public
key and renews every role tag. Its cost grows with consents and staff, not notes. The
old master key lived only in memory (the Unlocked object); nothing stores it.

A deep rotation does the same, then gives every consent a new data key and re-encrypts
every personal field of the consent and its notes (key version + 1). That runs in
batches, each its own transaction covering whole consents (a consent and all its notes
move to the new key together), with a cursor in the ``rotation`` table. A crash between
or inside batches leaves every consent readable under either its old or its new key;
:func:`resume` continues from the cursor. While a rotation is unfinished the setting
``rotation_pending`` names it, and :func:`rotate` refuses to start another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from vault import consents as consents_mod
from vault import crypto, keyring, slots
from vault.dates import timestamp
from vault.errors import Conflict, IntegrityError, KeysRotated, NokError
from vault.session import Unlocked, Vault, check_settings, seal_settings
from vault.store import ConsentRow, NoteRow, RotationRow, Store

PLAIN = "master"
DEEP = "deep"
PENDING_SETTING = "rotation_pending"
DEFAULT_BATCH_NOTES = 5000
MAX_BATCH_CONSENTS = 500
_CONSENTS = "consents"
_NOTES = "notes"
# The tables whose fields sit under consent data keys and that a deep rotation rewrites.
REKEYED_TABLES = frozenset({_CONSENTS, _NOTES})

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in records (consents + notes) after each batch."""


class RotationPending(Conflict):
    template = "a {kind} key rotation started {started} is unfinished"
    hint_template = "finish it first with 'nok key rotate --resume'"


class NothingToResume(Conflict):
    template = "there is no unfinished key rotation to resume"
    hint_template = "start one with 'nok key rotate' or 'nok key rotate --deep'"


@dataclass(frozen=True)
class RotationResult:
    kind: str
    master_version: int
    consents: int
    notes: int
    staff: int
    resumed: bool


def pending(store: Store) -> RotationRow | None:
    """The unfinished rotation, if any (keyless)."""
    return store.pending_rotation()


@dataclass(frozen=True)
class KeyInfo:
    master_version: int
    master_created: str
    age_days: int | None
    data_keys_rotated: str | None
    kdf_min: str
    pending: str | None
    rotations: tuple[RotationRow, ...]


def key_info(vault: Vault, now: dt.datetime) -> KeyInfo:
    """Versions, dates and rotation history of the vault's keys (keyless)."""
    store = vault.store
    with store.read():
        created = store.get_setting("master_created") or ""
        return KeyInfo(
            master_version=vault.master_version(),
            master_created=created,
            age_days=master_key_age_days(created, now),
            data_keys_rotated=store.get_setting("data_keys_rotated"),
            kdf_min=vault.settings().kdf_min,
            pending=store.get_setting(PENDING_SETTING),
            rotations=tuple(store.list_rotations()),
        )


def master_key_age_days(created: str, now: dt.datetime) -> int | None:
    """Whole days since the master key was made; None when the date is unknown."""
    try:
        made = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    if made.tzinfo is None:
        made = made.replace(tzinfo=dt.UTC)
    return max(0, (now - made).days)


def rotate(
    unlocked: Unlocked,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    batch_notes: int = DEFAULT_BATCH_NOTES,
) -> RotationResult:
    """Make a new master key; with ``deep``, also new data keys for every consent.

    Raises:
        NotAllowed: not an admin.
        RotationPending: an earlier rotation is unfinished (see :func:`resume`).
        IntegrityError: a wrapped key or a staff role was altered; nothing is changed.
        KeysRotated: another process rotated the key since this unlock.
        VaultBusy, StorageError: nothing is changed (a deep rotation keeps the batches
            it committed; :func:`resume` finishes it).
    """
    unlocked.require_admin("key rotation")
    kind = DEEP if deep else PLAIN
    store = unlocked.store
    if deep:
        _check_rekeyable(store)
    before = unlocked.master, unlocked.master_version
    try:
        with store.write():
            running = store.pending_rotation()
            if running is not None:
                raise RotationPending(kind=running.kind, started=running.started)
            staff, consents = _new_master(unlocked)
            stamp = timestamp(unlocked.now)
            rotation_id = store.start_rotation(
                kind=kind,
                started=stamp,
                target_version=unlocked.master_version,
                actor=unlocked.name,
            )
            if deep:
                store.set_setting(PENDING_SETTING, DEEP)
            else:
                store.finish_rotation(rotation_id, finished=stamp)
            unlocked.record(f"key.rotate.{kind}", object_id=f"master-v{unlocked.master_version}")
    except BaseException:
        # The transaction rolled back, so the vault still needs the key it had.
        unlocked.master, unlocked.master_version = before
        raise
    del before
    if not deep:
        return RotationResult(PLAIN, unlocked.master_version, consents, 0, staff, resumed=False)
    done_consents, done_notes = _rekey_all(unlocked, rotation_id, progress, batch_notes)
    return RotationResult(
        DEEP, unlocked.master_version, done_consents, done_notes, staff, resumed=False
    )


def resume(
    unlocked: Unlocked,
    *,
    progress: Progress | None = None,
    batch_notes: int = DEFAULT_BATCH_NOTES,
) -> RotationResult:
    """Finish an unfinished deep rotation from where it stopped.

    Raises:
        NotAllowed: not an admin.
        NothingToResume: no rotation is unfinished.
        IntegrityError: a ciphertext was altered; the batch holding it is not written.
        VaultBusy, StorageError: the batches committed so far stay; run it again.
    """
    unlocked.require_admin("key rotation")
    store = unlocked.store
    running = store.pending_rotation()
    if running is None:
        raise NothingToResume()
    _check_rekeyable(store)
    if running.target_version != unlocked.master_version:
        raise IntegrityError(where="the unfinished key rotation (master-key version differs)")
    consents, notes = _rekey_all(unlocked, running.id, progress, batch_notes)
    staff = len(store.list_staff())
    return RotationResult(DEEP, unlocked.master_version, consents, notes, staff, resumed=True)


def _check_rekeyable(store: Store) -> None:
    unknown = sorted(set(store.key_versioned_tables()) - REKEYED_TABLES)
    if unknown:
        # A table this module does not rewrite would be left under data keys that no
        # longer exist: refuse rather than make its rows unreadable.
        raise NokError(
            "a deep key rotation does not know how to re-encrypt the table {table}; "
            "nothing was changed",
            table=unknown[0],
        )


def _new_master(unlocked: Unlocked) -> tuple[int, int]:
    """Rewrap everything under a fresh master key (inside the caller's transaction).

    Swaps the key in ``unlocked``; returns (staff resealed, consent keys rewrapped).
    """
    store = unlocked.store
    old, old_version = unlocked.master, unlocked.master_version
    if unlocked.vault.master_version() != old_version:
        raise KeysRotated()
    new, version = crypto.new_key(), old_version + 1
    # Sealing edited settings again under the new key would make the edit look genuine.
    check_settings(store, old)
    staff_rows = []
    for row in store.list_staff():
        # Re-tagging an altered role with the new key would make the forgery look genuine.
        keyring.check_role(old, row.name, row.role, row.public_key, row.role_tag)
        if row.master_version != old_version:
            raise IntegrityError(where=f"key slot of {row.name} (stale master-key version)")
        sealed = slots.seal_master(
            new, public_key=row.public_key, name=row.name, master_version=version
        )
        staff_rows.append(
            (row.name, sealed, keyring.role_tag(new, row.name, row.role, row.public_key), version)
        )
    consent_rows = []
    for consent_id, at_version, wrapped in store.consent_keys():
        data_key = keyring.unwrap_data_key(
            old, wrapped, consent_id=consent_id, master_version=at_version or 0
        )
        consent_rows.append(
            (
                consent_id,
                version,
                keyring.wrap_data_key(new, data_key, consent_id=consent_id, master_version=version),
            )
        )
    for purpose, at_version, wrapped in store.list_vault_keys():
        key = keyring.unwrap_vault_key(old, wrapped, purpose=purpose, master_version=at_version)
        rewrapped = keyring.wrap_vault_key(new, key, purpose=purpose, master_version=version)
        store.put_vault_key(purpose, version, rewrapped)
    store.reseal_staff(staff_rows)
    store.rewrap_consent_keys(consent_rows)
    store.set_setting("master_version", str(version))
    store.set_setting("master_created", timestamp(unlocked.now))
    seal_settings(store, new)
    unlocked.master, unlocked.master_version = new, version
    return len(staff_rows), len(consent_rows)


def _rekey_all(
    unlocked: Unlocked, rotation_id: int, progress: Progress | None, batch_notes: int
) -> tuple[int, int]:
    """Run batches until no consent is left after the cursor; returns (consents, notes)."""
    store = unlocked.store
    batch_notes = max(1, batch_notes)
    with store.read():
        running = store.pending_rotation()
        start, already = ("", 0) if running is None else (running.cursor or "", running.done or 0)
        left_consents, left_notes = store.rekey_counts(start)
    total = already + left_consents + left_notes
    done_consents = done_notes = 0
    if progress is not None:
        progress(already, total)
    while True:
        with store.write():
            running = store.pending_rotation()
            if running is None or running.id != rotation_id:
                break
            cursor = running.cursor or ""
            consents, notes = store.next_rekey_batch(
                cursor, max_notes=batch_notes, max_consents=MAX_BATCH_CONSENTS
            )
            if not consents:
                _finish(unlocked, running)
                if progress is not None:
                    progress(total, total)
                break
            _rekey_batch(unlocked, consents, notes)
            done = (running.done or 0) + len(consents) + len(notes)
            store.advance_rotation(rotation_id, cursor=consents[-1].id, done=done)
        done_consents += len(consents)
        done_notes += len(notes)
        if progress is not None:
            progress(min(done, total), total)
    return done_consents, done_notes


def _finish(unlocked: Unlocked, running: RotationRow) -> None:
    store = unlocked.store
    stamp = timestamp(unlocked.now)
    store.finish_rotation(running.id, finished=stamp)
    store.delete_setting(PENDING_SETTING)
    store.set_setting("data_keys_rotated", stamp)
    unlocked.record("key.rotate.deep.done", object_id=f"master-v{running.target_version}")


def _rekey_batch(unlocked: Unlocked, consents: list[ConsentRow], notes: list[NoteRow]) -> None:
    """New data keys for ``consents``; re-encrypt them and ``notes`` (all of their notes).

    Each consent's seals are checked under the old key before anything is sealed under the
    new one: sealing an edited date or a deleted note again would make it look genuine.
    """
    by_consent: dict[str, list[NoteRow]] = {row.id: [] for row in consents}
    for note in notes:
        if note.consent_id not in by_consent:
            raise IntegrityError(where=f"note {note.id} (its consent has no data key)")
        by_consent[note.consent_id].append(note)
    consent_rows: list[ConsentRow] = []
    note_rows: list[tuple[str, int, bytes]] = []
    for row in consents:
        old = unlocked.data_key(row)
        held = by_consent[row.id]
        _check_seals(old, row, held)
        new = crypto.new_key()
        rekeyed = dataclasses.replace(
            row,
            master_version=unlocked.master_version,
            key_version=row.key_version + 1,
            data_key=keyring.wrap_data_key(
                unlocked.master, new, consent_id=row.id, master_version=unlocked.master_version
            ),
            record=keyring.reseal_record(
                old,
                new,
                row.record,
                old_ad=keyring.consent_ad(row.id, row.key_version),
                new_ad=keyring.consent_ad(row.id, row.key_version + 1),
                where=f"consent {row.id}",
            ),
        )
        resealed = [
            dataclasses.replace(
                n,
                key_version=rekeyed.key_version,
                record=_reseal_note(n, old, new, rekeyed.key_version),
            )
            for n in held
        ]
        note_rows += [(n.id, n.key_version, n.record) for n in resealed]
        chain = consents_mod.notes_chain(new, rekeyed)
        consent_rows.append(
            dataclasses.replace(
                rekeyed,
                retention_tag=consents_mod.retention_tag(new, rekeyed),
                notes_tag=chain.fold(consents_mod.chain_entries(resealed)),
            )
        )
        unlocked.forget_data_key(row.id)
    store = unlocked.store
    store.update_consents_rekeyed(consent_rows)
    store.update_notes_rekeyed(note_rows)


def _check_seals(key: bytes, row: ConsentRow, held: list[NoteRow]) -> None:
    """Raises RetentionChanged or NotesChanged when ``row`` or its notes were edited."""
    consents_mod.check_retention(key, row)
    expected = consents_mod.notes_chain(key, row).fold(consents_mod.chain_entries(held))
    keyring.check_tag(expected, row.notes_tag, keyring.NotesChanged(id=row.id))


def _reseal_note(note: NoteRow, old: bytes, new: bytes, version: int) -> bytes:
    return keyring.reseal_record(
        old,
        new,
        note.record,
        old_ad=keyring.note_ad(note.id, note.consent_id, note.key_version),
        new_ad=keyring.note_ad(note.id, note.consent_id, version),
        where=f"note {note.id}",
    )
