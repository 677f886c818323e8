"""Correcting the record (GDPR Art. 16 and 17): amend or delete one note, amend a consent.

The old content goes as irreversibly as a withdrawal takes a consent's: the sealed record
is rewritten or deleted in place with ``secure_delete`` on (SQLite zeroes the freed cells and
overflow pages), and after the commit the WAL is checkpointed and truncated by
:func:`vault.erasure.checkpoint`, so no old page image stays in ``-wal``. The data key
stays (the rest of the consent still needs it), so unlike a withdrawal this is not
crypto-shredding: a copy of the file made before the change (a backup) still holds the old
ciphertext and opens with the live keys. docs/erasure.md says what that means.

An amended note keeps its id and records when and by whom it was amended; a deleted note
leaves a tombstone with its id, consent, time, fixed reason and who deleted it, and no
content. A consent's purpose and data categories are what the person signed: they are not
amended here, a changed purpose needs a new signed consent.

Each change is one write transaction with its audit entry (``note.amend``, ``note.delete``,
``consent.amend``) and a new signed state of the consent. A note's change checks the
consent's notes chain first and covers the notes as they now are after
(consents.notes_rewritten), so a correction through nok never looks like tampering while a
note removed outside nok still does. Only the note's author or an admin may amend or
delete a note. The amendment mark and the note's tombstone are signed by who made them.

Corrections stick: a consent put back from a copy taken before a correction holds an
older state than the signed trail records. :func:`reapply`, run at every unlock for the
consents the staff member can open, applies such corrections again (a deleted note is
deleted again, an amended note whose corrected text was lost is erased, a consent's
corrected fields are erased) and reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vault import access, consents, crypto, erasure, notes, states
from vault.consents import Consent, ConsentInput
from vault.dates import timestamp
from vault.errors import BadInput, Conflict, IntegrityError, NotAllowed
from vault.notes import Note
from vault.session import Unlocked
from vault.store import AmendmentRow, ConsentRow, NoteRow, NoteTombstoneRow, Store

# Fixed reasons only: free text in a tombstone could carry the personal data it must not.
NOTE_DELETE_REASONS = ("wrong-person", "person-asked", "mistake")
# What nok itself gives as the reason when it deletes a note again (vault.corrections.reapply).
ROLLED_BACK = "rolled-back"
CORRECTION_ACTIONS = ("note.amend", "note.delete", "consent.amend")
# What `nok consent amend` may change; the rest of a declaration is what the person signed.
AMENDABLE_CONSENT_FIELDS = ("subject", "form_ref", "guardian")


class NeedsNewConsent(BadInput):
    """A change to what the person agreed to: it needs their signature on a new consent."""

    template = (
        "the {field} of a consent is what the person signed; it cannot be amended, "
        "nothing was changed"
    )
    hint_template = (
        "register a new consent with 'nok consent add' once the person has signed a new "
        "form, and withdraw this one if it no longer applies"
    )


@dataclass(frozen=True)
class NoteAmendment:
    """A note after its amendment, and whether the WAL could be wiped at once."""

    note: Note
    retain_until: str
    wal_clean: bool


@dataclass(frozen=True)
class NoteDeletion:
    note_id: str
    consent_id: str
    deleted: str
    reason: str
    retain_until: str
    wal_clean: bool


@dataclass(frozen=True)
class NoteTombstone:
    """What the person's export shows of a deleted note."""

    id: str
    consent_id: str
    deleted: str
    reason: str
    deleted_by: str

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "consent_id": self.consent_id,
            "deleted": self.deleted,
            "reason": self.reason,
            "deleted_by": self.deleted_by,
        }


@dataclass(frozen=True)
class ConsentAmendment:
    consent: Consent
    changed: tuple[str, ...]
    wal_clean: bool


def check_note_reason(reason: str) -> str:
    """Raises BadInput for a reason not in NOTE_DELETE_REASONS."""
    clean = reason.strip().lower()
    if clean not in NOTE_DELETE_REASONS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=reason,
            choices=", ".join(NOTE_DELETE_REASONS),
        )
    return clean


def check_may_change(vault: Unlocked, note: Note) -> None:
    """Raises NotAllowed unless this staff member wrote the note or is an admin."""
    if note.author != vault.name and vault.role != "admin":
        raise NotAllowed(
            name=vault.name,
            role=vault.role,
            needed="admin",
            action="changing a note another staff member wrote",
        )


# -- notes ------------------------------------------------------------------------------


def amend_note(
    vault: Unlocked,
    note_id: str,
    *,
    text: str | None = None,
    kind: str | None = None,
    date: str | None = None,
) -> NoteAmendment:
    """Replace a note's text, kind and/or date; the old ones are erased, the id stays.

    ``None`` keeps a field as it is. The caller decides about a text over the guideline
    (see :func:`vault.notes.check_length`); this only enforces the hard limit.

    Raises:
        BadInput: a malformed id, an empty or too-long text, an unknown kind, a bad or
            future date, or nothing that would change.
        NotFound: no such note (or it was deleted). InactiveConsent: its consent ended.
        NotAllowed: neither its author nor an admin.
        IntegrityError: the stored note was altered. VaultBusy, StorageError: nothing changed.
    """
    if text is not None:
        notes.check_length(vault, text)
        text = text.strip()
    if kind is not None:
        kind = notes.check_kind(kind)
    store = vault.store
    with store.write():
        row = notes.get_row(store, note_id)
        consent_row = consents.get_active_row(store, row.consent_id)
        key = access.open_key(vault, consent_row, admin_ok=vault.admin is not None)
        # Before anything changes: sealing over a note removed outside nok would hide that.
        consents.check_notes(vault, consent_row, key)
        consent_row = consents.fold_pending(vault, consent_row, key)
        row = notes.get_row(store, note_id)
        old = notes.open_record(key, row)
        check_may_change(vault, old)
        new_date = old.date
        if date is not None:
            new_date = notes.check_date(date, given=consent_row.given, today=vault.today())
        new = replace(old, text=text or old.text, kind=kind or old.kind, date=new_date)
        if (new.text, new.kind, new.date) == (old.text, old.kind, old.date):
            raise BadInput("the note would not change; nothing was saved")
        _rewrite_note(key, vault, consent_row, row, new)
        amended = _signed_amendment(vault, AmendmentRow(old.id, timestamp(vault.now), vault.name))
        store.set_note_amendment(amended)
        moved = consents.commit_state(
            vault, consents.notes_rewritten(vault, consent_row), key, "note.amend", object_id=old.id
        )
    note = replace(new, amended=amended.amended, amended_by=amended.amended_by)
    return NoteAmendment(note, moved.retain_until, erasure.checkpoint(store))


def _signed_amendment(vault: Unlocked, row: AmendmentRow) -> AmendmentRow:
    digest = crypto.digest(
        crypto.bind("note-amended", vault.vault_id, row.note_id, row.amended, row.amended_by)
    )
    sig = vault.keys.sign(states.signed_message(digest, vault.name, vault.epoch.number))
    return replace(row, epoch=vault.epoch.number, sig=sig)


def _signed_tombstone(vault: Unlocked, row: NoteTombstoneRow) -> NoteTombstoneRow:
    digest = crypto.digest(
        crypto.bind(
            "note-deleted",
            vault.vault_id,
            row.id,
            row.consent_id,
            row.deleted,
            row.reason,
            row.deleted_by,
        )
    )
    sig = vault.keys.sign(states.signed_message(digest, vault.name, vault.epoch.number))
    return replace(row, epoch=vault.epoch.number, sig=sig)


def delete_note(vault: Unlocked, note_id: str, *, reason: str) -> NoteDeletion:
    """Erase one note for good, leaving a tombstone without content.

    Raises:
        BadInput: a malformed id or an unknown reason.
        NotFound: no such note (or it was already deleted).
        NotAllowed: neither its author nor an admin.
        IntegrityError: the stored note was altered. VaultBusy, StorageError: nothing changed.
    """
    reason = check_note_reason(reason)
    store = vault.store
    with store.write():
        row = notes.get_row(store, note_id)
        consent_row = consents.get_active_row(store, row.consent_id)
        key = access.open_key(vault, consent_row, admin_ok=vault.admin is not None)
        consents.check_notes(vault, consent_row, key)
        consent_row = consents.fold_pending(vault, consent_row, key)
        row = notes.get_row(store, note_id)
        check_may_change(vault, notes.open_record(key, row))
        moved = _delete(vault, consent_row, key, row.id, reason)
    return NoteDeletion(
        row.id, row.consent_id, moved[1], reason, moved[0].retain_until, erasure.checkpoint(store)
    )


def _delete(
    vault: Unlocked, consent_row: ConsentRow, key: bytes, note_id: str, reason: str
) -> tuple[ConsentRow, str]:
    """Delete one note with a signed tombstone and commit the consent's new state (inside
    the caller's transaction). Returns the stored row and the deletion's time."""
    deleted = timestamp(vault.now)
    tombstone = NoteTombstoneRow(note_id, consent_row.id, deleted, reason, vault.name)
    vault.store.delete_note(note_id, _signed_tombstone(vault, tombstone))
    moved = consents.commit_state(
        vault,
        consents.notes_rewritten(vault, consent_row),
        key,
        "note.delete",
        object_id=note_id,
        detail=reason,
    )
    return moved, deleted


def note_tombstones(store: Store, consent_id: str) -> list[NoteTombstone]:
    """The tombstones of notes deleted under ``consent_id``, oldest deletion first."""
    return [
        NoteTombstone(t.id, t.consent_id, t.deleted, t.reason, t.deleted_by)
        for t in store.note_tombstones(consent_id)
    ]


def with_amendments(store: Store, consent_id: str, held: list[Note]) -> list[Note]:
    """``held`` (notes under ``consent_id``) with when and by whom each was amended."""
    amended = store.note_amendments(consent_id)
    return [
        replace(n, amended=a.amended, amended_by=a.amended_by)
        if (a := amended.get(n.id)) is not None
        else n
        for n in held
    ]


def _rewrite_note(
    key: bytes, vault: Unlocked, consent_row: ConsentRow, row: NoteRow, note: Note
) -> None:
    """Seal ``note`` again over ``row``'s old record (same id, created time and place in its
    consent's notes chain) under the consent's current key."""
    version = consent_row.key_version
    record = notes.seal_record(key, note, key_version=version)
    vault.store.replace_note(replace(row, date=note.date, key_version=version, record=record))


# -- consents ---------------------------------------------------------------------------


def check_consent_changes(
    *,
    subject: str | None,
    form_ref: str | None,
    guardian: str | None,
    purpose: str | None,
    categories: tuple[str, ...] | None,
) -> None:
    """Raises NeedsNewConsent for a purpose or categories, BadInput when nothing is given."""
    if purpose is not None:
        raise NeedsNewConsent(field="purpose")
    if categories is not None:
        raise NeedsNewConsent(field="data categories")
    if subject is None and form_ref is None and guardian is None:
        raise BadInput("nothing to amend: give --subject, --form-ref or --guardian")


def amend_consent(
    vault: Unlocked,
    consent_id: str,
    *,
    subject: str | None = None,
    form_ref: str | None = None,
    guardian: str | None = None,
    purpose: str | None = None,
    categories: tuple[str, ...] | None = None,
) -> ConsentAmendment:
    """Correct a consent's alias, form reference or guardian; the old values are erased.

    ``None`` keeps a field; an empty ``form_ref`` removes it. A guardian cannot be removed
    from a consent for a child under 16. ``purpose`` and ``categories`` are refused
    whatever they say: they are what the person signed.

    Raises:
        NeedsNewConsent: a purpose or data categories were given.
        BadInput: nothing to change, or a value :func:`vault.consents.validate` refuses.
        NotFound: no such consent. Conflict: it was withdrawn or expired.
        IntegrityError: the stored consent was altered. VaultBusy, StorageError.
    """
    check_consent_changes(
        subject=subject,
        form_ref=form_ref,
        guardian=guardian,
        purpose=purpose,
        categories=categories,
    )
    store = vault.store
    with store.write():
        row = consents.get_row(store, consent_id)
        if row.status != consents.ACTIVE:
            raise Conflict(
                "consent {id} is {status}: its personal data was erased and cannot be "
                "amended; nothing was changed",
                id=row.id,
                status=row.status,
            )
        key = access.open_key(vault, row, admin_ok=vault.admin is not None)
        consents.check_state(vault, row, key)
        old = consents.open_row(row, key)
        wanted = _amended_input(old, subject=subject, form_ref=form_ref, guardian=guardian)
        clean = consents.validate(wanted, vault.today())
        changed = tuple(f for f in AMENDABLE_CONSENT_FIELDS if getattr(clean, f) != getattr(old, f))
        if not changed:
            raise BadInput("the consent would not change; nothing was saved")
        updated = replace(old, **{f: getattr(clean, f) for f in changed})
        record = consents.seal_record(key, updated, key_version=row.key_version)
        consents.commit_state(
            vault, replace(row, record=record), key, "consent.amend", detail=",".join(changed)
        )
    return ConsentAmendment(updated, changed, erasure.checkpoint(store))


def _amended_input(
    old: Consent, *, subject: str | None, form_ref: str | None, guardian: str | None
) -> ConsentInput:
    return ConsentInput(
        subject=(old.subject or "") if subject is None else subject,
        purpose=old.purpose or "",
        categories=old.categories or (),
        under_16=bool(old.under_16),
        guardian=old.guardian if guardian is None else guardian,
        form_ref=old.form_ref if form_ref is None else form_ref,
        retain_days=old.retain_days,
        given=old.given,
    )


# -- corrections that stick ------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """A correction applied again to a consent put back from an older copy: what was done
    (``deleted-again``, ``erased-text``, ``erased-fields``) and what was lost (``lost``:
    notes written after the copy, which cannot come back)."""

    consent_id: str
    done: tuple[str, ...]
    lost: tuple[str, ...] = ()


def reapply(vault: Unlocked) -> list[Repair]:
    """Apply again every correction the signed trail records for a consent this member
    can open whose stored state is older than the trail says (a rolled-back correction).
    Reports notes the trail records as written since that are gone. Recorded as
    corrections by this member; nothing else is touched.

    Raises VaultBusy, StorageError.
    """
    store = vault.store
    with store.read():
        stale = store.stale_consents(CORRECTION_ACTIONS)
    repairs = []
    for consent_id, rev in stale:
        repair = _repair(vault, consent_id, rev)
        if repair is not None:
            repairs.append(repair)
    if repairs:
        erasure.checkpoint(store)
    return repairs


def _repair(vault: Unlocked, consent_id: str, rev: int) -> Repair | None:
    from vault import audit

    store = vault.store
    with store.write():
        row = store.get_consent(consent_id)
        if row is None or row.status != consents.ACTIVE:
            return None
        try:
            key = access.open_key(vault, row, admin_ok=vault.admin is not None)
        except (access.NoAccess, IntegrityError):
            return None
        later = [
            e
            for e in store.state_entries_after(consent_id, rev)
            if audit.entry_signed(store, vault.chain, e)
        ]
        if not later:
            return None
        done: list[str] = []
        lost: list[str] = []
        present = {n.id for n in store.iter_notes_by_consent_id(consent_id)}
        fields: set[str] = set()
        for entry in later:
            target = entry.object_id or ""
            if entry.action == "note.delete" and target in present:
                done.append(f"deleted-again:{target}")
                present.discard(target)
                store.delete_note(
                    target,
                    _signed_tombstone(
                        vault,
                        NoteTombstoneRow(
                            target, consent_id, timestamp(vault.now), ROLLED_BACK, vault.name
                        ),
                    ),
                )
            elif entry.action == "note.amend" and target in present:
                done.append(f"erased-text:{target}")
                present.discard(target)
                store.delete_note(
                    target,
                    _signed_tombstone(
                        vault,
                        NoteTombstoneRow(
                            target, consent_id, timestamp(vault.now), ROLLED_BACK, vault.name
                        ),
                    ),
                )
            elif entry.action == "consent.amend":
                fields |= {
                    f for f in (entry.detail or "").split(",") if f in AMENDABLE_CONSENT_FIELDS
                }
            elif entry.action == "note.add" and target not in present:
                lost.append(target)
        if fields:
            old = consents.open_row(row, key)
            blank = replace(
                old,
                subject="" if "subject" in fields else old.subject,
                form_ref=None if "form_ref" in fields else old.form_ref,
                guardian=None if "guardian" in fields else old.guardian,
            )
            row = replace(row, record=consents.seal_record(key, blank, key_version=row.key_version))
            done.append("erased-fields:" + ",".join(sorted(fields)))
        newest = max(e.rev or 0 for e in later)
        rewritten = consents.notes_rewritten(vault, replace(row, rev=newest))
        consents.commit_state(
            vault, rewritten, key, "consent.corrections-again", detail=str(len(done))
        )
    return Repair(consent_id, tuple(done), tuple(lost))
