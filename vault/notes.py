"""Journal notes: short, dated, encrypted, always under an active consent.

A note's kind, body and author are encrypted with its consent's data key and bound to the
note's id and consent. Its date is plaintext (for ``--since`` and retention).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from vault import consents, ids, keyring
from vault.dates import day, parse_day, timestamp
from vault.errors import BadInput, NotFound
from vault.session import Unlocked
from vault.store import ConsentRow, NoteBodyRow, NoteRow, Store

TABLE = "notes"
KINDS = (
    "one-to-one",
    "phone",
    "group",
    "next-of-kin",
    "open-house",
    "outreach",
    "follow-up-plan",
    "other",
)
DEFAULT_KIND = "one-to-one"
# Every kind is sealed padded to this many bytes: unpadded, the ciphertext's length would
# show which notes are about next-of-kin or a follow-up plan.
KIND_BYTES = 16


class Length(Enum):
    OK = "ok"
    LONG = "long"


@dataclass(frozen=True)
class Note:
    id: str
    consent_id: str
    date: str
    created: str
    kind: str
    text: str
    author: str | None

    def to_json(self) -> dict[str, object]:
        """The note as the ``--json`` output and the export show it."""
        return {
            "id": self.id,
            "consent_id": self.consent_id,
            "date": self.date,
            "kind": self.kind,
            "text": self.text,
            "author": self.author,
            "created": self.created,
        }


def check_kind(kind: str) -> str:
    """Raises BadInput for a kind not in KINDS."""
    clean = kind.strip().lower()
    if clean not in KINDS:
        raise BadInput(
            "unknown note kind {kind!r}; use one of: {kinds}", kind=kind, kinds=", ".join(KINDS)
        )
    return clean


def check_length(vault: Unlocked, text: str) -> Length:
    """LONG above the vault's guideline; raises BadInput when empty or over the hard limit."""
    settings = vault.vault.settings()
    size = len(text.strip())
    if size == 0:
        raise BadInput("the note is empty; nothing was saved")
    if size > settings.note_limit:
        raise BadInput(
            "the note is {size} characters; the limit is {limit}; nothing was saved",
            size=size,
            limit=settings.note_limit,
        )
    return Length.LONG if size > settings.note_guideline else Length.OK


def check_date(date: str | None, *, given: str, today: str) -> str:
    """The note's date: today by default, never in the future or before the consent."""
    value = date or today
    parse_day(value)
    if value > today:
        raise BadInput("the note date {date} is in the future", date=value)
    if value < given:
        raise BadInput(
            "the note date {date} is before the consent was given ({given})",
            date=value,
            given=given,
        )
    return value


def new_note_id(store: Store) -> str:
    while True:
        candidate = ids.new_id(ids.NOTE_PREFIX)
        if not store.note_id_exists(candidate):
            return candidate


def build_row(
    data_key: bytes,
    *,
    note_id: str,
    consent_id: str,
    key_version: int,
    date: str,
    kind: str,
    text: str,
    author: str,
    now: dt.datetime,
) -> NoteRow:
    """Encrypt one note into a row (no database access)."""

    def seal(column: str, value: str) -> bytes:
        return keyring.seal_text(
            data_key,
            value,
            table=TABLE,
            column=column,
            row_id=note_id,
            consent_id=consent_id,
            key_version=key_version,
        )

    return NoteRow(
        id=note_id,
        consent_id=consent_id,
        date=date,
        created=timestamp(now),
        key_version=key_version,
        kind=seal("kind", kind.ljust(KIND_BYTES)),
        body=seal("body", text),
        author=seal("author", author),
    )


def add(
    vault: Unlocked,
    consent_id: str,
    text: str,
    *,
    kind: str = DEFAULT_KIND,
    date: str | None = None,
) -> Note:
    """Add a note under an active consent.

    The caller decides what to do about :func:`check_length` returning LONG; this only
    enforces the hard limit.

    Raises:
        BadInput: empty or over the hard limit, unknown kind, bad or future date.
        NotFound, InactiveConsent: no active consent with that id; nothing is written.
    """
    kind = check_kind(kind)
    check_length(vault, text)
    store = vault.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        note_date = check_date(date, given=row.given, today=day(vault.now))
        note = build_row(
            vault.data_key(row),
            note_id=new_note_id(store),
            consent_id=row.id,
            key_version=row.key_version,
            date=note_date,
            kind=kind,
            text=text.strip(),
            author=vault.name,
            now=vault.now,
        )
        store.insert_note(note)
        consents.touch(vault, row, note_date)
        vault.record("note.add", consent_id=row.id, object_id=note.id)
    return Note(note.id, row.id, note_date, note.created, kind, text.strip(), vault.name)


def decrypt(vault: Unlocked, row: NoteRow, consent_row: ConsentRow | None = None) -> Note:
    """Raises IntegrityError or UnsupportedVersion when the note was altered or moved."""
    if consent_row is None:
        consent_row = consents.get_row(vault.store, row.consent_id)
    key = vault.data_key(consent_row)
    return _note(key, row, _open_field(key, row, "body", row.body))


def get_row(store: Store, note_id: str) -> NoteRow:
    """Raises BadInput for a malformed id, NotFound for an unknown one."""
    canonical = ids.parse_id(note_id, ids.NOTE_PREFIX, "note")
    row = store.get_note(canonical)
    if row is None:
        raise NotFound(what="note", id=canonical)
    return row


def show(vault: Unlocked, note_id: str) -> Note:
    """One note, decrypted. Raises NotFound, IntegrityError."""
    store = vault.store
    with store.write():
        row = get_row(store, note_id)
        vault.record("note.show", consent_id=row.consent_id, object_id=row.id)
    return decrypt(vault, row)


def list_notes(
    vault: Unlocked, *, consent_id: str | None = None, since: str | None = None
) -> Iterator[Note]:
    """Notes by date, decrypted one batch at a time (memory does not grow with the vault).

    Raises:
        NotFound: ``consent_id`` names no consent.
        BadInput: a malformed id or date.
    """
    store = vault.store
    canonical = None
    if consent_id is not None:
        canonical = consents.get_row(store, consent_id).id
    if since is not None:
        parse_day(since, field="--since")
    with store.write():
        vault.record("note.list", consent_id=canonical)
    yield from decrypt_stream(vault, store.iter_note_bodies(consent_id=canonical, since=since))


def decrypt_stream(
    vault: Unlocked, rows: Iterable[NoteBodyRow], test: Callable[[str], bool] | None = None
) -> Iterator[Note]:
    """Decrypt notes as they stream, each row carrying its consent's wrapped data key.

    With ``test``, only the body is decrypted first, and a note whose body fails the test is
    skipped before its other fields are opened (search).

    Raises IntegrityError, UnsupportedVersion, KeysRotated (while iterating).
    """
    for row in rows:
        key = vault.unwrap_data_key(row.consent_id, row.data_key, row.master_version)
        body = _open_field(key, row, "body", row.body)
        if test is None or test(body):
            yield _note(key, row, body)


def _note(key: bytes, row: NoteRow | NoteBodyRow, body: str) -> Note:
    """The note with ``body`` already opened; its kind (padded) and author opened here."""
    return Note(
        id=row.id,
        consent_id=row.consent_id,
        date=row.date,
        created=row.created,
        kind=_open_field(key, row, "kind", row.kind).rstrip(),
        text=body,
        author=_open_field(key, row, "author", row.author),
    )


def _open_field(key: bytes, row: NoteRow | NoteBodyRow, column: str, blob: bytes | None) -> str:
    return keyring.open_text(
        key,
        blob,
        table=TABLE,
        column=column,
        row_id=row.id,
        consent_id=row.consent_id,
        key_version=row.key_version,
    )
