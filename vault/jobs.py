"""The scheduled job's credential: what lets the nightly purge (and a backup job) act
without a staff passphrase, and nothing more.

An admin makes one (:func:`issue`, ``nok key job-credential --output FILE``): a seed of
the job's own (its signing and box keys), which a new epoch lists under the job's name,
and the vault's job seed sealed to it. With it the job can

* check that a consent is really due: each consent's *proof key* is sealed to the job key
  (vault.access, reader ``#job``), so the job checks the proof of a state, and its
  signature, without ever holding a data key;
* sign its own entries and endings (``consent.expire``, ``vault.backup``), as the job;
* bring backups up to date with the vault's erasures, checking each the same way.

It cannot read a note or a consent (no data key is wrapped to it), cannot sign as a staff
member, and an expiry it signs counts only for a consent whose staff-signed state was due
(vault.endings). The file is a secret of its own: keep it 0600 for the job's user. An
admin revokes it with :func:`revoke`, which also replaces the job seed.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vault import access, audit, crypto, epochs, identity, pins, seeds
from vault.dates import day
from vault.errors import (
    BadInput,
    ExitCode,
    IntegrityError,
    NokError,
    StorageError,
    UnsafePermissions,
)
from vault.session import PinsArg, Unlocked, Vault, _pins
from vault.store import ConsentRow, Store

MAGIC = "nok-job-credential"
VERSION = 1
DEFAULT_NAME = "purge"


class CredentialUnusable(NokError):
    exit_code = ExitCode.WRONG_PASSPHRASE
    template = "the job credential {path} cannot be used: {why}"
    hint_template = "ask an admin for a new one: nok key job-credential --output FILE"


class CredentialRevoked(CredentialUnusable):
    template = (
        "the job credential of {name} is not one this vault lists (it was revoked, or made "
        "for another vault)"
    )


@dataclass(frozen=True)
class Credential:
    vault_id: str
    root: bytes
    name: str
    epoch: int
    seed: bytes = field(repr=False)

    def to_text(self) -> str:
        return (
            "# nok job credential: the key of a scheduled job of one vault.\n"
            "# Keep it 0600, readable by the job's user only. It opens no note and no consent.\n"
            f"{MAGIC} {VERSION}\n"
            f"vault_id {self.vault_id}\n"
            f"root {self.root.hex()}\n"
            f"name {self.name}\n"
            f"epoch {self.epoch}\n"
            f"seed {base64.b64encode(self.seed).decode('ascii')}\n"
        )


def check_job_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > 32 or not all(ch.isalnum() or ch in "-_" for ch in clean):
        raise BadInput("{name!r} is not a usable job name (letters, digits, - and _)", name=name)
    return clean


def issue(unlocked: Unlocked, name: str = DEFAULT_NAME) -> Credential:
    """A new credential for the job ``name`` (admins only): a new epoch lists it (replacing
    an earlier one of that name), and the job seed is sealed to it. Recorded.

    Raises NotAllowed, BadInput, KeysRotated.
    """
    admin = unlocked.admin_seed("making a job credential")
    name = check_job_name(name)
    keys = identity.KeySet.new()
    store = unlocked.store
    with store.write():
        current = unlocked.epoch
        job_seed = seeds.open_seed(
            store,
            vault_id=unlocked.vault_id,
            purpose=seeds.JOB,
            holder=seeds.HOLDER_ADMIN,
            box_secret=admin.box_secret,
            expect=current.keys.job,
            version=current.keys.job_version,
        )
        jobs = {n: j for n, j in current.jobs.items() if n != name}
        jobs[name] = epochs.JobEntry(name, keys.box_public, keys.sign_public)
        epoch = unlocked.publish("job.credential", jobs=[jobs[n] for n in sorted(jobs)])
        seeds.seal(
            store,
            vault_id=unlocked.vault_id,
            purpose=seeds.JOB,
            version=epoch.keys.job_version,
            holder=seeds.job_holder(name),
            seed=job_seed.seed,
            public_key=keys.box_public,
        )
        unlocked.record("key.job-credential", object_id=name)
    return Credential(unlocked.vault_id, unlocked.chain.root, name, epoch.number, keys.seed)


def revoke(unlocked: Unlocked, name: str) -> None:
    """Take the job ``name`` off the vault: a new epoch without it, and a new job seed (it
    held the old one), sealed again to the jobs that stay. Recorded.

    Raises NotAllowed, BadInput (no such job), KeysRotated.
    """
    from vault import rotation

    unlocked.require_admin("revoking a job credential")
    current = unlocked.epoch
    if name not in current.jobs:
        raise BadInput("there is no job named {name}", name=name)
    with unlocked.store.write():
        unlocked.store.delete_sealed(seeds.job_holder(name))
        jobs = [j for n, j in sorted(current.jobs.items()) if n != name]
        rotation.new_seeds(
            unlocked, admin=False, team=False, job=True, event="job.revoke", jobs=jobs
        )
        unlocked.record("key.job-revoke", object_id=name)


def write(path: Path, credential: Credential) -> None:
    """Write ``credential`` to a new file, 0600 (never replacing one).

    Raises StorageError (it exists, or cannot be written).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise StorageError(
            "could not write the job credential {path}: {reason}",
            path=str(path),
            reason="it exists already",
        ) from None
    except OSError as exc:
        raise StorageError(
            "could not write the job credential {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    try:
        os.fchmod(fd, 0o600)
        data = credential.to_text().encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> Credential:
    """The credential in ``path``: a regular file of this user that nobody else can read.

    Raises UnsafePermissions, CredentialUnusable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise CredentialUnusable(path=str(path), why=exc.strerror or type(exc).__name__) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CredentialUnusable(path=str(path), why="not a regular file")
        if st.st_uid != os.getuid():
            raise UnsafePermissions(
                "{path} belongs to another user (uid {uid})",
                path=str(path),
                uid=st.st_uid,
                fix="600",
                who="another user",
                mode=f"{stat.S_IMODE(st.st_mode):04o}",
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise UnsafePermissions(
                path=str(path), who="other users", mode=f"{mode:04o}", fix="600"
            )
        text = handle.read(8192).decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        fields[key] = value.strip()
    try:
        if fields.get(MAGIC) != str(VERSION):
            raise ValueError("version")
        seed = base64.b64decode(fields["seed"], validate=True)
        if len(seed) != crypto.KEY_BYTES:
            raise ValueError("seed")
        return Credential(
            vault_id=fields["vault_id"],
            root=bytes.fromhex(fields["root"]),
            name=check_job_name(fields["name"]),
            epoch=int(fields["epoch"]),
            seed=seed,
        )
    except (ValueError, KeyError, BadInput):
        raise CredentialUnusable(path=str(path), why="it is not a nok job credential") from None


@dataclass
class JobUnlocked:
    """The vault as the scheduled job holds it: its own keys and the job seed."""

    vault: Vault
    name: str
    keys: identity.KeySet = field(repr=False)
    chain: epochs.Chain = field(repr=False)
    now: dt.datetime
    job_box: identity.KeySet = field(repr=False)

    @property
    def store(self) -> Store:
        return self.vault.store

    @property
    def vault_id(self) -> str:
        return self.chain.current.vault_id

    @property
    def is_job(self) -> bool:
        return True

    @property
    def epoch(self) -> epochs.Epoch:
        return self.chain.current

    def today(self) -> str:
        return day(self.now, str(self.chain.current.settings.get("timezone", "Europe/Oslo")))

    def signer(self) -> audit.Signer:
        return audit.Signer(self.name, self.keys, self.chain.current.number, self.vault_id)

    def proof_key(self, store: Store, row: ConsentRow) -> bytes | None:
        """The proof key sealed to the job key for ``row`` (in the vault or a copy)."""
        for _, version, how, wrapped in store.wrap_for(row.id, [access.JOB_READER]):
            if (
                version != row.key_version
                or how != access.HOW_BOX
                or not isinstance(wrapped, bytes)
            ):
                return None
            ad = access.wrap_ad(self.vault_id, row.id, access.JOB_READER, version)
            try:
                key = crypto.open_sealed(self.job_box.box_secret, wrapped, ad, where="proof key")
            except (IntegrityError, NokError):
                return None
            return key if len(key) == crypto.KEY_BYTES else None
        return None

    def record(
        self, action: str, *, consent_id: str | None = None, object_id: str | None = None
    ) -> None:
        audit.append(
            self.store,
            now=self.now,
            signer=self.signer(),
            action=action,
            consent_id=consent_id,
            object_id=object_id,
        )

    def close(self) -> None:
        self.vault.close()


def unlock(
    vault: Vault, credential: Credential, *, now: dt.datetime, pin_store: PinsArg = "default"
) -> JobUnlocked:
    """The vault as the job of ``credential`` holds it.

    The credential pins the vault's root key and the epoch it was made in; the job's own
    pins (its state directory) move forward from there, so an older or a forged vault put
    in place is refused.

    Raises:
        CredentialUnusable, CredentialRevoked: not this vault's, or no longer listed.
        pins.VaultKeysReplaced, pins.VaultRolledBack: another or an older vault.
        seeds.KeyReplaced: the job seed sealed to it was planted.
    """
    chain = vault.chain()
    current = chain.current
    if credential.vault_id != current.vault_id:
        raise CredentialRevoked(name=credential.name, path="")
    if not crypto.same(credential.root, chain.root):
        raise pins.VaultKeysReplaced(
            found=identity.show_fingerprint(chain.root),
            pinned=identity.show_fingerprint(credential.root),
        )
    store_ = _pins(pin_store)
    pin = None if store_ is None else store_.get(current.vault_id)
    if current.number < credential.epoch and (pin is None or pin.epoch < credential.epoch):
        raise pins.VaultRolledBack(found=current.number, pinned=credential.epoch)
    with vault.store.read():
        pins.check(chain, pin, vault.store.audit_hash_at)
    keys = identity.KeySet.from_seed(credential.seed)
    entry = current.jobs.get(credential.name)
    if (
        entry is None
        or not crypto.same(entry.sign, keys.sign_public)
        or not crypto.same(entry.box, keys.box_public)
    ):
        raise CredentialRevoked(name=credential.name, path="")
    job_box = seeds.open_seed(
        vault.store,
        vault_id=current.vault_id,
        purpose=seeds.JOB,
        holder=seeds.job_holder(credential.name),
        box_secret=keys.box_secret,
        expect=current.keys.job,
        version=current.keys.job_version,
    )
    job = JobUnlocked(vault, credential.name, keys, chain, now, job_box)
    if store_ is not None and not vault.store.read_only:
        with vault.store.read():
            last = vault.store.last_audit()
        seq, digest = (last.seq, bytes(last.hash)) if last is not None else (0, b"")
        store_.put(pins.advance(pin, chain, seq, digest))
    return job
