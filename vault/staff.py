"""Staff key slots: adding and removing people, roles, passphrase changes, slot cost.

Who is staff, with which role and which public keys, is what the vault's signed epoch
says (vault.epochs): every change here is a new epoch, signed by the acting admin with
the vault's signing key, which only admins hold. A role edited in the file, a public key
swapped, or a slot pasted back after a removal is refused at unlock.

A role decides which nok commands a person may run. What she can decrypt is decided by
keys: a staff member holds her own wraps of the consents she works with (vault.access)
and the team key; an admin also holds the admin seed, which opens every consent.

A passphrase change (:func:`passwd`) rewraps the person's own seed under a new
passphrase; a reset (:func:`reset`, by an admin, for a forgotten passphrase) gives her
new keys. Either way the new slot is built and proven to open in memory, then swapped in
and read back inside one transaction, so a failure leaves the old slot in place.
"""

from __future__ import annotations

import dataclasses
import grp
import pwd
from dataclasses import dataclass

from vault import access, crypto, epochs, identity, rotation, seeds, slots, states
from vault.errors import BadInput, Conflict, IntegrityError, NotFound, UnsupportedVersion
from vault.session import (
    ROLES,
    Unlocked,
    check_staff_name,
    kdf_params,
    new_staff_row,
    with_member,
)
from vault.store import StaffRow, Store

ADMIN = "admin"

# Codes of what a removed person may still be able to read, and what closes each gap.
GAP_OLD_COPY = "old-copy"
GAP_MASTER_KEY = "master-key"
GAP_DATA_KEYS = "data-keys"
# On a shared server: her Unix login is still in the vault's group, so she can still
# read the live file; with the data keys she may have kept, that is every note under the
# consents she could open, also notes written after she left (issue 22).
GAP_GROUP = "group-membership"
CLOSE_ROTATE = "rotate"
CLOSE_ROTATE_DEEP = "rotate-deep"
CLOSE_LEAVE_GROUP = "leave-group"
# A deep rotation's speed, from benchmarks/RESULTS.md (1,000,000 notes in 46 s on two
# shared cores), rounded up: what nok tells an admin to expect before she runs one.
DEEP_ROTATION_SECONDS_PER_NOTE = 50e-6


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    created: str
    last_used: str | None
    kdf: str
    opslimit: int
    memlimit: int
    # Consents she is contact person for, and those she was granted.
    contact_for: int = 0
    granted: int = 0


@dataclass(frozen=True)
class Gap:
    """Something a removed person may still read; ``closed_by`` None means no rotation can,
    ``closed`` that the removal itself already closed it."""

    what: str
    closed_by: str | None
    closed: bool = False


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
    # Consents she was contact person for, now the removing admin's.
    reassigned: tuple[str, ...] = ()
    # Consents she could open (her own wraps), which a deep rotation gives new keys.
    could_open: tuple[str, ...] = ()
    # A shared vault's group, and whether a Unix login of her name is still in it
    # (None: no login of that name on this machine, so nok cannot tell).
    group: str | None = None
    in_group: bool | None = None
    # Every note in the vault (a deep rotation re-encrypts them all), and about how long
    # that takes.
    vault_notes: int = 0

    @property
    def deep_rotation_seconds(self) -> float:
        return max(1.0, self.vault_notes * DEEP_ROTATION_SECONDS_PER_NOTE)


def login_in_group(login: str, group: str) -> bool | None:
    """Whether the Unix account ``login`` is a member of ``group`` (as its primary group
    or a supplementary one); None when there is no such account or group here."""
    try:
        entry = grp.getgrnam(group)
        account = pwd.getpwnam(login)
    except KeyError:
        return None
    return account.pw_gid == entry.gr_gid or login in entry.gr_mem


def profile_name(params: crypto.KdfParams) -> str:
    """The KDF profile these parameters equal, or ``custom``."""
    for name, known in crypto.KDF_PROFILES.items():
        if known == params:
            return name
    return "custom"


def _member(row: StaffRow, role: str) -> StaffMember:
    params = slots.read_header(row.slot, name=row.name).params
    return StaffMember(
        name=row.name,
        role=role,
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


def _reachable(store: Store, member: epochs.Member, own: tuple[str, ...]) -> set[str]:
    """Consents whose data key the member could unwrap: an admin's seed opens every
    admins' wrap, a staff member's team seed every team wrap, and each her own."""
    if member.role == ADMIN:
        return set(store.active_consent_ids())
    return {*own, *store.consents_of_reader(access.TEAM_READER)}


def _listed(unlocked: Unlocked, name: str) -> epochs.Member:
    member = unlocked.epoch.staff.get(name)
    if member is None:
        raise NotFound(what="staff member", id=name)
    return member


def _check_role_value(role: str) -> str:
    if role not in ROLES:
        raise BadInput("unknown role {role!r}; use staff or admin", role=role)
    return role


def slot_params(unlocked: Unlocked, *, floor: StaffRow | None = None) -> crypto.KdfParams:
    """Argon2id cost for a new slot: the strongest of the vault's minimum profile, the acting
    member's own slot, and ``floor``'s slot (the one being replaced).

    Only the acting member's header is trusted as a base: her unlock opened it, and a
    changed header would not have. Anyone who can write the file can rewrite another
    header and its checksum, so ``floor`` may raise the cost (up to the caps) but never
    lower it; an unreadable ``floor`` is ignored, as a reset is how a damaged slot is fixed.

    Raises IntegrityError, UnsupportedVersion: the acting member's own slot is unreadable.
    """
    wanted = kdf_params(unlocked.settings().kdf_min)
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
    if unlocked.store.get_staff(clean) is not None or clean in unlocked.epoch.staff:
        raise Conflict("there is already a staff member named {name}", name=clean)
    return clean


def _seal_for(unlocked: Unlocked, name: str, keys: identity.KeySet, role: str) -> None:
    """Seal the team seed (and, for an admin, the admin seed) to a member's new keys."""
    k = unlocked.epoch.keys
    store = unlocked.store
    seeds.seal(
        store,
        vault_id=unlocked.vault_id,
        purpose=seeds.TEAM,
        version=k.team_version,
        holder=name,
        seed=unlocked.team.seed,
        public_key=keys.box_public,
    )
    store.delete_sealed_one(name, seeds.ADMIN)
    if role == ADMIN:
        admin = unlocked.admin_seed("adding an admin")
        seeds.seal(
            store,
            vault_id=unlocked.vault_id,
            purpose=seeds.ADMIN,
            version=k.admin_version,
            holder=name,
            seed=admin.seed,
            public_key=keys.box_public,
        )


def add(
    unlocked: Unlocked,
    name: str,
    *,
    passphrase: bytes,
    role: str = "staff",
    kdf: str | None = None,
) -> StaffMember:
    """Give a new staff member a key slot opened by ``passphrase``: a new epoch lists her.

    ``kdf`` is an Argon2id profile name; by default the slot costs as much as the acting
    admin's, and never less than the vault's minimum profile. Her keys are made here, in
    the admin's process (admins are trusted with every consent already).

    Raises:
        NotAllowed: not an admin.
        BadInput: a bad name, role or profile.
        Conflict: the name is taken, or the keys changed meanwhile.
    """
    clean = check_new(unlocked, name, role)
    params = kdf_params(kdf) if kdf is not None else slot_params(unlocked)
    keys = identity.KeySet.new()
    row = new_staff_row(
        keys,
        unlocked.chain,
        name=clean,
        role=role,
        passphrase=passphrase,
        params=params,
        now=unlocked.now,
    )
    _prove_opens(row, passphrase, keys, unlocked.chain.root)
    store = unlocked.store
    with store.write():
        if store.get_staff(clean) is not None:
            raise Conflict("there is already a staff member named {name}", name=clean)
        member = epochs.Member(clean, role, keys.box_public, keys.sign_public)
        unlocked.publish("staff.add", staff=with_member(unlocked.epoch.staff, member))
        store.insert_staff(row)
        _seal_for(unlocked, clean, keys, role)
        unlocked.record("staff.add", object_id=clean, detail=role)
    return _member(row, role)


@dataclass(frozen=True)
class Listing:
    members: list[StaffMember]
    # Slots in the file that the signed staff list does not name, or names otherwise.
    problems: list[str]


def list_members(unlocked: Unlocked) -> list[StaffMember]:
    """Everyone the signed staff list names, by name (see :func:`listing`)."""
    return listing(unlocked).members


def listing(unlocked: Unlocked) -> Listing:
    """Everyone the signed staff list names, by name, with how many consents each works
    with; and the names whose stored slot or role does not match it (a slot pasted back
    after a removal, a role edited in the file), reported rather than trusted."""
    store = unlocked.store
    with store.write():
        rows = {row.name: row for row in store.list_staff()}
        unlocked.record("staff.list")
        counts = store.reader_counts()
    listed = unlocked.epoch.staff
    members = []
    problems = []
    for name in sorted(set(rows) | set(listed)):
        row, member = rows.get(name), listed.get(name)
        if member is None or row is None:
            problems.append(name)
            continue
        if row.role != member.role or row.public_key != member.box:
            problems.append(name)
        contact, granted = counts.get(name, (0, 0))
        members.append(
            dataclasses.replace(_member(row, member.role), contact_for=contact, granted=granted)
        )
    return Listing(members, problems)


def remove(unlocked: Unlocked, name: str) -> Removal:
    """Delete a staff member's key slot and all her access, and report what she may still
    be able to read: a new epoch without her, her wraps deleted, her consents given the
    removing admin as contact person (re-signed), the team seed replaced (she held it),
    and, when she was an admin, the admin and job seeds too.

    Raises:
        NotAllowed: not an admin.
        NotFound: no such staff member.
        Conflict: she is the last admin, or the last staff member.
    """
    unlocked.require_admin("removing staff")
    store = unlocked.store
    with store.write():
        member = _listed(unlocked, name)
        staff = unlocked.epoch.staff
        if len(staff) <= 1:
            raise Conflict("{name} is the only staff member; a vault needs one", name=name)
        if unlocked.epoch.admins() == [member.name]:
            raise Conflict(
                "{name} is the last admin; make someone else admin first", name=member.name
            )
        row = store.get_staff(member.name)
        could_open = tuple(store.consents_of_reader(member.name))
        reachable = _reachable(store, member, could_open)
        reassigned = _reassign(unlocked, member.name)
        store.delete_reader(member.name)
        store.delete_sealed(member.name)
        store.delete_staff(member.name)
        rotation.new_seeds(
            unlocked,
            admin=member.role == ADMIN,
            team=True,
            job=member.role == ADMIN,
            event="staff.remove",
            staff=with_member(staff, None, drop=member.name),
        )
        unlocked.record("staff.remove", object_id=member.name)
        group = store.get_setting("group")
        gaps = [
            Gap(GAP_OLD_COPY, None),
            # new_seeds above replaced every vault seed she held.
            Gap(GAP_MASTER_KEY, CLOSE_ROTATE, closed=True),
            # She had no consent's data key to keep when she could unwrap none.
            Gap(GAP_DATA_KEYS, CLOSE_ROTATE_DEEP, closed=not reachable),
        ]
        in_group = None
        if group is not None:
            in_group = login_in_group(member.name, group)
            gaps.append(Gap(GAP_GROUP, CLOSE_LEAVE_GROUP, closed=in_group is False))
        report = Removal(
            name=member.name,
            role=member.role,
            last_used=row.last_used if row is not None else None,
            consents=len(reachable),
            notes=sum(store.count_notes(c) for c in reachable),
            master_version=unlocked.master_version,
            master_created=unlocked.epoch.made,
            gaps=tuple(gaps),
            reassigned=tuple(reassigned),
            could_open=could_open,
            group=group,
            in_group=in_group,
            vault_notes=store.count_notes(),
        )
    return report


def _reassign(unlocked: Unlocked, name: str) -> list[str]:
    """Make this admin the contact person of ``name``'s consents, and drop ``name`` from
    every consent's readers (new signed states; inside the caller's transaction)."""
    store = unlocked.store
    from vault import consents

    changed = []
    for row in store.consents_naming(name):
        key = access.open_key(unlocked, row, admin_ok=True)
        consents.check_state(unlocked, row, key)
        moved = dataclasses.replace(
            row,
            contact=unlocked.name if row.contact == name else row.contact,
            readers=states.encode_readers(access.readers_without(access.readers_of(row), name)),
        )
        if row.contact == name:
            ad = access.wrap_ad(unlocked.vault_id, row.id, unlocked.name, row.key_version)
            own = crypto.seal(unlocked.keys.wrap, key, ad)
            store.put_wraps(row.id, [(unlocked.name, row.key_version, access.HOW_KEY, own)])
            changed.append(row.id)
        consents.commit_state(unlocked, moved, key, "consent.contact", object_id=moved.contact)
    return changed


def set_role(unlocked: Unlocked, name: str, role: str) -> StaffMember:
    """Make ``name`` staff or admin: a new epoch. Demoting an admin replaces the admin and
    job seeds (she held them), so she cannot sign as the vault again.

    Raises:
        NotAllowed: not an admin.
        NotFound: no such staff member.
        Conflict: it would leave no admin.
    """
    unlocked.require_admin("changing roles")
    _check_role_value(role)
    store = unlocked.store
    with store.write():
        member = _listed(unlocked, name)
        if member.role == ADMIN and role != ADMIN and unlocked.epoch.admins() == [member.name]:
            raise Conflict(
                "{name} is the last admin; make someone else admin first", name=member.name
            )
        changed = dataclasses.replace(member, role=role)
        staff = with_member(unlocked.epoch.staff, changed)
        if member.role == ADMIN and role != ADMIN:
            rotation.new_seeds(
                unlocked, admin=True, team=False, job=True, event="staff.role", staff=staff
            )
        else:
            unlocked.publish("staff.role", staff=staff)
            if role == ADMIN:
                admin = unlocked.admin_seed("changing roles")
                k = unlocked.epoch.keys
                seeds.seal(
                    store,
                    vault_id=unlocked.vault_id,
                    purpose=seeds.ADMIN,
                    version=k.admin_version,
                    holder=member.name,
                    seed=admin.seed,
                    public_key=member.box,
                )
        store.update_staff_role(member.name, role, b"")
        unlocked.record("staff.role", object_id=member.name, detail=role)
        row = _get(store, member.name)
    return _member(row, role)


def passwd(unlocked: Unlocked, new_passphrase: bytes) -> StaffMember:
    """Change the acting member's own passphrase: her seed wrapped under the new one (her
    keys stay; an admin's :func:`reset` gives new ones). No other slot is touched.

    Raises:
        IntegrityError: the new slot did not read back as written (nothing changed).
        Conflict: her slot or the keys changed meanwhile.
    """
    unlocked.ensure_current()
    row = _get(unlocked.store, unlocked.name)
    params = slot_params(unlocked, floor=row)
    slot = slots.wrap_secret(
        unlocked.keys.seed,
        name=row.name,
        passphrase=new_passphrase,
        params=params,
        root=unlocked.chain.root,
    )
    _prove_opens(
        dataclasses.replace(row, slot=slot), new_passphrase, unlocked.keys, unlocked.chain.root
    )
    store = unlocked.store
    with store.write():
        latest = _get(store, row.name)
        if latest.slot != row.slot:
            raise Conflict(
                "the role or key slot of {name} changed while this command ran;"
                " nothing was changed, run it again",
                name=row.name,
            )
        store.update_staff_slot(row.name, slot, was=row.slot)
        if _get(store, row.name).slot != slot:
            raise IntegrityError(where=f"the new key slot of {row.name} (read back differs)")
        unlocked.record("staff.passwd", object_id=row.name)
    return _member(_get(store, row.name), unlocked.role)


def reset(unlocked: Unlocked, name: str, new_passphrase: bytes) -> StaffMember:
    """Give ``name`` a new slot and new keys for a forgotten passphrase (an admin, without
    the old one): a new epoch lists her new public keys, and her wraps are made again
    for them. The new slot costs at least as much as the acting admin's own.

    Raises NotAllowed, NotFound, Conflict.
    """
    unlocked.require_admin("resetting a passphrase")
    unlocked.ensure_current()
    current = _get(unlocked.store, name)
    member = _listed(unlocked, name)
    params = slot_params(unlocked, floor=current)
    keys = identity.KeySet.new()
    slot = slots.wrap_secret(
        keys.seed, name=name, passphrase=new_passphrase, params=params, root=unlocked.chain.root
    )
    _prove_opens(dataclasses.replace(current, slot=slot), new_passphrase, keys, unlocked.chain.root)
    store = unlocked.store
    with store.write():
        latest = _get(store, name)
        if latest.slot != current.slot:
            raise Conflict(
                "the role or key slot of {name} changed while this command ran;"
                " nothing was changed, run it again",
                name=name,
            )
        fresh = epochs.Member(name, member.role, keys.box_public, keys.sign_public)
        unlocked.publish("staff.reset", staff=with_member(unlocked.epoch.staff, fresh))
        store.replace_staff_keys(
            name, slot=slot, public_key=keys.box_public, sealed_master=b"", role_tag=b""
        )
        _seal_for(unlocked, name, keys, member.role)
        _rewrap_for(unlocked, name, keys)
        unlocked.record("staff.passwd", object_id=name)
        stored = _get(store, name)
    return _member(stored, member.role)


def _rewrap_for(unlocked: Unlocked, name: str, keys: identity.KeySet) -> None:
    """Wrap again, to ``name``'s new box key, the data key of every consent she holds a
    wrap for (the key opened through the admins' wrap)."""
    store = unlocked.store
    for consent_id, version, _, _ in store.wraps_of_reader(name):
        for reader, at, how, wrapped in store.wrap_for(consent_id, [access.ADMIN_READER]):
            key = access.unwrap(unlocked, consent_id, reader, at, how, wrapped)
            rotation.check_spread(unlocked, consent_id, key)
            ad = access.wrap_ad(unlocked.vault_id, consent_id, name, version)
            store.put_wraps(
                consent_id,
                [(name, version, access.HOW_BOX, crypto.seal_to(keys.box_public, key, ad))],
            )


def _prove_opens(row: StaffRow, passphrase: bytes, keys: identity.KeySet, root: bytes) -> None:
    """Open a freshly made slot as an unlock would, before anything is written."""
    seed = slots.unwrap_secret(row.slot, name=row.name, passphrase=passphrase, root=root)
    if not crypto.same(seed, keys.seed):
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
