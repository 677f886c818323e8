"""The vault's signed epoch statements: who is staff, with which keys and roles, and the
settings that decide what happens to personal data (docs/format.md, "Epochs").

An epoch statement is a JSON object (its exact bytes are what is signed and stored). Each
one names the vault's public keys of that epoch (its signing key, the admin, team and job
box keys, the recovery key), every staff member with her role and public keys, the
scheduled jobs that hold a credential, and the settings. Epoch 1 is signed by its own
vault key; every later epoch by the vault key of the epoch before it (an admin), or by the
recovery key of the epoch before it. The vault's root fingerprint is epoch 1's vault key
bound to the vault id (vault.identity.root_fingerprint); every version-2 key slot is bound
to it.

So a file writer without an admin's secret can neither change a role, a public key or a
setting, nor make a chain of her own that a slot opens under. What a chain read from the
file cannot show is whether it is the newest one: each user's pin of the epoch she last saw
(vault.pins) catches an older chain put back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vault import crypto, identity
from vault.errors import IntegrityError

STATEMENT_VERSION = 1
ROLES = ("staff", "admin")
BY_RECOVERY = "recovery"
ACCESS_NEED_TO_KNOW = "need-to-know"
ACCESS_TEAM = "team"
ACCESS_MODES = (ACCESS_NEED_TO_KNOW, ACCESS_TEAM)
# Events after which the audit trail may legitimately be older than a user's pin of it:
# a restore an admin of the newer state signed, or one the recovery key accepted.
RESTORE_EVENTS = frozenset({"restore", "recovery.accept"})


class ChainBroken(IntegrityError):
    template = (
        "the vault's epoch {epoch} is not signed by the keys of the epoch before it: the "
        "vault's keys or staff list were changed outside nok"
    )


@dataclass(frozen=True)
class Member:
    """A staff member as an epoch lists her."""

    name: str
    role: str
    box: bytes
    sign: bytes


@dataclass(frozen=True)
class JobEntry:
    """A scheduled job that holds a credential (nok key job-credential)."""

    name: str
    box: bytes
    sign: bytes


@dataclass(frozen=True)
class Keys:
    """The vault's public keys in one epoch, and the versions of the seeds behind them."""

    vault: bytes
    admin: bytes
    team: bytes
    job: bytes
    recovery_sign: bytes
    recovery_box: bytes
    admin_version: int
    team_version: int
    job_version: int


@dataclass(frozen=True)
class Epoch:
    """One verified epoch statement."""

    vault_id: str
    number: int
    prev: bytes
    made: str
    by: str
    event: str
    keys: Keys
    staff: Mapping[str, Member]
    jobs: Mapping[str, JobEntry]
    settings: Mapping[str, Any]
    body: bytes = field(repr=False)
    sig: bytes = field(repr=False)

    @property
    def hash(self) -> bytes:
        return statement_hash(self.body, self.sig)

    def admins(self) -> list[str]:
        return sorted(name for name, m in self.staff.items() if m.role == "admin")


def statement_hash(body: bytes, sig: bytes) -> bytes:
    return crypto.digest(crypto.bind("nok-epoch-hash", body, sig))


def message(vault_id: str, number: int, body: bytes) -> bytes:
    """What an epoch's signature covers."""
    return crypto.bind("nok-epoch", vault_id, number, body)


def encode(value: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a statement: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_of(
    *,
    vault_id: str,
    number: int,
    prev: bytes,
    made: str,
    by: str,
    event: str,
    keys: Keys,
    staff: Iterable[Member],
    jobs: Iterable[JobEntry],
    settings: Mapping[str, Any],
) -> bytes:
    return encode(
        {
            "nok": "epoch",
            "v": STATEMENT_VERSION,
            "vault_id": vault_id,
            "epoch": number,
            "prev": prev.hex(),
            "made": made,
            "by": by,
            "event": event,
            "keys": {
                "vault": keys.vault.hex(),
                "admin": keys.admin.hex(),
                "team": keys.team.hex(),
                "job": keys.job.hex(),
                "recovery_sign": keys.recovery_sign.hex(),
                "recovery_box": keys.recovery_box.hex(),
                "admin_version": keys.admin_version,
                "team_version": keys.team_version,
                "job_version": keys.job_version,
            },
            "staff": {
                m.name: {"role": m.role, "box": m.box.hex(), "sign": m.sign.hex()} for m in staff
            },
            "jobs": {j.name: {"box": j.box.hex(), "sign": j.sign.hex()} for j in jobs},
            "settings": dict(settings),
        }
    )


def _hex32(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a key")
    raw = bytes.fromhex(value)
    if len(raw) != crypto.KEY_BYTES:
        raise ValueError("key size")
    return raw


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a number")
    return value


def parse(body: bytes, sig: bytes) -> Epoch:
    """The statement in ``body`` (its signature NOT checked here: see :func:`verify`).

    Raises IntegrityError when it is not a well-formed epoch statement.
    """
    try:
        raw = json.loads(body.decode("utf-8"))
        if raw.get("nok") != "epoch" or raw.get("v") != STATEMENT_VERSION:
            raise ValueError("kind")
        k = raw["keys"]
        keys = Keys(
            vault=_hex32(k["vault"]),
            admin=_hex32(k["admin"]),
            team=_hex32(k["team"]),
            job=_hex32(k["job"]),
            recovery_sign=_hex32(k["recovery_sign"]),
            recovery_box=_hex32(k["recovery_box"]),
            admin_version=_int(k["admin_version"]),
            team_version=_int(k["team_version"]),
            job_version=_int(k["job_version"]),
        )
        staff = {}
        for name, m in raw["staff"].items():
            if m["role"] not in ROLES:
                raise ValueError("role")
            staff[str(name)] = Member(str(name), m["role"], _hex32(m["box"]), _hex32(m["sign"]))
        jobs = {
            str(name): JobEntry(str(name), _hex32(j["box"]), _hex32(j["sign"]))
            for name, j in raw["jobs"].items()
        }
        prev = bytes.fromhex(raw["prev"])
        settings = raw["settings"]
        if not isinstance(settings, dict):
            raise ValueError("settings")
        return Epoch(
            vault_id=str(raw["vault_id"]),
            number=_int(raw["epoch"]),
            prev=prev,
            made=str(raw["made"]),
            by=str(raw["by"]),
            event=str(raw["event"]),
            keys=keys,
            staff=staff,
            jobs=jobs,
            settings=settings,
            body=body,
            sig=sig,
        )
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise IntegrityError(where="the vault's epoch statements") from None


def sign(body: bytes, *, vault_id: str, number: int, signer: identity.KeySet) -> bytes:
    return signer.sign(message(vault_id, number, body))


def _signed_by(epoch: Epoch, public_key: bytes) -> bool:
    return crypto.verify(public_key, message(epoch.vault_id, epoch.number, epoch.body), epoch.sig)


def follows(before: Epoch, after: Epoch) -> bool:
    """Whether ``after`` is a valid successor of ``before``: the next number, the right
    ``prev`` hash, and signed by ``before``'s vault key (an admin) or, when ``after`` says
    so, ``before``'s recovery key."""
    if after.number != before.number + 1 or after.vault_id != before.vault_id:
        return False
    if not crypto.same(after.prev, before.hash):
        return False
    signer = before.keys.recovery_sign if after.by == BY_RECOVERY else before.keys.vault
    return _signed_by(after, signer)


@dataclass(frozen=True)
class Chain:
    """The verified epochs of a vault, oldest first."""

    epochs: tuple[Epoch, ...]

    @property
    def current(self) -> Epoch:
        return self.epochs[-1]

    @property
    def first(self) -> Epoch:
        return self.epochs[0]

    @property
    def root(self) -> bytes:
        return identity.root_fingerprint(self.first.vault_id, self.first.keys.vault)

    def at(self, number: int) -> Epoch | None:
        """The epoch with ``number``, when this chain holds it."""
        offset = number - self.first.number
        if 0 <= offset < len(self.epochs):
            return self.epochs[offset]
        return None

    def listed_key(self, name: str, epoch: int) -> bytes | None:
        """The signing key ``name`` (a staff member or a job) had in epoch ``epoch``, whether
        or not it still stands: for walking the trail in order (vault.audit), where what
        came later shows when a key stopped counting."""
        found = self.at(epoch)
        if found is None:
            return None
        member = found.staff.get(name)
        if member is not None:
            return member.sign
        job = found.jobs.get(name)
        return None if job is None else job.sign

    def signer_key(self, name: str, epoch: int) -> bytes | None:
        """The signing key ``name`` had in epoch ``epoch``, if it still stands: the current
        epoch lists her (or the job) with that same key.

        A leaver, a revoked job credential or a replaced key keeps the secret key it had,
        so a signature naming an older epoch proves nothing about when it was made. What
        such a key signed while it counted stays valid only where an admin countersigned it
        when the key stopped counting (Unlocked.publish, vault.countersign).
        """
        key = self.listed_key(name, epoch)
        if key is None:
            return None
        now = self.listed_key(name, self.current.number)
        return key if now is not None and crypto.same(now, key) else None

    def staff_key(self, name: str, epoch: int) -> bytes | None:
        """As :meth:`signer_key`, for a staff member only; None for a job.

        What only someone who may read a consent can sign (its states, a pending note)
        is never a job's: the job holds each consent's proof key, so a job's signature
        and proof together would otherwise pass for a staff member's state.
        """
        found = self.at(epoch)
        if found is None or name not in found.staff:
            return None
        return self.signer_key(name, epoch)

    def counted_until(self, name: str, epoch: int) -> str | None:
        """When the key ``name`` had in ``epoch`` stopped counting: the ``made`` time of the
        first later epoch that no longer lists her with it (None while it still counts)."""
        key = self.listed_key(name, epoch)
        if key is None:
            return None
        for later in self.epochs[epoch - self.first.number + 1 :]:
            now = self.listed_key(name, later.number)
            if now is None or not crypto.same(now, key):
                return later.made
        return None

    def standing(self, name: str, key: bytes) -> bool:
        """Whether ``name`` signs with ``key`` in the current epoch."""
        now = self.listed_key(name, self.current.number)
        return now is not None and crypto.same(now, key)


def verify(rows: Iterable[tuple[object, object, object]], *, vault_id: str) -> Chain:
    """Verify the stored epochs (number, body, sig) from epoch 1 to the newest.

    Raises:
        IntegrityError: no epoch is stored, one is malformed, or one belongs to another
            vault.
        ChainBroken: an epoch does not follow the one before it (or epoch 1 is not signed
            by its own vault key).
    """
    epochs: list[Epoch] = []
    for number, body, sig in rows:
        if not isinstance(body, bytes) or not isinstance(sig, bytes):
            raise IntegrityError(where="the vault's epoch statements")
        epoch = parse(body, sig)
        if epoch.number != number or epoch.vault_id != vault_id:
            raise IntegrityError(where="the vault's epoch statements")
        if not epochs:
            if epoch.number != 1 or epoch.prev or not _signed_by(epoch, epoch.keys.vault):
                raise ChainBroken(epoch=epoch.number)
        elif not follows(epochs[-1], epoch):
            raise ChainBroken(epoch=epoch.number)
        epochs.append(epoch)
    if not epochs:
        raise IntegrityError(where="the vault's epoch statements (missing)")
    return Chain(tuple(epochs))
