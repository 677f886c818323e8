"""Key sets derived from one 32-byte seed, and how fingerprints and recovery keys are shown.

Every holder of keys in format 3 (a staff member, the scheduled job, the vault's admin
seed, the team key, the job key, the recovery key) is one random 32-byte seed. Three keys
come from it through keyed BLAKE2b (crypto.subkey), each for one purpose only:

* ``box``: an X25519 key pair, to receive keys sealed to it (crypto.seal_to);
* ``sign``: an Ed25519 key pair, to sign what the holder does;
* ``wrap``: a symmetric key, to wrap keys for itself (a consent's data key it made).

Only the seed is stored (in a key slot under a passphrase, in a sealed box, in the job's
credential file, or on the recovery sheet); the public halves are listed in the vault's
signed epoch statements (vault.epochs).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from vault import crypto
from vault.errors import BadInput


@dataclass(frozen=True)
class KeySet:
    """The keys of one seed. Secret parts stay out of ``repr``."""

    seed: bytes = field(repr=False)
    box_secret: bytes = field(repr=False)
    box_public: bytes
    sign_seed: bytes = field(repr=False)
    sign_public: bytes
    wrap: bytes = field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> KeySet:
        box_secret, box_public = crypto.box_keypair(crypto.subkey(seed, "box"))
        sign_seed, sign_public = crypto.sign_keypair(crypto.subkey(seed, "sign"))
        return cls(
            seed, box_secret, box_public, sign_seed, sign_public, crypto.subkey(seed, "wrap")
        )

    @classmethod
    def new(cls) -> KeySet:
        return cls.from_seed(crypto.new_key())

    def sign(self, message: bytes) -> bytes:
        return crypto.sign(self.sign_seed, message)


def root_fingerprint(vault_id: str, vault_sign_public: bytes) -> bytes:
    """The vault's identity: its first epoch's signing key, bound to its id (32 bytes)."""
    return crypto.digest(crypto.bind("nok-root", vault_id, vault_sign_public))


# Crockford's base32 without padding, as nok's ids use: no I, L, O or U to misread.
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans(_B32, _CROCKFORD)
_FROM_CROCKFORD = str.maketrans(_CROCKFORD, _B32)


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").translate(_TO_CROCKFORD)


def _group(text: str, size: int = 4) -> str:
    return "-".join(text[i : i + size] for i in range(0, len(text), size))


def show_fingerprint(fingerprint: bytes) -> str:
    """The first 100 bits of a fingerprint as five groups, e.g. ``7K2M-9Q4F-…``: what
    ``nok status`` and ``nok key accept`` show and a person compares by eye."""
    return _group(_encode(fingerprint[:15])[:20])


RECOVERY_PREFIX = "NOKR"
_LOOKALIKES = str.maketrans("OIL", "011")


def show_recovery(seed: bytes) -> str:
    """A recovery seed as a person writes it down: ``NOKR-`` and 14 groups of four
    symbols (the seed and a 3-byte check), Crockford's base32."""
    check = crypto.digest(crypto.bind("recovery-check", seed), 16)[:3]
    return RECOVERY_PREFIX + "-" + _group(_encode(seed + check))


def read_recovery(text: str) -> bytes:
    """The seed of a recovery key as typed: case, spaces and dashes are ignored, and O, I
    and L read as 0, 1 and 1.

    Raises BadInput for anything that is not a recovery key (a typo fails the check).
    """
    clean = "".join(text.split()).upper().replace("-", "")
    if clean.startswith(RECOVERY_PREFIX):
        clean = clean[len(RECOVERY_PREFIX) :]
    clean = clean.translate(_LOOKALIKES)
    if len(clean) != 56 or any(ch not in _CROCKFORD for ch in clean):
        raise BadInput("that is not a recovery key (NOKR- and 14 groups of 4 symbols)")
    raw = base64.b32decode(clean.translate(_FROM_CROCKFORD))
    seed, check = raw[:32], raw[32:]
    if not crypto.same(crypto.digest(crypto.bind("recovery-check", seed), 16)[:3], check):
        raise BadInput("that recovery key has a typo: its check does not match")
    return seed
