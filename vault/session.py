"""Opening, creating and unlocking a vault (format 3, docs/format.md).

:class:`Vault` is a vault opened without any key: enough for ``status`` and for reports.
:meth:`Vault.unlock` opens a staff member's key slot with her passphrase and returns an
:class:`Unlocked` vault, which holds her own keys, the team key and (for an admin) the
admin seed for the rest of the command. The scheduled job unlocks with its credential
instead (vault.jobs).

What is trusted comes from the vault's signed epoch chain (vault.epochs), verified at every
open from its first epoch, whose vault key every version-2 slot is bound to; and every
seed sealed in the file is checked against the public keys the current epoch lists. Each
user's pin (vault.pins) catches an older chain or trail put back in place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from vault import audit, crypto, epochs, files, identity, ids, keyring, pins, seeds, slots
from vault.dates import DEFAULT_TIMEZONE, day, timestamp, zone
from vault.errors import (
    BadInput,
    IntegrityError,
    KeysRotated,
    LeftBeside,
    NokError,
    NoSuchStaff,
    NotAllowed,
    SlotChanged,
    VaultExists,
    VaultReplaced,
    WrongPassphrase,
)
from vault.store import DEFAULT_BUSY_TIMEOUT, ConsentRow, StaffRow, Store

ROLES = epochs.ROLES
DEFAULT_RETENTION_DAYS = 730
DEFAULT_NOTE_GUIDELINE = 1500
DEFAULT_NOTE_LIMIT = 20000
MAX_RETENTION_DAYS = 36500
# Which pins an unlock checks and moves when the caller names none: the user's own.
DEFAULT_PINS = "default"
# A staff member's new seed, sealed to her format-2 key by the upgrade (vault.upgrade).
UPGRADE_PURPOSE = "upgrade"
PinsArg = pins.PinStore | str | None


@dataclass(frozen=True)
class Settings:
    """Vault-wide settings, as the current signed epoch states them."""

    retention_days: int = DEFAULT_RETENTION_DAYS
    note_guideline: int = DEFAULT_NOTE_GUIDELINE
    note_limit: int = DEFAULT_NOTE_LIMIT
    kdf_min: str = "interactive"
    center_name: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    access: str = epochs.ACCESS_NEED_TO_KNOW
    group: str | None = None

    @classmethod
    def from_epoch(cls, epoch: epochs.Epoch) -> Settings:
        raw = epoch.settings
        return cls(
            retention_days=int(raw.get("retention_days", DEFAULT_RETENTION_DAYS)),
            note_guideline=int(raw.get("note_guideline", DEFAULT_NOTE_GUIDELINE)),
            note_limit=int(raw.get("note_limit", DEFAULT_NOTE_LIMIT)),
            kdf_min=str(raw.get("kdf_min", "interactive")),
            center_name=raw.get("center_name"),
            timezone=str(raw.get("timezone", DEFAULT_TIMEZONE)),
            access=str(raw.get("access", epochs.ACCESS_NEED_TO_KNOW)),
            group=raw.get("group"),
        )


@dataclass(frozen=True)
class Status:
    path: Path
    vault_id: str
    schema_version: int
    master_version: int
    master_created: str
    active_consents: int
    ended_consents: int
    notes: int
    staff: int
    next_deadline: str | None
    rotation_pending: str | None
    epoch: int = 0
    fingerprint: str = ""
    access: str = epochs.ACCESS_NEED_TO_KNOW
    timezone: str = DEFAULT_TIMEZONE
    # The Unix group of a shared vault (nok init --group), as the signed epoch says.
    group: str | None = None


def check_retention_days(days: int) -> int:
    """Raises BadInput outside 1..36500."""
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise BadInput(
            "retention must be between 1 and {max} days, not {days}",
            max=MAX_RETENTION_DAYS,
            days=days,
        )
    return days


def check_staff_name(name: str) -> str:
    """Raises BadInput for an empty or odd staff name.

    ``:`` and ``#`` are kept for the vault's own holders (``job:purge``, ``#admin``), so
    that no staff name can ever be read as one of them.
    """
    clean = name.strip()
    if (
        not clean
        or len(clean) > 64
        or any(ch.isspace() or not ch.isprintable() or ch in ":#" for ch in clean)
    ):
        raise BadInput(
            "{name!r} is not a usable staff name (1-64 characters, no spaces, no : or #)",
            name=name,
        )
    return clean


def kdf_params(profile: str) -> crypto.KdfParams:
    """Raises BadInput for an unknown Argon2id profile name."""
    try:
        return crypto.KDF_PROFILES[profile]
    except KeyError:
        raise BadInput(
            "unknown KDF profile {profile!r}; use one of: {choices}",
            profile=profile,
            choices=", ".join(crypto.KDF_PROFILES),
        ) from None


def check_free(path: Path) -> None:
    """Raises VaultExists when anything is at ``path``, LeftBeside when files of another
    vault are beside it (files.beside): a new vault is made only where none was."""
    if path.exists() or path.is_symlink():
        raise VaultExists(path=str(path))
    left = [p.name for p in files.beside(path) if p.exists() or p.is_symlink()]
    if left:
        raise LeftBeside(path=str(path), found=", ".join(left))


def check_access_mode(mode: str) -> str:
    if mode not in epochs.ACCESS_MODES:
        raise BadInput(
            "unknown access setting {mode!r}; use one of: {choices}",
            mode=mode,
            choices=", ".join(epochs.ACCESS_MODES),
        )
    return mode


class Vault:
    """A vault file opened without a key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.identity = files.identity(store.path)
        self._chain: tuple[tuple[int, bytes], epochs.Chain] | None = None
        # What opening found that only someone with a key may act on (vault.erasure).
        self.reconciled: list[Any] = []

    @property
    def path(self) -> Path:
        return self.store.path

    def __enter__(self) -> Vault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        read_only: bool = False,
        report: bool = True,
    ) -> Vault:
        """Open an existing vault (``read_only``: see Store.open). With ``report`` (and a
        vault, not a backup only read), look at once for what only someone with a key may
        act on (vault.erasure.reconcile: erased consents back in the file, endings that
        are not authentic), into :attr:`reconciled`; nothing is changed.

        Raises what :meth:`Store.open` raises; IntegrityError for a broken epoch chain.
        """
        vault = cls(Store.open(path, busy_timeout=busy_timeout, read_only=read_only))
        if report and not vault.store.read_only:
            from vault import erasure

            try:
                found = erasure.reconcile(vault)
            except BaseException:
                vault.close()
                raise
            if found.any:
                vault.reconciled.append(found)
        return vault

    @property
    def vault_id(self) -> str:
        return self.store.get_setting("vault_id") or ""

    def chain(self) -> epochs.Chain:
        """The vault's verified epoch chain (verified again when another epoch was added).

        Raises IntegrityError, epochs.ChainBroken.
        """
        with self.store.read():
            last = self.store.last_epoch_number()
            if self._chain is not None and self._chain[0][0] == last:
                cached = self._chain[1]
                stored = self.store.epoch_rows(last - 1)
                if stored and stored[-1][2] == cached.current.sig:
                    return cached
            chain = epochs.verify(self.store.epoch_rows(), vault_id=self.vault_id)
            _check_group(self.store, chain)
        self._chain = ((chain.current.number, chain.current.sig), chain)
        return chain

    def settings(self) -> Settings:
        return Settings.from_epoch(self.chain().current)

    def today(self, now: dt.datetime) -> str:
        """``now``'s calendar day in the vault's time zone."""
        return day(now, self.settings().timezone)

    def master_version(self) -> int:
        """The version of the vault keys (what format 2 called the master key): the team
        seed's, which every rotation and every removal replaces (the admin seed only
        changes when an admin leaves or at a rotation)."""
        return self.chain().current.keys.team_version

    def status(self) -> Status:
        """Counts and versions; needs no key."""
        s = self.store
        with s.read():
            chain = self.chain()
            current = chain.current
            introduced = _introduced(chain, current.keys.team_version)
            return Status(
                path=s.path,
                vault_id=self.vault_id,
                schema_version=s.schema_version(),
                master_version=current.keys.team_version,
                master_created=introduced or current.made,
                active_consents=s.count_consents("active"),
                ended_consents=s.count_consents(None) - s.count_consents("active"),
                notes=s.count_notes(),
                staff=len(current.staff),
                next_deadline=s.next_deadline(),
                rotation_pending=s.get_setting("rotation_pending"),
                epoch=current.number,
                fingerprint=identity.show_fingerprint(chain.root),
                access=Settings.from_epoch(current).access,
                timezone=Settings.from_epoch(current).timezone,
                group=Settings.from_epoch(current).group,
            )

    def known_ids(self, kind: str, typed: str, *, limit: int = 100) -> list[str]:
        """Ids that could complete ``typed``: of active consents (``kind`` "consent") or of
        notes ("note"). Keyless and ids only, for shell completion.

        Raises what a read of the store raises (VaultBusy, StorageError).
        """
        prefix = ids.CONSENT_PREFIX if kind == "consent" else ids.NOTE_PREFIX
        start = ids.typed_start(typed, prefix)
        if start is None:
            return []
        with self.store.read():
            return self.store.ids_starting(kind, start, limit)

    # -- creating ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        admin: str,
        passphrase: bytes,
        now: dt.datetime,
        kdf: str = crypto.DEFAULT_KDF,
        group: str | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        timezone: str = DEFAULT_TIMEZONE,
        access: str = epochs.ACCESS_NEED_TO_KNOW,
        pin_store: PinsArg = DEFAULT_PINS,
    ) -> Unlocked:
        """Create a vault with one admin key slot and return it unlocked.

        The returned vault's ``recovery_seed`` is the recovery key: the caller shows it
        once (vault.identity.show_recovery) and keeps it nowhere; nok stores only its
        public keys and the admin seed sealed to it.

        Raises:
            VaultExists: something is already at ``path``; LeftBeside: files of another
                vault (its list of backups, erasure log, -wal...) are beside it.
            BadInput: a bad admin name, KDF profile, group, retention, time zone or
                access setting.
            UnsafePermissions, SymlinkRefused: the directory is not private.
        """
        admin = check_staff_name(admin)
        params = kdf_params(kdf)
        check_retention_days(retention_days)
        zone(timezone)
        check_access_mode(access)
        check_free(path)
        if group is not None:
            files.group_id(group)
        files.prepare_directory(path.parent, group)
        store = Store.create(path, group=group)
        vault_id = crypto.random_bytes(8).hex()
        me = identity.KeySet.new()
        admin_seed, team, job, recovery = (identity.KeySet.new() for _ in range(4))
        stamp = timestamp(now)
        keys = epochs.Keys(
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
        settings: dict[str, Any] = {
            "created": stamp,
            "retention_days": retention_days,
            "note_guideline": DEFAULT_NOTE_GUIDELINE,
            "note_limit": DEFAULT_NOTE_LIMIT,
            "kdf_min": "interactive",
            "group": group,
            "timezone": timezone,
            "access": access,
            "center_name": None,
        }
        body = epochs.body_of(
            vault_id=vault_id,
            number=1,
            prev=b"",
            made=stamp,
            by=admin,
            event="init",
            keys=keys,
            staff=[epochs.Member(admin, "admin", me.box_public, me.sign_public)],
            jobs=[],
            settings=settings,
        )
        sig = epochs.sign(body, vault_id=vault_id, number=1, signer=admin_seed)
        chain = epochs.verify([(1, body, sig)], vault_id=vault_id)
        with store.write():
            for key, value in {"vault_id": vault_id, "created": stamp}.items():
                store.set_setting(key, value)
            if group is not None:
                store.set_setting("group", group)
            store.insert_epoch(1, body, sig)
            store.insert_staff(
                new_staff_row(
                    me,
                    chain,
                    name=admin,
                    role="admin",
                    passphrase=passphrase,
                    params=params,
                    now=now,
                )
            )
            seal = _sealer(store, vault_id)
            seal(seeds.ADMIN, 1, admin, admin_seed, me.box_public)
            seal(seeds.ADMIN, 1, seeds.HOLDER_RECOVERY, admin_seed, recovery.box_public)
            seal(seeds.TEAM, 1, admin, team, me.box_public)
            seal(seeds.TEAM, 1, seeds.HOLDER_ADMIN, team, admin_seed.box_public)
            seal(seeds.JOB, 1, seeds.HOLDER_ADMIN, job, admin_seed.box_public)
        vault = cls(store)
        unlocked = Unlocked(vault, admin, "admin", me, chain, now, team, admin_seed)
        unlocked.recovery_seed = recovery.seed
        with store.write():
            unlocked.record("vault.init")
        unlocked.pin_store = _pins(pin_store)
        unlocked.save_pin(pin_store)
        return unlocked

    # -- unlocking -----------------------------------------------------------------------

    def unlock(
        self,
        name: str,
        passphrase: bytes,
        *,
        now: dt.datetime,
        pin_store: PinsArg = DEFAULT_PINS,
    ) -> Unlocked:
        """Open ``name``'s key slot with ``passphrase``.

        ``pin_store``: where this user's pins are (vault.pins; by default her own state
        directory; None checks none, for a script that keeps no state).

        Raises:
            NoSuchStaff: no slot for ``name``.
            WrongPassphrase: the passphrase does not open the slot.
            IntegrityError, UnsupportedVersion: the slot, the epoch chain or a sealed
                seed was altered (seeds.KeyReplaced: a planted key).
            pins.VaultRolledBack, pins.VaultKeysReplaced: an older or another vault is in
                place of the one this user last saw.
            KdfLimitExceeded: the slot asks for an Argon2id cost over the caps.
        """
        row = self.store.get_staff(name)
        if row is None:
            raise NoSuchStaff(name=name)
        chain = self.chain()
        store_ = _pins(pin_store)
        pin = None if store_ is None else store_.get(chain.current.vault_id)
        with self.store.read():
            pins.check(chain, pin, self.store.audit_hash_at)
        try:
            seed, moved = self._seed(row, passphrase, chain)
        except WrongPassphrase:
            self._failed(name, now)
            raise
        keys = identity.KeySet.from_seed(seed)
        member = _member(chain, name, keys)
        team, admin = _open_seeds(self.store, chain, name, keys, member.role)
        unlocked = Unlocked(self, name, member.role, keys, chain, now, team, admin)
        if self.store.read_only:
            # A backup only read (verify): its slots and trail stay as they were.
            return unlocked
        stronger = moved or self._stronger_slot(row, passphrase, seed, chain.root)
        with self.store.write():
            self.store.touch_staff(name, timestamp(now))
            if moved is not None:
                self.store.delete_sealed_one(name, UPGRADE_PURPOSE)
            if stronger is not None:
                # Only if the slot is still the one just opened: an admin's reset in the
                # meantime made a new key pair, which the old secret must not overwrite.
                self.store.update_staff_slot(row.name, stronger, was=row.slot)
        unlocked.pin_store = store_
        unlocked.save_pin(store_)
        unlocked.catch_up()
        return unlocked

    def _failed(self, name: str, now: dt.datetime) -> None:
        """Note a failed unlock in the trail (unsigned: nobody's key opened), for the log
        review; a vault that cannot be written just does not get the note."""
        if self.store.read_only:
            return
        with contextlib.suppress(NokError), self.store.write():
            audit.append(self.store, now=now, signer=None, actor=name, action="unlock.failed")

    def _seed(
        self, row: StaffRow, passphrase: bytes, chain: epochs.Chain
    ) -> tuple[bytes, bytes | None]:
        """``row``'s seed, and (for a version-1 slot left by an upgrade from format 2) the
        version-2 slot that replaces it at this first unlock.

        Raises WrongPassphrase, IntegrityError (no seed was left for a version-1 slot).
        """
        header = slots.read_header(row.slot, name=row.name)
        if header.version == slots.SLOT_V2:
            return slots.unwrap_secret(
                row.slot, name=row.name, passphrase=passphrase, root=chain.root
            ), None
        secret = slots.unwrap_secret(row.slot, name=row.name, passphrase=passphrase)
        sealed = self.store.get_sealed(row.name, UPGRADE_PURPOSE)
        if sealed is None:
            raise IntegrityError(where=f"key slot of {row.name} (format 2, not upgraded)")
        ad = seeds.ad(chain.current.vault_id, UPGRADE_PURPOSE, 0, row.name)
        seed = crypto.open_sealed(secret, sealed[1], ad, where=f"key slot of {row.name}")
        slot = slots.wrap_secret(
            seed, name=row.name, passphrase=passphrase, params=header.params, root=chain.root
        )
        return seed, slot

    def _stronger_slot(
        self, row: StaffRow, passphrase: bytes, seed: bytes, root: bytes
    ) -> bytes | None:
        """The slot rewrapped at the vault's minimum Argon2id profile, if it is below it."""
        wanted = kdf_params(self.settings().kdf_min)
        header = slots.read_header(row.slot, name=row.name)
        if header.params >= wanted:
            return None
        params = crypto.KdfParams(
            max(wanted.opslimit, header.params.opslimit),
            max(wanted.memlimit, header.params.memlimit),
        )
        return slots.wrap_secret(
            seed, name=row.name, passphrase=passphrase, params=params, root=root
        )


def _introduced(chain: epochs.Chain, version: int) -> str | None:
    """When the vault keys of ``version`` (the team seed's) first appeared in the chain."""
    for epoch in chain.epochs:
        if epoch.keys.team_version == version:
            return epoch.made
    return None


def _pins(pin_store: PinsArg) -> pins.PinStore | None:
    if pin_store is None:
        return None
    if isinstance(pin_store, pins.PinStore):
        return pin_store
    return pins.PinStore.default()


def _sealer(store: Store, vault_id: str) -> Any:
    def seal(purpose: str, version: int, holder: str, seed: identity.KeySet, to: bytes) -> None:
        seeds.seal(
            store,
            vault_id=vault_id,
            purpose=purpose,
            version=version,
            holder=holder,
            seed=seed.seed,
            public_key=to,
        )

    return seal


class GroupChanged(IntegrityError):
    template = (
        "the vault's group is {stored} in the file, but its signed settings say {signed}: "
        "it was changed outside nok"
    )


def _check_group(store: Store, chain: epochs.Chain) -> None:
    """The plaintext ``group`` setting must be the signed one. It is read before any key
    (which permissions a keyless open accepts, which group the erasure log and the
    copies registry are written for), so a value planted there would widen who may read
    those files.

    Raises GroupChanged.
    """
    stored = store.get_setting("group")
    signed = chain.current.settings.get("group")
    if stored != signed:
        raise GroupChanged(stored=stored or "(none)", signed=signed or "(none)")


class StaleSlot(IntegrityError):
    template = (
        "the key slot of {name} is not the one the vault's signed staff list names: it was "
        "reset or removed since, and this slot was put back from an older copy"
    )


def _member(chain: epochs.Chain, name: str, keys: identity.KeySet) -> epochs.Member:
    """Raises StaleSlot unless the current epoch lists ``name`` with exactly these keys."""
    member = chain.current.staff.get(name)
    if (
        member is None
        or not crypto.same(member.box, keys.box_public)
        or not crypto.same(member.sign, keys.sign_public)
    ):
        raise StaleSlot(name=name)
    return member


def _open_seeds(
    store: Store, chain: epochs.Chain, name: str, keys: identity.KeySet, role: str
) -> tuple[identity.KeySet, identity.KeySet | None]:
    current = chain.current
    team = seeds.open_seed(
        store,
        vault_id=current.vault_id,
        purpose=seeds.TEAM,
        holder=name,
        box_secret=keys.box_secret,
        expect=current.keys.team,
        version=current.keys.team_version,
    )
    admin = None
    if role == "admin":
        admin = seeds.open_seed(
            store,
            vault_id=current.vault_id,
            purpose=seeds.ADMIN,
            holder=name,
            box_secret=keys.box_secret,
            expect=current.keys.admin,
            version=current.keys.admin_version,
        )
    return team, admin


def new_staff_row(
    keys: identity.KeySet,
    chain: epochs.Chain,
    *,
    name: str,
    role: str,
    passphrase: bytes,
    params: crypto.KdfParams,
    now: dt.datetime,
) -> StaffRow:
    """The staff row holding ``keys``' seed in a slot opened by ``passphrase``.

    The role and public key columns only mirror the signed epoch (for a keyless
    ``staff list`` they are never trusted); the format-2 columns stay empty.

    Raises BadInput for an unknown role, KdfLimitExceeded for parameters over the caps.
    """
    if role not in ROLES:
        raise BadInput("unknown role {role!r}; use staff or admin", role=role)
    return StaffRow(
        name=name,
        role=role,
        role_tag=None,
        created=timestamp(now),
        last_used=None,
        master_version=0,
        slot=slots.wrap_secret(
            keys.seed, name=name, passphrase=passphrase, params=params, root=chain.root
        ),
        public_key=keys.box_public,
        sealed_master=b"",
    )


# Enough for every consent a day's work touches; a walk over a whole vault of 100,000
# consents must not keep a key for each (the memory would grow with the vault).
CACHE_LIMIT = 4096
K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int = CACHE_LIMIT) -> None:
    """Store ``value`` in ``cache``, dropping the least recently stored beyond ``limit``."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > limit:
        del cache[next(iter(cache))]


@dataclass
class Unlocked:
    """A vault unlocked by one staff member: her keys, the team key, and for an admin the
    admin seed (the vault's signing key)."""

    vault: Vault
    name: str
    role: str
    keys: identity.KeySet = field(repr=False)
    chain: epochs.Chain = field(repr=False)
    now: dt.datetime
    team: identity.KeySet = field(repr=False)
    admin: identity.KeySet | None = field(default=None, repr=False)
    # Set by Vault.create only: shown once, kept nowhere.
    recovery_seed: bytes | None = field(default=None, repr=False)
    pin_store: pins.PinStore | None = field(default=None, repr=False)
    # The reason (vault.access.REASONS) an admin gives for this command's reads of
    # consents outside her assignment; None: she reads only her own (and is refused, or
    # shown the plaintext part, for the others).
    read_reason: str | None = None
    # What the unlock found and did (vault.erasure.Reconciled, corrections.Repair, consent
    # ids whose grants ran out and were re-keyed), for the caller to report.
    reconciled: list[Any] = field(default_factory=list, repr=False)
    repairs: list[Any] = field(default_factory=list, repr=False)
    expired: list[str] = field(default_factory=list, repr=False)
    # consent id -> (wrap it came from, data key): a key rewrapped by another process no
    # longer matches its wrap, so a stale key is never used to write.
    _data_keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    _vault_keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    _open: bool = field(default=True, repr=False)

    @property
    def store(self) -> Store:
        return self.vault.store

    @property
    def epoch(self) -> epochs.Epoch:
        return self.chain.current

    @property
    def vault_id(self) -> str:
        return self.chain.current.vault_id

    @property
    def is_job(self) -> bool:
        return False

    def settings(self) -> Settings:
        return Settings.from_epoch(self.chain.current)

    def today(self) -> str:
        """Today in the vault's time zone."""
        return day(self.now, self.settings().timezone)

    @property
    def master_version(self) -> int:
        """As Vault.master_version."""
        return self.chain.current.keys.team_version

    def close(self) -> None:
        """Drop the keys and close the vault; the user's pin moves to what this session
        wrote (a later older copy put back must not hold its last entries)."""
        self._data_keys.clear()
        self._vault_keys.clear()
        if self._open and self.pin_store is not None and not self.store.read_only:
            with contextlib.suppress(NokError):
                self.save_pin(self.pin_store)
        self._open = False
        self.vault.close()

    def save_pin(self, pin_store: PinsArg) -> None:
        """Record this vault as seen now in ``pin_store`` (vault.pins)."""
        store_ = _pins(pin_store)
        if store_ is None:
            return
        with self.store.read():
            last = self.store.last_audit()
        previous = store_.get(self.vault_id)
        seq, digest = (last.seq, bytes(last.hash)) if last is not None else (0, b"")
        store_.put(pins.advance(previous, self.chain, seq, digest))

    def ensure_current(self) -> None:
        """Follow epochs another process added since this unlock, as long as they leave this
        staff member's keys, role and the vault's keys as they were.

        Raises KeysRotated when another process rotated a key or changed this member.
        """
        last = self.store.last_epoch_number()
        if last == self.chain.current.number:
            return
        chain = self.vault.chain()
        before, after = self.chain.current, chain.current
        if after.staff.get(self.name) != before.staff.get(self.name) or after.keys != before.keys:
            raise KeysRotated()
        self.chain = chain

    def resume(self, now: dt.datetime) -> None:
        """Ready this unlock for one more command at ``now`` (``nok shell``): an open
        transaction an interrupted command left is rolled back, the key caches are
        emptied, the schema, the epoch and this member's slot are looked at again.

        Raises:
            KeysRotated: another process rotated a key since the unlock.
            SlotChanged: the slot was reset or removed, or the role changed, since.
            VaultReplaced: another file has the vault's name now (a restore).
            IntegrityError: a schema object nok does not make was planted.
        """
        self.store.end_open_transaction()
        self._data_keys.clear()
        self._vault_keys.clear()
        if files.identity(self.vault.path) != self.vault.identity:
            raise VaultReplaced(path=str(self.vault.path))
        self.store.check_objects()
        chain = self.vault.chain()
        member = chain.current.staff.get(self.name)
        if member is None or member.role != self.role or member.sign != self.keys.sign_public:
            raise SlotChanged(name=self.name)
        if chain.current.keys != self.chain.current.keys:
            raise KeysRotated()
        self.chain = chain
        self.now = now
        with self.store.write():
            self.store.touch_staff(self.name, timestamp(now))

    def catch_up(self) -> None:
        """What every unlock does once the keys are open (and ``nok shell`` before each
        command): erase again what an authentic ending says ended but came back, apply
        again corrections that were rolled back, complete grants that ran out, and bring
        the yearly report's shares up to date (vault.report), for the consents this member
        can open. What was done is in :attr:`reconciled` and
        :attr:`repairs` for the caller to report.

        Raises VaultBusy, StorageError.
        """
        from vault import corrections, erasure, grants, report

        found = erasure.replay(self, self.vault)
        if found.any:
            self.reconciled.append(found)
        self.repairs.extend(corrections.reapply(self))
        self.expired.extend(grants.expire(self))
        report.refresh_stale(self)

    def require_admin(self, action: str) -> None:
        """Raises NotAllowed unless this staff member is an admin."""
        if self.role != "admin" or self.admin is None:
            raise NotAllowed(name=self.name, role=self.role, needed="admin", action=action)

    def admin_seed(self, action: str) -> identity.KeySet:
        """The admin seed; raises NotAllowed for a staff member who is not an admin."""
        self.require_admin(action)
        assert self.admin is not None
        return self.admin

    def data_key(self, row: ConsentRow) -> bytes:
        """The data key of ``row`` as this member may open it (vault.access.data_key).

        Raises access.NoAccess, access.GrantExpired, access.ReasonNeeded, IntegrityError.
        """
        from vault import access

        return access.data_key(self, row)

    def proof_key(self, store: Store, row: ConsentRow) -> bytes | None:
        """The proof key of ``row`` (in the vault or a copy's ``store``) through a wrap this
        member holds; None when she holds none that opens (vault.endings)."""
        from vault import access, states

        try:
            return states.proof_key(access.open_key(self, row, admin_ok=True, store=store))
        except (access.NoAccess, IntegrityError):
            return None

    def cached_data_key(self, consent_id: str, wrapped: bytes) -> bytes | None:
        cached = self._data_keys.get(consent_id)
        if cached is not None and cached[0] == wrapped:
            return cached[1]
        return None

    def remember_data_key(self, consent_id: str, wrapped: bytes, key: bytes) -> None:
        remember(self._data_keys, consent_id, (wrapped, key))

    def forget_data_key(self, consent_id: str) -> None:
        self._data_keys.pop(consent_id, None)

    def vault_key(self, purpose: str) -> bytes:
        """A vault-wide key (e.g. the import fingerprint key) under the team key, created
        on first use."""
        cached = self._vault_keys.get(purpose)
        if cached is not None:
            return cached
        version = self.chain.current.keys.team_version
        stored = self.store.get_vault_key(purpose)
        if stored is None:
            key = crypto.new_key()
            with self.store.write():
                self.store.put_vault_key(
                    purpose,
                    version,
                    keyring.wrap_vault_key(
                        self.team.wrap, key, purpose=purpose, master_version=version
                    ),
                )
        else:
            at, wrapped = stored
            key = keyring.unwrap_vault_key(
                self.team.wrap, wrapped, purpose=purpose, master_version=at
            )
        self._vault_keys[purpose] = key
        return key

    def signer(self) -> audit.Signer:
        return audit.Signer(self.name, self.keys, self.chain.current.number, self.vault_id)

    def record(
        self,
        action: str,
        *,
        consent_id: str | None = None,
        object_id: str | None = None,
        detail: str | None = None,
        rev: int | None = None,
        state: bytes | None = None,
    ) -> None:
        """Append an audit entry signed by this staff member (inside the caller's write
        transaction).

        Raises KeysRotated when another process rotated a key since this unlock: whatever
        the transaction wrapped with the old keys must not be committed.
        """
        self.ensure_current()
        audit.append(
            self.store,
            now=self.now,
            signer=self.signer(),
            action=action,
            consent_id=consent_id,
            object_id=object_id,
            detail=detail,
            rev=rev,
            state=state,
        )

    # -- new epochs ----------------------------------------------------------------------

    def publish(
        self,
        event: str,
        *,
        staff: Iterable[epochs.Member] | None = None,
        jobs: Iterable[epochs.JobEntry] | None = None,
        settings: Mapping[str, Any] | None = None,
        keys: epochs.Keys | None = None,
        signer: identity.KeySet | None = None,
        by: str | None = None,
    ) -> epochs.Epoch:
        """Sign and store the next epoch (admins; inside the caller's write transaction):
        the current one with the given parts replaced, signed by this admin's current
        vault key, or by ``signer`` (the recovery key with ``by`` "recovery", or the live
        vault's key during a restore). Returns it.

        Raises NotAllowed (not an admin), KeysRotated (another epoch came first).
        """
        seed = signer if signer is not None else self.admin_seed("changing the vault's keys")
        if self.store.last_epoch_number() != self.chain.current.number:
            raise KeysRotated()
        current = self.chain.current
        number = current.number + 1
        staff_after = list(staff) if staff is not None else list(current.staff.values())
        jobs_after = list(jobs) if jobs is not None else list(current.jobs.values())
        body = epochs.body_of(
            vault_id=current.vault_id,
            number=number,
            prev=current.hash,
            made=timestamp(self.now),
            by=by or self.name,
            event=event,
            keys=keys or current.keys,
            staff=staff_after,
            jobs=jobs_after,
            settings=dict(settings) if settings is not None else dict(current.settings),
        )
        sig = epochs.sign(body, vault_id=current.vault_id, number=number, signer=seed)
        epoch = epochs.parse(body, sig)
        if not epochs.follows(current, epoch):
            raise IntegrityError(where="the new epoch (not signed by the current vault key)")
        self._countersign(current, staff_after, jobs_after, epoch)
        self.store.insert_epoch(number, body, sig)
        self.chain = epochs.Chain((*self.chain.epochs, epoch))
        self.vault._chain = ((number, sig), self.chain)
        return epoch

    def _countersign(
        self,
        before: epochs.Epoch,
        staff: list[epochs.Member],
        jobs: list[epochs.JobEntry],
        epoch: epochs.Epoch,
    ) -> None:
        """Keep valid what keys the new epoch drops signed while they counted
        (vault.countersign); the countersigner stands in the new epoch with her key."""
        from vault import countersign, endings

        names = countersign.dropped(before, staff, jobs)
        me = epoch.staff.get(self.name)
        if not names or me is None or me.sign != self.keys.sign_public:
            return
        ended = countersign.countersign(self, names, epoch.number)
        if ended:
            endings.append_log(
                endings.log_path(self.store.path), ended, group=self.store.get_setting("group")
            )

    def set_setting(self, key: str, value: object) -> None:
        """Change one signed setting: a new epoch (admins; inside the caller's write
        transaction). Raises NotAllowed, KeysRotated."""
        settings = dict(self.chain.current.settings)
        settings[key] = value
        self.publish("settings", settings=settings)


def with_member(
    staff: Mapping[str, epochs.Member], member: epochs.Member | None, *, drop: str | None = None
) -> list[epochs.Member]:
    """The staff list with ``member`` added or replaced (and ``drop`` removed)."""
    out = {n: m for n, m in staff.items() if n != drop}
    if member is not None:
        out[member.name] = member
    return [out[n] for n in sorted(out)]


def replace_keys(keys: epochs.Keys, **changes: Any) -> epochs.Keys:
    return replace(keys, **changes)
