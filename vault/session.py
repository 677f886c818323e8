"""Opening, creating and unlocking a vault.

:class:`Vault` is a vault opened without any key: enough for ``status`` and the keyless
purge. :meth:`Vault.unlock` checks a staff member's passphrase and returns an
:class:`Unlocked` vault, which holds the master key for the rest of the command.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from vault import audit, crypto, files, ids, keyring, slots
from vault.dates import timestamp
from vault.errors import (
    BadInput,
    IntegrityError,
    KeysRotated,
    NoSuchStaff,
    NotAllowed,
    SlotChanged,
    UnsupportedVersion,
    VaultExists,
    VaultReplaced,
)
from vault.store import DEFAULT_BUSY_TIMEOUT, ConsentRow, StaffRow, Store

ROLES = ("staff", "admin")
DEFAULT_RETENTION_DAYS = 730
DEFAULT_NOTE_GUIDELINE = 1500
DEFAULT_NOTE_LIMIT = 20000
MAX_RETENTION_DAYS = 36500
# The settings that change what nok does with personal data, sealed under the master key:
# a lower retention or a weaker key-slot cost edited into the file is refused at unlock.
SEALED_SETTINGS = (
    "format",
    "vault_id",
    "created",
    "group",
    "retention_days",
    "note_guideline",
    "note_limit",
    "kdf_min",
)
SETTINGS_TAG = "settings_tag"


@dataclass(frozen=True)
class Settings:
    """Vault-wide settings an admin can change."""

    retention_days: int = DEFAULT_RETENTION_DAYS
    note_guideline: int = DEFAULT_NOTE_GUIDELINE
    note_limit: int = DEFAULT_NOTE_LIMIT
    kdf_min: str = "interactive"
    # Printed on the consent form; not personal data, so kept in plaintext like the rest.
    center_name: str | None = None

    @classmethod
    def from_store(cls, store: Store) -> Settings:
        raw = store.settings()
        return cls(
            retention_days=int(raw.get("retention_days", DEFAULT_RETENTION_DAYS)),
            note_guideline=int(raw.get("note_guideline", DEFAULT_NOTE_GUIDELINE)),
            note_limit=int(raw.get("note_limit", DEFAULT_NOTE_LIMIT)),
            kdf_min=raw.get("kdf_min", "interactive"),
            center_name=raw.get("center_name"),
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
    """Raises BadInput for an empty or odd staff name."""
    clean = name.strip()
    if not clean or len(clean) > 64 or any(ch.isspace() or not ch.isprintable() for ch in clean):
        raise BadInput(
            "{name!r} is not a usable staff name (1-64 characters, no spaces)", name=name
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


class Vault:
    """A vault file opened without a key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.identity = files.identity(store.path)

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
        cls, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, read_only: bool = False
    ) -> Vault:
        """Open an existing vault (``read_only``: see Store.open).

        Raises what :meth:`Store.open` raises.
        """
        return cls(Store.open(path, busy_timeout=busy_timeout, read_only=read_only))

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
    ) -> Unlocked:
        """Create a vault with one admin key slot and return it unlocked.

        Raises:
            VaultExists: something is already at ``path``.
            BadInput: a bad admin name, KDF profile, group or retention.
            UnsafePermissions, SymlinkRefused: the directory is not private.
            StorageError: the audit anchor beside the vault cannot be written.
        """
        admin = check_staff_name(admin)
        params = kdf_params(kdf)
        check_retention_days(retention_days)
        if path.exists() or path.is_symlink():
            raise VaultExists(path=str(path))
        if group is not None:
            files.group_id(group)
        files.prepare_directory(path.parent, group)
        store = Store.create(path, group=group)
        master = crypto.new_key()
        stamp = timestamp(now)
        with store.write():
            for key, value in {
                "vault_id": crypto.random_bytes(8).hex(),
                "created": stamp,
                "master_version": "1",
                "master_created": stamp,
                "retention_days": str(retention_days),
                "note_guideline": str(DEFAULT_NOTE_GUIDELINE),
                "note_limit": str(DEFAULT_NOTE_LIMIT),
                "kdf_min": "interactive",
            }.items():
                store.set_setting(key, value)
            if group is not None:
                store.set_setting("group", group)
            seal_settings(store, master)
            row = new_staff_row(
                master, 1, name=admin, role="admin", passphrase=passphrase, params=params, now=now
            )
            store.insert_staff(row)
            audit_key = crypto.new_key()
            store.put_vault_key(
                audit.AUDIT_KEY,
                1,
                keyring.wrap_vault_key(
                    master, audit_key, purpose=audit.AUDIT_KEY, master_version=1
                ),
            )
            audit.append(store, now=now, actor=admin, action="vault.init", key=audit_key)
        audit.reset_anchor(store)
        vault = cls(store)
        return Unlocked(vault, admin, "admin", master, 1, now, row.public_key)

    def master_version(self) -> int:
        return int(self.store.get_setting("master_version") or 0)

    def settings(self) -> Settings:
        return Settings.from_store(self.store)

    def status(self) -> Status:
        """Counts and versions; needs no key."""
        s = self.store
        with s.read():
            rotation = s.get_setting("rotation_pending")
            return Status(
                path=s.path,
                vault_id=s.get_setting("vault_id") or "",
                schema_version=s.schema_version(),
                master_version=self.master_version(),
                master_created=s.get_setting("master_created") or "",
                active_consents=s.count_consents("active"),
                ended_consents=s.count_consents(None) - s.count_consents("active"),
                notes=s.count_notes(),
                staff=len(s.list_staff()),
                next_deadline=s.next_deadline(),
                rotation_pending=rotation,
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

    def unlock(
        self, name: str, passphrase: bytes, *, now: dt.datetime, continuity: bool = True
    ) -> Unlocked:
        """Open ``name``'s key slot with ``passphrase``.

        ``continuity=False`` leaves out the sample of consent data keys the master key
        must open (see :meth:`_check_continuity`) and the settings seal: only for
        ``nok verify``, which writes nothing and reports every key that does not open and
        the settings, where a refusal would hide which ones they are.

        Raises:
            NoSuchStaff: no slot for ``name``.
            WrongPassphrase: the passphrase does not open the slot.
            IntegrityError, UnsupportedVersion: the slot or the role was altered.
            keyring.MasterKeyReplaced: the master key does not open the vault's keys.
            keyring.SettingsChanged: a sealed setting was edited outside nok.
            KdfLimitExceeded: the slot asks for an Argon2id cost over the caps.
        """
        row = self.store.get_staff(name)
        if row is None:
            raise NoSuchStaff(name=name)
        version = self.master_version()
        if row.master_version != version:
            raise IntegrityError(where=f"key slot of {name} (stale master-key version)")
        secret = slots.unwrap_secret(row.slot, name=name, passphrase=passphrase)
        master = slots.open_master(
            row.sealed_master, secret=secret, name=name, master_version=version
        )
        keyring.check_role(master, name, row.role, row.public_key, row.role_tag)
        with self.store.read():
            if self.master_version() != version:
                raise KeysRotated()
            self._check_continuity(master, name, consents=continuity)
            if continuity:
                check_settings(self.store, master)
        unlocked = Unlocked(self, name, row.role, master, version, now, row.public_key)
        # The Argon2id work happens before the write lock is taken, so other terminals
        # do not wait for it.
        if self.store.read_only:
            # A backup only read (verify): its slots and trail stay as they were.
            return unlocked
        stronger = self._stronger_slot(row, passphrase, secret)
        with self.store.write():
            self.store.touch_staff(name, timestamp(now))
            audit.seal_pending(self.store, unlocked.vault_key(audit.AUDIT_KEY), now)
            if stronger is not None:
                # Only if the slot is still the one just opened: an admin's reset in the
                # meantime made a new key pair, which the old secret must not overwrite.
                self.store.update_staff_slot(row.name, stronger, was=row.slot)
        return unlocked

    def _check_continuity(self, master: bytes, name: str, *, consents: bool) -> None:
        """The master key must open the keys already wrapped in the vault.

        Whoever can write the file can seal a master key of their own choosing to every
        staff public key (and tag the roles with it); used, it would hand them every record
        written from then on. Such a key opens none of the existing wrapped keys: the
        vault-wide keys and the data keys of the first, last and a random active consent.
        Every one must open: to pass, a planted key must come with all of them wrapped
        again, which leaves every existing record unreadable (and shows at once).

        Raises keyring.MasterKeyReplaced.
        """
        store = self.store
        wrapped: list[tuple[str, str, int | None, bytes]] = [
            ("vault_key", p, v, k) for p, v, k in store.list_vault_keys()
        ]
        if not any(purpose == audit.AUDIT_KEY for _, purpose, _, _ in wrapped):
            raise IntegrityError(where="the audit key (missing)")
        if consents:
            wrapped += [("data_key", i, v, k) for i, v, k in store.sample_consent_keys()]
        for kind, owner, version, key in wrapped:
            try:
                if kind == "vault_key":
                    keyring.unwrap_vault_key(
                        master, key, purpose=owner, master_version=version or 0
                    )
                else:
                    keyring.unwrap_data_key(
                        master, key, consent_id=owner, master_version=version or 0
                    )
            except (IntegrityError, UnsupportedVersion):
                raise keyring.MasterKeyReplaced(name=name) from None

    def _stronger_slot(self, row: StaffRow, passphrase: bytes, secret: bytes) -> bytes | None:
        """The slot rewrapped at the vault's minimum Argon2id profile, if it is below it."""
        wanted = kdf_params(self.settings().kdf_min)
        header = slots.read_header(row.slot, name=row.name)
        if header.params >= wanted:
            return None
        params = crypto.KdfParams(
            max(wanted.opslimit, header.params.opslimit),
            max(wanted.memlimit, header.params.memlimit),
        )
        return slots.wrap_secret(secret, name=row.name, passphrase=passphrase, params=params)


def settings_tag(store: Store, master: bytes) -> bytes:
    """The tag the sealed settings stored now should carry."""
    stored = store.settings()
    return keyring.settings_tag(master, {key: stored.get(key) for key in SEALED_SETTINGS})


def seal_settings(store: Store, master: bytes) -> None:
    """Tag the sealed settings as they are now (inside the caller's write transaction)."""
    store.set_setting(SETTINGS_TAG, settings_tag(store, master).hex())


def check_settings(store: Store, master: bytes) -> None:
    """Raises keyring.SettingsChanged when a sealed setting was edited outside nok."""
    stored = store.get_setting(SETTINGS_TAG)
    try:
        tag = bytes.fromhex(stored or "")
    except ValueError:
        tag = b""
    keyring.check_tag(settings_tag(store, master), tag, keyring.SettingsChanged())


def new_staff_row(
    master: bytes,
    master_version: int,
    *,
    name: str,
    role: str,
    passphrase: bytes,
    params: crypto.KdfParams,
    now: dt.datetime,
) -> StaffRow:
    """A key slot for a new staff member: their key pair, wrapped and sealed.

    Raises BadInput for an unknown role, KdfLimitExceeded for parameters over the caps.
    """
    if role not in ROLES:
        raise BadInput("unknown role {role!r}; use staff or admin", role=role)
    secret, public = crypto.new_keypair()
    stamp = timestamp(now)
    return StaffRow(
        name=name,
        role=role,
        role_tag=keyring.role_tag(master, name, role, public),
        created=stamp,
        last_used=None,
        master_version=master_version,
        slot=slots.wrap_secret(secret, name=name, passphrase=passphrase, params=params),
        public_key=public,
        sealed_master=slots.seal_master(
            master, public_key=public, name=name, master_version=master_version
        ),
    )


# Enough for every consent a day's work touches; a walk over a whole vault of 100,000
# consents must not keep a key for each (the memory would grow with the vault).
CACHE_LIMIT = 4096
K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int = CACHE_LIMIT) -> None:
    """Store ``value`` in ``cache``, dropping the oldest entries beyond ``limit``."""
    cache[key] = value
    while len(cache) > limit:
        del cache[next(iter(cache))]


@dataclass
class Unlocked:
    """A vault with its master key available, acting as one staff member."""

    vault: Vault
    name: str
    role: str
    master: bytes = field(repr=False)
    master_version: int
    now: dt.datetime
    # The key pair the slot held at unlock: a reset makes a new one (see resume).
    public_key: bytes | None = field(default=None, repr=False)
    # consent id -> (wrapped key it came from, data key): a key rotated by another process
    # no longer matches its wrapped form, so a stale key is never used to write.
    _data_keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    _vault_keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def store(self) -> Store:
        return self.vault.store

    def close(self) -> None:
        self._data_keys.clear()
        self._vault_keys.clear()
        self.vault.close()

    def ensure_current(self) -> None:
        """Raises KeysRotated when another process rotated the master key since this unlock."""
        if self.vault.master_version() != self.master_version:
            raise KeysRotated()

    def resume(self, now: dt.datetime) -> None:
        """Ready this unlock for one more command at ``now``, as a fresh unlock would leave
        it but without Argon2id (``nok shell``): an open transaction an interrupted command
        left is rolled back, the key caches are emptied, the schema and the staff member's
        slot are looked at again, and the keyless audit entries made meanwhile are sealed.

        Raises:
            KeysRotated: another process rotated the master key since the unlock.
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
        row = self.store.get_staff(self.name)
        if row is None or row.role != self.role or row.public_key != self.public_key:
            raise SlotChanged(name=self.name)
        self.ensure_current()
        self.now = now
        with self.store.write():
            self.store.touch_staff(self.name, timestamp(now))
            audit.seal_pending(self.store, self.vault_key(audit.AUDIT_KEY), now)

    def require_admin(self, action: str) -> None:
        """Raises NotAllowed unless this staff member is an admin."""
        if self.role != "admin":
            raise NotAllowed(name=self.name, role=self.role, needed="admin", action=action)

    def data_key(self, row: ConsentRow) -> bytes:
        """The consent's data key.

        Raises:
            KeysRotated: another process rotated the master key since this unlock.
            IntegrityError: the wrapped key was altered or erased.
        """
        return self.unwrap_data_key(row.id, row.data_key, row.master_version)

    def unwrap_data_key(
        self, consent_id: str, wrapped: bytes | None, master_version: int | None
    ) -> bytes:
        """A consent's data key from its stored wrapped form; raises as :meth:`data_key`."""
        if wrapped is None or master_version is None:
            raise IntegrityError(where=f"data key of {consent_id} (erased)")
        # A rotation rewraps every data key at once, so a newer version means this unlock
        # is stale, not that the file was tampered with.
        if isinstance(master_version, int) and master_version > self.master_version:
            raise KeysRotated()
        cached = self._data_keys.get(consent_id)
        if cached is not None and cached[0] == wrapped:
            return cached[1]
        key = keyring.unwrap_data_key(
            self.master, wrapped, consent_id=consent_id, master_version=master_version
        )
        remember(self._data_keys, consent_id, (wrapped, key))
        return key

    def set_setting(self, key: str, value: str) -> None:
        """Change a vault setting and seal the settings again (inside the caller's write
        transaction).

        Raises keyring.SettingsChanged when the settings were edited outside nok since
        they were sealed (sealing them again would make the edit look genuine).
        """
        check_settings(self.store, self.master)
        self.store.set_setting(key, value)
        seal_settings(self.store, self.master)

    def forget_data_key(self, consent_id: str) -> None:
        self._data_keys.pop(consent_id, None)

    def vault_key(self, purpose: str) -> bytes:
        """A vault-wide key (e.g. the audit key), created on first use."""
        cached = self._vault_keys.get(purpose)
        if cached is not None:
            return cached
        stored = self.store.get_vault_key(purpose)
        if stored is None:
            key = crypto.new_key()
            with self.store.write():
                self.store.put_vault_key(
                    purpose,
                    self.master_version,
                    keyring.wrap_vault_key(
                        self.master, key, purpose=purpose, master_version=self.master_version
                    ),
                )
        else:
            version, wrapped = stored
            key = keyring.unwrap_vault_key(
                self.master, wrapped, purpose=purpose, master_version=version
            )
        self._vault_keys[purpose] = key
        return key

    def record(
        self, action: str, *, consent_id: str | None = None, object_id: str | None = None
    ) -> None:
        """Append an audit entry as this staff member (inside the caller's transaction).

        Raises KeysRotated when another process rotated the master key since this unlock:
        whatever the transaction wrapped with the old key must not be committed.
        """
        self.ensure_current()
        audit.append(
            self.store,
            now=self.now,
            actor=self.name,
            action=action,
            consent_id=consent_id,
            object_id=object_id,
            key=self.vault_key(audit.AUDIT_KEY),
        )
