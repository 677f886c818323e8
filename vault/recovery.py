"""The recovery key, and accepting a vault that went back (docs/keys.md, "Recovery").

``nok init`` makes a recovery key for the center's safe: a seed shown once (or written to
a file), never stored by nok. The vault keeps its public keys in every epoch and the admin
seed sealed to it. With it, and no admin's passphrase:

* :func:`readmit` gives a staff member (new or existing) an admin slot when no admin is
  left, in a new epoch the recovery key signs;
* :func:`accept` signs an epoch that accepts the vault as it is (a restore of an older
  backup after a real loss), which every colleague's pin then accepts as newer.

:func:`renew` (an admin) makes a new recovery key and revokes the old one; it also
replaces the admin seed, which the old key could open. :func:`accept_here` is what each
user can do for herself: record the vault as it is now in her own pin, after checking its
fingerprint with an admin (``nok key accept``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from vault import crypto, epochs, identity, pins, seeds
from vault.dates import timestamp
from vault.errors import IntegrityError
from vault.session import (
    PinsArg,
    Unlocked,
    Vault,
    _pins,
    check_staff_name,
    kdf_params,
    new_staff_row,
    with_member,
)
from vault.store import Store


class NotTheRecoveryKey(IntegrityError):
    template = "that recovery key is not this vault's (or it was replaced by a newer one)"
    hint_template = "use the recovery key from the center's safe that was made last"


def _recovery(chain: epochs.Chain, seed: bytes) -> identity.KeySet:
    keys = identity.KeySet.from_seed(seed)
    if not crypto.same(keys.sign_public, chain.current.keys.recovery_sign):
        raise NotTheRecoveryKey()
    return keys


def _publish(
    store: Store,
    chain: epochs.Chain,
    *,
    now: dt.datetime,
    event: str,
    signer: identity.KeySet,
    by: str,
    staff: list[epochs.Member] | None = None,
    keys: epochs.Keys | None = None,
) -> epochs.Epoch:
    current = chain.current
    number = current.number + 1
    body = epochs.body_of(
        vault_id=current.vault_id,
        number=number,
        prev=current.hash,
        made=timestamp(now),
        by=by,
        event=event,
        keys=keys or current.keys,
        staff=staff if staff is not None else list(current.staff.values()),
        jobs=list(current.jobs.values()),
        settings=dict(current.settings),
    )
    sig = epochs.sign(body, vault_id=current.vault_id, number=number, signer=signer)
    epoch = epochs.parse(body, sig)
    if not epochs.follows(current, epoch):
        raise NotTheRecoveryKey()
    store.insert_epoch(number, body, sig)
    return epoch


def accept(
    vault: Vault, seed: bytes, *, now: dt.datetime, pin_store: PinsArg = "default"
) -> epochs.Epoch:
    """Accept the vault as it is with the recovery key: a new epoch it signs, which the
    pins of colleagues who saw a newer vault accept. Recorded (signed by no staff
    member: the entry is the epoch itself).

    Raises NotTheRecoveryKey, KeysRotated.
    """
    chain = vault.chain()
    keys = _recovery(chain, seed)
    with vault.store.write():
        epoch = _publish(
            vault.store, chain, now=now, event="recovery.accept", signer=keys, by=epochs.BY_RECOVERY
        )
    vault._chain = None
    _pin(vault, pin_store)
    return epoch


def _pin(vault: Vault, pin_store: PinsArg) -> None:
    store_ = _pins(pin_store)
    if store_ is None:
        return
    chain = vault.chain()
    with vault.store.read():
        last = vault.store.last_audit()
    seq, digest = (last.seq, bytes(last.hash)) if last is not None else (0, b"")
    store_.put(pins.pin_of(chain, seq, digest))


def accept_here(vault: Vault, *, pin_store: PinsArg = "default") -> pins.Pin:
    """Record the vault as it is now in this user's own pin (``nok key accept``), after a
    legitimate restore or a vault made anew. Returns the new pin.

    Raises IntegrityError when the chain itself does not verify.
    """
    _pin(vault, pin_store)
    chain = vault.chain()
    return pins.pin_of(chain)


def readmit(
    vault: Vault,
    seed: bytes,
    *,
    name: str,
    passphrase: bytes,
    now: dt.datetime,
    kdf: str = crypto.DEFAULT_KDF,
    pin_store: PinsArg = "default",
) -> Unlocked:
    """Give ``name`` an admin slot with the recovery key (when no admin is left): new keys
    for her, in an epoch the recovery key signs. Returns the vault unlocked as her.

    Raises NotTheRecoveryKey, BadInput (a bad name or profile), seeds.KeyReplaced (the
    admin seed sealed to the recovery key was planted).
    """
    name = check_staff_name(name)
    params = kdf_params(kdf)
    chain = vault.chain()
    recovery = _recovery(chain, seed)
    current = chain.current
    store = vault.store
    admin = seeds.open_seed(
        store,
        vault_id=current.vault_id,
        purpose=seeds.ADMIN,
        holder=seeds.HOLDER_RECOVERY,
        box_secret=recovery.box_secret,
        expect=current.keys.admin,
        version=current.keys.admin_version,
    )
    team = seeds.open_seed(
        store,
        vault_id=current.vault_id,
        purpose=seeds.TEAM,
        holder=seeds.HOLDER_ADMIN,
        box_secret=admin.box_secret,
        expect=current.keys.team,
        version=current.keys.team_version,
    )
    keys = identity.KeySet.new()
    member = epochs.Member(name, "admin", keys.box_public, keys.sign_public)
    row = new_staff_row(
        keys, chain, name=name, role="admin", passphrase=passphrase, params=params, now=now
    )
    with store.write():
        epoch = _publish(
            store,
            chain,
            now=now,
            event="recovery.readmit",
            signer=recovery,
            by=epochs.BY_RECOVERY,
            staff=with_member(current.staff, member),
        )
        if store.get_staff(name) is not None:
            store.delete_staff(name)
            store.delete_sealed(name)
        store.insert_staff(row)
        for purpose, version, seed_keys in (
            (seeds.TEAM, epoch.keys.team_version, team),
            (seeds.ADMIN, epoch.keys.admin_version, admin),
        ):
            seeds.seal(
                store,
                vault_id=current.vault_id,
                purpose=purpose,
                version=version,
                holder=name,
                seed=seed_keys.seed,
                public_key=keys.box_public,
            )
    vault._chain = None
    chain = vault.chain()
    unlocked = Unlocked(vault, name, "admin", keys, chain, now, team, admin)
    with store.write():
        unlocked.record("key.recover", object_id=name)
    unlocked.pin_store = _pins(pin_store)
    unlocked.save_pin(pin_store)
    return unlocked


def renew(unlocked: Unlocked) -> bytes:
    """A new recovery key (admins): the old one is revoked, and the admin seed (which the
    old one could open) replaced. Returns the new seed, to show once. Recorded.

    Raises NotAllowed, KeysRotated.
    """
    from vault import rotation

    unlocked.require_admin("making a new recovery key")
    fresh = identity.KeySet.new()
    with unlocked.store.write():
        current = unlocked.epoch
        keys = dataclasses.replace(
            current.keys, recovery_sign=fresh.sign_public, recovery_box=fresh.box_public
        )
        # The recovery key's own epoch first (signed by the vault key), then the rotation
        # that seals the new admin seed to the new recovery key.
        unlocked.publish("recovery.renew", keys=keys)
        rotation.new_seeds(unlocked, admin=True, team=False, job=False, event="rotate.recovery")
        unlocked.record("key.recovery")
    return fresh.seed
