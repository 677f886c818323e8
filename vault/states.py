"""A consent's signed state (format 3): what decides its erasure, and who may read it.

The columns of a consent that stay in plaintext (so that the scheduled job can work
without opening anything) are covered, together with the set of its notes, by one
*state*: its id, revision, status, dates, retention period, data-key version and public
key, contact person, access mode and readers, the hash chain of its notes and the tag of
its sealed record. Every change writes a new state (revision + 1), and each state carries

* a **signature** by the staff member who made the change (Ed25519, her own key, listed
  in the epoch named): a file writer cannot make one, a colleague cannot make another's;
* a **proof**: a MAC under a key derived from the consent's data key (``proof key``), so
  the state was made by someone who could open the consent. Readers check it with the data
  key; the scheduled job, which never gets a data key, checks it with the proof key alone,
  sealed to the job key (reader ``#job``; it opens nothing else).

A consent that ended keeps a *tombstone statement* of the same kind: how and when it
ended and who ended it, signed, with a proof made while the data key still existed. That
statement (also written to the erasure log) is what erases the consent in backups and
older copies: a status edited in the file, or a log line without a valid statement, is
never acted on.

A note written by a colleague without access is *pending*: sealed to the consent's public
key and signed by her, outside the chain, until someone with access folds it in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from vault import crypto, identity
from vault.errors import IntegrityError

ACTIVE = "active"
READERS_NONE = "[]"


class StateForged(IntegrityError):
    template = (
        "the state of consent {id} is not signed by a staff member of the vault, or its "
        "proof does not match: it was written or changed outside nok"
    )


class StateRolledBack(IntegrityError):
    template = (
        "consent {id} is in an older state than the newest one the audit trail records for "
        "it: its rows were put back from an older copy"
    )


class NotesChanged(IntegrityError):
    template = (
        "the notes of consent {id} no longer match its signed state: a note was deleted, "
        "added or put back outside nok"
    )


class DeadlineMoved(IntegrityError):
    template = (
        "the retention deadline of consent {id} is stored as {stored}, but its signed dates "
        "and retention period give {expected}: it was moved outside nok"
    )


@dataclass(frozen=True)
class Reader:
    """Someone given access besides the contact person, until a day (or for good)."""

    name: str
    until: str | None = None


@dataclass(frozen=True)
class State:
    """What a consent's signature and proof cover (see the module docstring)."""

    consent_id: str
    rev: int
    status: str
    given: str
    created: str
    last_activity: str | None
    retain_days: int | None
    key_version: int
    consent_box: bytes
    contact: str
    access: str
    readers: tuple[Reader, ...]
    notes_count: int
    notes_hash: bytes
    record_tag: bytes

    def readers_json(self) -> str:
        return encode_readers(self.readers)


@dataclass(frozen=True)
class Ending:
    """A tombstone statement: how a consent ended (ids, times and fixed codes only)."""

    consent_id: str
    status: str
    given: str
    created: str
    ended: str
    reason: str
    ended_by: str


def encode_readers(readers: Iterable[Reader]) -> str:
    ordered = sorted(readers, key=lambda r: r.name)
    return json.dumps([[r.name, r.until or ""] for r in ordered], separators=(",", ":"))


def decode_readers(text: object, *, consent_id: str) -> tuple[Reader, ...]:
    """Raises IntegrityError for anything but the list :func:`encode_readers` writes."""
    try:
        raw = json.loads(str(text))
        if not isinstance(raw, list):
            raise ValueError("not a list")
        readers = tuple(Reader(str(name), str(until) or None) for name, until in raw)
    except (ValueError, TypeError):
        raise IntegrityError(where=f"the readers of consent {consent_id}") from None
    return readers


def digest(vault_id: str, state: State) -> bytes:
    """The 32 bytes a state's signature and proof cover."""
    return crypto.digest(
        crypto.bind(
            "consent-state",
            vault_id,
            state.consent_id,
            state.rev,
            state.status,
            state.given,
            state.created,
            state.last_activity or "",
            "" if state.retain_days is None else state.retain_days,
            state.key_version,
            state.consent_box,
            state.contact,
            state.access,
            state.readers_json(),
            state.notes_count,
            state.notes_hash,
            state.record_tag,
        )
    )


def ending_digest(vault_id: str, ending: Ending) -> bytes:
    return crypto.digest(
        crypto.bind(
            "consent-ending",
            vault_id,
            ending.consent_id,
            ending.status,
            ending.given,
            ending.created,
            ending.ended,
            ending.reason,
            ending.ended_by,
        )
    )


def signed_message(digest_: bytes, signer: str, epoch: int) -> bytes:
    """What a signature over a state or an ending covers: the digest and who signs it."""
    return crypto.bind("consent-signed", digest_, signer, epoch)


def proof_key(data_key: bytes) -> bytes:
    """The key a state's proof is made with, derived from the consent's data key: it
    proves knowledge of the data key without giving it (the job holds only this)."""
    return crypto.subkey(data_key, "proof")


def proof(key: bytes, digest_: bytes) -> bytes:
    return crypto.mac(key, crypto.bind("consent-proof", digest_))


def consent_box(data_key: bytes) -> tuple[bytes, bytes]:
    """The consent's X25519 key pair (secret, public), derived from its data key: notes
    from colleagues without access are sealed to the public half."""
    return crypto.box_keypair(crypto.subkey(data_key, "box"))


@dataclass(frozen=True)
class Signature:
    signer: str
    epoch: int
    sig: bytes
    proof: bytes


def sign(
    digest_: bytes, *, signer: str, keys: identity.KeySet, epoch: int, proof_key_: bytes
) -> Signature:
    return Signature(
        signer=signer,
        epoch=epoch,
        sig=keys.sign(signed_message(digest_, signer, epoch)),
        proof=proof(proof_key_, digest_),
    )


def signature_valid(
    digest_: bytes, signer: object, epoch: object, sig: object, key: bytes | None
) -> bool:
    """Whether ``sig`` is ``signer``'s signature over ``digest_`` (``key``: her signing key
    in ``epoch``, None when the chain lists no such signer)."""
    if key is None or not isinstance(signer, str) or not isinstance(epoch, int):
        return False
    return crypto.verify(key, signed_message(digest_, signer, epoch), sig)


def proof_valid(key: bytes, digest_: bytes, stored: object) -> bool:
    return isinstance(stored, bytes) and crypto.same(proof(key, digest_), stored)


# -- the notes chain -----------------------------------------------------------------------


def notes_start(vault_id: str, consent_id: str, key_version: int) -> bytes:
    return crypto.digest(crypto.bind("notes", vault_id, consent_id, key_version, 0))


def notes_link(
    previous: bytes, *, consent_id: str, key_version: int, seq: int, note_id: str, tag: bytes
) -> bytes:
    return crypto.digest(crypto.bind("notes", consent_id, key_version, seq, previous, note_id, tag))


def record_tag(blob: object) -> bytes:
    """What a sealed record contributes to a chain or a state: its last 16 bytes (the
    Poly1305 tag). Any other value in the column contributes bytes no record has."""
    if isinstance(blob, bytes):
        return blob[-crypto.TAG_BYTES :]
    return b"\x00" + str(blob).encode("utf-8")


def fold_notes(
    vault_id: str,
    consent_id: str,
    key_version: int,
    entries: Iterable[tuple[str, int, bytes]],
) -> bytes:
    """The chain over ``entries`` (note id, seq, record tag), in order of seq."""
    link = notes_start(vault_id, consent_id, key_version)
    for note_id, seq, tag in entries:
        link = notes_link(
            link, consent_id=consent_id, key_version=key_version, seq=seq, note_id=note_id, tag=tag
        )
    return link


def extend_notes(state: State, added: Sequence[tuple[str, int, bytes]]) -> State:
    """``state`` with ``added`` (note id, seq, record tag) appended to its chain."""
    link, count = state.notes_hash, state.notes_count
    for note_id, seq, tag in added:
        link = notes_link(
            link,
            consent_id=state.consent_id,
            key_version=state.key_version,
            seq=seq,
            note_id=note_id,
            tag=tag,
        )
        count = max(count, seq)
    return replace(state, notes_hash=link, notes_count=count)


# -- pending notes (from colleagues without access) ----------------------------------------


def pending_digest(
    vault_id: str, *, note_id: str, consent_id: str, date: str, created: str, tag: bytes
) -> bytes:
    return crypto.digest(
        crypto.bind("pending-note", vault_id, note_id, consent_id, date, created, tag)
    )
