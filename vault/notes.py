"""Journal notes: short, dated, encrypted, always under an active consent.

A note is ONE sealed record (date, created, kind, author, text; padded to 256 bytes) under
its consent's data key, bound to the note's id, consent and key version: one AEAD call to
write it and one to read it. Its date and created time are also stored in plaintext (for
``--since``, ordering and retention); reading compares them with the record, so an edited
date is caught. The consent's note seal (keyring.NotesChain, extended by each note) covers
which notes it holds, so a deleted, added or put-back note is caught too.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from vault import audit, consents, ids, keyring, parallel
from vault.dates import day, parse_day, timestamp
from vault.errors import BadInput, NokError, NotFound
from vault.session import Unlocked
from vault.store import ConsentRow, KeyedNoteRow, NoteRow, Store

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
# date, created, kind, author, text
_FIELDS = 5


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
    # When and by whom the text, kind or date was last replaced (vault.corrections).
    amended: str | None = None
    amended_by: str | None = None

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
            "amended": self.amended,
            "amended_by": self.amended_by,
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


def seal_record(key: bytes, note: Note, *, key_version: int) -> bytes:
    """The one sealed record holding ``note`` (under its consent's data key)."""
    fields = (note.date, note.created, note.kind, note.author or "", note.text)
    ad = keyring.note_ad(note.id, note.consent_id, key_version)
    return keyring.seal_record(key, fields, ad)


def open_record(key: bytes, row: NoteRow) -> Note:
    """The note in ``row``, checked against its plaintext date and created time.

    Raises:
        IntegrityError: the record was altered, moved or blanked (keyring.RecordChanged
            when the plaintext date or created time was edited).
        UnsupportedVersion: an unknown blob version.
    """
    return _open(key, row.id, row.consent_id, row.key_version, row.record, row.date, row.created)


# A note as it crosses to a forked child (vault.parallel sends built-in values only):
# (id, consent id, key version, sealed record, stored date, stored created time).
Sealed = tuple[str, str, int, bytes, str, str]


def sealed(row: NoteRow) -> Sealed:
    return (row.id, row.consent_id, row.key_version, row.record, row.date, row.created)


def open_sealed(key: bytes, note: Sealed) -> Note:
    """:func:`open_record` for a :data:`Sealed` note; raises as it does."""
    return _open(key, *note)


def unopenable(
    batch: list[tuple[bytes, Sealed]],
) -> tuple[int, list[tuple[int, bytes, Sealed]]]:
    """How many notes ``batch`` holds, and (place, key, note) of those :func:`open_sealed`
    refuses (verify, on every core: the caller opens those few again to learn why)."""
    failed = []
    for place, (key, note) in enumerate(batch):
        try:
            _open(key, *note)
        except NokError:
            failed.append((place, key, note))
    return len(batch), failed


def _open(
    key: bytes,
    note_id: str,
    consent_id: str,
    key_version: int,
    record: bytes,
    stored_date: str,
    stored_created: str,
) -> Note:
    fields = _open_fields(key, note_id, consent_id, key_version, record)
    return _checked(note_id, consent_id, stored_date, stored_created, fields)


def _open_fields(
    key: bytes, note_id: str, consent_id: str, key_version: int, record: bytes
) -> list[str]:
    """(date, created, kind, author, text) of a sealed record: one AEAD call."""
    ad = keyring.note_ad(note_id, consent_id, key_version)
    return keyring.open_record(key, record, ad, _FIELDS, where=f"note {note_id}")


def _checked(
    note_id: str, consent_id: str, stored_date: str, stored_created: str, fields: list[str]
) -> Note:
    _check_dates(note_id, stored_date, stored_created, fields)
    date, created, kind, author, text = fields
    return Note(note_id, consent_id, date, created, kind, text, author or None)


def _check_dates(note_id: str, stored_date: str, stored_created: str, fields: list[str]) -> None:
    """Raises keyring.RecordChanged when the plaintext date or created time was edited."""
    if stored_date != fields[0]:
        raise keyring.RecordChanged(column="date", id=note_id, stored=stored_date, sealed=fields[0])
    if stored_created != fields[1]:
        raise keyring.RecordChanged(
            column="created", id=note_id, stored=stored_created, sealed=fields[1]
        )


def build_row(
    data_key: bytes,
    *,
    note_id: str,
    consent_id: str,
    key_version: int,
    seq: int,
    date: str,
    kind: str,
    text: str,
    author: str,
    now: dt.datetime,
    created: str | None = None,
) -> NoteRow:
    """Encrypt one note into a row (no database access); ``seq`` is its place in its
    consent's note seal (consents.next_seq). ``created`` is ``timestamp(now)``, passed
    by bulk callers that format it once for many notes."""
    created = created or timestamp(now)
    ad = keyring.note_ad(note_id, consent_id, key_version)
    return NoteRow(
        id=note_id,
        consent_id=consent_id,
        date=date,
        created=created,
        key_version=key_version,
        seq=seq,
        record=keyring.seal_record(data_key, (date, created, kind, author, text), ad),
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
            seq=consents.next_seq(row),
            date=note_date,
            kind=kind,
            text=text.strip(),
            author=vault.name,
            now=vault.now,
        )
        store.insert_note(note)
        consents.append_notes(vault, row, [note])
        vault.record("note.add", consent_id=row.id, object_id=note.id)
    return Note(note.id, row.id, note_date, note.created, kind, text.strip(), vault.name)


def decrypt(vault: Unlocked, row: NoteRow, consent_row: ConsentRow | None = None) -> Note:
    """Raises IntegrityError or UnsupportedVersion when the note was altered or moved."""
    if consent_row is None:
        consent_row = consents.get_row(vault.store, row.consent_id)
    return open_record(vault.data_key(consent_row), row)


def get_row(store: Store, note_id: str) -> NoteRow:
    """Raises BadInput for a malformed id, NotFound for an unknown or deleted one."""
    canonical = ids.parse_id(note_id, ids.NOTE_PREFIX, "note")
    row = store.get_note(canonical)
    if row is None:
        gone = store.get_note_tombstone(canonical)
        if gone is not None:
            raise NotFound(
                "note {id} was deleted on {deleted} ({reason}); only a tombstone without "
                "its content is kept",
                id=canonical,
                deleted=gone.deleted[:10],
                reason=gone.reason,
            )
        raise NotFound(what="note", id=canonical)
    return row


def show(vault: Unlocked, note_id: str) -> Note:
    """One note, decrypted, with its amendment if any. Raises NotFound, IntegrityError."""
    store = vault.store
    with store.write():
        row = get_row(store, note_id)
        vault.record("note.show", consent_id=row.consent_id, object_id=row.id)
        amendment = store.get_note_amendment(row.id)
    note = decrypt(vault, row)
    if amendment is None:
        return note
    return replace(note, amended=amendment.amended, amended_by=amendment.amended_by)


def list_notes(
    vault: Unlocked,
    *,
    consent_id: str | None = None,
    since: str | None = None,
    processes: int | None = None,
) -> Iterator[Note]:
    """Notes by date, decrypted one batch at a time (memory does not grow with the notes)
    on ``processes`` cores (default: all; see :func:`decrypt_stream`).

    The read is recorded before anything is shown: without ``consent_id``, one
    ``note.list`` entry per consent with notes to show.

    With ``consent_id``, the consent's note seal is checked before any note is shown.

    Raises:
        NotFound: ``consent_id`` names no consent.
        BadInput: a malformed id or date.
        IntegrityError: a note was altered, or (with ``consent_id``) deleted or put back.
    """
    store = vault.store
    canonical = None
    if consent_id is not None:
        canonical = consents.get_row(store, consent_id).id
    if since is not None:
        parse_day(since, field="--since")
    with store.write():
        if canonical is not None:
            consents.check_notes(vault, consents.get_row(store, canonical))
            vault.record("note.list", consent_id=canonical)
            shown = None
        else:
            # One entry per person whose notes are shown, so each one's export lists it.
            shown = set(store.consents_with_notes(since=since))
            audit.record_each(vault, "note.list", sorted(shown))
    rows = store.iter_note_bodies(consent_id=canonical, since=since)
    if shown is not None:
        # A consent that got its first note after the entries were written is not shown.
        rows = (row for row in rows if row.consent_id in shown)
    yield from decrypt_stream(vault, rows, processes=processes)


def decrypt_stream(
    vault: Unlocked,
    rows: Iterable[KeyedNoteRow],
    test: Callable[[str], bool] | None = None,
    *,
    processes: int | None = None,
) -> Iterator[Note]:
    """Decrypt notes as they stream, each row carrying its consent's wrapped data key.

    With ``test``, only notes whose text passes it are yielded (search). The notes are
    opened on ``processes`` cores (default: all; vault.parallel), in the order of
    ``rows``; the data keys are unwrapped here.

    Raises IntegrityError, UnsupportedVersion, KeysRotated (while iterating).
    """
    keyed = (
        (
            vault.unwrap_data_key(r.consent_id, r.data_key, r.master_version),
            sealed(r),
            None if r.amended is None else (r.amended, r.amended_by),
        )
        for r in rows
    )
    opener = functools.partial(_open_batch, test)
    for opened in parallel.ordered_map(opener, parallel.batches(keyed), processes=processes):
        # Plain tuples cross the pipe: unpickling a dataclass costs the parent, which
        # also reads the database, more than building it here.
        yield from itertools.starmap(Note, opened)


_Opened = tuple[str, str, str, str, str, str, str | None, str | None, str | None]


def _open_batch(
    test: Callable[[str], bool] | None,
    batch: list[tuple[bytes, Sealed, tuple[str, str | None] | None]],
) -> list[_Opened]:
    """The notes of ``batch`` that pass ``test``, as the fields of :class:`Note`. Every
    record is authenticated; the plaintext date and created time are compared only for
    the notes returned (search shows no other, and verify compares all of them)."""
    opened = []
    for key, (note_id, consent_id, key_version, record, date, created), amended in batch:
        fields = _open_fields(key, note_id, consent_id, key_version, record)
        if test is not None and not test(fields[4]):
            continue
        _check_dates(note_id, date, created, fields)
        sealed_date, sealed_created, kind, author, text = fields
        when, by = (None, None) if amended is None else amended
        opened.append(
            (note_id, consent_id, sealed_date, sealed_created, kind, text, author or None, when, by)
        )
    return opened
