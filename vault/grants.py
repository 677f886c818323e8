"""Giving and taking back access to one consent (need-to-know, vault.access).

A grant wraps the consent's data key to the colleague's box key and names her among the
consent's readers in a new signed state, by someone who can open it (its contact person
or an admin), with a fixed reason code. Revoking takes her off and gives the consent a new
data key (vault.rotation.rekey), so a copy of her wrap taken before opens nothing written
after; what she could read before stays readable in copies she already had. A grant
``until`` a day is refused by nok from the day after; the next keyed command by the
contact person or an admin completes it by re-keying (:func:`expire`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vault import access, consents, crypto, rotation, states
from vault.dates import parse_day
from vault.errors import BadInput, Conflict, NotAllowed
from vault.session import Unlocked
from vault.store import ConsentRow


@dataclass(frozen=True)
class Grant:
    consent_id: str
    name: str
    until: str | None
    reason: str


@dataclass(frozen=True)
class AccessRow:
    """Who may read one consent (no personal data: ids, staff names, days)."""

    consent_id: str
    status: str
    contact: str | None
    access: str | None
    readers: tuple[states.Reader, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "consent_id": self.consent_id,
            "status": self.status,
            "contact": self.contact,
            "access": self.access,
            "readers": [{"name": r.name, "until": r.until} for r in self.readers],
        }


def _may_manage(unlocked: Unlocked, row: ConsentRow, what: str) -> bytes:
    """The consent's data key, for its contact person or an admin.

    Raises NotAllowed for anyone else.
    """
    if row.contact != unlocked.name and unlocked.admin is None:
        raise NotAllowed(
            "only the contact person of consent {id} ({contact}) or an admin may {what}",
            id=row.id,
            contact=row.contact or "?",
            what=what,
        )
    key = access.open_key(unlocked, row, admin_ok=True)
    consents.check_state(unlocked, row, key)
    return key


def grant(
    unlocked: Unlocked, consent_id: str, name: str, *, reason: str, until: str | None = None
) -> Grant:
    """Give ``name`` access to one consent, until a day (inclusive) or for good.

    Raises:
        BadInput: an unknown reason, a bad or past date.
        NotFound, InactiveConsent: no such active consent.
        NotAllowed: not its contact person nor an admin, or ``name`` is not staff.
        Conflict: ``name`` is its contact person already.
    """
    reason = access.check_reason(reason)
    if until is not None:
        parse_day(until, field="--until")
        if until < unlocked.today():
            raise BadInput("--until {date} is in the past", date=until)
    store = unlocked.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        key = _may_manage(unlocked, row, what="grant access")
        member = unlocked.epoch.staff.get(name)
        if member is None:
            raise NotAllowed(
                "{name} is not staff of this vault; nobody else can be given access", name=name
            )
        if name == row.contact:
            raise Conflict(
                "{name} is the contact person of consent {id} already", name=name, id=row.id
            )
        readers = access.readers_with(access.readers_of(row), states.Reader(name, until))
        ad = access.wrap_ad(unlocked.vault_id, row.id, name, row.key_version)
        wrapped = crypto.seal_to(member.box, key, ad)
        store.put_wraps(row.id, [(name, row.key_version, access.HOW_BOX, wrapped)])
        consents.commit_state(
            unlocked,
            dataclasses.replace(row, readers=states.encode_readers(readers)),
            key,
            "access.grant",
            object_id=name,
            detail=reason,
        )
    return Grant(row.id, name, until, reason)


def revoke(unlocked: Unlocked, consent_id: str, name: str) -> ConsentRow:
    """Take ``name``'s access to one consent back: her wrap goes and the consent gets a new
    data key (every note re-encrypted). Returns the consent as stored.

    Raises:
        NotFound, InactiveConsent: no such active consent.
        NotAllowed: not its contact person nor an admin.
        BadInput: ``name`` has no access to it.
    """
    store = unlocked.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        _may_manage(unlocked, row, what="revoke access")
        readers = access.readers_of(row)
        if name not in {r.name for r in readers}:
            raise BadInput("{name} has no access granted to consent {id}", name=name, id=row.id)
        return rotation.rekey(
            unlocked,
            row.id,
            action="access.revoke",
            object_id=name,
            readers=access.readers_without(readers, name),
        )


def expire(unlocked: Unlocked) -> list[str]:
    """Complete every grant that ran out, on the consents this member manages (its
    contact person, or an admin): the grantee is taken off and the consent re-keyed.
    Returns the consent ids re-keyed. Run at every unlock of such a member."""
    store = unlocked.store
    today = unlocked.today()
    with store.read():
        if unlocked.admin is None:
            # Hers only, found through her wraps (the contact person holds one; the reader
            # index finds them): a colleague with few consents does not read every
            # consent at each unlock.
            mine = store.consents_by_id(sorted(store.consents_of_reader(unlocked.name)))
            candidates = [
                r
                for r in mine
                if r.status == consents.ACTIVE and r.readers not in (None, states.READERS_NONE)
            ]
        else:
            candidates = store.consents_with_readers()
    done = []
    for row in candidates:
        if row.contact != unlocked.name and unlocked.admin is None:
            continue
        readers = access.readers_of(row)
        kept = tuple(r for r in readers if r.until is None or r.until >= today)
        if len(kept) == len(readers):
            continue
        gone = ",".join(r.name for r in readers if r not in kept)
        with store.write():
            rotation.rekey(unlocked, row.id, action="access.expire", object_id=gone, readers=kept)
        done.append(row.id)
    return done


def listing(unlocked: Unlocked, consent_id: str | None = None) -> list[AccessRow]:
    """Who may read each active consent (or one): its contact person, the access mode and
    the readers granted, with their end days. Recorded as ``access.list``.

    Raises NotFound, BadInput (a malformed id).
    """
    store = unlocked.store
    with store.write():
        if consent_id is not None:
            rows = [consents.get_row(store, consent_id)]
        else:
            rows = list(store.iter_consents(include_ended=False))
        unlocked.record("access.list", consent_id=rows[0].id if consent_id is not None else None)
    return [AccessRow(r.id, r.status, r.contact, r.access, access.readers_of(r)) for r in rows]


def set_contact(unlocked: Unlocked, consent_id: str, name: str) -> ConsentRow:
    """Make ``name`` the contact person of one consent (its contact person or an admin):
    her own wrap of the data key, a new signed state. The former contact person keeps no
    access unless granted; a deep rotation or :func:`vault.rotation.rekey` takes back
    what she held.

    Raises NotAllowed (not allowed, or ``name`` is not staff), NotFound, InactiveConsent.
    """
    store = unlocked.store
    with store.write():
        row = consents.get_active_row(store, consent_id)
        key = _may_manage(unlocked, row, what="change the contact person")
        member = unlocked.epoch.staff.get(name)
        if member is None:
            raise NotAllowed(
                "{name} is not staff of this vault; nobody else can be given access", name=name
            )
        ad = access.wrap_ad(unlocked.vault_id, row.id, name, row.key_version)
        if name == unlocked.name:
            store.put_wraps(
                row.id,
                [(name, row.key_version, access.HOW_KEY, crypto.seal(unlocked.keys.wrap, key, ad))],
            )
        else:
            store.put_wraps(
                row.id,
                [(name, row.key_version, access.HOW_BOX, crypto.seal_to(member.box, key, ad))],
            )
        readers = access.readers_without(access.readers_of(row), name)
        if row.contact and row.contact != name:
            store.delete_wraps(row.id, [row.contact])
        return consents.commit_state(
            unlocked,
            dataclasses.replace(row, contact=name, readers=states.encode_readers(readers)),
            key,
            "consent.contact",
            object_id=name,
        )
