"""Upgrading a format-2 vault to format 3 (``nok upgrade``): by an admin, never silently,
and only after a backup of the format-2 file.

Format 2 sealed everything under one master key that every slot opened, with MACs under
keys every slot held. The upgrade checks the format-2 vault first as format 2 knew how
(the upgrading admin's role tag, the settings seal, every consent's retention and notes
seals, the audit chain and its MACs) and refuses to go on if anything fails. Then, in one
transaction, it gives the vault new keys: an admin seed, a team seed, a job seed and a
recovery key; a new key set for every staff member (hers in a version-2 slot under her
passphrase; each colleague's sealed to her old key, moved into a version-2 slot at her
next unlock); the first signed epoch; a signed state for every consent (its data key
and records stay as they are, wrapped again for its contact person, the admins, the
team and the job) and a signed ending for every tombstone; and one audit entry whose
signature vouches for the format-2 trail before it.

Consents registered before the upgrade were read by the whole team ("only the staff at
the center can read them"), and stay so (access ``team``) until the person signs again;
consents registered after are need-to-know. The erasure log is written again with
signed endings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vault import (
    access,
    audit,
    consents,
    crypto,
    endings,
    epochs,
    files,
    identity,
    keyring,
    seeds,
    slots,
    states,
)
from vault.dates import DEFAULT_TIMEZONE, timestamp
from vault.errors import IntegrityError, NokError, NoSuchStaff, NotAllowed, StorageError
from vault.session import (
    DEFAULT_NOTE_GUIDELINE,
    DEFAULT_NOTE_LIMIT,
    DEFAULT_PINS,
    DEFAULT_RETENTION_DAYS,
    UPGRADE_PURPOSE,
    PinsArg,
    Unlocked,
    Vault,
)
from vault.store import UPGRADABLE_FORMAT, Store

# The format-2 settings its settings seal covered.
SEALED_SETTINGS_V2 = (
    "format",
    "vault_id",
    "created",
    "group",
    "retention_days",
    "note_guideline",
    "note_limit",
    "kdf_min",
)


class Format2Damaged(IntegrityError):
    template = (
        "the format-2 vault does not check out ({what}), so it is not upgraded: nothing was changed"
    )
    hint_template = (
        "check it with the nok that made it ('nok verify'), and restore a backup if needed"
    )


@dataclass(frozen=True)
class Upgraded:
    backup: Path
    consents: int
    tombstones: int
    staff: tuple[str, ...]
    dropped_log_lines: int
    recovery_seed: bytes


def needs_upgrade(path: Path) -> bool:
    """Whether the vault at ``path`` is a format-2 vault (keyless; raises what opening does)."""
    store = Store.open(path, upgrading=True)
    try:
        return store.get_setting("format") == str(UPGRADABLE_FORMAT)
    finally:
        store.close()


def _master(store: Store, name: str, passphrase: bytes) -> tuple[bytes, int]:
    """The format-2 master key and its version, through ``name``'s version-1 slot."""
    row = store.get_staff(name)
    if row is None:
        raise NoSuchStaff(name=name)
    version = int(store.get_setting("master_version") or 0)
    secret = slots.unwrap_secret(row.slot, name=name, passphrase=passphrase)
    master = slots.open_master(row.sealed_master, secret=secret, name=name, master_version=version)
    keyring.check_role(master, name, row.role, row.public_key, row.role_tag)
    if row.role != "admin":
        raise NotAllowed(name=name, role=row.role, needed="admin", action="nok upgrade")
    return master, version


def _check_format2(store: Store, master: bytes, version: int) -> bytes:
    """Check the format-2 vault; returns its audit key.

    Raises Format2Damaged at the first thing that fails.
    """
    stored = store.settings()
    tag = keyring.settings_tag(master, {key: stored.get(key) for key in SEALED_SETTINGS_V2})
    try:
        if not crypto.same(tag, bytes.fromhex(stored.get("settings_tag", ""))):
            raise Format2Damaged(what="settings")
    except ValueError:
        raise Format2Damaged(what="settings") from None
    for member in store.list_staff():
        try:
            keyring.check_role(master, member.name, member.role, member.public_key, member.role_tag)
        except IntegrityError:
            raise Format2Damaged(what=f"role of {member.name}") from None
    wrapped = store.get_vault_key(audit_key_purpose())
    if wrapped is None:
        raise Format2Damaged(what="audit key")
    audit_key = keyring.unwrap_vault_key(
        master, wrapped[1], purpose="audit", master_version=wrapped[0]
    )
    retention = int(stored.get("retention_days") or DEFAULT_RETENTION_DAYS)
    for row in store.iter_consents(include_ended=False):
        key = keyring.unwrap_data_key(
            master, row.data_key or b"", consent_id=row.id, master_version=row.master_version or 0
        )
        expected = keyring.retention_tag(
            key,
            consent_id=row.id,
            key_version=row.key_version,
            given=row.given,
            created=row.created,
            last_activity=row.last_activity,
            retain_days=row.retain_days,
        )
        if not isinstance(row.retention_tag, bytes) or not crypto.same(expected, row.retention_tag):
            raise Format2Damaged(what=f"retention of {row.id}")
        if row.retain_until != consents.deadline(
            row.given, row.last_activity, row.retain_days or retention
        ):
            raise Format2Damaged(what=f"deadline of {row.id}")
        chain = keyring.NotesChain(key, consent_id=row.id, key_version=row.key_version)
        folded = chain.fold((i, s, keyring.record_tag(t)) for i, s, t in store.note_chain(row.id))
        if not isinstance(row.notes_tag, bytes) or not crypto.same(folded, row.notes_tag):
            raise Format2Damaged(what=f"notes of {row.id}")
    prev, unsealed = audit.GENESIS, False
    for entry in store.iter_audit():
        if entry.prev != prev or not crypto.same(audit.entry_hash(prev, entry), entry.hash):
            raise Format2Damaged(what=f"audit entry {entry.seq}")
        if entry.mac is None:
            unsealed = True
        elif unsealed or not crypto.same(crypto.mac(audit_key, entry.hash), entry.mac):
            raise Format2Damaged(what=f"audit entry {entry.seq}")
        prev = bytes(entry.hash)
    return audit_key


def _put_back(backup: Path, path: Path) -> None:
    """The format-2 file as it was (its backup copied over it; no WAL left beside it)."""
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".format2-back")
    shutil.copyfile(backup, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def audit_key_purpose() -> str:
    return "audit"


def _backup(path: Path, now: dt.datetime) -> Path:
    """A copy of the format-2 file beside it, 0600 (``VACUUM INTO``: one snapshot)."""
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}-format2-{stamp}{path.suffix or '.db'}")
    files.create_private_file(target, None)
    target.unlink()
    store = Store.open(path, upgrading=True)
    try:
        store.vacuum_into(target)
    finally:
        store.close()
    os.chmod(target, 0o600)
    return target


def upgrade(
    path: Path,
    *,
    admin: str,
    passphrase: bytes,
    now: dt.datetime,
    pin_store: PinsArg = DEFAULT_PINS,
) -> Upgraded:
    """Upgrade the format-2 vault at ``path`` (see the module docstring).

    Raises:
        NoSuchStaff, WrongPassphrase, NotAllowed: not an admin's passphrase.
        Format2Damaged: the format-2 vault does not check out; nothing is changed.
        UnsupportedVersion: it is not a format-2 vault.
        StorageError, VaultBusy: nothing is changed (the backup may have been written).
    """
    store = Store.open(path, upgrading=True)
    try:
        if store.get_setting("format") != str(UPGRADABLE_FORMAT):
            from vault.errors import UnsupportedVersion

            raise UnsupportedVersion(what="the vault", version=store.get_setting("format") or 1)
        master, version = _master(store, admin, passphrase)
        with store.read():
            _check_never_upgraded(path, store.get_setting("vault_id") or "", pin_store)
    finally:
        store.close()
    backup = _backup(path, now)
    store = Store.open(path, upgrading=True)
    try:
        # nok reads rows with format 3's columns: the format-2 check runs on the file with
        # the new (still empty) columns added, and a file that fails it is put back whole.
        store.apply_migrations()
        try:
            with store.read():
                _check_format2(store, master, version)
        except Format2Damaged:
            store.close()
            _put_back(backup, path)
            raise
        with store.write():
            result = _convert(store, master, version, admin=admin, passphrase=passphrase, now=now)
        store.checkpoint()
    finally:
        store.close()
    dropped = _rewrite_log(path)
    with Vault.open(path, report=False) as vault:
        unlocked = vault.unlock(admin, passphrase, now=now, pin_store=pin_store)
        unlocked.close()
    return replace(result, backup=backup, dropped_log_lines=dropped)


def _convert(
    store: Store, master: bytes, version: int, *, admin: str, passphrase: bytes, now: dt.datetime
) -> Upgraded:
    vault_id = store.get_setting("vault_id") or ""
    stored = store.settings()
    stamp = timestamp(now)
    admin_seed, team, job, recovery = (identity.KeySet.new() for _ in range(4))
    members: list[epochs.Member] = []
    staff_keys: dict[str, identity.KeySet] = {}
    old_rows = {row.name: row for row in store.list_staff()}
    for name, old in sorted(old_rows.items()):
        keys = identity.KeySet.new()
        staff_keys[name] = keys
        members.append(epochs.Member(name, old.role, keys.box_public, keys.sign_public))
    settings: dict[str, Any] = {
        "created": stored.get("created") or stamp,
        "retention_days": int(stored.get("retention_days") or DEFAULT_RETENTION_DAYS),
        "note_guideline": int(stored.get("note_guideline") or DEFAULT_NOTE_GUIDELINE),
        "note_limit": int(stored.get("note_limit") or DEFAULT_NOTE_LIMIT),
        "kdf_min": stored.get("kdf_min") or "interactive",
        "group": stored.get("group"),
        "timezone": DEFAULT_TIMEZONE,
        "access": epochs.ACCESS_NEED_TO_KNOW,
        "center_name": stored.get("center_name"),
    }
    keyset = epochs.Keys(
        vault=admin_seed.sign_public,
        admin=admin_seed.box_public,
        team=team.box_public,
        job=job.box_public,
        recovery_sign=recovery.sign_public,
        recovery_box=recovery.box_public,
        admin_version=1,
        team_version=1,
        job_version=1,
    )
    body = epochs.body_of(
        vault_id=vault_id,
        number=1,
        prev=b"",
        made=stamp,
        by=admin,
        event="upgrade",
        keys=keyset,
        staff=members,
        jobs=[],
        settings=settings,
    )
    sig = epochs.sign(body, vault_id=vault_id, number=1, signer=admin_seed)
    store.insert_epoch(1, body, sig)
    chain = epochs.verify([(1, body, sig)], vault_id=vault_id)
    me = staff_keys[admin]
    # The upgrading admin's own slot, in version 2; the others' seeds sealed to their old
    # keys until their next unlock.
    params = slots.read_header(old_rows[admin].slot, name=admin).params
    for name, old in old_rows.items():
        keys = staff_keys[name]
        if name == admin:
            slot = slots.wrap_secret(
                keys.seed, name=name, passphrase=passphrase, params=params, root=chain.root
            )
            store.replace_staff_keys(
                name, slot=slot, public_key=keys.box_public, sealed_master=b"", role_tag=b""
            )
        else:
            sealed = crypto.seal_to(
                old.public_key, keys.seed, seeds.ad(vault_id, UPGRADE_PURPOSE, 0, name)
            )
            store.put_sealed(name, UPGRADE_PURPOSE, 0, sealed)
            store.replace_staff_keys(
                name, slot=old.slot, public_key=keys.box_public, sealed_master=b"", role_tag=b""
            )
        for purpose, ver, seed in ((seeds.TEAM, 1, team),):
            seeds.seal(
                store,
                vault_id=vault_id,
                purpose=purpose,
                version=ver,
                holder=name,
                seed=seed.seed,
                public_key=keys.box_public,
            )
        if old.role == "admin":
            seeds.seal(
                store,
                vault_id=vault_id,
                purpose=seeds.ADMIN,
                version=1,
                holder=name,
                seed=admin_seed.seed,
                public_key=keys.box_public,
            )
    seeds.seal(
        store,
        vault_id=vault_id,
        purpose=seeds.ADMIN,
        version=1,
        holder=seeds.HOLDER_RECOVERY,
        seed=admin_seed.seed,
        public_key=recovery.box_public,
    )
    seeds.seal(
        store,
        vault_id=vault_id,
        purpose=seeds.TEAM,
        version=1,
        holder=seeds.HOLDER_ADMIN,
        seed=team.seed,
        public_key=admin_seed.box_public,
    )
    seeds.seal(
        store,
        vault_id=vault_id,
        purpose=seeds.JOB,
        version=1,
        holder=seeds.HOLDER_ADMIN,
        seed=job.seed,
        public_key=admin_seed.box_public,
    )
    vault = Vault(store)
    unlocked = Unlocked(vault, admin, "admin", me, chain, now, team, admin_seed)
    for purpose, at, wrapped in store.list_vault_keys():
        if purpose == audit_key_purpose():
            store.delete_vault_key(purpose)
            continue
        key = keyring.unwrap_vault_key(master, wrapped, purpose=purpose, master_version=at)
        store.put_vault_key(
            purpose, 1, keyring.wrap_vault_key(team.wrap, key, purpose=purpose, master_version=1)
        )
    targets = []
    count = 0
    staff_names = set(old_rows)
    for row in list(store.iter_consents(include_ended=False)):
        key = keyring.unwrap_data_key(
            master, row.data_key or b"", consent_id=row.id, master_version=row.master_version or 0
        )
        recorded_by = consents.open_record(key, row).recorded_by or admin
        contact = recorded_by if recorded_by in staff_names else admin
        stored_notes = [(i, s, keyring.record_tag(t)) for i, s, t in store.note_chain(row.id)]
        moved = replace(
            row,
            master_version=None,
            data_key=None,
            retention_tag=None,
            notes_tag=None,
            contact=contact,
            access=epochs.ACCESS_TEAM,
            readers=states.READERS_NONE,
            consent_box=states.consent_box(key)[1],
            rev=0,
        )
        moved = replace(moved, notes_hash=consents.notes_hash(vault_id, moved, stored_notes))
        signed, digest = consents.sign_state(unlocked, moved, key)
        store.update_consent_state(
            row.id, {col: getattr(signed, col) for col in consents.STATE_COLUMNS}
        )
        store.update_consent_state(
            row.id,
            {"master_version": None, "data_key": None, "retention_tag": None, "notes_tag": None},
        )
        wraps = access.make_wraps(
            unlocked, row.id, row.key_version, key, contact=contact, readers=(), team=True
        )
        store.put_wraps(row.id, [w.row() for w in wraps])
        targets.append(
            audit.Target(consent_id=row.id, object_id=contact, rev=signed.rev, state=digest)
        )
        count += 1
    tombstones = 0
    for row in store.ended_consents():
        ending = states.Ending(
            row.id,
            row.status,
            row.given,
            row.created,
            row.ended or stamp,
            row.end_reason or row.status,
            row.ended_by or admin,
        )
        signed_end = endings.sign(unlocked, ending)
        store.update_consent_state(
            row.id,
            {"state_signer": signed_end.signer, "state_epoch": 1, "state_sig": signed_end.sig},
        )
        tombstones += 1
    for key_name in (
        "settings_tag",
        "audit_head",
        "master_version",
        "master_created",
        "retention_days",
        "note_guideline",
        "note_limit",
        "kdf_min",
        "center_name",
    ):
        store.delete_setting(key_name)
    store.set_setting("format", "3")
    audit.append_batch(
        store,
        now=now,
        action=audit.UPGRADE_ACTION,
        signer=unlocked.signer(),
        targets=[*targets, audit.Target(object_id="format-3")],
        covers_from=1,
    )
    return Upgraded(Path(), count, tombstones, tuple(sorted(old_rows)), 0, recovery.seed)


class AlreadyUpgraded(IntegrityError):
    template = (
        "this format-2 vault was upgraded before ({why}): the file is an older copy put "
        "back, and upgrading it again would lose what happened since; nothing was changed"
    )
    hint_template = "use the upgraded vault, or restore its newest backup: nok restore BACKUP"


def _check_never_upgraded(path: Path, vault_id: str, pin_store: PinsArg) -> None:
    """Raises AlreadyUpgraded when the erasure log holds format-3 endings (written only
    after an upgrade) or this user's pins know the vault in format 3: a format-2 copy put
    back in place of the upgraded file, whose upgrade would drop every ending since."""
    log = endings.log_path(path)
    if log.exists():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(line).get("v") == endings.LOG_VERSION:
                    raise AlreadyUpgraded(why="its erasure log holds format-3 endings")
    from vault.session import _pins

    known = _pins(pin_store)
    if vault_id and known is not None and known.get(vault_id) is not None:
        raise AlreadyUpgraded(why="you have used it in format 3 on this computer")


def _aside(log: Path) -> Path:
    """A name beside ``log`` for its format-2 lines that no earlier upgrade left there."""
    aside = log.with_name(log.name + "-format2")
    number = 1
    while aside.exists() or aside.is_symlink():
        number += 1
        aside = log.with_name(f"{log.name}-format2.{number}")
    return aside


def _rewrite_log(path: Path) -> int:
    """Write the erasure log again with the endings the upgraded vault's tombstones sign;
    returns how many format-2 lines named no tombstone (left out, and kept aside)."""
    log = endings.log_path(path)
    if not log.exists():
        return 0
    store = Store.open(path)
    try:
        with store.read():
            rows = {r.id: r for r in store.ended_consents()}
            group = store.get_setting("group")
    finally:
        store.close()
    kept, dropped = [], 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            consent_id = json.loads(line).get("consent_id")
            row = rows.get(consent_id)
            signed = None if row is None else endings.from_row(row)
            if signed is not None:
                kept.append(signed)
                continue
        dropped += bool(line.strip())
    aside = _aside(log)
    os.replace(log, aside)
    try:
        endings.append_log(log, kept, group=group)
    except NokError:
        os.replace(aside, log)
        raise StorageError(reason="the erasure log could not be written again") from None
    return dropped
