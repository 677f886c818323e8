"""The only module that touches libsodium (through PyNaCl).

nok composes libsodium's primitives and never implements one:

* AEAD: XChaCha20-Poly1305 IETF, a fresh random 24-byte nonce per encryption.
* Password hashing: Argon2id (``crypto_pwhash``), parameters stored with each key slot.
* Hashing and MACs: BLAKE2b (``crypto_generichash``), keyed for MACs and sub-keys.
* Sealed boxes (``crypto_box_seal``, X25519): a key sealed to one holder's public key
  (a consent's data key to a colleague given access, the vault's admin seed to each
  admin), so it can be handed over without the holder's passphrase.
* Signatures: Ed25519 (``crypto_sign``), by each staff member, the scheduled job and the
  vault's own key, so that what decides an erasure or which key to trust is something a
  file writer without a staff secret cannot make (docs/format.md, format 3).

Blob format, version 1 (docs/format.md)::

    version (1 byte, 0x01) || nonce (24 bytes) || ciphertext || tag (16 bytes)

The additional data given to the AEAD is ``version || ad``, so the version byte is
authenticated too. ``ad`` comes from :func:`bind`, which encodes where the ciphertext is
stored (table, column, row id, consent id, key version) without ambiguity.

The AEAD and MAC calls on the bulk paths (every note of an import, a list, a search, a
verify or a rotation) go to libsodium through PyNaCl's own cffi handle, ``nacl._sodium``,
the one ``nacl.bindings`` itself uses: the argument checks around ``nacl.bindings`` cost
two to seven times the libsodium call on a 256-byte record. This module does those checks
once, with fixed sizes (a 32-byte key, a 24-byte nonce), and tests/test_crypto.py checks
every result against ``nacl.bindings``.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.encoding
import nacl.exceptions
import nacl.hash
import nacl.hashlib
import nacl.public
import nacl.pwhash.argon2id as argon2id
import nacl.signing
import nacl.utils
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from vault.errors import IntegrityError, NokError, UnsupportedVersion

KEY_BYTES = 32
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
SALT_BYTES = argon2id.SALTBYTES
BLOB_V1 = 1
BLOB_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters, as stored in a key slot."""

    opslimit: int
    memlimit: int

    def __ge__(self, other: KdfParams) -> bool:
        return self.opslimit >= other.opslimit and self.memlimit >= other.memlimit


KDF_PROFILES: dict[str, KdfParams] = {
    "interactive": KdfParams(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": KdfParams(argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),
    "sensitive": KdfParams(argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE),
}
DEFAULT_KDF = "moderate"

# A slot read from disk is untrusted: these caps stop a tampered slot from making nok
# allocate gigabytes or spin for minutes before the passphrase is even checked.
KDF_MAX = KdfParams(opslimit=16, memlimit=argon2id.MEMLIMIT_SENSITIVE)
KDF_MIN = KdfParams(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)


class KdfLimitExceeded(IntegrityError):
    template = (
        "the key slot of {name} asks for Argon2id cost opslimit={opslimit}, "
        "memlimit={memlimit}, outside what nok accepts"
    )


def random_bytes(size: int) -> bytes:
    return nacl.utils.random(size)


def new_key() -> bytes:
    """A fresh random 32-byte key."""
    return nacl.utils.random(KEY_BYTES)


def bind(*parts: str | int | bytes) -> bytes:
    """Encode where a ciphertext lives as additional data.

    Each part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ; bytes are
    taken as they are, text and numbers as UTF-8 of their decimal or text form.
    """
    return extend(b"nok", *parts)


def extend(bound: bytes, *parts: str | int | bytes) -> bytes:
    """``bind(*a, *parts)`` given ``bound = bind(*a)``: a fixed prefix encoded once."""
    out = [bound]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        out.append(_U16(len(raw)))
        out.append(raw)
    return b"".join(out)


_U16 = struct.Struct(">H").pack


def _check_key(key: bytes) -> None:
    # The fast calls below hand raw pointers to libsodium: a wrong-sized key would read
    # past its buffer, so the size is checked here, where nacl.bindings would check it.
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise TypeError("a key must be 32 bytes")


def _aead_encrypt(plaintext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    _check_key(key)
    if len(nonce) != NONCE_BYTES:
        raise TypeError("a nonce must be 24 bytes")
    out = _ffi.new("unsigned char[]", len(plaintext) + TAG_BYTES)
    size = _ffi.new("unsigned long long *")
    rc = _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, size, plaintext, len(plaintext), ad, len(ad), _ffi.NULL, nonce, key
    )
    if rc != 0:
        raise nacl.exceptions.RuntimeError("encryption failed")
    return bytes(_ffi.buffer(out, size[0]))


def _aead_decrypt(ciphertext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """The plaintext, or None when the tag does not check out."""
    _check_key(key)
    if len(nonce) != NONCE_BYTES or len(ciphertext) < TAG_BYTES:
        return None
    out = _ffi.new("unsigned char[]", max(len(ciphertext) - TAG_BYTES, 1))
    size = _ffi.new("unsigned long long *")
    rc = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, size, _ffi.NULL, ciphertext, len(ciphertext), ad, len(ad), nonce, key
    )
    if rc != 0:
        return None
    return bytes(_ffi.buffer(out, size[0]))


def seal(key: bytes, plaintext: bytes, ad: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``ad``; returns a version-1 blob.

    ``nonce`` exists for test vectors only; leave it out and a random one is used.
    """
    if nonce is None:
        nonce = nacl.utils.random(NONCE_BYTES)
    return _V1 + nonce + _aead_encrypt(plaintext, _V1 + ad, nonce, key)


_V1 = bytes([BLOB_V1])


def unseal(key: bytes, blob: bytes, ad: bytes, *, where: str) -> bytes:
    """Decrypt a blob made by :func:`seal` with the same ``ad``.

    Raises:
        UnsupportedVersion: the blob's version byte is unknown.
        IntegrityError: wrong key, wrong ``ad`` (moved or swapped), or altered bytes.
    """
    if not isinstance(blob, bytes):
        if not isinstance(blob, bytearray | memoryview):
            raise IntegrityError(where=where)
        blob = bytes(blob)
    if not blob:
        raise IntegrityError(where=where)
    if blob[0] != BLOB_V1:
        raise UnsupportedVersion(what=where, version=blob[0])
    if len(blob) < BLOB_OVERHEAD:
        raise IntegrityError(where=where)
    plain = _aead_decrypt(blob[1 + NONCE_BYTES :], _V1 + ad, blob[1 : 1 + NONCE_BYTES], key)
    if plain is None:
        raise IntegrityError(where=where)
    return plain


SEALED_V1 = 1
SEALED_OVERHEAD = sodium.crypto_box_SEALBYTES


def new_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as (secret, public) raw bytes."""
    secret = nacl.public.PrivateKey.generate()
    return bytes(secret), bytes(secret.public_key)


def public_key_of(secret: bytes) -> bytes:
    return bytes(nacl.public.PrivateKey(secret).public_key)


def box_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """The X25519 key pair (secret, public) that libsodium derives from a 32-byte seed
    (``crypto_box_seed_keypair``)."""
    _check_key(seed)
    secret = nacl.public.PrivateKey.from_seed(seed)
    return bytes(secret), bytes(secret.public_key)


SIGNATURE_BYTES = 64


def sign_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """The Ed25519 key pair (seed, public) for a 32-byte seed (``crypto_sign_seed_keypair``);
    the seed is what :func:`sign` takes."""
    _check_key(seed)
    return seed, bytes(nacl.signing.SigningKey(seed).verify_key)


def sign(seed: bytes, message: bytes) -> bytes:
    """A detached 64-byte Ed25519 signature of ``message``."""
    _check_key(seed)
    return bytes(nacl.signing.SigningKey(seed).sign(message).signature)


def verify(public_key: object, message: bytes, signature: object) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``.

    Both come from the file, so anything that is not a key or a signature of the right
    size is simply not valid (False), never an exception.
    """
    if not isinstance(public_key, bytes) or len(public_key) != KEY_BYTES:
        return False
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    except nacl.exceptions.CryptoError as exc:
        if isinstance(exc, TypeError | ValueError):
            return False
        raise
    return True


def seal_to(public_key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """Anonymous public-key encryption; ``ad`` is authenticated inside the box.

    A sealed box has no additional data of its own, so ``ad`` travels inside it and
    :func:`open_sealed` checks it. Blob: version (0x01) || crypto_box_seal output.
    """
    box = nacl.public.SealedBox(nacl.public.PublicKey(public_key))
    inner = struct.pack(">H", len(ad)) + ad + plaintext
    return bytes([SEALED_V1]) + box.encrypt(inner)


def open_sealed(secret_key: bytes, blob: bytes, ad: bytes, *, where: str) -> bytes:
    """Open a :func:`seal_to` blob.

    Raises:
        UnsupportedVersion: unknown version byte.
        IntegrityError: wrong key, altered bytes, or sealed for another place (``ad``).
    """
    if not isinstance(blob, bytes | bytearray | memoryview) or not blob:
        raise IntegrityError(where=where)
    blob = bytes(blob)
    if blob[0] != SEALED_V1:
        raise UnsupportedVersion(what=where, version=blob[0])
    # PyNaCl reports a too-short box as TypeError, which must stay a bug signal elsewhere.
    if len(blob) < 1 + SEALED_OVERHEAD + 2:
        raise IntegrityError(where=where)
    box = nacl.public.SealedBox(nacl.public.PrivateKey(secret_key))
    try:
        inner = box.decrypt(blob[1:])
    except nacl.exceptions.CryptoError as exc:
        if isinstance(exc, TypeError | ValueError):
            raise
        raise IntegrityError(where=where) from None
    # Anyone with the public key can make a valid sealed box, so its content is untrusted.
    if len(inner) < 2:
        raise IntegrityError(where=where)
    (size,) = struct.unpack_from(">H", inner)
    if not same(inner[2 : 2 + size], ad):
        raise IntegrityError(where=where)
    return inner[2 + size :]


def check_kdf(params: KdfParams, *, name: str) -> None:
    """Raises KdfLimitExceeded when ``params`` fall outside the accepted range."""
    if not (KDF_MIN.opslimit <= params.opslimit <= KDF_MAX.opslimit) or not (
        KDF_MIN.memlimit <= params.memlimit <= KDF_MAX.memlimit
    ):
        raise KdfLimitExceeded(name=name, opslimit=params.opslimit, memlimit=params.memlimit)


def derive_kek(passphrase: bytes, salt: bytes, params: KdfParams, *, name: str) -> bytes:
    """Argon2id: passphrase -> 32-byte key-encryption key.

    Raises:
        KdfLimitExceeded: the parameters are outside the caps.
    """
    check_kdf(params, name=name)
    try:
        return argon2id.kdf(KEY_BYTES, passphrase, salt, params.opslimit, params.memlimit)
    except MemoryError:
        raise NokError("not enough memory for the key derivation") from None


def digest(data: bytes, size: int = 32) -> bytes:
    """Unkeyed BLAKE2b (libsodium's crypto_generichash, called directly: checking a
    listing's trail entries hashes each one, and nacl.hash's argument checks cost more
    than the hash)."""
    if not 16 <= size <= 64:
        raise TypeError("a BLAKE2b digest is 16 to 64 bytes")
    out = _ffi.new("unsigned char[]", size)
    rc = _lib.crypto_generichash_blake2b_salt_personal(
        out, size, data, len(data), _ffi.NULL, 0, _ffi.NULL, _ffi.NULL
    )
    if rc != 0:
        raise nacl.exceptions.RuntimeError("hashing failed")
    return bytes(_ffi.buffer(out, size))


def mac(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE2b-256 (libsodium's crypto_generichash with a 32-byte key)."""
    _check_key(key)
    out = _ffi.new("unsigned char[]", 32)
    rc = _lib.crypto_generichash_blake2b_salt_personal(
        out, 32, data, len(data), key, KEY_BYTES, _ffi.NULL, _ffi.NULL
    )
    if rc != 0:
        raise nacl.exceptions.RuntimeError("hashing failed")
    return bytes(_ffi.buffer(out, 32))


class StreamMac:
    """Keyed BLAKE2b-256 over data given piece by piece: the same tag as :func:`mac`
    over the pieces joined, without holding them in memory."""

    def __init__(self, key: bytes) -> None:
        self._state = nacl.hashlib.blake2b(key=key, digest_size=32)

    def update(self, data: bytes) -> None:
        self._state.update(data)

    def digest(self) -> bytes:
        return self._state.digest()


def subkey(master: bytes, purpose: str) -> bytes:
    """A key for one purpose derived from ``master`` (keyed BLAKE2b as a PRF)."""
    return mac(master, bind("subkey", purpose))


def same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a, b)
