"""Journal notes: short, dated, encrypted, always under an active consent.

A note is ONE sealed record (date, created, kind, author, text; padded to 256 bytes) under
its consent's data key, bound to the note's id, consent and key version: one AEAD call to
write it and one to read it. Its date and created time are also stored in plaintext (for
``--since``, ordering and retention); reading compares them with the record, so an edited
date is caught. The consent's signed state (vault.states) covers the chain of its notes,
so a deleted, added or put-back note is caught too.

A colleague without access to a consent may still add a note to it (she takes a call for
someone else's user): the note is sealed to the consent's public key, so she cannot read
it back, and signed by her; it is *pending* until someone with access folds it into the
chain (vault.consents.fold_pending).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from vault import access, audit, consents, crypto, ids, keyring, parallel, states
from vault.dates import parse_day, timestamp
from vault.errors import BadInput, IntegrityError, NokError, NotFound
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
    # Whether the reader could open it (False: id, consent, date and time only).
    access: bool = True
    # Written by a colleague without access, not yet folded into the consent's chain.
    pending: bool = False

    def to_json(self) -> dict[str, object]:
        """The note as the ``--json`` output and the export show it."""
        return {
            "id": self.id,
            "consent_id": self.consent_id,
            "date": self.date,
            "kind": self.kind if self.access else None,
            "text": self.text if self.access else None,
            "author": self.author if self.access else None,
            "created": self.created,
            "amended": self.amended,
            "amended_by": self.amended_by,
            "access": self.access,
        }


def stub(row: NoteRow) -> Note:
    """What a reader without access sees of a note: no kind, text or author."""
    return Note(
        row.id,
        row.consent_id,
        row.date,
        row.created,
        "",
        "",
        None,
        access=False,
        pending=bool(row.pending),
    )


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


def sealed(row: NoteRow | KeyedNoteRow) -> Sealed:
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


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` found a note under ``consent_id`` would be, before its text is
    written: the checked date and kind, and whether it goes in pending (she cannot read
    it back)."""

    consent_id: str
    date: str
    kind: str
    pending: bool


def plan(
    vault: Unlocked, consent_id: str, *, kind: str = DEFAULT_KIND, date: str | None = None
) -> Plan:
    """Everything :func:`add` checks that does not depend on the text, checked before the
    text is asked for: a counselor's minutes in the editor must not end in a refusal
    that could have come first. :func:`add` checks it all again when it saves (the
    consent may be withdrawn meanwhile).

    Raises:
        BadInput: unknown kind, bad or future date, a date before the consent.
        NotFound, InactiveConsent: no active consent with that id.
        IntegrityError: the consent's key or signed state was altered outside nok.
    """
    kind = check_kind(kind)
    row = consents.get_active_row(vault.store, consent_id)
    note_date = check_date(date, given=row.given, today=vault.today())
    pending = not can_write_openly(vault, row)
    if pending:
        if not isinstance(row.consent_box, bytes):
            raise IntegrityError(where=f"consent {row.id} (no public key)")
        consents.check_state_signed(vault, row)
    else:
        consents.check_notes(vault, row, access.open_key(vault, row, admin_ok=True))
    return Plan(row.id, note_date, kind, pending)


def add(
    vault: Unlocked,
    consent_id: str,
    text: str,
    *,
    kind: str = DEFAULT_KIND,
    date: str | None = None,
) -> Note:
    """Add a note under an active consent.

    A member who cannot open the consent (not its contact person nor granted access, and
    not an admin) adds a *pending* note: sealed to the consent's public key and signed by
    her, so she cannot read it back; its contact person sees it with its author.

    The caller decides what to do about :func:`check_length` returning LONG; this only
    enforces the hard limit.

    Raises:
        BadInput: empty or over the hard limit, unknown kind, bad or future date.
        NotFound, InactiveConsent: no active consent with that id; nothing is written.
        IntegrityError: the consent's state or notes were altered outside nok.
    """
    kind = check_kind(kind)
    check_length(vault, text)
    store = vault.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        note_date = check_date(date, given=row.given, today=vault.today())
        if not can_write_openly(vault, row):
            return _add_pending(vault, row, text.strip(), kind=kind, date=note_date)
        key = access.open_key(vault, row, admin_ok=True)
        consents.check_notes(vault, row, key)
        row = consents.fold_pending(vault, row, key)
        note = build_row(
            key,
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
        consents.commit_state(
            vault, consents.extended(vault, row, [note]), key, "note.add", object_id=note.id
        )
    return Note(note.id, row.id, note_date, note.created, kind, text.strip(), vault.name)


def can_write_openly(vault: Unlocked, row: ConsentRow) -> bool:
    """Whether this member writes notes under ``row``'s data key (she can open it: assigned,
    or an admin) rather than as pending notes she cannot read back."""
    blocked = access.level(vault, row) is access.Level.NONE or access.expired_grant(vault, row)
    return not blocked


def _add_pending(vault: Unlocked, row: ConsentRow, text: str, *, kind: str, date: str) -> Note:
    """A note sealed to the consent's public key and signed by its author (inside the
    caller's transaction)."""
    if not isinstance(row.consent_box, bytes):
        raise IntegrityError(where=f"consent {row.id} (no public key)")
    consents.check_state_signed(vault, row)
    note_id = new_note_id(vault.store)
    created = timestamp(vault.now)
    ad = pending_ad(note_id, row.id, row.key_version)
    record = crypto.seal_to(
        row.consent_box, keyring.encode_record((date, created, kind, vault.name, text)), ad
    )
    digest = states.pending_digest(
        vault.vault_id,
        note_id=note_id,
        consent_id=row.id,
        date=date,
        created=created,
        tag=states.record_tag(record),
    )
    sig = vault.keys.sign(states.signed_message(digest, vault.name, vault.epoch.number))
    vault.store.insert_note(
        NoteRow(
            id=note_id,
            consent_id=row.id,
            date=date,
            created=created,
            key_version=row.key_version,
            seq=0,
            record=record,
            pending=1,
            signer=vault.name,
            sig_epoch=vault.epoch.number,
            sig=sig,
        )
    )
    vault.record("note.add", consent_id=row.id, object_id=note_id, detail="write-only")
    return Note(note_id, row.id, date, created, kind, text, vault.name, access=False, pending=True)


def pending_ad(note_id: str, consent_id: str, key_version: int) -> bytes:
    return crypto.bind("pending-note", note_id, consent_id, key_version)


def pending_digest_of(vault_id: str, row: NoteRow) -> bytes:
    """What a pending note's signature covers."""
    return states.pending_digest(
        vault_id,
        note_id=row.id,
        consent_id=row.consent_id,
        date=row.date,
        created=row.created,
        tag=states.record_tag(row.record),
    )


def pending_signed(vault: Unlocked, row: NoteRow) -> bool:
    """Whether a pending note carries its author's valid signature (or, once her key
    stopped counting, the countersignature of an admin: vault.countersign)."""
    digest = pending_digest_of(vault.vault_id, row)
    key = vault.chain.staff_key(str(row.signer), row.sig_epoch or 0)
    return states.signature_valid(digest, row.signer, row.sig_epoch, row.sig, key)


def open_pending(vault: Unlocked, consent_row: ConsentRow, key: bytes, row: NoteRow) -> Note:
    """A pending note of ``consent_row``, opened with the consent's key.

    Raises IntegrityError when its signature or record does not check out.
    """
    if not pending_signed(vault, row):
        raise states.StateForged(id=consent_row.id)
    secret, _ = states.consent_box(key)
    plain = crypto.open_sealed(
        secret,
        row.record,
        pending_ad(row.id, row.consent_id, row.key_version),
        where=f"note {row.id}",
    )
    fields = keyring.decode_record(plain, _FIELDS, where=f"note {row.id}")
    note = _checked(row.id, row.consent_id, row.date, row.created, fields)
    must = _author_must_be(vault, row)
    if must is not None and note.author != must:
        raise states.StateForged(id=consent_row.id)
    return replace(note, pending=True)


def decrypt(vault: Unlocked, row: NoteRow, consent_row: ConsentRow | None = None) -> Note:
    """The note as this member may see it (a stub when she cannot open its consent).

    Raises IntegrityError or UnsupportedVersion when the note was altered or moved;
    access.ReasonNeeded for an admin outside her assignment without a reason.
    """
    if consent_row is None:
        consent_row = consents.get_row(vault.store, row.consent_id)
    try:
        key = vault.data_key(consent_row)
    except access.NoAccess:
        return stub(row)
    if row.pending:
        return open_pending(vault, consent_row, key, row)
    return open_record(key, row)


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
    """One note, decrypted, with its amendment if any (a stub, ``access`` False, for a
    member who may not open its consent).

    Raises NotFound, IntegrityError, access.ReasonNeeded (an admin outside her
    assignment without a reason), access.GrantExpired.
    """
    store = vault.store
    row = get_row(store, note_id)
    consent_row = consents.get_row(store, row.consent_id)
    opened = consents.may_open(vault, consent_row)
    with store.write():
        if opened:
            vault.record(
                "note.show",
                consent_id=row.consent_id,
                object_id=row.id,
                detail=consents.out_of_assignment(vault, consent_row),
            )
        amendment = store.get_note_amendment(row.id)
    if not opened:
        return stub(row)
    note = decrypt(vault, row, consent_row)
    if amendment is None:
        return note
    return replace(note, amended=amendment.amended, amended_by=amendment.amended_by)


@dataclass(frozen=True)
class Scope:
    """Which consents a listing opens for this member: ``everything`` (an admin who gave a
    reason), else ``ids``; ``outside``: those of them she reads only as an admin."""

    everything: bool
    ids: frozenset[str]
    outside: frozenset[str]


def scope(vault: Unlocked, *, since: str | None = None) -> Scope:
    """The consents with notes (dated ``since`` or later) this member reads in a listing.

    Found through her wraps (an index on the reader), so a member who works with few
    consents does not pay for the others.
    """
    store = vault.store
    if vault.admin is not None and vault.read_reason is not None:
        every = frozenset(store.consents_with_notes(since=since))
        mine = frozenset(c for c in every if c in _assigned(vault))
        return Scope(True, every, every - mine)
    assigned = _assigned(vault)
    with_notes = store.consents_with_notes(since=since, among=sorted(assigned))
    return Scope(False, frozenset(with_notes), frozenset())


def _assigned(vault: Unlocked) -> set[str]:
    """Active consents this member is assigned to: contact person, granted (not run out),
    or a team consent."""
    store = vault.store
    mine = set(store.consents_of_reader(vault.name)) | set(
        store.consents_of_reader(access.TEAM_READER)
    )
    today = vault.today()
    rows = store.consents_by_id(sorted(mine))
    seals = audit.Seals(store, vault.chain)
    return {
        r.id
        for r in rows
        if r.status == consents.ACTIVE
        and access.level(vault, r, today, seals) is access.Level.ASSIGNED
    }


def list_notes(
    vault: Unlocked,
    *,
    consent_id: str | None = None,
    since: str | None = None,
    processes: int | None = None,
) -> Iterator[Note]:
    """Notes by date, decrypted one batch at a time (memory does not grow with the notes)
    on ``processes`` cores (default: all; see :func:`decrypt_stream`).

    Only notes this member may open are decrypted: without ``consent_id``, those of the
    consents in her :func:`scope`; with ``consent_id`` of a consent she may not open, its
    notes are listed as stubs (``access`` False). The read is recorded before anything is
    shown: one ``note.list`` entry per consent whose notes are shown (with the admin's
    reason for those outside her assignment).

    With ``consent_id``, the consent's notes chain and state are checked before any note
    is shown.

    Raises:
        NotFound: ``consent_id`` names no consent.
        BadInput: a malformed id or date.
        IntegrityError: a note was altered, or (with ``consent_id``) deleted or put back.
    """
    store = vault.store
    if since is not None:
        parse_day(since, field="--since")
    if consent_id is not None:
        row = consents.get_row(store, consent_id)
        if not consents.readable(vault, row):
            yield from (stub(n) for n in store.iter_notes(consent_id=row.id, since=since))
            return
        with store.write():
            key = access.open_key(vault, row, admin_ok=True)
            consents.check_notes(vault, row, key)
            vault.record(
                "note.list", consent_id=row.id, detail=consents.out_of_assignment(vault, row)
            )
        rows = store.iter_note_bodies(consent_ids=[row.id], since=since)
        yield from decrypt_stream(vault, rows, processes=processes)
        return
    with store.write():
        found = scope(vault, since=since)
        audit.record_each(vault, "note.list", sorted(found.ids - found.outside))
        if found.outside:
            audit.record_each(vault, "note.list", sorted(found.outside), detail=vault.read_reason)
    if found.everything:
        rows = store.iter_note_bodies(since=since, reader=access.ADMIN_READER)
        # A consent that got its first note after the entries were written is not shown.
        rows = (r for r in rows if r.consent_id in found.ids)
    else:
        rows = store.iter_note_bodies(consent_ids=sorted(found.ids), since=since)
    yield from decrypt_stream(vault, rows, processes=processes)


def hidden(vault: Unlocked, *, since: str | None = None) -> tuple[int, int]:
    """(notes, consents) with notes under active consents this member's listing leaves
    out: what she may not open. Counts only; nothing is read."""
    found = scope(vault, since=since)
    with vault.store.read():
        return vault.store.count_notes_outside(sorted(found.ids), since=since)


def _key_for(vault: Unlocked, row: KeyedNoteRow, opened: dict[tuple[str, int], bytes]) -> bytes:
    """The data key of ``row``'s consent: through the wrap the row carries, or the ones
    this member holds; each consent's key (at its key version) is opened and checked once
    per stream (``opened``), not once per note."""
    if row.wrapped is not None and row.reader is not None and row.how is not None:
        return access.unwrap(
            vault, row.consent_id, row.reader, row.key_version, row.how, row.wrapped
        )
    known = opened.get((row.consent_id, row.key_version))
    if known is not None:
        return known
    consent = consents.get_row(vault.store, row.consent_id)
    key = access.open_key(vault, consent, admin_ok=True)
    if len(opened) > 4096:
        opened.clear()
    opened[(row.consent_id, row.key_version)] = key
    return key


def decrypt_stream(
    vault: Unlocked,
    rows: Iterable[KeyedNoteRow],
    test: Callable[[str], bool] | None = None,
    *,
    processes: int | None = None,
) -> Iterator[Note]:
    """Decrypt notes as they stream, each row carrying (or finding) its reader's wrap of
    its consent's data key.

    With ``test``, only notes whose text passes it are yielded (search). The notes are
    opened on ``processes`` cores (default: all; vault.parallel), in the order of
    ``rows``; the data keys are unwrapped here, and the signatures of pending notes
    checked here.

    Raises IntegrityError, UnsupportedVersion, KeysRotated (while iterating).
    """
    keys: dict[tuple[str, int], bytes] = {}

    def keyed(r: KeyedNoteRow) -> _Keyed:
        key = _key_for(vault, r, keys)
        author = None
        if r.pending:
            note_row = NoteRow(
                r.id,
                r.consent_id,
                r.date,
                r.created,
                r.key_version,
                r.seq,
                r.record,
                r.pending,
                r.signer,
                r.sig_epoch,
                r.sig,
            )
            if not pending_signed(vault, note_row):
                raise states.StateForged(id=r.consent_id)
            key = states.consent_box(key)[0]
            author = _author_must_be(vault, note_row)
        amended = None if r.amended is None else (r.amended, r.amended_by)
        return key, sealed(r), amended, bool(r.pending), author

    opener = functools.partial(_open_batch, test)
    batches = parallel.batches(keyed(r) for r in rows)
    for opened in parallel.ordered_map(opener, batches, processes=processes):
        # Plain tuples cross the pipe: unpickling a dataclass costs the parent, which
        # also reads the database, more than building it here.
        yield from itertools.starmap(Note, opened)


_Opened = tuple[str, str, str, str, str, str, str | None, str | None, str | None, bool, bool]
# (key, sealed note, amendment, pending, the author a pending note must name or None)
_Keyed = tuple[bytes, Sealed, tuple[str, str | None] | None, bool, str | None]


def _author_must_be(vault: Unlocked, row: NoteRow) -> str | None:
    """Who a pending note's sealed author must be: its signer, unless an admin signed it
    (a countersignature: vault.countersign). Anyone can seal to the consent's public key,
    so the name inside proves nothing unless the signature does."""
    signer = vault.chain.current.staff.get(str(row.signer))
    return None if signer is not None and signer.role == "admin" else str(row.signer)


def _open_batch(
    test: Callable[[str], bool] | None,
    batch: list[_Keyed],
) -> list[_Opened]:
    """The notes of ``batch`` that pass ``test``, as the fields of :class:`Note`. Every
    record is authenticated; the plaintext date and created time are compared only for
    the notes returned (search shows no other, and verify compares all of them). A
    pending note comes with its consent's box secret instead of the data key."""
    opened = []
    for key, (
        note_id,
        consent_id,
        key_version,
        record,
        date,
        created,
    ), amended, pending, must in batch:
        if pending:
            plain = crypto.open_sealed(
                key, record, pending_ad(note_id, consent_id, key_version), where=f"note {note_id}"
            )
            fields = keyring.decode_record(plain, _FIELDS, where=f"note {note_id}")
            if must is not None and fields[3] != must:
                raise states.StateForged(id=consent_id)
        else:
            fields = _open_fields(key, note_id, consent_id, key_version, record)
        if test is not None and not test(fields[4]):
            continue
        _check_dates(note_id, date, created, fields)
        sealed_date, sealed_created, kind, author, text = fields
        when, by = (None, None) if amended is None else amended
        opened.append(
            (
                note_id,
                consent_id,
                sealed_date,
                sealed_created,
                kind,
                text,
                author or None,
                when,
                by,
                True,
                pending,
            )
        )
    return opened
