"""The yearly report to Bufdir: what a center counts, kept in the vault (docs/report.md).

Three sources feed it:

* **events** (table ``report_events``): a contact no one registers (an anonymous phone
  call, a chat) or an activity with a head count. An anonymous one holds no personal data
  and is sealed under the team's report key; a contact logged under a consent is sealed
  under that consent's data key and erased with it. Each is recorded in the signed trail
  (``report.log``, ``report.delete``) with a digest of its sealed content, so a row removed,
  changed or put back from an older copy is seen (:func:`check_events`).
* **live consents**: a person's notes (kind ``phone`` a contact, the kinds met at the
  center a visit, ``outreach`` outreach; once per person per day) and the statistics
  profile she agreed to (:class:`Profile`, in the consent's sealed record).
* **totals** (table ``report_totals``): what erased consents contributed, by year, sealed
  to the admin key. An erasure does not move them at once: the consent's *share* (its
  contribution, sealed to the admin key by whoever last changed the consent, table
  ``report_shares``) is kept, recorded in the trail (``report.keep``), and folded into the
  totals by the next admin's report (:func:`fold`), after which nothing per person is
  left. A withdrawal as registered in error keeps nothing: it was never a real person's.

An admin counts everything (she opens every consent through the admins' wrap and the
totals); a staff member counts the anonymous events and the consents she may open, and
her report says it is partial. Only counts leave this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from vault import access, audit, consents, crypto, ids, keyring, notes, report_form, suppression
from vault.errors import BadInput, IntegrityError, NokError, NotFound
from vault.session import Unlocked

if TYPE_CHECKING:
    from vault.endings import Actor
    from vault.store import ConsentRow, Store

FORM = report_form.FORM
LOG = "report.log"
DELETE = "report.delete"
KEEP = "report.keep"
LOST = "report.lost"
FOLD = "report.fold"
PROFILE_ACTION = "consent.profile"
EVENTS_KEY = "report-events"
IN_ERROR = "registered-in-error"
NOT_ASKED = "not-asked"
DECLINED = "declined"
NO_CONSENT = "no-consent"
UNKNOWN = "unknown"
# A profile's JSON is padded to this many bytes, so every profile seals to the same length.
PROFILE_WIDTH = 512
MAX_PARTICIPANTS = 100_000
OUTREACH_KINDS = ("outreach", "teaching")
# Note kinds as the report counts them (docs/report.md has the table).
CONTACT_NOTE_KIND = "phone"
VISIT_NOTE_KINDS = ("one-to-one", "group", "next-of-kin", "open-house", "follow-up-plan")
OUTREACH_NOTE_KIND = "outreach"


class ReportRolledBack(IntegrityError):
    template = (
        "the report figures in the file are not the ones the signed audit trail records "
        "({what}): someone changed the file outside nok"
    )


@cache
def form(name: str = FORM) -> dict[str, Any]:
    """The year's registration form: its fields, values and labels (vault/forms/)."""
    text = resources.files("vault").joinpath("forms", f"{name}.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def choices(section: str) -> tuple[str, ...]:
    return tuple(form()[section])


def profile_fields() -> tuple[str, ...]:
    return tuple(form()["profile"])


def profile_values(field_name: str) -> tuple[str, ...]:
    return (*form()["profile"][field_name]["values"], NOT_ASKED, DECLINED)


def _check(value: str, allowed: Iterable[str], what: str) -> str:
    clean = value.strip().lower()
    allowed = tuple(allowed)
    if clean not in allowed:
        raise BadInput(
            "unknown {what} {value!r}; use one of: {choices}",
            what=what,
            value=value,
            choices=", ".join(allowed),
        )
    return clean


def _day(value: str | None, today: str) -> str:
    if value is None:
        return today
    try:
        parsed = dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise BadInput("{value!r} is not a date (YYYY-MM-DD)", value=value) from None
    if parsed > today:
        raise BadInput("the date {date} is in the future", date=parsed)
    return parsed


def _salt() -> str:
    # Inside the sealed content: the trail's digest of a contact cannot be guessed from
    # the few values a contact can have.
    return crypto.random_bytes(16).hex()


def _encode(value: Mapping[str, Any]) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return keyring.encode_record([text])


def _decode(plain: bytes, where: str) -> dict[str, Any]:
    (text,) = keyring.decode_record(plain, 1, where=where)
    try:
        value = json.loads(text)
    except ValueError:
        raise IntegrityError(where=where) from None
    if not isinstance(value, dict):
        raise IntegrityError(where=where)
    return value


def _content_digest(vault_id: str, what: str, name: str, plain: bytes) -> bytes:
    return crypto.digest(crypto.bind(what, vault_id, name, plain))


# -- events: contacts and activities ------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: str
    kind: str  # contact or activity
    date: str
    channel: str | None = None
    role: str | None = None
    new: str | None = None
    activity: str | None = None
    participants: int = 0
    audience: str | None = None
    consent_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if v is not None and not (k == "participants" and self.kind == "contact")
        }


def _event_ad(vault_id: str, event_id: str, consent_id: str | None, key_version: int) -> bytes:
    return crypto.bind("report-event", vault_id, event_id, consent_id or "", key_version)


def _event_key(vault: Unlocked, consent_id: str | None) -> tuple[bytes, int, ConsentRow | None]:
    if consent_id is None:
        return vault.vault_key(EVENTS_KEY), 0, None
    row = consents.get_active_row(vault.store, consent_id)
    key = access.open_key(vault, row, admin_ok=True)
    consents.check_state(vault, row, key)
    return key, row.key_version, row


def _store_event(vault: Unlocked, event: Event) -> Event:
    store = vault.store
    with store.write():
        key, version, row = _event_key(vault, event.consent_id)
        if row is not None:
            event = dataclasses.replace(event, date=max(event.date, row.given))
        event_id = ids.new_id(ids.EVENT_PREFIX)
        while store.report_event_id_exists(event_id):
            event_id = ids.new_id(ids.EVENT_PREFIX)
        event = dataclasses.replace(event, id=event_id)
        plain = _encode({**event.to_json(), "salt": _salt()})
        record = crypto.seal(
            key, plain, _event_ad(vault.vault_id, event_id, event.consent_id, version)
        )
        store.insert_report_event(event_id, event.consent_id, version, record)
        if row is not None:
            # The consent's share no longer counts everything: sealed again at the next
            # refresh (:func:`refresh_stale`).
            store.delete_report_share(row.id)
        vault.record(
            LOG,
            consent_id=event.consent_id,
            object_id=event_id,
            detail=event.kind,
            state=_content_digest(vault.vault_id, "report-event", event_id, plain),
        )
    return event


def log_contact(
    vault: Unlocked,
    *,
    channel: str,
    role: str = UNKNOWN,
    new: str = UNKNOWN,
    date: str | None = None,
    consent_id: str | None = None,
) -> Event:
    """Record one contact (form A). Anonymous unless ``consent_id`` names the person's
    consent: then only those who may open it can log it, and it goes with it.

    Raises BadInput (an unknown value, a bad or future date), NotFound, InactiveConsent,
    access.NoAccess, IntegrityError.
    """
    event = Event(
        id="",
        kind="contact",
        date=_day(date, vault.today()),
        channel=_check(channel, choices("channels"), "channel"),
        role=_check(role, choices("contact_roles"), "role"),
        new=_check(new, choices("new_returning"), "new or returning"),
        consent_id=(
            ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent") if consent_id else None
        ),
    )
    return _store_event(vault, event)


def log_activity(
    vault: Unlocked,
    *,
    kind: str,
    participants: int,
    audience: str | None = None,
    date: str | None = None,
) -> Event:
    """Record an activity at or by the center with its head count and no names (form B's
    activities; outreach and teaching for the center's own figures)."""
    activity = _check(kind, choices("activity_kinds"), "activity")
    if not 0 <= participants <= MAX_PARTICIPANTS:
        raise BadInput(
            "participants must be between 0 and {most}, not {n}",
            most=MAX_PARTICIPANTS,
            n=participants,
        )
    if audience is not None:
        audience = _check(audience, choices("audiences"), "audience")
    elif activity in OUTREACH_KINDS:
        audience = "other"
    event = Event(
        id="",
        kind="activity",
        date=_day(date, vault.today()),
        activity=activity,
        participants=participants,
        audience=audience,
    )
    return _store_event(vault, event)


def _open_event(
    vault: Unlocked, event_id: str, consent_id: str | None, version: int, record: bytes, key: bytes
) -> tuple[Event, bytes]:
    where = f"report entry {event_id}"
    plain = crypto.unseal(
        key, record, _event_ad(vault.vault_id, event_id, consent_id, version), where=where
    )
    value = _decode(plain, where)
    value.pop("salt", None)
    try:
        event = Event(**value)
    except TypeError:
        raise IntegrityError(where=where) from None
    if event.id != event_id or event.consent_id != consent_id:
        raise IntegrityError(where=where)
    return event, plain


def delete_event(vault: Unlocked, event_id: str) -> Event:
    """Delete a contact or activity logged by mistake; it leaves the figures.

    Raises BadInput, NotFound, access.NoAccess (one under a consent she cannot open).
    """
    canonical = ids.parse_id(event_id, ids.EVENT_PREFIX, "contact or activity")
    store = vault.store
    with store.write():
        found = [r for r in store.report_events() if r[0] == canonical]
        if not found:
            raise NotFound("no contact or activity {id}", id=canonical)
        _, consent_id, version, record = found[0]
        key, _, row = _event_key(vault, consent_id)
        event, _ = _open_event(vault, canonical, consent_id, version, record, key)
        store.delete_report_event(canonical)
        if row is not None:
            store.delete_report_share(row.id)
        vault.record(DELETE, consent_id=consent_id, object_id=canonical, detail=event.kind)
    return event


def rekey_events(
    store: Store, vault_id: str, consent_id: str, old: bytes, new: bytes, version: int
) -> None:
    """Seal a consent's contacts again under its new data key (vault.rotation.rekey_row)."""
    for event_id, _, at, record in store.report_events(consent_id):
        plain = crypto.unseal(
            old,
            record,
            _event_ad(vault_id, event_id, consent_id, at),
            where=f"report entry {event_id}",
        )
        store.delete_report_event(event_id)
        store.insert_report_event(
            event_id,
            consent_id,
            version,
            crypto.seal(new, plain, _event_ad(vault_id, event_id, consent_id, version)),
        )


def check_events(vault: Unlocked) -> list[Event]:
    """Every event this member can open, after checking the rows against the signed trail:
    each logged and not deleted is there with the content logged, and no other is.

    Raises ReportRolledBack.
    """
    store = vault.store
    live: dict[str, tuple[str | None, bytes | None]] = {}
    for entry in store.entries_of([LOG, DELETE]):
        if entry.object_id is None:
            continue
        if entry.action == LOG:
            live[entry.object_id] = (entry.consent_id, entry.state)
        else:
            live.pop(entry.object_id, None)
    rows = {r[0]: r for r in store.report_events()}
    planted = sorted(set(rows) - set(live))
    if planted:
        raise ReportRolledBack(what=f"{planted[0]} was not logged, or was deleted")
    out: list[Event] = []
    ended: dict[str, bool] = {}
    for event_id, (consent_id, digest) in live.items():
        if event_id not in rows:
            if consent_id is not None:
                if consent_id not in ended:
                    row = store.get_consent(consent_id)
                    ended[consent_id] = row is not None and row.status != consents.ACTIVE
                if ended[consent_id]:
                    continue
            raise ReportRolledBack(what=f"{event_id} is missing")
        _, cid, version, record = rows[event_id]
        if cid != consent_id:
            raise ReportRolledBack(what=f"{event_id} was moved")
        try:
            key, _, _ = _event_key(vault, consent_id)
        except access.NoAccess:
            continue
        event, plain = _open_event(vault, event_id, consent_id, version, record, key)
        if digest is None or not crypto.same(
            _content_digest(vault.vault_id, "report-event", event_id, plain), bytes(digest)
        ):
            raise ReportRolledBack(what=f"{event_id} was changed")
        out.append(event)
    return out


# -- the statistics profile ---------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What a person agreed to give the yearly user form (form C)."""

    agreed: str  # the day she consented to statistics
    given_by: str  # person, or guardian (under 16: as the consent itself was given)
    answers: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {"form": FORM, "agreed": self.agreed, "given_by": self.given_by, **self.answers}


def parse_profile(text: str | None) -> Profile | None:
    if not text:
        return None
    value = json.loads(text)
    answers = {f: str(value.get(f, NOT_ASKED)) for f in profile_fields()}
    return Profile(str(value["agreed"]), str(value["given_by"]), answers)


def _profile_text(profile: Profile) -> str:
    text = json.dumps(profile.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text + " " * max(0, PROFILE_WIDTH - len(text.encode("utf-8")))


def check_answers(answers: Mapping[str, str]) -> dict[str, str]:
    """Every field of the form, answered or ``not-asked``. Raises BadInput."""
    unknown = sorted(set(answers) - set(profile_fields()))
    if unknown:
        raise BadInput(
            "unknown profile field {field!r}; use one of: {choices}",
            field=unknown[0],
            choices=", ".join(profile_fields()),
        )
    return {
        f: _check(answers[f], profile_values(f), f) if f in answers else NOT_ASKED
        for f in profile_fields()
    }


def set_profile(
    vault: Unlocked,
    consent_id: str,
    answers: Mapping[str, str] | None,
    *,
    agreed: str | None = None,
) -> Profile | None:
    """Record (or, with ``answers`` None, remove) a consent's statistics profile.

    Raises BadInput, NotFound, InactiveConsent, access.NoAccess, IntegrityError.
    """
    store = vault.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        key = access.open_key(vault, row, admin_ok=True)
        consents.check_notes(vault, row, key)
        consent = consents.open_row(row, key)
        profile = None
        if answers is not None:
            profile = Profile(
                agreed=_day(agreed, vault.today()),
                given_by="guardian" if consent.under_16 else "person",
                answers=check_answers(answers),
            )
        record = consents.seal_record(
            key,
            dataclasses.replace(consent, report=_profile_text(profile) if profile else None),
            key_version=row.key_version,
        )
        consents.commit_state(
            vault,
            dataclasses.replace(row, record=record),
            key,
            PROFILE_ACTION,
            detail="set" if profile else "removed",
        )
    return profile


# -- a person's contribution --------------------------------------------------------------


def _first_per_day(items: Iterable[tuple[str, str, list[str]]]) -> list[list[str]]:
    """(date, created, values): the first of each day (Bufdir counts one a day)."""
    seen: dict[str, list[str]] = {}
    for date, _, values in sorted(items):
        seen.setdefault(date, [date, *values])
    return [seen[d] for d in sorted(seen)]


def facts(vault: Unlocked, row: ConsentRow, key: bytes) -> dict[str, Any]:
    """What one consent gives the report, from its record, notes and contacts."""
    consent = consents.open_row(row, key)
    profile = parse_profile(consent.report)
    role = profile.answers.get("role", UNKNOWN) if profile else UNKNOWN
    role = role if role in choices("contact_roles") else UNKNOWN
    new = profile.answers.get("new-returning", UNKNOWN) if profile else UNKNOWN
    new = new if new in choices("new_returning") else UNKNOWN
    contacts: list[tuple[str, str, list[str]]] = []
    visits: list[tuple[str, str, list[str]]] = []
    outreach: list[tuple[str, str, list[str]]] = []
    for n in vault.store.iter_notes_by_consent_id(row.id):
        note = notes.open_pending(vault, row, key, n) if n.pending else notes.open_record(key, n)
        if note.kind == CONTACT_NOTE_KIND:
            contacts.append((note.date, note.created, ["phone", role, new]))
        elif note.kind in VISIT_NOTE_KINDS:
            visits.append((note.date, note.created, [note.kind]))
        elif note.kind == OUTREACH_NOTE_KIND:
            outreach.append((note.date, note.created, []))
    for event_id, cid, version, record in vault.store.report_events(row.id):
        event, _ = _open_event(vault, event_id, cid, version, record, key)
        contacts.append(
            (event.date, event_id, [event.channel or "phone", event.role or role, event.new or new])
        )
    return {
        "salt": _salt(),
        "profile": profile.answers if profile else None,
        "profile_year": int(profile.agreed[:4]) if profile else None,
        "contacts": _first_per_day(contacts),
        "visits": _first_per_day(visits),
        "outreach": [d[0] for d in _first_per_day(outreach)],
    }


Cells = dict[str, Counter[str]]


def _add(into: dict[int, Cells], year: int, table: str, cell: str, n: int = 1) -> None:
    into.setdefault(year, defaultdict(Counter))[table][cell] += n


def person_cells(person: Mapping[str, Any]) -> dict[int, Cells]:
    """One person's counts, by year and table."""
    out: dict[int, Cells] = {}
    years: set[int] = set()
    for date, channel, role, new in person.get("contacts", []):
        y = int(date[:4])
        years.add(y)
        _add(out, y, "contacts_by_channel", channel)
        _add(out, y, "contacts_by_role", role)
        _add(out, y, "contacts_by_new", new)
        _add(out, y, "contacts_monthly", date[5:7])
    for date, kind in person.get("visits", []):
        y = int(date[:4])
        years.add(y)
        _add(out, y, "visits_by_kind", kind)
        _add(out, y, "visits_monthly", date[5:7])
    for date in person.get("outreach", []):
        _add(out, int(date[:4]), "outreach_events", "outreach")
    profile = person.get("profile")
    if profile and person.get("profile_year"):
        years.add(int(person["profile_year"]))
    for y in years:
        for f in profile_fields():
            _add(out, y, f"users_by_{f}", profile.get(f, NOT_ASKED) if profile else NO_CONSENT)
    return out


def event_cells(event: Event) -> dict[int, Cells]:
    out: dict[int, Cells] = {}
    y = int(event.date[:4])
    if event.kind == "contact":
        _add(out, y, "contacts_by_channel", event.channel or "phone")
        _add(out, y, "contacts_by_role", event.role or UNKNOWN)
        _add(out, y, "contacts_by_new", event.new or UNKNOWN)
        _add(out, y, "contacts_monthly", event.date[5:7])
    elif event.activity in OUTREACH_KINDS:
        _add(out, y, "outreach_events", event.activity)
        _add(out, y, "outreach_by_audience", event.audience or "other")
        _add(out, y, "outreach_participants", event.activity, event.participants)
    else:
        _add(out, y, "activities_by_kind", event.activity or "")
        _add(out, y, "participants_by_kind", event.activity or "", event.participants)
    return out


def _merge(into: dict[int, Cells], more: Mapping[int, Mapping[str, Mapping[str, int]]]) -> None:
    for y, tables in more.items():
        for table, cells in tables.items():
            for cell, n in cells.items():
                _add(into, int(y), table, cell, n)


# -- shares: a consent's contribution, kept for its erasure -------------------------------


def _share_ad(vault_id: str, consent_id: str, rev: int) -> bytes:
    return crypto.bind("report-share", vault_id, consent_id, rev)


def _share_message(
    vault_id: str, consent_id: str, rev: int, sealed: bytes, signer: str, epoch: int
) -> bytes:
    return crypto.bind(
        "report-share-signed", vault_id, consent_id, rev, crypto.digest(sealed), signer, epoch
    )


def _seal_share(vault: Unlocked, row: ConsentRow, person: Mapping[str, Any], *, kept: int) -> bytes:
    keys = vault.chain.current.keys
    sealed = crypto.seal_to(
        keys.admin, _encode(person), _share_ad(vault.vault_id, row.id, row.rev or 0)
    )
    epoch = vault.epoch.number
    vault.store.put_report_share(
        row.id,
        rev=row.rev or 0,
        admin_version=keys.admin_version,
        sealed=sealed,
        signer=vault.name,
        epoch=epoch,
        sig=vault.keys.sign(
            _share_message(vault.vault_id, row.id, row.rev or 0, sealed, vault.name, epoch)
        ),
        kept=kept,
    )
    return sealed


# At most this many shares are sealed again at one unlock: the first unlock of an
# imported or upgraded vault must not read every note; the admin's report does the rest.
REFRESH_AT_UNLOCK = 50


def refresh_stale(
    vault: Unlocked, *, limit: int | None = REFRESH_AT_UNLOCK, admin_ok: bool = False
) -> int:
    """Seal again, to the admin key and signed by this member, the share of every active
    consent she can open whose share is missing or older than its state (an unlock does
    it, vault.session.catch_up, for her own and team consents; an admin's report, with
    ``admin_ok``, for all). Returns how many.

    Writing a note stays one sealed record: the share of its consent is brought up to
    date at the next unlock of someone who may open it, so that the job, which cannot
    read, finds it current when it erases the consent after its retention period.
    A consent that does not check out keeps its stale share (its reads and verify report
    it; the job records its figures as lost).
    """
    store = vault.store
    if store.read_only:
        return 0
    readers = [r for r in access.my_readers(vault) if admin_ok or r != access.ADMIN_READER]
    # Looked up first: most unlocks find nothing and must not wait for the write lock.
    with store.read():
        stale = store.stale_report_shares(readers, limit)
    if not stale:
        return 0
    done = 0
    with store.write():
        for consent_id in stale:
            row = store.get_consent(consent_id)
            if row is None:
                continue
            try:
                key = access.open_key(vault, row, admin_ok=admin_ok)
                consents.check_notes(vault, row, key)
                _seal_share(vault, row, facts(vault, row, key), kept=0)
            except NokError:
                continue
            done += 1
    return done


def on_erase(store: Store, actor: Actor, row: ConsentRow, *, reason: str) -> None:
    """Keep what an erased consent contributed, without the person (vault.erasure calls
    it in the erasing transaction, before the consent's data goes).

    A withdrawal by a member who opens the consent seals its contribution afresh; the job,
    which cannot read, keeps the share the last change left if it is the one for the state
    it checked, signed by a staff member; else the contribution is lost, and recorded so
    (``report.lost``, shown in the report). Registered in error: nothing is kept.
    """
    if reason == IN_ERROR:
        store.delete_report_share(row.id)
        return
    sealed: bytes | None = None
    if isinstance(actor, Unlocked):
        try:
            key = access.open_key(actor, row, admin_ok=True)
        except access.NoAccess:
            key = None
        if key is not None:
            sealed = _seal_share(actor, row, facts(actor, row, key), kept=1)
    if sealed is None:
        sealed = _valid_share(store, actor, row)
        if sealed is not None:
            store.keep_report_share(row.id)
    if sealed is None:
        store.delete_report_share(row.id)
    audit.append(
        store,
        now=actor.now,
        signer=actor.signer(),
        action=KEEP if sealed is not None else LOST,
        consent_id=row.id,
        state=crypto.digest(sealed) if sealed is not None else None,
    )


def _valid_share(store: Store, actor: Actor, row: ConsentRow) -> bytes | None:
    found = store.report_share(row.id)
    if found is None:
        return None
    rev, admin_version, sealed, signer, epoch, sig, kept = found
    keys = actor.chain.current.keys
    if kept or rev != (row.rev or 0) or admin_version != keys.admin_version:
        return None
    public = actor.chain.signer_key(str(signer), int(epoch or 0))
    if public is None or not isinstance(sealed, bytes):
        return None
    message = _share_message(actor.vault_id, row.id, rev, sealed, str(signer), int(epoch or 0))
    if not crypto.verify(public, message, sig):
        return None
    member = actor.chain.at(int(epoch or 0))
    # Only a staff member could have read the consent to compute it; the job's own key
    # signs no share.
    if member is None or str(signer) not in member.staff:
        return None
    return sealed


# -- totals: what erased consents gave, folded by an admin --------------------------------


def _totals_ad(vault_id: str, version: int) -> bytes:
    return crypto.bind("report-totals", vault_id, version)


def _load_totals(vault: Unlocked) -> dict[str, Any]:
    """The totals the newest ``report.fold`` entry names (admins). Raises ReportRolledBack."""
    assert vault.admin is not None
    folds = vault.store.entries_of([FOLD])
    stored = vault.store.report_totals()
    if not folds:
        if stored is not None:
            raise ReportRolledBack(what="totals no fold recorded")
        return {"through": 0, "years": {}}
    newest = folds[-1]
    if (
        stored is None
        or newest.state is None
        or not crypto.same(crypto.digest(stored[1]), bytes(newest.state))
    ):
        raise ReportRolledBack(what="the yearly totals")
    version, sealed = stored
    plain = crypto.open_sealed(
        vault.admin.box_secret, sealed, _totals_ad(vault.vault_id, version), where="report totals"
    )
    return _decode(plain, "report totals")


def _put_totals(vault: Unlocked, totals: Mapping[str, Any]) -> None:
    keys = vault.chain.current.keys
    sealed = crypto.seal_to(
        keys.admin,
        _encode({**totals, "salt": _salt()}),
        _totals_ad(vault.vault_id, keys.admin_version),
    )
    vault.store.put_report_totals(keys.admin_version, sealed)
    vault.record(FOLD, state=crypto.digest(sealed))


def _erased_years(vault: Unlocked, seed: Any) -> tuple[dict[int, Cells], list[str]]:
    """The totals plus every kept share not yet folded in, by year; and those shares'
    consent ids (admins: ``seed`` opens them).

    Raises ReportRolledBack (totals, or a kept share, removed, changed or planted).
    """
    store = vault.store
    current = vault.admin
    vault.admin = seed
    try:
        totals = _load_totals(vault)
    finally:
        vault.admin = current
    through = int(totals.get("through", 0))
    expected = {
        e.consent_id: e.state
        for e in store.entries_of([KEEP])
        if e.seq > through and e.consent_id is not None
    }
    kept = {c: s for c, _, s in store.kept_report_shares()}
    if set(kept) != set(expected):
        odd = sorted(set(kept) ^ set(expected))[0]
        raise ReportRolledBack(what=f"the kept share of {odd}")
    years: dict[int, Cells] = {}
    _merge(years, {int(y): t for y, t in totals.get("years", {}).items()})
    for consent_id, sealed in kept.items():
        digest = expected[consent_id]
        if digest is None or not crypto.same(crypto.digest(sealed), bytes(digest)):
            raise ReportRolledBack(what=f"the kept share of {consent_id}")
        found = store.report_share(consent_id)
        assert found is not None
        plain = crypto.open_sealed(
            seed.box_secret,
            sealed,
            _share_ad(vault.vault_id, consent_id, int(found[0])),
            where=f"report share of {consent_id}",
        )
        _merge(years, person_cells(_decode(plain, f"report share of {consent_id}")))
    return years, sorted(kept)


def fold(vault: Unlocked, *, admin: Any = None) -> int:
    """Add the kept shares of erased consents to the sealed yearly totals and delete them
    (admins; ``admin``: the admin seed to open them with, during a rotation). Returns how
    many were folded.

    Raises NotAllowed, ReportRolledBack (a kept share removed, changed or planted).
    """
    seed = admin or vault.admin_seed("nok stats")
    store = vault.store
    with store.write():
        years, kept = _erased_years(vault, seed)
        if not kept:
            return 0
        for consent_id in kept:
            store.delete_report_share(consent_id)
        last = store.last_audit()
        _put_totals(
            vault,
            {
                "through": last.seq if last is not None else 0,
                "years": {
                    str(y): {t: dict(c) for t, c in tables.items()} for y, tables in years.items()
                },
            },
        )
    return len(kept)


def rotate_admin(vault: Unlocked, old: Any) -> None:
    """After a new admin seed (vault.rotation.new_seeds): fold what is kept with the old
    seed, then seal the live shares and the totals again to the new admin key."""
    store = vault.store
    fold(vault, admin=old)
    keys = vault.chain.current.keys
    for consent_id, version, sealed in store.all_report_shares():
        if version == keys.admin_version:
            continue
        found = store.report_share(consent_id)
        assert found is not None
        rev = int(found[0])
        plain = crypto.open_sealed(
            old.box_secret,
            sealed,
            _share_ad(vault.vault_id, consent_id, rev),
            where=f"report share of {consent_id}",
        )
        fresh = crypto.seal_to(keys.admin, plain, _share_ad(vault.vault_id, consent_id, rev))
        epoch = vault.epoch.number
        store.put_report_share(
            consent_id,
            rev=rev,
            admin_version=keys.admin_version,
            sealed=fresh,
            signer=vault.name,
            epoch=epoch,
            sig=vault.keys.sign(
                _share_message(vault.vault_id, consent_id, rev, fresh, vault.name, epoch)
            ),
            kept=0,
        )
    stored = store.report_totals()
    # The fold above may have sealed them to the new key already.
    if stored is not None and stored[0] != keys.admin_version:
        plain = crypto.open_sealed(
            old.box_secret, stored[1], _totals_ad(vault.vault_id, stored[0]), where="report totals"
        )
        _put_totals(vault, _decode(plain, "report totals"))


# -- the year's tables --------------------------------------------------------------------


def _table_cells(name: str) -> tuple[str, ...]:
    f = form()
    if name.startswith("users_by_"):
        field_name = name.removeprefix("users_by_")
        return (*f["profile"][field_name]["values"], NOT_ASKED, DECLINED, NO_CONSENT)
    months = tuple(f"{m:02d}" for m in range(1, 13))
    outreach = tuple(k for k in f["activity_kinds"] if k in OUTREACH_KINDS)
    activities = tuple(k for k in f["activity_kinds"] if k not in OUTREACH_KINDS)
    return {
        "contacts_by_channel": tuple(f["channels"]),
        "contacts_by_role": tuple(f["contact_roles"]),
        "contacts_by_new": tuple(f["new_returning"]),
        "contacts_monthly": months,
        "visits_by_kind": tuple(f["visit_kinds"]),
        "visits_monthly": months,
        "activities_by_kind": activities,
        "participants_by_kind": activities,
        "outreach_events": outreach,
        "outreach_by_audience": tuple(f["audiences"]),
        "outreach_participants": outreach,
    }[name]


# Tables in report order, each with the group of tables that share its total.
TABLES: tuple[tuple[str, str], ...] = (
    ("contacts_by_channel", "contacts"),
    ("contacts_by_role", "contacts"),
    ("contacts_by_new", "contacts"),
    ("contacts_monthly", "contacts"),
    ("visits_by_kind", "visits"),
    ("visits_monthly", "visits"),
    ("activities_by_kind", "activities"),
    ("participants_by_kind", "participants"),
    *((f"users_by_{f}", "users") for f in form()["profile"]),
    ("outreach_events", "outreach"),
    ("outreach_by_audience", "outreach-audience"),
    ("outreach_participants", "outreach-participants"),
)


@dataclass(frozen=True)
class Report:
    """One year's tables, exact; :meth:`shown` protects small counts."""

    year: int
    full: bool
    tables: dict[str, suppression.Table]
    staff_count: int | None
    staff_fte: str | None
    lost: int

    def shown(self, *, exact: bool = False) -> dict[str, object]:
        tables = suppression.exact(self.tables) if exact else suppression.protect(self.tables)
        return {
            "form": FORM,
            "scope": "full" if self.full else "partial",
            **tables,
            "staff": {"count": self.staff_count, "fte": self.staff_fte},
            "erased_without_figures": self.lost,
        }


def year_report(vault: Unlocked, year: int) -> Report:
    """The year's tables: an admin's count everything (after folding what erasures
    kept), a staff member's what she may open and the anonymous events.

    Raises ReportRolledBack, IntegrityError (a consent's state or notes altered).
    """
    full = vault.admin is not None and vault.role == "admin"
    if not vault.store.read_only:
        refresh_stale(vault, limit=None, admin_ok=full)
        if full:
            fold(vault)
    store = vault.store
    years: dict[int, Cells] = {}
    with store.read():
        for event in check_events(vault):
            if event.consent_id is None:
                _merge(years, event_cells(event))
        for row in store.iter_consents(include_ended=False):
            try:
                key = access.open_key(vault, row, admin_ok=full)
            except access.NoAccess:
                continue
            consents.check_notes(vault, row, key)
            _merge(years, person_cells(facts(vault, row, key)))
        if full:
            # Folded above; in a read-only copy, what is kept is counted without folding.
            _merge(years, _erased_years(vault, vault.admin)[0])
        lost = len(store.entries_of([LOST]))
    counted = years.get(year, {})
    tables = {
        name: suppression.Table(
            {cell: int(counted.get(name, Counter()).get(cell, 0)) for cell in _table_cells(name)},
            group,
        )
        for name, group in TABLES
    }
    settings = vault.chain.current.settings
    count = settings.get("staff_count")
    fte = settings.get("staff_fte")
    return Report(
        year=year,
        full=full,
        tables=tables,
        staff_count=int(count) if count is not None else None,
        staff_fte=str(fte) if fte is not None else None,
        lost=lost,
    )


def title(table: str, language: str) -> str:
    """A table's heading in ``language`` (en or nb), from the form."""
    return str(form()["tables"][table][language])


def label(table: str, cell: str, language: str) -> str:
    """A cell's label in ``language``, from the form."""
    f = form()
    if table.startswith("users_by_"):
        values = f["profile"][table.removeprefix("users_by_")]["values"]
        found = values.get(cell) or f["answers"].get(cell)
    elif table.endswith("_monthly"):
        found = f["months"].get(cell)
    else:
        section = {
            "contacts_by_channel": "channels",
            "contacts_by_role": "contact_roles",
            "contacts_by_new": "new_returning",
            "visits_by_kind": "visit_kinds",
            "outreach_by_audience": "audiences",
        }.get(table, "activity_kinds")
        found = f[section].get(cell)
    return str(found[language]) if found else cell
