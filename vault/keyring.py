"""The key hierarchy: master key -> per-consent data keys -> personal fields.

Every ciphertext is bound (AEAD additional data, see crypto.bind) to where it lives:

* a personal field:   ("field", table, column, row id, consent id, data-key version)
* a consent data key: ("data_key", consent id, master-key version)
* a vault-wide key:   ("vault_key", purpose, master-key version)
* a staff role:       keyed BLAKE2b tag over ("role", name, role) with a master sub-key

so a ciphertext copied to another row, column or consent fails with IntegrityError.
"""

from __future__ import annotations

from vault import crypto
from vault.errors import IntegrityError


def field_ad(table: str, column: str, row_id: str, consent_id: str, key_version: int) -> bytes:
    return crypto.bind("field", table, column, row_id, consent_id, key_version)


def seal_text(
    key: bytes,
    text: str,
    *,
    table: str,
    column: str,
    row_id: str,
    consent_id: str,
    key_version: int,
    nonce: bytes | None = None,
) -> bytes:
    ad = field_ad(table, column, row_id, consent_id, key_version)
    return crypto.seal(key, text.encode("utf-8"), ad, nonce=nonce)


def open_text(
    key: bytes,
    blob: bytes | None,
    *,
    table: str,
    column: str,
    row_id: str,
    consent_id: str,
    key_version: int,
) -> str:
    """Raises IntegrityError or UnsupportedVersion (see crypto.unseal).

    Pass ``blob`` as SQLite returned it: a tampered column may hold text or a number,
    which crypto.unseal reports as IntegrityError (``bytes(blob)`` would crash instead).
    Every personal column nok reads is always written, so NULL means it was blanked in
    the file (to hide that a consent is for a child, say): an IntegrityError too.
    """
    if blob is None:
        raise IntegrityError(where=f"{column} of {row_id} (missing)")
    ad = field_ad(table, column, row_id, consent_id, key_version)
    where = f"{column} of {row_id}"
    return crypto.unseal(key, blob, ad, where=where).decode("utf-8")


def reseal_text(
    old: bytes,
    new: bytes,
    blob: bytes,
    *,
    table: str,
    column: str,
    row_id: str,
    consent_id: str,
    old_version: int,
    new_version: int,
) -> bytes:
    """Open ``blob`` under (``old``, ``old_version``), seal it again under the new pair.

    Raises IntegrityError or UnsupportedVersion (see :func:`open_text`).
    """
    ad = field_ad(table, column, row_id, consent_id, old_version)
    text = crypto.unseal(old, blob, ad, where=f"{column} of {row_id}")
    ad = field_ad(table, column, row_id, consent_id, new_version)
    return crypto.seal(new, text, ad)


def wrap_data_key(
    master: bytes,
    data_key: bytes,
    *,
    consent_id: str,
    master_version: int,
    nonce: bytes | None = None,
) -> bytes:
    """A consent's data key wrapped by the master key; ``nonce`` is for test vectors only."""
    ad = crypto.bind("data_key", consent_id, master_version)
    return crypto.seal(master, data_key, ad, nonce=nonce)


def unwrap_data_key(
    master: bytes, wrapped: bytes, *, consent_id: str, master_version: int
) -> bytes:
    """Raises IntegrityError or UnsupportedVersion."""
    ad = crypto.bind("data_key", consent_id, master_version)
    return crypto.unseal(master, wrapped, ad, where=f"data key of {consent_id}")


def wrap_vault_key(
    master: bytes, key: bytes, *, purpose: str, master_version: int, nonce: bytes | None = None
) -> bytes:
    """A vault-wide key wrapped by the master key; ``nonce`` is for test vectors only."""
    ad = crypto.bind("vault_key", purpose, master_version)
    return crypto.seal(master, key, ad, nonce=nonce)


def unwrap_vault_key(master: bytes, wrapped: bytes, *, purpose: str, master_version: int) -> bytes:
    """Raises IntegrityError or UnsupportedVersion."""
    ad = crypto.bind("vault_key", purpose, master_version)
    return crypto.unseal(master, wrapped, ad, where=f"{purpose} key")


def role_tag(master: bytes, name: str, role: str, public_key: bytes) -> bytes:
    """A MAC over a staff member's role and public key.

    The public key is covered because rotation seals the next master key to it: a key
    swapped in the file by someone without a passphrase would otherwise receive it.
    """
    return crypto.mac(crypto.subkey(master, "roles"), crypto.bind("role", name, role, public_key))


def check_role(master: bytes, name: str, role: str, public_key: bytes, tag: bytes | None) -> None:
    """Raises IntegrityError when the stored role or public key was changed without the
    master key (or holds a value of the wrong type)."""
    if not isinstance(tag, bytes) or not isinstance(public_key, bytes):
        raise IntegrityError(where=f"role of {name}")
    if not crypto.same(role_tag(master, name, role, public_key), tag):
        raise IntegrityError(where=f"role of {name}")
