"""Consent declarations: the root every personal record hangs off.

A consent records the person's alias, the purpose and data categories it covers, who gave
it (the person, or a guardian for a child under 16), and a reference to the signed form.
All of that is ONE sealed record (padded to 256 bytes) under the consent's own data key,
which only its readers can open (vault.access). Its id, status, dates, retention, contact
person and readers stay in plaintext, so that the scheduled job and colleagues without
access can see that it exists; they and the set of its notes are covered by the consent's
signed *state* (vault.states): every change writes a new one, signed by whoever made it,
with a proof under the data key. Every keyed read checks the proof; reading one consent
also checks the signature.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from vault import access, audit, crypto, ids, keyring, states
from vault.dates import add_days, parse_day, timestamp
from vault.epochs import Chain
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
# duties_told (the day the person was told of confidentiality and its exceptions), then
# report (the statistics profile the person agreed to, vault.report; JSON padded to a
# fixed length, so one profile's record is as long as another's).
OPTIONAL_FIELDS = 2
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
    # The contact person (a staff name); None: the staff member who registers it.
    contact: str | None = None


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
    contact: str | None = None
    # The statistics profile (vault.report.Profile as JSON); None: no consent to statistics.
    report: str | None = None
    # Whether the reader could open it (False: only the plaintext fields are shown).
    access: bool = True
    readers: tuple[states.Reader, ...] = ()
    access_mode: str | None = None

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
            "contact": self.contact,
            "access": self.access,
            "report": json.loads(self.report) if self.report else None,
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
        contact=data.contact.strip() if data.contact else None,
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
    if consent.duties_told or consent.report:
        fields.append(consent.duties_told or "")
    if consent.report:
        fields.append(consent.report)
    return keyring.seal_record(key, fields, keyring.consent_ad(consent.id, key_version))


def open_record(key: bytes, row: ConsentRow) -> Consent:
    """The consent in ``row`` (its state is checked by the callers that read a row).

    Raises:
        IntegrityError: the record was altered, moved or blanked.
        UnsupportedVersion: an unknown blob version.
    """
    ad = keyring.consent_ad(row.id, row.key_version)
    where = f"consent {row.id}"
    fields = keyring.open_record(
        key, row.record, ad, RECORD_FIELDS, where=where, optional=OPTIONAL_FIELDS
    )
    subject, purpose, categories, under_16, guardian, form_ref, recorded_by, told, report = fields
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
        report=report or None,
        access=True,
    )


def _tombstone(row: ConsentRow, *, opened: bool = True) -> Consent:
    """The plaintext part of ``row``: all there is of an ended consent, and all a reader
    without access sees (``opened`` False)."""
    try:
        readers = access.readers_of(row)
    except IntegrityError:
        readers = ()
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
        contact=row.contact,
        access=opened,
        readers=readers,
        access_mode=row.access,
    )


# -- the signed state -------------------------------------------------------------------


def _blob(value: object) -> bytes:
    return value if isinstance(value, bytes) else b""


def state_of(row: ConsentRow) -> states.State:
    """The state ``row``'s columns describe (what its signature and proof must cover).

    Raises IntegrityError when its readers column is not a readers list.
    """
    return states.State(
        consent_id=row.id,
        rev=row.rev or 0,
        status=row.status,
        given=row.given,
        created=row.created,
        last_activity=row.last_activity,
        retain_days=row.retain_days,
        key_version=row.key_version,
        consent_box=_blob(row.consent_box),
        contact=row.contact or "",
        access=row.access or "",
        readers=access.readers_of(row),
        notes_count=row.notes_count or 0,
        notes_hash=_blob(row.notes_hash),
        record_tag=states.record_tag(row.record),
    )


def state_digest(vault_id: str, row: ConsentRow) -> bytes:
    return states.digest(vault_id, state_of(row))


def signature_ok(vault: Unlocked, row: ConsentRow, digest: bytes) -> bool:
    """Whether ``row``'s state signature is that of a staff member the epoch it names lists."""
    signer_key = vault.chain.staff_key(str(row.state_signer), row.state_epoch or 0)
    return states.signature_valid(
        digest, row.state_signer, row.state_epoch, row.state_sig, signer_key
    )


def is_latest(
    store: Store, chain: Chain, row: ConsentRow, digest: bytes, seals: audit.Seals | None = None
) -> bool:
    """Whether ``row`` holds the newest state the signed trail records for it: a state
    that was valid once (an old grant, an old data key) put back from a copy is not.

    ``seals``: the batch checks already made in this call (a listing asks about many
    consents whose entries share batches: each batch is then walked once)."""
    latest = store.latest_state_entry(row.id)
    return (
        latest is not None
        and latest.rev == row.rev
        and isinstance(latest.state, bytes)
        and crypto.same(latest.state, digest)
        and (seals or audit.Seals(store, chain)).sealed(latest)
    )


def check_state_signed(vault: Unlocked, row: ConsentRow, seals: audit.Seals | None = None) -> None:
    """Raises states.StateForged unless ``row``'s state is signed by a staff member (for
    a member who cannot check its proof: a pending note's author), StateRolledBack when
    it is not the newest the trail records (``seals``: as :func:`is_latest`)."""
    digest = state_digest(vault.vault_id, row)
    if not signature_ok(vault, row, digest):
        raise states.StateForged(id=row.id)
    if not is_latest(vault.store, vault.chain, row, digest, seals):
        raise states.StateRolledBack(id=row.id)


def check_state(vault: Unlocked, row: ConsentRow, key: bytes, *, signature: bool = True) -> None:
    """Raises states.StateForged unless ``row``'s state carries a proof made with its data
    key and (unless ``signature`` is False) a valid signature of a staff member the epoch it
    names lists; DeadlineMoved when its plaintext deadline does not follow from it.

    The signature is checked by default because the proof alone is not enough before a
    write: the job holds every proof key, and a write signs over the state it started
    from, so a state with only a proof would come out of it signed by a colleague.
    """
    digest = state_digest(vault.vault_id, row)
    ok = states.proof_valid(states.proof_key(key), digest, row.proof)
    if ok and signature:
        ok = signature_ok(vault, row, digest)
    if not ok:
        raise states.StateForged(id=row.id)
    if not is_latest(vault.store, vault.chain, row, digest):
        raise states.StateRolledBack(id=row.id)
    expected = deadline(row.given, row.last_activity, row.retain_days or _default_days(vault))
    if row.retain_until != expected:
        raise states.DeadlineMoved(id=row.id, stored=row.retain_until, expected=expected)


STATE_COLUMNS = (
    "last_activity",
    "retain_days",
    "retain_until",
    "key_version",
    "consent_box",
    "contact",
    "access",
    "readers",
    "record",
    "notes_count",
    "notes_hash",
    "rev",
    "state_signer",
    "state_epoch",
    "state_sig",
    "proof",
)


def sign_state(vault: Unlocked, row: ConsentRow, key: bytes) -> tuple[ConsentRow, bytes]:
    """``row`` as its next revision, signed by this member with a proof under ``key``,
    its deadline computed; and the state's digest (for the audit entry)."""
    row = dataclasses.replace(
        row,
        rev=(row.rev or 0) + 1,
        retain_until=deadline(
            row.given, row.last_activity, row.retain_days or _default_days(vault)
        ),
    )
    digest = state_digest(vault.vault_id, row)
    signed = states.sign(
        digest,
        signer=vault.name,
        keys=vault.keys,
        epoch=vault.epoch.number,
        proof_key_=states.proof_key(key),
    )
    return (
        dataclasses.replace(
            row,
            state_signer=signed.signer,
            state_epoch=signed.epoch,
            state_sig=signed.sig,
            proof=signed.proof,
        ),
        digest,
    )


def commit_state(
    vault: Unlocked,
    row: ConsentRow,
    key: bytes,
    action: str,
    *,
    object_id: str | None = None,
    detail: str | None = None,
) -> ConsentRow:
    """Sign ``row``'s next state, store it and record ``action`` with it (inside the
    caller's write transaction). Returns the row as stored."""
    signed, digest = sign_state(vault, row, key)
    vault.store.update_consent_state(row.id, {col: getattr(signed, col) for col in STATE_COLUMNS})
    vault.record(
        action,
        consent_id=row.id,
        object_id=object_id,
        detail=detail,
        rev=signed.rev,
        state=digest,
    )
    return signed


def notes_hash(vault_id: str, row: ConsentRow, entries: Iterable[tuple[str, int, bytes]]) -> bytes:
    return states.fold_notes(vault_id, row.id, row.key_version, entries)


def chain_entries(rows: Iterable[NoteRow]) -> list[tuple[str, int, bytes]]:
    """What the notes chain covers of ``rows`` (not pending), in order of seq."""
    ordered = sorted((n for n in rows if not n.pending), key=lambda n: (n.seq, n.id))
    return [(n.id, n.seq, states.record_tag(n.record)) for n in ordered]


def check_notes(vault: Unlocked, row: ConsentRow, key: bytes | None = None) -> None:
    """Raises states.NotesChanged when the notes stored under ``row`` are not the ones its
    state covers (one was deleted, added or put back); IntegrityError for a bad key or
    state.

    Reads the record tag of every note of the consent (not the records themselves).
    An ended consent has neither notes nor a state to check (verify checks its tombstone).
    """
    if row.status != ACTIVE:
        return
    key = key if key is not None else access.open_key(vault, row, admin_ok=True)
    check_state(vault, row, key)
    stored = [(i, s, states.record_tag(t)) for i, s, t in vault.store.note_chain(row.id)]
    if not crypto.same(notes_hash(vault.vault_id, row, stored), _blob(row.notes_hash)):
        raise states.NotesChanged(id=row.id)


def next_seq(row: ConsentRow) -> int:
    """The sequence number the next note under ``row`` gets.

    Raises NotesChanged when the count or chain was blanked or replaced in the file.
    """
    if not isinstance(row.notes_count, int) or not isinstance(row.notes_hash, bytes):
        raise states.NotesChanged(id=row.id)
    return row.notes_count + 1


def new_row(
    vault: Unlocked,
    data: ConsentInput,
    consent_id: str,
    data_key: bytes,
    now: dt.datetime,
    *,
    notes: Sequence[NoteRow] = (),
    default_days: int | None = None,
    team: bool | None = None,
) -> tuple[ConsentRow, list[access.Wrap]]:
    """Encrypt a validated consent (with the rows of its first ``notes``, numbered from
    seq 1, for an import) into a row with its first signed state, and the wraps of its
    data key. ``default_days`` is the vault's retention period and ``team`` whether the
    whole team reads it, read from the vault when not given (a bulk caller passes them,
    and then this touches no database: vault.importer runs it in forked children).

    Raises NotAllowed when the contact person is not staff of the vault.
    """
    retain_days = data.retain_days or default_days or _default_days(vault)
    given = data.given or vault.today()
    last_activity = max((n.date for n in notes), default=None)
    contact = data.contact or vault.name
    team_mode = vault.settings().access == "team" if team is None else team
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
        master_version=None,
        key_version=FIRST_KEY_VERSION,
        data_key=None,
        record=seal_record(data_key, consent, key_version=FIRST_KEY_VERSION),
        retention_tag=None,
        notes_count=max((n.seq for n in notes), default=0),
        notes_tag=None,
        contact=contact,
        access="team" if team_mode else "need-to-know",
        readers=states.READERS_NONE,
        consent_box=states.consent_box(data_key)[1],
        rev=0,
    )
    row = dataclasses.replace(row, notes_hash=notes_hash(vault.vault_id, row, chain_entries(notes)))
    wraps = access.make_wraps(
        vault, consent_id, FIRST_KEY_VERSION, data_key, contact=contact, readers=(), team=team_mode
    )
    signed, _ = sign_state(vault, row, data_key)
    return signed, wraps


def add(vault: Unlocked, data: ConsentInput) -> Consent:
    """Register a signed consent declaration, with this member (or ``data.contact``) as
    its contact person.

    Raises:
        BadInput: see :func:`validate`.
        NotAllowed: the contact person named is not staff of the vault.
        VaultBusy, StorageError: nothing was written.
    """
    data = validate(data, vault.today())
    store = vault.store
    key = crypto.new_key()
    with store.write():
        consent_id = new_consent_id(store)
        row, wraps = new_row(vault, data, consent_id, key, vault.now)
        store.insert_consent(row)
        store.put_wraps(consent_id, [w.row() for w in wraps])
        vault.record(
            "consent.add",
            consent_id=consent_id,
            object_id=row.contact,
            rev=row.rev,
            state=state_digest(vault.vault_id, row),
        )
    return open_row(row, key)


def open_row(row: ConsentRow, key: bytes) -> Consent:
    """The whole consent of ``row`` under ``key`` (its state checked by the caller)."""
    consent = open_record(key, row)
    plain = _tombstone(row)
    return dataclasses.replace(
        consent, contact=plain.contact, readers=plain.readers, access_mode=plain.access_mode
    )


def decrypt(vault: Unlocked, row: ConsentRow, *, signature: bool = False) -> Consent:
    """The consent in ``row`` as this member may see it: whole when she can open it (its
    state checked), else its plaintext part with ``access`` False; an ended consent's
    tombstone.

    Raises IntegrityError or UnsupportedVersion when the record or its state were altered
    (states.StateForged, DeadlineMoved).
    """
    if row.status != ACTIVE:
        return _tombstone(row)
    try:
        key = access.data_key(vault, row)
    except (access.NoAccess, access.ReasonNeeded):
        return _tombstone(row, opened=False)
    check_state(vault, row, key, signature=signature)
    return open_row(row, key)


def _default_days(vault: Unlocked) -> int:
    return vault.settings().retention_days


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
    """One consent, decrypted (a tombstone if it ended; its plaintext part only, with
    ``access`` False, for a member who may not open it). An admin outside her assignment
    reads it only with a reason (``vault.read_reason``), recorded with the read.

    Raises NotFound, IntegrityError, access.ReasonNeeded (an admin without a reason),
    access.GrantExpired.
    """
    store = vault.store
    row = get_row(store, consent_id)
    if row.status != ACTIVE:
        _check_ending(vault, row)
    opened = may_open(vault, row)
    with store.write():
        row = get_row(store, consent_id)
        if opened:
            vault.record("consent.show", consent_id=row.id, detail=out_of_assignment(vault, row))
    if not opened:
        return _tombstone(row, opened=row.status != ACTIVE)
    return decrypt(vault, row, signature=True)


def _check_ending(vault: Unlocked, row: ConsentRow) -> None:
    """Raises states.StateForged unless ``row``'s tombstone holds a signed ending: a status
    edited in the file must not tell a counselor that a person withdrew."""
    from vault import endings

    signed = endings.from_row(row)
    if signed is None or not endings.signature_valid(vault.chain, signed):
        raise states.StateForged(id=row.id)


def may_open(vault: Unlocked, row: ConsentRow) -> bool:
    """Whether this member opens ``row`` (assigned, or an admin with a reason).

    Raises ReasonNeeded for an admin outside her assignment without a reason, and
    GrantExpired for a grant that ran out.
    """
    if row.status != ACTIVE:
        return True
    found = access.level(vault, row)
    if found is access.Level.ASSIGNED:
        return True
    until = access.expired_grant(vault, row)
    if until is not None:
        raise access.GrantExpired(
            name=vault.name, id=row.id, until=until, contact=row.contact or "?"
        )
    if found is access.Level.ADMIN:
        if vault.read_reason is None:
            raise access.ReasonNeeded(id=row.id, choices=", ".join(access.REASONS))
        return True
    return False


def out_of_assignment(vault: Unlocked, row: ConsentRow) -> str | None:
    """The reason to record with a read: only when the reader is not assigned."""
    if row.status == ACTIVE and access.level(vault, row) is not access.Level.ASSIGNED:
        return vault.read_reason
    return None


def readable(vault: Unlocked, row: ConsentRow, *, assigned_only: bool = False) -> bool:
    """Whether a listing shows ``row`` whole to this member: assigned, or an admin who
    gave a reason (never raises: a listing shows what she may not open as its plaintext
    part)."""
    if row.status != ACTIVE:
        return False
    try:
        found = access.level(vault, row)
    except states.StateForged:
        return False
    if found is access.Level.ASSIGNED:
        return True
    return not assigned_only and found is access.Level.ADMIN and vault.read_reason is not None


def list_all(vault: Unlocked, *, include_ended: bool = False) -> Iterator[Consent]:
    """Active consents (and tombstones with ``include_ended``), oldest first: whole when
    this member may open them, else their plaintext part (``access`` False). The read is
    recorded first, one ``consent.list`` entry per consent shown whole (an admin's reads
    outside her assignment with her reason).
    """
    store = vault.store
    with store.write():
        rows = list(store.iter_consents(include_ended=False))
        mine = sorted(r.id for r in rows if readable(vault, r, assigned_only=True))
        theirs = sorted(r.id for r in rows if r.id not in set(mine) and readable(vault, r))
        audit.record_each(vault, "consent.list", mine)
        if theirs:
            audit.record_each(vault, "consent.list", theirs, detail=vault.read_reason)
    shown = set(mine) | set(theirs)
    for row in store.iter_consents(include_ended=include_ended):
        if row.status == ACTIVE and row.id not in shown:
            # Registered after the entries were written, or not this member's to open.
            yield _tombstone(row, opened=False)
            continue
        yield decrypt(vault, row)


def fold_pending(vault: Unlocked, row: ConsentRow, key: bytes) -> ConsentRow:
    """``row`` with the notes colleagues without access left pending folded into its notes
    chain (each sealed again under the data key; inside the caller's transaction)."""
    from vault import notes as notes_mod

    pending = vault.store.pending_notes(row.id)
    if not pending:
        return row
    seq = next_seq(row)
    folded = []
    for note in sorted(pending, key=lambda n: (n.created, n.id)):
        opened = notes_mod.open_pending(vault, row, key, note)
        rewritten = notes_mod.build_row(
            key,
            note_id=note.id,
            consent_id=row.id,
            key_version=row.key_version,
            seq=seq,
            date=opened.date,
            kind=opened.kind,
            text=opened.text,
            author=opened.author or "",
            now=vault.now,
            created=opened.created,
        )
        vault.store.fold_note(rewritten)
        folded.append(rewritten)
        seq += 1
    return extended(vault, row, folded)


def extended(vault: Unlocked, row: ConsentRow, written: Sequence[NoteRow]) -> ConsentRow:
    """``row`` with ``written`` (numbered from :func:`next_seq` on) added to its notes
    chain, and its last activity moved to the newest of their dates. Unsigned: the caller
    commits the state."""
    state = states.extend_notes(state_of(row), chain_entries(written))
    dates = [d for d in [row.last_activity, *(n.date for n in written)] if d is not None]
    return dataclasses.replace(
        row,
        notes_count=state.notes_count,
        notes_hash=state.notes_hash,
        last_activity=max(dates, default=None),
    )


def notes_rewritten(vault: Unlocked, row: ConsentRow) -> ConsentRow:
    """``row`` after one of its notes was amended or deleted (vault.corrections): its chain
    folded again over the notes stored, its last activity the newest remaining note's
    date (a deleted note or an earlier date moves it back, and the deadline with it).
    Unsigned: the caller commits the state.

    Call :func:`check_notes` BEFORE changing the notes: folding over whatever the file
    holds would make a note deleted outside nok look intended.
    """
    stored = [(i, s, states.record_tag(t)) for i, s, t in vault.store.note_chain(row.id)]
    return dataclasses.replace(
        row,
        notes_hash=notes_hash(vault.vault_id, row, stored),
        last_activity=vault.store.latest_note_date(row.id),
    )


def first_deadline(vault: Unlocked, data: ConsentInput) -> str:
    """The retention deadline ``data`` would get if registered now (nothing is written).

    Raises:
        BadInput: see :func:`validate`.
    """
    checked = validate(data, vault.today())
    retain_days = checked.retain_days or vault.settings().retention_days
    return deadline(checked.given or vault.today(), None, retain_days)


def overdue(vault: Unlocked, consent_id: str) -> str | None:
    """The passed retention deadline of an active consent the purge has not erased yet
    (a note added now would keep it), else None.

    Raises:
        BadInput, NotFound, InactiveConsent: see :func:`get_active_row`.
    """
    row = get_active_row(vault.store, consent_id)
    return row.retain_until if row.retain_until < vault.today() else None
