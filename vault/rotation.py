"""Key rotation: new vault seeds, and on demand new data keys for every consent.

A plain rotation makes a new admin seed (the vault's signing key), team seed and job seed
and, in ONE transaction, publishes the epoch that names them (signed by the old vault
key), seals them to their holders again, rewraps every consent's admin, team and job
wraps and every vault-wide key under them. Its cost grows with consents and staff, not
notes. The old seeds lived only in memory and in the sealed boxes it replaces.

A deep rotation does the same, then gives every consent a new data key and re-encrypts
every personal field of the consent and its notes (key version + 1), with new wraps for
its contact person and readers and a new signed state. That runs in batches, each its
own transaction covering whole consents, with a cursor in the ``rotation`` table. A crash
between or inside batches leaves every consent readable under either its old or its new
key; :func:`resume` continues from the cursor. While a rotation is unfinished the setting
``rotation_pending`` names it, and :func:`rotate` refuses to start another.

:func:`rekey` is the deep rotation of one consent (after its access was revoked or ran
out, or a reader left).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vault import access, consents, crypto, epochs, identity, keyring, notes, report, seeds, states
from vault.dates import timestamp
from vault.errors import Conflict, IntegrityError, NokError
from vault.session import Unlocked, Vault
from vault.store import ConsentRow, NoteRow, RotationRow, Store

PLAIN = "master"
DEEP = "deep"
PENDING_SETTING = "rotation_pending"
DEFAULT_BATCH_NOTES = 5000
MAX_BATCH_CONSENTS = 500
# The tables whose fields sit under consent data keys and that a deep rotation rewrites.
# report_events: a contact logged under a consent is sealed again by rekey_row.
REKEYED_TABLES = frozenset({"consents", "notes", "consent_keys", "report_events"})

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
    epoch: int = 0
    fingerprint: str = ""


def key_info(vault: Vault, now: dt.datetime) -> KeyInfo:
    """Versions, dates and rotation history of the vault's keys (keyless)."""
    store = vault.store
    with store.read():
        status = vault.status()
        return KeyInfo(
            master_version=status.master_version,
            master_created=status.master_created,
            age_days=master_key_age_days(status.master_created, now),
            data_keys_rotated=store.get_setting("data_keys_rotated"),
            kdf_min=vault.settings().kdf_min,
            pending=store.get_setting(PENDING_SETTING),
            rotations=tuple(store.list_rotations()),
            epoch=status.epoch,
            fingerprint=status.fingerprint,
        )


def master_key_age_days(created: str, now: dt.datetime) -> int | None:
    """Whole days since the admin seed was made; None when the date is unknown."""
    try:
        made = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    if made.tzinfo is None:
        made = made.replace(tzinfo=dt.UTC)
    return max(0, (now - made).days)


# -- new seeds ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSeeds:
    admin: identity.KeySet | None
    team: identity.KeySet | None
    job: identity.KeySet | None


def new_seeds(
    unlocked: Unlocked,
    *,
    admin: bool,
    team: bool,
    job: bool,
    event: str,
    staff: Sequence[epochs.Member] | None = None,
    jobs: Sequence[epochs.JobEntry] | None = None,
    signer: identity.KeySet | None = None,
    by: str | None = None,
    settings: dict[str, object] | None = None,
) -> tuple[int, int]:
    """Replace the chosen vault seeds (inside the caller's write transaction): publish the
    epoch naming them (signed by the current vault key, with ``staff`` and ``jobs`` when
    given), seal them to their holders, and rewrap every consent's admin, team and job
    wraps and every vault-wide key. Afterwards ``unlocked`` holds the new seeds.

    ``signer``/``by``: who signs the epoch when it is not this admin's current vault key
    (the live vault's key during a restore, or the recovery key).

    Returns (holders sealed to, consents rewrapped).

    Raises NotAllowed (not an admin), KeysRotated (another epoch came first),
    IntegrityError (a wrap that does not open: nothing is changed).
    """
    old_admin = unlocked.admin_seed("key rotation")
    old_team = unlocked.team
    fresh = NewSeeds(
        identity.KeySet.new() if admin else None,
        identity.KeySet.new() if team else None,
        identity.KeySet.new() if job else None,
    )
    current = unlocked.epoch
    k = current.keys
    keys = dataclasses.replace(
        k,
        vault=fresh.admin.sign_public if fresh.admin else k.vault,
        admin=fresh.admin.box_public if fresh.admin else k.admin,
        admin_version=k.admin_version + 1 if fresh.admin else k.admin_version,
        team=fresh.team.box_public if fresh.team else k.team,
        team_version=k.team_version + 1 if fresh.team else k.team_version,
        job=fresh.job.box_public if fresh.job else k.job,
        job_version=k.job_version + 1 if fresh.job else k.job_version,
    )
    store = unlocked.store
    rewrapped = _rewrap_consents(unlocked, old_admin, fresh, keys) if (admin or team or job) else 0
    if fresh.team is not None:
        _rewrap_vault_keys(store, old_team, fresh.team, k.team_version, keys.team_version)
    epoch = unlocked.publish(
        event, keys=keys, staff=staff, jobs=jobs, signer=signer, by=by, settings=settings
    )
    holders = _seal_all(unlocked, epoch, fresh, old_admin)
    if fresh.admin is not None:
        unlocked.admin = fresh.admin
        # The report's shares and totals are sealed to the admin key: fold and seal again.
        report.rotate_admin(unlocked, old_admin)
    if fresh.team is not None:
        unlocked.team = fresh.team
    return holders, rewrapped


def _seal_all(
    unlocked: Unlocked, epoch: epochs.Epoch, fresh: NewSeeds, old_admin: identity.KeySet
) -> int:
    """Seal the seeds ``epoch`` names to every holder it lists (and drop holders it no
    longer lists); the seeds not replaced are sealed again from what this admin holds."""
    store = unlocked.store
    vault_id = epoch.vault_id
    k = epoch.keys
    admin = fresh.admin or old_admin
    team = fresh.team or unlocked.team
    job = fresh.job or _current_job(unlocked, old_admin)
    for purpose in (seeds.ADMIN, seeds.TEAM, seeds.JOB):
        for holder in store.sealed_holders(purpose):
            store.delete_sealed_one(holder, purpose)
    count = 0

    def seal(purpose: str, version: int, holder: str, seed: identity.KeySet, to: bytes) -> None:
        nonlocal count
        seeds.seal(
            store,
            vault_id=vault_id,
            purpose=purpose,
            version=version,
            holder=holder,
            seed=seed.seed,
            public_key=to,
        )
        count += 1

    for member in epoch.staff.values():
        seal(seeds.TEAM, k.team_version, member.name, team, member.box)
        if member.role == "admin":
            seal(seeds.ADMIN, k.admin_version, member.name, admin, member.box)
    seal(seeds.ADMIN, k.admin_version, seeds.HOLDER_RECOVERY, admin, k.recovery_box)
    seal(seeds.TEAM, k.team_version, seeds.HOLDER_ADMIN, team, admin.box_public)
    seal(seeds.JOB, k.job_version, seeds.HOLDER_ADMIN, job, admin.box_public)
    for entry in epoch.jobs.values():
        seal(seeds.JOB, k.job_version, seeds.job_holder(entry.name), job, entry.box)
    return count


def _current_job(unlocked: Unlocked, admin: identity.KeySet) -> identity.KeySet:
    k = unlocked.epoch.keys
    return seeds.open_seed(
        unlocked.store,
        vault_id=unlocked.vault_id,
        purpose=seeds.JOB,
        holder=seeds.HOLDER_ADMIN,
        box_secret=admin.box_secret,
        expect=k.job,
        version=k.job_version,
    )


def _rewrap_vault_keys(
    store: Store, old: identity.KeySet, new: identity.KeySet, old_version: int, version: int
) -> None:
    for purpose, at, wrapped in store.list_vault_keys():
        key = keyring.unwrap_vault_key(old.wrap, wrapped, purpose=purpose, master_version=at)
        store.put_vault_key(
            purpose,
            version,
            keyring.wrap_vault_key(new.wrap, key, purpose=purpose, master_version=version),
        )


def _rewrap_consents(
    unlocked: Unlocked, old_admin: identity.KeySet, fresh: NewSeeds, keys: epochs.Keys
) -> int:
    """New admin, team and job wraps for every consent with a key (the data key opened
    through the old admin wrap)."""
    store = unlocked.store
    vault_id = unlocked.vault_id
    count = 0
    for consent_id, version, how, wrapped in store.wraps_of_reader(access.ADMIN_READER):
        try:
            key = access.unwrap(unlocked, consent_id, access.ADMIN_READER, version, how, wrapped)
            check_spread(unlocked, consent_id, key)
        except IntegrityError:
            # Never spread to the new seeds, and closed to the old ones: a rotation (a
            # removal, a revoked credential) must not be stopped by whoever planted a key
            # or forged a state. verify names the consent (its wraps are missing).
            store.delete_wraps(
                consent_id, [access.ADMIN_READER, access.TEAM_READER, access.JOB_READER]
            )
            unlocked.forget_data_key(consent_id)
            continue
        rows = []

        def ad(reader: str, consent_id: str = consent_id, version: int = version) -> bytes:
            return access.wrap_ad(vault_id, consent_id, reader, version)

        if fresh.admin is not None:
            admin_wrap = crypto.seal(fresh.admin.wrap, key, ad(access.ADMIN_READER))
            rows.append((access.ADMIN_READER, version, access.HOW_KEY, admin_wrap))
        if fresh.team is not None and store.wrap_for(consent_id, [access.TEAM_READER]):
            team_wrap = crypto.seal(fresh.team.wrap, key, ad(access.TEAM_READER))
            rows.append((access.TEAM_READER, version, access.HOW_KEY, team_wrap))
        if fresh.job is not None:
            job_wrap = crypto.seal_to(keys.job, states.proof_key(key), ad(access.JOB_READER))
            rows.append((access.JOB_READER, version, access.HOW_BOX, job_wrap))
        store.put_wraps(consent_id, rows)
        unlocked.forget_data_key(consent_id)
        count += 1
    return count


def check_spread(unlocked: Unlocked, consent_id: str, key: bytes) -> None:
    """Raises IntegrityError (access.KeyPlanted, states.StateForged) unless ``key``, opened
    through the admins' wrap, is the data key the consent's signed state names.

    Anyone can seal a key to the admin public key in the file: wrapped again under the
    new seeds' wrap keys (which are trusted without a check) it would pass for genuine, and
    every later note would be written under a key the planter holds.
    """
    row = consents.get_row(unlocked.store, consent_id)
    access.check_key(row, key)
    consents.check_state(unlocked, row, key, signature=True)


# -- rotate ---------------------------------------------------------------------------------


def rotate(
    unlocked: Unlocked,
    *,
    deep: bool = False,
    progress: Progress | None = None,
    batch_notes: int = DEFAULT_BATCH_NOTES,
) -> RotationResult:
    """Make new vault seeds; with ``deep``, also new data keys for every consent.

    Raises:
        NotAllowed: not an admin.
        RotationPending: an earlier rotation is unfinished (see :func:`resume`).
        IntegrityError: a wrapped key was altered; nothing is changed.
        KeysRotated: another process changed the keys since this unlock.
        VaultBusy, StorageError: nothing is changed (a deep rotation keeps the batches
            it committed; :func:`resume` finishes it).
    """
    unlocked.require_admin("key rotation")
    kind = DEEP if deep else PLAIN
    store = unlocked.store
    if deep:
        _check_rekeyable(store)
    before = unlocked.admin, unlocked.team, unlocked.chain
    try:
        with store.write():
            running = store.pending_rotation()
            if running is not None:
                raise RotationPending(kind=running.kind, started=running.started)
            _, consents_done = new_seeds(
                unlocked, admin=True, team=True, job=True, event=f"rotate.{kind}"
            )
            staff = len(unlocked.epoch.staff)
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
        # The transaction rolled back, so the vault still needs the keys it had.
        unlocked.admin, unlocked.team, unlocked.chain = before
        unlocked.vault._chain = None
        raise
    del before
    if not deep:
        return RotationResult(
            PLAIN, unlocked.master_version, consents_done, 0, staff, resumed=False
        )
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
    consents_done, notes_done = _rekey_all(unlocked, running.id, progress, batch_notes)
    staff = len(unlocked.epoch.staff)
    return RotationResult(
        DEEP, unlocked.master_version, consents_done, notes_done, staff, resumed=True
    )


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
            rows, held = store.next_rekey_batch(
                cursor, max_notes=batch_notes, max_consents=MAX_BATCH_CONSENTS
            )
            if not rows:
                _finish(unlocked, running)
                if progress is not None:
                    progress(total, total)
                break
            for row in rows:
                rekey_row(
                    unlocked,
                    row,
                    [n for n in held if n.consent_id == row.id],
                    action="key.rotate.deep.consent",
                )
            done = (running.done or 0) + len(rows) + len(held)
            store.advance_rotation(rotation_id, cursor=rows[-1].id, done=done)
        done_consents += len(rows)
        done_notes += len(held)
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


def rekey(
    unlocked: Unlocked,
    consent_id: str,
    *,
    action: str,
    object_id: str | None = None,
    detail: str | None = None,
    readers: Sequence[states.Reader] | None = None,
    contact: str | None = None,
) -> ConsentRow:
    """Give one consent a new data key (inside the caller's write transaction): every
    note re-encrypted, pending ones folded in, new wraps for its contact person, its
    ``readers`` (default: as they are) and the admins, team and job; a new signed state
    recorded as ``action``. A wrap of the old key copied before opens nothing written
    after. Returns the row as stored.

    Raises IntegrityError when its state or notes were altered (nothing is changed).
    """
    store = unlocked.store
    row = consents.get_active_row(store, consent_id)
    held = [n for n in store.iter_notes_by_consent_id(row.id)]
    return rekey_row(
        unlocked,
        row,
        held,
        action=action,
        object_id=object_id,
        detail=detail,
        readers=readers,
        contact=contact,
    )


def rekey_row(
    unlocked: Unlocked,
    row: ConsentRow,
    held: list[NoteRow],
    *,
    action: str,
    object_id: str | None = None,
    detail: str | None = None,
    readers: Sequence[states.Reader] | None = None,
    contact: str | None = None,
) -> ConsentRow:
    old = access.open_key(unlocked, row, admin_ok=True)
    chained = [n for n in held if not n.pending]
    consents.check_state(unlocked, row, old)
    stored = consents.chain_entries(chained)
    if not crypto.same(consents.notes_hash(unlocked.vault_id, row, stored), row.notes_hash or b""):
        raise states.NotesChanged(id=row.id)
    new = crypto.new_key()
    version = row.key_version + 1
    ordered = sorted(chained, key=lambda n: (n.seq, n.id))
    sources = [(n, notes.open_record(old, n)) for n in ordered]
    next_seq = (row.notes_count or 0) + 1
    for n in sorted((n for n in held if n.pending), key=lambda n: (n.created, n.id)):
        # A pending note is folded into the chain as it is sealed again.
        sources.append(
            (dataclasses.replace(n, seq=next_seq), notes.open_pending(unlocked, row, old, n))
        )
        next_seq += 1
    record = keyring.reseal_record(
        old,
        new,
        row.record,
        old_ad=keyring.consent_ad(row.id, row.key_version),
        new_ad=keyring.consent_ad(row.id, version),
        where=f"consent {row.id}",
    )
    rewritten = [
        notes.build_row(
            new,
            note_id=note.id,
            consent_id=row.id,
            key_version=version,
            seq=src.seq,
            date=note.date,
            kind=note.kind,
            text=note.text,
            author=note.author or "",
            now=unlocked.now,
            created=note.created,
        )
        for src, note in sources
    ]
    new_readers = tuple(readers) if readers is not None else access.readers_of(row)
    new_contact = contact or row.contact or unlocked.name
    moved = dataclasses.replace(
        row,
        key_version=version,
        record=record,
        consent_box=states.consent_box(new)[1],
        readers=states.encode_readers(new_readers),
        contact=new_contact,
        notes_count=next_seq - 1,
    )
    moved = dataclasses.replace(
        moved,
        notes_hash=consents.notes_hash(unlocked.vault_id, moved, consents.chain_entries(rewritten)),
        last_activity=max([row.last_activity or "", *(n.date for n in rewritten)]) or None,
    )
    store = unlocked.store
    store.update_notes_rekeyed([(n.id, n.key_version, n.record, n.seq) for n in rewritten])
    report.rekey_events(store, unlocked.vault_id, row.id, old, new, version)
    wraps = access.make_wraps(
        unlocked,
        row.id,
        version,
        new,
        contact=new_contact,
        readers=new_readers,
        team=row.access == "team",
    )
    store.delete_wraps(row.id)
    store.put_wraps(row.id, [w.row() for w in wraps])
    unlocked.forget_data_key(row.id)
    return consents.commit_state(unlocked, moved, new, action, object_id=object_id, detail=detail)
