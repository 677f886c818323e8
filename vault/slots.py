"""Key slots: one per staff member, opened with that person's passphrase.

A slot holds a 32-byte secret wrapped with XChaCha20-Poly1305 under a key-encryption key
that Argon2id derives from the passphrase.

* Version 2 (vault format 3) holds the staff member's seed (vault.identity: her box,
  signing and wrapping keys), and its additional data names the vault's root fingerprint:
  a slot copied into another vault, or into a vault whose keys were replaced by a forged
  chain, does not open there.
* Version 1 (vault format 2) holds an X25519 secret key to which the master key is sealed;
  nok reads it only to upgrade a format-2 vault (vault.upgrade).

Slot layout, both versions (docs/format.md)::

    offset size
    0      1    version (0x01 or 0x02)
    1      1    KDF algorithm (0x01 = Argon2id v1.3)
    2      4    opslimit, unsigned big-endian
    6      8    memlimit in bytes, unsigned big-endian
    14     16   salt
    30     73   AEAD blob (crypto.seal) of the 32-byte secret
    103    16   BLAKE2b-128 checksum of bytes 0..102

The AEAD's additional data binds the slot to its staff name (and, in version 2, the vault's
root fingerprint) and covers the header (bytes 0..29), so parameters cannot be swapped
between slots. The checksum tells a
damaged slot from a wrong passphrase; it is not a security boundary (whoever can forge
it still cannot open the slot).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vault import crypto
from vault.errors import IntegrityError, UnsupportedVersion, WrongPassphrase

SLOT_V1 = 1
SLOT_V2 = 2
KDF_ARGON2ID13 = 1
_HEADER = struct.Struct(">BBIQ")
_HEADER_BYTES = _HEADER.size + crypto.SALT_BYTES
_WRAPPED_BYTES = crypto.BLOB_OVERHEAD + crypto.KEY_BYTES
_CHECKSUM_BYTES = 16
SLOT_BYTES = _HEADER_BYTES + _WRAPPED_BYTES + _CHECKSUM_BYTES


@dataclass(frozen=True)
class SlotHeader:
    params: crypto.KdfParams
    salt: bytes
    version: int = SLOT_V1


def _slot_ad(name: str, header: bytes, root: bytes | None) -> bytes:
    if header[0] == SLOT_V1:
        return crypto.bind("slot", name) + header
    if root is None:
        raise TypeError("a version-2 slot is bound to the vault's root fingerprint")
    return crypto.bind("slot", root, name) + header


def wrap_secret(
    secret: bytes,
    *,
    name: str,
    passphrase: bytes,
    params: crypto.KdfParams,
    root: bytes | None = None,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Wrap ``name``'s secret under ``passphrase``: a version-2 slot bound to the vault's
    ``root`` fingerprint, or (``root`` None) a version-1 slot of format 2, which nok makes
    only for test vectors and the upgrade tests.

    ``salt`` and ``nonce`` exist for test vectors. Raises KdfLimitExceeded for
    parameters outside the caps.
    """
    salt = salt if salt is not None else crypto.random_bytes(crypto.SALT_BYTES)
    version = SLOT_V1 if root is None else SLOT_V2
    header = _HEADER.pack(version, KDF_ARGON2ID13, params.opslimit, params.memlimit) + salt
    kek = crypto.derive_kek(passphrase, salt, params, name=name)
    wrapped = crypto.seal(kek, secret, _slot_ad(name, header, root), nonce=nonce)
    body = header + wrapped
    return body + crypto.digest(body, _CHECKSUM_BYTES)


def read_header(slot: bytes, *, name: str) -> SlotHeader:
    """Parse and check a slot's header without deriving anything.

    Raises:
        UnsupportedVersion: unknown slot version or KDF algorithm.
        IntegrityError: the slot is truncated or its checksum does not match.
    """
    where = f"key slot of {name}"
    # A tampered column may hold text or a number instead of a blob.
    if not isinstance(slot, bytes) or not slot:
        raise IntegrityError(where=where)
    if slot[0] not in (SLOT_V1, SLOT_V2):
        raise UnsupportedVersion(what=where, version=slot[0])
    if len(slot) != SLOT_BYTES:
        raise IntegrityError(where=where)
    body, checksum = slot[:-_CHECKSUM_BYTES], slot[-_CHECKSUM_BYTES:]
    if not crypto.same(crypto.digest(body, _CHECKSUM_BYTES), checksum):
        raise IntegrityError(where=where)
    _, alg, opslimit, memlimit = _HEADER.unpack_from(slot)
    if alg != KDF_ARGON2ID13:
        raise UnsupportedVersion(what=f"KDF of {where}", version=alg)
    return SlotHeader(
        crypto.KdfParams(opslimit, memlimit), slot[_HEADER.size : _HEADER_BYTES], slot[0]
    )


def unwrap_secret(slot: bytes, *, name: str, passphrase: bytes, root: bytes | None = None) -> bytes:
    """Recover ``name``'s secret from their slot (``root``: the vault's root fingerprint,
    which a version-2 slot is bound to).

    Raises:
        UnsupportedVersion, IntegrityError: see :func:`read_header`.
        crypto.KdfLimitExceeded: the stored Argon2id cost is over the caps.
        WrongPassphrase: the passphrase does not open the slot (or, for a version-2 slot,
            the slot belongs to a vault with another root).
    """
    header = read_header(slot, name=name)
    if header.version == SLOT_V2 and root is None:
        raise UnsupportedVersion(what=f"key slot of {name}", version=header.version)
    kek = crypto.derive_kek(passphrase, header.salt, header.params, name=name)
    wrapped = slot[_HEADER_BYTES:-_CHECKSUM_BYTES]
    ad = _slot_ad(name, slot[:_HEADER_BYTES], root)
    try:
        return crypto.unseal(kek, wrapped, ad, where="slot")
    except IntegrityError:
        raise WrongPassphrase(name=name) from None


# -- format 2: the master key sealed to a version-1 slot's key (read by vault.upgrade) ------


def master_ad(name: str, master_version: int) -> bytes:
    return crypto.bind("master", name, master_version)


def seal_master(master: bytes, *, public_key: bytes, name: str, master_version: int) -> bytes:
    """The master key sealed to one staff member's public key."""
    return crypto.seal_to(public_key, master, master_ad(name, master_version))


def open_master(sealed: bytes, *, secret: bytes, name: str, master_version: int) -> bytes:
    """Raises IntegrityError if the sealed master key was altered or moved."""
    return crypto.open_sealed(
        secret, sealed, master_ad(name, master_version), where=f"master key of {name}"
    )
