"""The vault's own seeds, sealed to those who hold them (table ``sealed_keys``).

* ``admin``: the admin seed (the vault's signing key, the admin box and wrap keys), sealed
  to each admin and to the recovery key (holder ``#recovery``);
* ``team``: the team seed (the team box and wrap keys, which wrap the vault-wide keys and
  the data keys of consents the whole team reads), sealed to each staff member and to the
  admin key (holder ``#admin``);
* ``job``: the job seed (the job box key, to which each consent's proof key is sealed),
  sealed to each job that holds a credential (holder ``job:NAME``) and to the admin key.

Anyone can make a sealed box for a public key stored in the file, so a seed opened from
one is trusted only when the public keys it gives are the ones the current (signed) epoch
lists: a seed planted by a file writer is refused, whatever else she changed.
"""

from __future__ import annotations

from vault import crypto, identity
from vault.errors import IntegrityError, UnsupportedVersion
from vault.store import Store

ADMIN = "admin"
TEAM = "team"
JOB = "job"
HOLDER_ADMIN = "#admin"
HOLDER_RECOVERY = "#recovery"


class KeyReplaced(IntegrityError):
    template = (
        "the {purpose} key sealed to {holder} is not the one the vault's signed epoch lists: "
        "it was replaced in the file (or damaged), and nok will not use it"
    )


def job_holder(name: str) -> str:
    return f"job:{name}"


def ad(vault_id: str, purpose: str, version: int, holder: str) -> bytes:
    return crypto.bind("sealed-key", vault_id, purpose, version, holder)


def seal(
    store: Store,
    *,
    vault_id: str,
    purpose: str,
    version: int,
    holder: str,
    seed: bytes,
    public_key: bytes,
) -> None:
    """Seal ``seed`` to ``public_key`` for ``holder`` (inside the caller's transaction)."""
    sealed = crypto.seal_to(public_key, seed, ad(vault_id, purpose, version, holder))
    store.put_sealed(holder, purpose, version, sealed)


def open_seed(
    store: Store,
    *,
    vault_id: str,
    purpose: str,
    holder: str,
    box_secret: bytes,
    expect: bytes,
    version: int,
) -> identity.KeySet:
    """The ``purpose`` seed sealed to ``holder``, checked against the box key ``expect``
    that the signed epoch lists for it (at ``version``).

    Raises KeyReplaced when it is missing, does not open, or gives other keys.
    """
    stored = store.get_sealed(holder, purpose)
    error = KeyReplaced(purpose=purpose, holder=holder)
    if stored is None or stored[0] != version:
        raise error
    try:
        seed = crypto.open_sealed(
            box_secret, stored[1], ad(vault_id, purpose, version, holder), where=purpose
        )
    except (IntegrityError, UnsupportedVersion):
        raise error from None
    if len(seed) != crypto.KEY_BYTES:
        raise error
    keys = identity.KeySet.from_seed(seed)
    if not crypto.same(keys.box_public, expect):
        raise error
    return keys
