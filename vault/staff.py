"""Staff key slots: adding and removing people, roles, passphrase changes, slot cost.

Roles are enforced by nok, not by cryptography. Every slot opens the same master key, so
anyone who holds a slot and a copy of the vault file can decrypt everything the master
key protects, whatever role the file says they have. A role decides which nok commands a
person may run; it cannot stop someone with their own tools (docs/keys.md).

A passphrase change (:func:`passwd`) or reset (:func:`reset`) gives the person a new key
pair: the new slot is built and proven to open the master key in memory, then swapped in
and read back inside one transaction, so a failure leaves the old slot in place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vault import crypto, keyring, slots
from vault.errors import BadInput, Conflict, IntegrityError, NotFound, UnsupportedVersion
from vault.session import (
    ROLES,
    Unlocked,
    check_staff_name,
    kdf_params,
    new_staff_row,
)
from vault.store import StaffRow, Store

ADMIN = "admin"

# Codes of what a removed person may still be able to read, and what closes each gap.
GAP_OLD_COPY = "old-copy"
GAP_MASTER_KEY = "master-key"
GAP_DATA_KEYS = "data-keys"
CLOSE_ROTATE = "rotate"
CLOSE_ROTATE_DEEP = "rotate-deep"


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    created: str
    last_used: str | None
    kdf: str
    opslimit: int
    memlimit: int


@dataclass(frozen=True)
class Gap:
    """Something a removed person may still read; ``closed_by`` None means no rotation can."""

    what: str
    closed_by: str | None


@dataclass(frozen=True)
class Removal:
    name: str
    role: str
    last_used: str | None
    consents: int
    notes: int
    master_version: int
    master_created: str
    gaps: tuple[Gap, ...]


def profile_name(params: crypto.KdfParams) -> str:
    """The KDF profile these parameters equal, or ``custom``."""
    for name, known in crypto.KDF_PROFILES.items():
        if known == params:
            return name
    return "custom"


def _member(row: StaffRow) -> StaffMember:
    params = slots.read_header(row.slot, name=row.name).params
    return StaffMember(
        name=row.name,
        role=row.role,
        created=row.created,
        last_used=row.last_used,
        kdf=profile_name(params),
        opslimit=params.opslimit,
        memlimit=params.memlimit,
    )


def _get(store: Store, name: str) -> StaffRow:
    row = store.get_staff(name)
    if row is None:
        raise NotFound(what="staff member", id=name)
    return row


def _check_role_value(role: str) -> str:
    if role not in ROLES:
        raise BadInput("unknown role {role!r}; use staff or admin", role=role)
    return role


def _verified_admins(unlocked: Unlocked) -> list[str]:
    """Admins whose role tag checks out: a forged 'admin' must not count as the last one."""
    names = []
    for row in unlocked.store.list_staff():
        if row.role != ADMIN:
            continue
        try:
            keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
        except IntegrityError:
            continue
        names.append(row.name)
    return names


def slot_params(unlocked: Unlocked, *, floor: StaffRow | None = None) -> crypto.KdfParams:
    """Argon2id cost for a new slot: the strongest of the vault's minimum profile, the acting
    member's own slot, and ``floor``'s slot (the one being replaced).

    Only the acting member's header is trusted as a base: their unlock opened it, and a
    changed header would not have. Anyone who can write the file can rewrite another
    header and its checksum, so ``floor`` may raise the cost (up to the caps) but never
    lower it; an unreadable ``floor`` is ignored, as a reset is how a damaged slot is fixed.

    Raises IntegrityError, UnsupportedVersion: the acting member's own slot is unreadable.
    """
    wanted = kdf_params(unlocked.vault.settings().kdf_min)
    own = _get(unlocked.store, unlocked.name)
    have = slots.read_header(own.slot, name=own.name).params
    params = crypto.KdfParams(
        max(wanted.opslimit, have.opslimit), max(wanted.memlimit, have.memlimit)
    )
    if floor is None or floor.name == own.name:
        return params
    try:
        theirs = slots.read_header(floor.slot, name=floor.name).params
    except (IntegrityError, UnsupportedVersion):
        return params
    return crypto.KdfParams(
        max(params.opslimit, min(theirs.opslimit, crypto.KDF_MAX.opslimit)),
        max(params.memlimit, min(theirs.memlimit, crypto.KDF_MAX.memlimit)),
    )


def check_new(unlocked: Unlocked, name: str, role: str) -> str:
    """What :func:`add` checks before anyone types a passphrase; returns the clean name.

    Raises NotAllowed (not an admin), BadInput (a bad name or role), Conflict (taken).
    """
    unlocked.require_admin("adding staff")
    clean = check_staff_name(name)
    _check_role_value(role)
    if unlocked.store.get_staff(clean) is not None:
        raise Conflict("there is already a staff member named {name}", name=clean)
    return clean


def add(
    unlocked: Unlocked,
    name: str,
    *,
    passphrase: bytes,
    role: str = "staff",
    kdf: str | None = None,
) -> StaffMember:
    """Give a new staff member a key slot opened by ``passphrase``.

    ``kdf`` is an Argon2id profile name; by default the slot costs as much as the acting
    admin's, and never less than the vault's minimum profile.

    Raises:
        NotAllowed: not an admin.
        BadInput: a bad name, role or profile.
        Conflict: the name is taken, or the master key was rotated meanwhile.
    """
    clean = check_new(unlocked, name, role)
    params = kdf_params(kdf) if kdf is not None else slot_params(unlocked)
    row = new_staff_row(
        unlocked.master,
        unlocked.master_version,
        name=clean,
        role=role,
        passphrase=passphrase,
        params=params,
        now=unlocked.now,
    )
    _prove_opens(unlocked, row, passphrase)
    store = unlocked.store
    with store.write():
        if store.get_staff(clean) is not None:
            raise Conflict("there is already a staff member named {name}", name=clean)
        store.insert_staff(row)
        unlocked.record("staff.add", object_id=clean)
    return _member(row)


def list_members(unlocked: Unlocked) -> list[StaffMember]:
    """Everyone with a key slot, by name. Raises IntegrityError for an altered role."""
    store = unlocked.store
    with store.write():
        rows = store.list_staff()
        unlocked.record("staff.list")
    for row in rows:
        keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
    return [_member(row) for row in rows]


def remove(unlocked: Unlocked, name: str) -> Removal:
    """Delete a staff member's key slot and report what they may still be able to read.

    Raises:
        NotAllowed: not an admin.
        NotFound: no such staff member.
        Conflict: they are the last admin, or the last staff member.
    """
    unlocked.require_admin("removing staff")
    store = unlocked.store
    with store.write():
        row = _get(store, name)
        if len(store.list_staff()) <= 1:
            raise Conflict("{name} is the only staff member; a vault needs one", name=name)
        admins = _verified_admins(unlocked)
        if admins == [row.name]:
            raise Conflict("{name} is the last admin; make someone else admin first", name=row.name)
        store.delete_staff(row.name)
        unlocked.record("staff.remove", object_id=row.name)
        report = Removal(
            name=row.name,
            role=row.role,
            last_used=row.last_used,
            consents=len(store.consent_keys()),
            notes=store.count_notes(),
            master_version=unlocked.master_version,
            master_created=store.get_setting("master_created") or "",
            gaps=(
                Gap(GAP_OLD_COPY, None),
                Gap(GAP_MASTER_KEY, CLOSE_ROTATE),
                Gap(GAP_DATA_KEYS, CLOSE_ROTATE_DEEP),
            ),
        )
    return report


def set_role(unlocked: Unlocked, name: str, role: str) -> StaffMember:
    """Make ``name`` staff or admin.

    Raises:
        NotAllowed: not an admin.
        NotFound: no such staff member.
        IntegrityError: their stored role was altered.
        Conflict: an unknown role, or it would leave no admin.
    """
    unlocked.require_admin("changing roles")
    _check_role_value(role)
    store = unlocked.store
    with store.write():
        row = _get(store, name)
        keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
        if row.role == ADMIN and role != ADMIN and _verified_admins(unlocked) == [row.name]:
            raise Conflict("{name} is the last admin; make someone else admin first", name=row.name)
        tag = keyring.role_tag(unlocked.master, row.name, role, row.public_key)
        store.update_staff_role(row.name, role, tag)
        unlocked.record("staff.role", object_id=row.name)
        changed = _get(store, row.name)
    return _member(changed)


def passwd(unlocked: Unlocked, new_passphrase: bytes) -> StaffMember:
    """Change the acting member's own passphrase; no other slot is touched.

    Raises:
        IntegrityError: their stored role was altered, or the new slot did not read back
            as written (nothing changed).
        Conflict: the master key was rotated, or their role or slot changed, meanwhile.
    """
    # Typing a new passphrase twice can span an admin's rotation: that is "run again", and
    # the role tag, now under the new key, must not be read as tampering.
    unlocked.ensure_current()
    row = _get(unlocked.store, unlocked.name)
    keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
    return _replace_slot(unlocked, row, new_passphrase)


def reset(unlocked: Unlocked, name: str, new_passphrase: bytes) -> StaffMember:
    """Give ``name`` a new slot for a forgotten passphrase (an admin, without the old one).

    The new slot costs at least as much as the acting admin's own (see :func:`slot_params`).

    Raises NotAllowed, NotFound, IntegrityError (their role was altered), Conflict.
    """
    unlocked.require_admin("resetting a passphrase")
    unlocked.ensure_current()
    row = _get(unlocked.store, name)
    keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
    return _replace_slot(unlocked, row, new_passphrase)


def _key_state(row: StaffRow) -> tuple[str, bytes | None, bytes, bytes]:
    return (row.role, row.role_tag, row.public_key, row.slot)


def _replace_slot(unlocked: Unlocked, current: StaffRow, passphrase: bytes) -> StaffMember:
    """Swap in a new slot for ``current``, whose role tag the caller has checked.

    The Argon2id work happens outside the transaction, so the row is read again inside it:
    a role change or another new slot written meanwhile would otherwise be overwritten
    with a role tag that no longer matches the role column, locking the person out.
    """
    store = unlocked.store
    name = current.name
    params = slot_params(unlocked, floor=current)
    secret, public = crypto.new_keypair()
    slot = slots.wrap_secret(secret, name=name, passphrase=passphrase, params=params)
    sealed = slots.seal_master(
        unlocked.master, public_key=public, name=name, master_version=unlocked.master_version
    )
    fresh = dataclasses.replace(
        current,
        slot=slot,
        public_key=public,
        sealed_master=sealed,
        role_tag=keyring.role_tag(unlocked.master, name, current.role, public),
    )
    _prove_opens(unlocked, fresh, passphrase)
    with store.write():
        latest = _get(store, name)
        if _key_state(latest) != _key_state(current):
            raise Conflict(
                "the role or key slot of {name} changed while this command ran;"
                " nothing was changed, run it again",
                name=name,
            )
        tag = keyring.role_tag(unlocked.master, name, latest.role, public)
        store.replace_staff_keys(
            name, slot=slot, public_key=public, sealed_master=sealed, role_tag=tag
        )
        stored = _get(store, name)
        if (stored.slot, stored.sealed_master, stored.role_tag) != (slot, sealed, tag):
            raise IntegrityError(where=f"the new key slot of {name} (read back differs)")
        unlocked.record("staff.passwd", object_id=name)
    return _member(stored)


def _prove_opens(unlocked: Unlocked, row: StaffRow, passphrase: bytes) -> None:
    """Open a freshly made slot as an unlock would, before anything is written."""
    secret = slots.unwrap_secret(row.slot, name=row.name, passphrase=passphrase)
    master = slots.open_master(
        row.sealed_master,
        secret=secret,
        name=row.name,
        master_version=unlocked.master_version,
    )
    if not crypto.same(master, unlocked.master):
        raise IntegrityError(where=f"the new key slot of {row.name}")


def set_kdf_min(unlocked: Unlocked, profile: str) -> str:
    """Set the vault's minimum Argon2id profile; each slot below it is raised at its next
    unlock. Returns the profile. Raises NotAllowed, BadInput (unknown profile)."""
    unlocked.require_admin("changing the key-slot cost")
    kdf_params(profile)
    store = unlocked.store
    with store.write():
        unlocked.set_setting("kdf_min", profile)
        unlocked.record("key.kdf", object_id=profile)
    return profile
