"""Consent declarations: the root every personal record hangs off.

A consent records the person's alias, the purpose and data categories it covers, who gave
it (the person, or a guardian for a child under 16), and a reference to the signed form.
All of that is encrypted with the consent's own data key. Only its id, status, dates and
retention deadline are stored in plaintext, so the keyless purge can find what is due.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

from vault import crypto, ids, keyring
from vault.dates import add_days, day, parse_day, timestamp
from vault.errors import BadInput, InactiveConsent, NotFound
from vault.session import Unlocked, check_retention_days
from vault.store import ConsentRow, Store

TABLE = "consents"
ACTIVE = "active"
MAX_SUBJECT = 200
MAX_PURPOSE = 2000
MAX_CATEGORY = 100
PAD_BYTES = 64
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
            "created": self.created,
            "ended": self.ended,
            "end_reason": self.end_reason,
            "ended_by": self.ended_by,
        }


def _padded(value: str | None) -> str:
    """``value`` (or nothing) padded with spaces to a multiple of PAD_BYTES bytes.

    A ciphertext is as long as its plaintext: unpadded, the file would show which consents
    name a guardian (a child under 16) or a form. Values are stripped, so reading strips.
    """
    text = value or ""
    size = len(text.encode("utf-8"))
    target = max(PAD_BYTES, -(-size // PAD_BYTES) * PAD_BYTES)
    return text + " " * (target - size)


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


def build_row(
    vault: Unlocked, data: ConsentInput, consent_id: str, data_key: bytes, now: dt.datetime
) -> ConsentRow:
    """Encrypt a validated consent into a row (no database access)."""
    retain_days = data.retain_days or vault.vault.settings().retention_days
    given = data.given or day(now)
    version = 1

    def seal(column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return keyring.seal_text(
            data_key,
            value,
            table=TABLE,
            column=column,
            row_id=consent_id,
            consent_id=consent_id,
            key_version=version,
        )

    return ConsentRow(
        id=consent_id,
        status=ACTIVE,
        given=given,
        created=timestamp(now),
        last_activity=None,
        retain_days=data.retain_days,
        retain_until=deadline(given, None, retain_days),
        ended=None,
        end_reason=None,
        ended_by=None,
        master_version=vault.master_version,
        key_version=version,
        data_key=keyring.wrap_data_key(
            vault.master, data_key, consent_id=consent_id, master_version=vault.master_version
        ),
        subject=seal("subject", data.subject),
        purpose=seal("purpose", data.purpose),
        categories=seal("categories", json.dumps(list(data.categories), ensure_ascii=False)),
        under_16=seal("under_16", json.dumps(data.under_16).ljust(5)),
        guardian=seal("guardian", _padded(data.guardian)),
        form_ref=seal("form_ref", _padded(data.form_ref)),
        recorded_by=seal("recorded_by", vault.name),
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
    """Raises IntegrityError or UnsupportedVersion when a field was altered or moved."""
    if row.status != ACTIVE or row.data_key is None:
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
    key = vault.data_key(row)

    def open_(column: str, blob: bytes | None) -> str:
        return keyring.open_text(
            key,
            blob,
            table=TABLE,
            column=column,
            row_id=row.id,
            consent_id=row.id,
            key_version=row.key_version,
        )

    categories = open_("categories", row.categories)
    under_16 = open_("under_16", row.under_16)
    return Consent(
        id=row.id,
        status=row.status,
        given=row.given,
        created=row.created,
        retain_until=row.retain_until,
        retain_days=row.retain_days,
        subject=open_("subject", row.subject),
        purpose=open_("purpose", row.purpose),
        categories=tuple(json.loads(categories)),
        under_16=bool(json.loads(under_16)),
        guardian=open_("guardian", row.guardian).strip() or None,
        form_ref=open_("form_ref", row.form_ref).strip() or None,
        recorded_by=open_("recorded_by", row.recorded_by),
        ended=row.ended,
        end_reason=row.end_reason,
        ended_by=row.ended_by,
    )


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
    """Active consents (and tombstones with ``include_ended``), oldest first."""
    store = vault.store
    with store.write():
        vault.record("consent.list")
    for row in store.iter_consents(include_ended=include_ended):
        yield decrypt(vault, row)


def touch(vault: Unlocked, row: ConsentRow, activity_day: str) -> None:
    """Move the retention deadline after a new note (inside the caller's transaction)."""
    last = max(row.last_activity or activity_day, activity_day)
    retain_days = row.retain_days or vault.vault.settings().retention_days
    vault.store.update_consent_retention(
        row.id, last_activity=last, retain_until=deadline(row.given, last, retain_days)
    )


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
