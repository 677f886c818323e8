"""Consent declarations: the root every personal record hangs off.

A consent records the person's alias, the purpose and data categories it covers, who gave
it (the person, or a guardian for a child under 16), and a reference to the signed form.
All of that is ONE sealed record (padded to 256 bytes) under the consent's own data key.
Only its id, status, dates and retention are stored in plaintext, so the keyless purge can
find what is due; two tags under keys derived from the data key seal them: the retention
tag (given, created, last activity, retention period) and the notes tag (which notes the
consent holds). Every keyed read checks the first; reading a consent's notes, the second.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from vault import audit, crypto, ids, keyring
from vault.dates import add_days, day, parse_day, timestamp
from vault.errors import BadInput, InactiveConsent, IntegrityError, NotFound
from vault.session import Unlocked, check_retention_days
from vault.store import ConsentRow, NoteRow, Store

TABLE = "consents"
ACTIVE = "active"
# The data-key version a new consent (and every note an import writes with it) starts at.
FIRST_KEY_VERSION = 1
MAX_SUBJECT = 200
MAX_PURPOSE = 2000
MAX_CATEGORY = 100
# subject, purpose, categories, under_16, guardian, form_ref, recorded_by
RECORD_FIELDS = 7
# Added at the end after format 2 was fixed, so records written before read as "":
# duties_told (the day the person was told of confidentiality and its exceptions).
OPTIONAL_FIELDS = 1
SUGGESTED_CATEGORIES = (
    "contact",
    "conversation-notes",
    "safety",
    "health",
    "follow-up-plan",
    "next-of-kin",
)


@dataclass(frozen=True)
class ConsentInput:
    """What a staff member types when registering a signed consent declaration."""

    subject: str
    purpose: str
    categories: tuple[str, ...]
    under_16: bool = False
    guardian: str | None = None
    form_ref: str | None = None
    retain_days: int | None = None
    given: str | None = None
    # The day the person was told of the duty of confidentiality and its exceptions
    # (the duty to inform child welfare, the duty to avert serious crimes); None: not recorded.
    duties_told: str | None = None


@dataclass(frozen=True)
class Consent:
    """A consent as a user sees it; personal fields are None on a tombstone."""

    id: str
    status: str
    given: str
    created: str
    retain_until: str
    retain_days: int | None
    subject: str | None
    purpose: str | None
    categories: tuple[str, ...] | None
    under_16: bool | None
    guardian: str | None
    form_ref: str | None
    recorded_by: str | None
    ended: str | None
    end_reason: str | None
    ended_by: str | None
    duties_told: str | None = None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def to_json(self) -> dict[str, object]:
        """The consent as the ``--json`` output and the export show it."""
        return {
            "id": self.id,
            "status": self.status,
            "subject": self.subject,
            "purpose": self.purpose,
            "categories": list(self.categories) if self.categories is not None else None,
            "given": self.given,
            "retain_until": self.retain_until,
            "retain_days": self.retain_days,
            "under_16": self.under_16,
            "guardian": self.guardian,
            "form_ref": self.form_ref,
            "recorded_by": self.recorded_by,
            "duties_told": self.duties_told,
            "created": self.created,
            "ended": self.ended,
            "end_reason": self.end_reason,
            "ended_by": self.ended_by,
        }


def _text(value: str, *, field: str, limit: int, required: bool = True) -> str:
    clean = value.strip()
    if required and not clean:
        raise BadInput("{field} must not be empty", field=field)
    if len(clean) > limit:
        raise BadInput(
            "{field} is {length} characters; the limit is {limit}",
            field=field,
            length=len(clean),
            limit=limit,
        )
    return clean


def validate(data: ConsentInput, today: str) -> ConsentInput:
    """Check and normalise a consent before anything is written.

    Raises:
        BadInput: a missing field, a too-long field, an under-16 consent without a
            guardian, a bad or future date, or a retention outside 1..36500 days.
    """
    categories = tuple(
        _text(c, field="category", limit=MAX_CATEGORY) for c in data.categories if c.strip()
    )
    if not categories:
        raise BadInput("at least one data category is required (--category)")
    guardian = data.guardian.strip() if data.guardian else None
    if data.under_16 and not guardian:
        raise BadInput(
            "a consent for a child under 16 must name the guardian who gave or co-signed it"
        )
    given = data.given or today
    parse_day(given, field="given")
    if given > today:
        raise BadInput("the consent date {given} is in the future", given=given)
    if data.duties_told is not None:
        parse_day(data.duties_told, field="duties-told")
        if data.duties_told > today:
            raise BadInput(
                "the date the duties were told, {date}, is in the future", date=data.duties_told
            )
    return ConsentInput(
        subject=_text(data.subject, field="subject", limit=MAX_SUBJECT),
        purpose=_text(data.purpose, field="purpose", limit=MAX_PURPOSE),
        categories=tuple(dict.fromkeys(categories)),
        under_16=data.under_16,
        guardian=_text(guardian, field="guardian", limit=MAX_SUBJECT) if guardian else None,
        form_ref=_text(data.form_ref or "", field="form-ref", limit=MAX_SUBJECT, required=False)
        or None,
        retain_days=None if data.retain_days is None else check_retention_days(data.retain_days),
        given=given,
        duties_told=data.duties_told,
    )


def deadline(given: str, last_activity: str | None, retain_days: int) -> str:
    """Retention runs from the later of the consent date and the last note."""
    start = max(given, last_activity) if last_activity else given
    return add_days(start, retain_days)


def new_consent_id(store: Store) -> str:
    while True:
        candidate = ids.new_id(ids.CONSENT_PREFIX)
        if not store.consent_id_exists(candidate):
            return candidate


def seal_record(key: bytes, consent: Consent, *, key_version: int) -> bytes:
    """The one sealed record holding ``consent``'s personal fields (under its data key)."""
    fields = [
        consent.subject or "",
        consent.purpose or "",
        json.dumps(list(consent.categories or ()), ensure_ascii=False),
        json.dumps(bool(consent.under_16)),
        consent.guardian or "",
        consent.form_ref or "",
        consent.recorded_by or "",
    ]
    # Left out when not recorded: the record is then byte for byte a format-2 one.
    if consent.duties_told:
        fields.append(consent.duties_told)
    return keyring.seal_record(key, fields, keyring.consent_ad(consent.id, key_version))


def open_record(key: bytes, row: ConsentRow) -> Consent:
    """The consent in ``row``, its retention tag checked.

    Raises:
        IntegrityError: the record was altered, moved or blanked; keyring.RetentionChanged
            when its plaintext dates or retention period were edited.
        UnsupportedVersion: an unknown blob version.
    """
    check_retention(key, row)
    ad = keyring.consent_ad(row.id, row.key_version)
    where = f"consent {row.id}"
    fields = keyring.open_record(
        key, row.record, ad, RECORD_FIELDS, where=where, optional=OPTIONAL_FIELDS
    )
    subject, purpose, categories, under_16, guardian, form_ref, recorded_by, told = fields
    try:
        category_list = tuple(str(c) for c in json.loads(categories))
        child = bool(json.loads(under_16))
    except ValueError:
        raise IntegrityError(where=where) from None
    return dataclasses.replace(
        _tombstone(row),
        subject=subject,
        purpose=purpose,
        categories=category_list,
        under_16=child,
        guardian=guardian or None,
        form_ref=form_ref or None,
        recorded_by=recorded_by,
        duties_told=told or None,
    )


def _tombstone(row: ConsentRow) -> Consent:
    """The plaintext part of ``row``: all there is of an ended consent."""
    return Consent(
        id=row.id,
        status=row.status,
        given=row.given,
        created=row.created,
        retain_until=row.retain_until,
        retain_days=row.retain_days,
        subject=None,
        purpose=None,
        categories=None,
        under_16=None,
        guardian=None,
        form_ref=None,
        recorded_by=None,
        ended=row.ended,
        end_reason=row.end_reason,
        ended_by=row.ended_by,
    )


def retention_tag(key: bytes, row: ConsentRow) -> bytes:
    """The tag ``row``'s dates and retention period should carry."""
    return keyring.retention_tag(
        key,
        consent_id=row.id,
        key_version=row.key_version,
        given=row.given,
        created=row.created,
        last_activity=row.last_activity,
        retain_days=row.retain_days,
    )


def check_retention(key: bytes, row: ConsentRow) -> None:
    """Raises keyring.RetentionChanged when ``row``'s dates or retention were edited."""
    error = keyring.RetentionChanged(id=row.id)
    keyring.check_tag(retention_tag(key, row), row.retention_tag, error)


def notes_chain(key: bytes, row: ConsentRow) -> keyring.NotesChain:
    return keyring.NotesChain(key, consent_id=row.id, key_version=row.key_version)


def chain_entries(rows: Iterable[NoteRow]) -> list[tuple[str, int, bytes]]:
    """What the note seal covers of ``rows``, in order of seq."""
    ordered = sorted(rows, key=lambda n: (n.seq, n.id))
    return [(n.id, n.seq, keyring.record_tag(n.record)) for n in ordered]


def check_notes(vault: Unlocked, row: ConsentRow) -> None:
    """Raises keyring.NotesChanged when the notes stored under ``row`` are not the ones
    its seal covers (one was deleted, added or put back); IntegrityError for a bad key.

    Reads the record tag of every note of the consent (not the records themselves).
    An ended consent has neither notes nor a seal (verify checks its tombstone is empty).
    """
    if row.status != ACTIVE:
        return
    key = vault.data_key(row)
    stored = [(i, s, keyring.record_tag(t)) for i, s, t in vault.store.note_chain(row.id)]
    expected = notes_chain(key, row).fold(stored)
    keyring.check_tag(expected, row.notes_tag, keyring.NotesChanged(id=row.id))


def next_seq(row: ConsentRow) -> int:
    """The sequence number the next note under ``row`` gets.

    Raises keyring.NotesChanged when the count or seal was blanked or replaced in the file.
    """
    if not isinstance(row.notes_count, int) or not isinstance(row.notes_tag, bytes):
        raise keyring.NotesChanged(id=row.id)
    return row.notes_count + 1


def build_row(
    vault: Unlocked,
    data: ConsentInput,
    consent_id: str,
    data_key: bytes,
    now: dt.datetime,
    *,
    notes: Sequence[NoteRow] = (),
    default_days: int | None = None,
) -> ConsentRow:
    """Encrypt a validated consent (with the rows of its first ``notes``, numbered from
    seq 1, for an import) into a row, its seals computed. ``default_days`` is the vault's
    retention period, read from the vault when not given (a bulk caller passes it, and
    then this touches no database: vault.importer runs it in forked children)."""
    retain_days = data.retain_days or default_days or _default_days(vault)
    given = data.given or day(now)
    last_activity = max((n.date for n in notes), default=None)
    version = FIRST_KEY_VERSION
    consent = Consent(
        id=consent_id,
        status=ACTIVE,
        given=given,
        created=timestamp(now),
        retain_until=deadline(given, last_activity, retain_days),
        retain_days=data.retain_days,
        subject=data.subject,
        purpose=data.purpose,
        categories=data.categories,
        under_16=data.under_16,
        guardian=data.guardian,
        form_ref=data.form_ref,
        recorded_by=vault.name,
        ended=None,
        end_reason=None,
        ended_by=None,
        duties_told=data.duties_told,
    )
    row = ConsentRow(
        id=consent_id,
        status=ACTIVE,
        given=given,
        created=consent.created,
        last_activity=last_activity,
        retain_days=data.retain_days,
        retain_until=consent.retain_until,
        ended=None,
        end_reason=None,
        ended_by=None,
        master_version=vault.master_version,
        key_version=version,
        data_key=keyring.wrap_data_key(
            vault.master, data_key, consent_id=consent_id, master_version=vault.master_version
        ),
        record=seal_record(data_key, consent, key_version=version),
        retention_tag=None,
        notes_count=max((n.seq for n in notes), default=0),
        notes_tag=None,
    )
    return dataclasses.replace(
        row,
        retention_tag=retention_tag(data_key, row),
        notes_tag=notes_chain(data_key, row).fold(chain_entries(notes)),
    )


def add(vault: Unlocked, data: ConsentInput) -> Consent:
    """Register a signed consent declaration.

    Raises:
        BadInput: see :func:`validate`.
        VaultBusy, StorageError: nothing was written.
    """
    data = validate(data, day(vault.now))
    store = vault.store
    with store.write():
        consent_id = new_consent_id(store)
        row = build_row(vault, data, consent_id, crypto.new_key(), vault.now)
        store.insert_consent(row)
        vault.record("consent.add", consent_id=consent_id)
    return decrypt(vault, row)


def decrypt(vault: Unlocked, row: ConsentRow) -> Consent:
    """Raises IntegrityError or UnsupportedVersion when the record, its dates, its
    retention or its deadline were altered or moved (keyring.RetentionChanged,
    keyring.DeadlineMoved)."""
    if row.status != ACTIVE or row.data_key is None:
        return _tombstone(row)
    consent = open_record(vault.data_key(row), row)
    # The retention seal leaves the deadline out (a new vault default moves it keyless);
    # it must still follow from what is sealed, or the keyless purge would act on a lie.
    expected = deadline(row.given, row.last_activity, row.retain_days or _default_days(vault))
    if row.retain_until != expected:
        raise keyring.DeadlineMoved(id=row.id, stored=row.retain_until, expected=expected)
    return consent


def _default_days(vault: Unlocked) -> int:
    return vault.vault.settings().retention_days


def get_row(store: Store, consent_id: str) -> ConsentRow:
    """Raises BadInput for a malformed id, NotFound for an unknown one."""
    canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    row = store.get_consent(canonical)
    if row is None:
        raise NotFound(what="consent", id=canonical)
    return row


def get_active_row(store: Store, consent_id: str) -> ConsentRow:
    """Raises NotFound, or InactiveConsent when it was withdrawn or expired."""
    row = get_row(store, consent_id)
    if row.status != ACTIVE:
        raise InactiveConsent(id=row.id, status=row.status)
    return row


def show(vault: Unlocked, consent_id: str) -> Consent:
    """One consent, decrypted (a tombstone if it ended). Raises NotFound, IntegrityError."""
    store = vault.store
    with store.write():
        row = get_row(store, consent_id)
        vault.record("consent.show", consent_id=row.id)
    return decrypt(vault, row)


def list_all(vault: Unlocked, *, include_ended: bool = False) -> Iterator[Consent]:
    """Active consents (and tombstones with ``include_ended``), oldest first; the read is
    recorded first, one ``consent.list`` entry per active consent."""
    store = vault.store
    with store.write():
        # One entry per person whose details are shown (tombstones hold none).
        shown = set(store.active_consent_ids())
        audit.record_each(vault, "consent.list", sorted(shown))
    for row in store.iter_consents(include_ended=include_ended):
        if row.status == ACTIVE and row.id not in shown:
            continue  # registered after the entries were written
        yield decrypt(vault, row)


def append_notes(vault: Unlocked, row: ConsentRow, written: Sequence[NoteRow]) -> None:
    """Extend ``row``'s note seal by the notes just ``written`` under it (numbered from
    :func:`next_seq` on) and move its last activity and deadline (inside the caller's
    transaction). One MAC per note, whatever the consent holds.

    The seal is a chain: a note deleted outside nok before this still breaks it, so this
    never makes such a deletion look intended.

    Raises RetentionChanged when ``row``'s dates were edited outside nok (sealing them
    again would make the edit look genuine); NotesChanged when its seal was blanked.
    """
    key = vault.data_key(row)
    check_retention(key, row)
    next_seq(row)
    chain, tag = notes_chain(key, row), row.notes_tag
    assert tag is not None  # next_seq checked it
    for note_id, seq, record_tag in chain_entries(written):
        tag = chain.link(tag, seq, note_id, record_tag)
    dates = [d for d in [row.last_activity, *(n.date for n in written)] if d is not None]
    count = max([row.notes_count or 0, *(n.seq for n in written)])
    _store_sealed(vault, key, row, max(dates, default=None), (count, tag))


def notes_rewritten(vault: Unlocked, row: ConsentRow) -> str:
    """Seal ``row``'s notes again after one was amended or deleted (vault.corrections),
    and take its last activity from the notes as they now are: a deleted note or an earlier
    date moves it back, and the deadline with it. Returns the new deadline. The chain is
    folded again over the notes stored, so this costs one MAC per note of the consent.

    Call :func:`check_notes` BEFORE changing the notes: folding over whatever the file
    holds would make a note deleted outside nok look intended.

    Raises RetentionChanged when ``row``'s dates were edited outside nok; NotesChanged when
    its seal was blanked.
    """
    key = vault.data_key(row)
    check_retention(key, row)
    count = next_seq(row) - 1
    stored = [(i, s, keyring.record_tag(t)) for i, s, t in vault.store.note_chain(row.id)]
    last = vault.store.latest_note_date(row.id)
    tag = notes_chain(key, row).fold(stored)
    return _store_sealed(vault, key, row, last, (count, tag)).retain_until


def _store_sealed(
    vault: Unlocked, key: bytes, row: ConsentRow, last: str | None, notes: tuple[int, bytes]
) -> ConsentRow:
    """Store ``row`` with its last activity at ``last`` (the deadline follows), its dates
    sealed again, and its note seal ``notes`` (count, tag); returns the row as stored."""
    moved = dataclasses.replace(
        row,
        last_activity=last,
        retain_until=deadline(row.given, last, row.retain_days or _default_days(vault)),
    )
    vault.store.update_consent_sealed(
        row.id,
        last_activity=moved.last_activity,
        retain_days=moved.retain_days,
        retain_until=moved.retain_until,
        retention_tag=retention_tag(key, moved),
        notes=notes,
    )
    return moved


def set_retain_days(vault: Unlocked, row: ConsentRow, retain_days: int) -> str:
    """Give ``row`` its own retention period, sealed; returns the new deadline (inside the
    caller's transaction).

    Raises RetentionChanged when ``row``'s dates were edited outside nok.
    """
    key = vault.data_key(row)
    check_retention(key, row)
    moved = dataclasses.replace(
        row,
        retain_days=retain_days,
        retain_until=deadline(row.given, row.last_activity, retain_days),
    )
    vault.store.update_consent_sealed(
        row.id,
        last_activity=moved.last_activity,
        retain_days=moved.retain_days,
        retain_until=moved.retain_until,
        retention_tag=retention_tag(key, moved),
    )
    return moved.retain_until


def first_deadline(vault: Unlocked, data: ConsentInput) -> str:
    """The retention deadline ``data`` would get if registered now (nothing is written).

    Raises:
        BadInput: see :func:`validate`.
    """
    checked = validate(data, day(vault.now))
    retain_days = checked.retain_days or vault.vault.settings().retention_days
    return deadline(checked.given or day(vault.now), None, retain_days)


def overdue(vault: Unlocked, consent_id: str) -> str | None:
    """The passed retention deadline of an active consent the purge has not erased yet
    (a note added now would keep it), else None.

    Raises:
        BadInput, NotFound, InactiveConsent: see :func:`get_active_row`.
    """
    row = get_active_row(vault.store, consent_id)
    return row.retain_until if row.retain_until < day(vault.now) else None
