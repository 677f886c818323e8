"""The key hierarchy and the sealed records of vault format 2 (docs/format.md).

Every ciphertext is bound (AEAD additional data, see crypto.bind) to where it lives:

* a note record:      ("note", note id, consent id, data-key version)
* a consent record:   ("consent", consent id, data-key version)
* a consent data key: ("data_key", consent id, master-key version)
* a vault-wide key:   ("vault_key", purpose, master-key version)
* a staff role:       keyed BLAKE2b tag over ("role", name, role, public key)

so a ciphertext copied to another row or consent fails with IntegrityError. The plaintext
columns a file writer could move (a consent's dates and retention, the set of its notes,
the vault settings) are covered by keyed BLAKE2b tags under keys derived from the
consent's data key or the master key.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from vault import crypto
from vault.errors import IntegrityError

# A record's plaintext is padded with zero bytes to a multiple of this: its ciphertext
# shows the size of what it holds only to within 256 bytes.
RECORD_BLOCK = 256
_LENGTH = struct.Struct(">I")


class RecordChanged(IntegrityError):
    template = (
        "the {column} of note {id} is {stored} in the file, but its sealed record says "
        "{sealed}: it was changed outside nok"
    )


class NotesChanged(IntegrityError):
    template = (
        "the notes of consent {id} no longer match its seal: a note was deleted, added or "
        "put back outside nok"
    )


class RetentionChanged(IntegrityError):
    template = (
        "the dates or retention period of consent {id} no longer match its seal: they were "
        "changed outside nok"
    )


class DeadlineMoved(IntegrityError):
    template = (
        "the retention deadline of consent {id} is stored as {stored}, but its sealed dates "
        "and retention period give {expected}: it was moved outside nok"
    )


class SettingsChanged(IntegrityError):
    template = (
        "the vault settings (retention, note limits, key-slot cost) no longer match their "
        "seal: they were changed outside nok"
    )


class MasterKeyReplaced(IntegrityError):
    template = (
        "the master key sealed to {name} does not open the vault's existing keys: it was "
        "replaced in the file (or those keys were damaged), and nok will not use it"
    )


def encode_record(fields: Sequence[str]) -> bytes:
    """Each field as a 4-byte length and its UTF-8 bytes, zero-padded to RECORD_BLOCK."""
    out = bytearray()
    for value in fields:
        raw = value.encode("utf-8")
        out += _LENGTH.pack(len(raw))
        out += raw
    out += bytes(-len(out) % RECORD_BLOCK)
    return bytes(out)


def decode_record(data: bytes, count: int, *, where: str, optional: int = 0) -> list[str]:
    """The ``count`` fields of an :func:`encode_record` plaintext, then ``optional`` more.

    An optional field is one a later nok added at the end of a record: a record written
    without it has only zero bytes left there, and reads as ``""`` (as an empty field does,
    so writing ``""`` and leaving the field out mean the same).

    Raises IntegrityError when the layout is wrong (only a holder of the key can make
    one that authenticates, so this is damage or a bug, never a guess).
    """
    fields, offset = [], 0
    try:
        for n in range(count + optional):
            if n >= count and _zeros(data, offset):
                fields.append("")
                continue
            (size,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            if offset + size > len(data):
                raise IntegrityError(where=where)
            fields.append(data[offset : offset + size].decode("utf-8"))
            offset += size
    except (struct.error, UnicodeDecodeError):
        raise IntegrityError(where=where) from None
    if len(data) % RECORD_BLOCK or not _zeros(data, offset):
        raise IntegrityError(where=where)
    return fields


def _zeros(data: bytes, offset: int) -> bool:
    """Whether every byte from ``offset`` on is zero (counted in C, not byte by byte)."""
    return data.count(0, offset) == len(data) - offset


def note_ad(note_id: str, consent_id: str, key_version: int) -> bytes:
    return crypto.extend(_NOTE_AD, note_id, consent_id, key_version)


_NOTE_AD = crypto.bind("note")


def consent_ad(consent_id: str, key_version: int) -> bytes:
    return crypto.bind("consent", consent_id, key_version)


def seal_record(
    key: bytes, fields: Sequence[str], ad: bytes, *, nonce: bytes | None = None
) -> bytes:
    """One blob holding every field; ``nonce`` is for test vectors only."""
    return crypto.seal(key, encode_record(fields), ad, nonce=nonce)


def open_record(
    key: bytes, blob: bytes | None, ad: bytes, count: int, *, where: str, optional: int = 0
) -> list[str]:
    """The fields of a :func:`seal_record` blob (``optional``: see :func:`decode_record`).

    Pass ``blob`` as SQLite returned it: a tampered column may hold text or a number,
    which crypto.unseal reports as IntegrityError. A record nok reads is always written,
    so NULL means it was blanked in the file: an IntegrityError too.

    Raises IntegrityError or UnsupportedVersion (see crypto.unseal).
    """
    if blob is None:
        raise IntegrityError(where=f"{where} (missing)")
    plain = crypto.unseal(key, blob, ad, where=where)
    return decode_record(plain, count, where=where, optional=optional)


def reseal_record(
    old: bytes, new: bytes, blob: bytes | None, *, old_ad: bytes, new_ad: bytes, where: str
) -> bytes:
    """Open ``blob`` under (``old``, ``old_ad``) and seal its plaintext under the new pair.

    Raises IntegrityError or UnsupportedVersion (see :func:`open_record`).
    """
    if blob is None:
        raise IntegrityError(where=f"{where} (missing)")
    return crypto.seal(new, crypto.unseal(old, blob, old_ad, where=where), new_ad)


def record_tag(blob: object) -> bytes:
    """What a note contributes to its consent's note seal: its record's Poly1305 tag.

    Any other value in the column (tampering) contributes bytes no real record has.
    """
    if isinstance(blob, bytes):
        return blob[-crypto.TAG_BYTES :]
    return b"\x00" + str(blob).encode("utf-8")


class NotesChain:
    """The seal over which notes a consent holds: a chain of keyed BLAKE2b links.

    Link 0 is ``MAC(("notes", consent id, key version, 0))``; a note with sequence number
    ``seq`` adds ``MAC(("notes", consent id, key version, seq, previous link, note id,
    record tag))``. The last link is the consent's ``notes_tag``. Appending a note costs
    one MAC whatever the consent holds; a note deleted or put back changes every link
    after it, so recomputing the chain from the notes stored (in order of seq) no longer
    gives the stored tag. The key is derived from the consent's data key.
    """

    def __init__(self, key: bytes, *, consent_id: str, key_version: int) -> None:
        self._key = crypto.subkey(key, "notes")
        self._place = crypto.bind("notes", consent_id, key_version)

    def start(self) -> bytes:
        return crypto.mac(self._key, crypto.extend(self._place, 0))

    def link(self, previous: bytes, seq: int, note_id: str, record_tag: bytes) -> bytes:
        data = crypto.extend(self._place, seq, previous, note_id, record_tag)
        return crypto.mac(self._key, data)

    def fold(self, entries: Iterable[tuple[str, int, bytes]]) -> bytes:
        """The tag of a consent holding ``entries`` (note id, seq, record tag) in seq order."""
        tag = self.start()
        for note_id, seq, record_tag in entries:
            tag = self.link(tag, seq, note_id, record_tag)
        return tag


def retention_tag(
    key: bytes,
    *,
    consent_id: str,
    key_version: int,
    given: str,
    created: str,
    last_activity: str | None,
    retain_days: int | None,
) -> bytes:
    """The seal over a consent's plaintext dates and retention period.

    ``retain_until`` is left out: it follows from these and the vault's (sealed) default.
    """
    data = crypto.bind(
        "retention",
        consent_id,
        key_version,
        given,
        created,
        last_activity or "",
        "" if retain_days is None else retain_days,
    )
    return crypto.mac(crypto.subkey(key, "retention"), data)


def settings_tag(master: bytes, values: Mapping[str, str | None]) -> bytes:
    """The seal over the vault settings named in ``values`` (absent ones as None)."""
    parts: list[str] = []
    for name in sorted(values):
        value = values[name]
        parts += [name, "-" if value is None else "=" + value]
    return crypto.mac(crypto.subkey(master, "settings"), crypto.bind("settings", *parts))


def check_tag(expected: bytes, stored: object, error: IntegrityError) -> None:
    """Raises ``error`` unless ``stored`` is the ``expected`` tag (constant time)."""
    if not isinstance(stored, bytes) or not crypto.same(expected, stored):
        raise error


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
