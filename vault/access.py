"""Need-to-know: who can open a consent, enforced with keys (docs/format.md, "Readers").

A consent's data key is wrapped once per reader (table ``consent_keys``):

* its **contact person** and each colleague **granted** access (until a day, or for
  good): sealed to her box key, or wrapped under her own wrap key when she made it;
* ``#admin``: for the admins, who must be able to act for the person when the contact
  person is away (sealed to the admin box key, or under the admin wrap key);
* ``#team``: only for a consent registered while the vault's access setting was ``team``
  (under the team wrap key, which every staff member holds);
* ``#job``: not the data key but its *proof key* (vault.states.proof_key), sealed to the
  job key, so the scheduled job can check that a state was made by someone with access.

A colleague who is none of these holds no wrap of the data key: with her own passphrase
and a copy of the file she cannot decrypt that person's alias, purpose or notes. Revoking
access, or a grant running out, gives the consent a new data key (:func:`rekey`), so a
wrap copied before opens nothing written after. Whether an admin who is not assigned may
read is policy, enforced by nok: she needs a reason (one of :data:`REASONS`), recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from vault import crypto, states
from vault.errors import (
    BadInput,
    ExitCode,
    IntegrityError,
    NokError,
    NotAllowed,
    UnsupportedVersion,
)

if TYPE_CHECKING:
    from vault.audit import Seals
    from vault.session import Unlocked
    from vault.store import ConsentRow, Store

HOW_KEY = "key"
HOW_BOX = "box"
ADMIN_READER = "#admin"
TEAM_READER = "#team"
JOB_READER = "#job"
# Fixed codes, shown and typed in the user's language: the trail never holds free text.
REASONS = ("covering", "shared-follow-up", "person-asked", "emergency", "other")


class Level(Enum):
    """How this staff member may open a consent."""

    ASSIGNED = "assigned"  # contact person, granted, or a team consent
    ADMIN = "admin"  # an admin who is not assigned: only with a reason
    NONE = "none"


class NoAccess(NokError):
    exit_code = ExitCode.NOT_ALLOWED
    template = (
        "{name} has no access to consent {id}: only its contact person and those granted "
        "access can read it"
    )
    hint_template = (
        "ask its contact person ({contact}) or an admin to grant you access (nok access grant)"
    )


class ReasonNeeded(NokError):
    exit_code = ExitCode.NOT_ALLOWED
    template = (
        "consent {id} is not assigned to you; an admin reads it only with a reason, which is "
        "recorded"
    )
    hint_template = "give --reason with one of: {choices}"


class GrantExpired(NoAccess):
    template = "your access to consent {id} ran out on {until}"


def check_reason(reason: str) -> str:
    """Raises BadInput for a reason not in :data:`REASONS`."""
    clean = reason.strip().lower()
    if clean not in REASONS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=reason,
            choices=", ".join(REASONS),
        )
    return clean


def wrap_ad(vault_id: str, consent_id: str, reader: str, key_version: int) -> bytes:
    return crypto.bind("consent-key", vault_id, consent_id, reader, key_version)


def readers_of(row: ConsentRow) -> tuple[states.Reader, ...]:
    return states.decode_readers(row.readers or states.READERS_NONE, consent_id=row.id)


def level(
    unlocked: Unlocked,
    row: ConsentRow,
    today: str | None = None,
    seals: Seals | None = None,
) -> Level:
    """What the signed access columns say this member may do with ``row`` (``seals``:
    the trail's batch checks shared by the caller's other rows, consents.is_latest).

    Raises states.StateForged when the columns are not those of a state a staff member
    signed: contact person, access mode and readers are plaintext, and a file writer
    must not decide with them who reads or who is asked for a reason.
    """
    from vault import consents

    consents.check_state_signed(unlocked, row, seals)
    if row.access == "team" or row.contact == unlocked.name:
        return Level.ASSIGNED
    when = today or unlocked.today()
    for reader in readers_of(row):
        if reader.name == unlocked.name and (reader.until is None or when <= reader.until):
            return Level.ASSIGNED
    return Level.ADMIN if unlocked.admin is not None else Level.NONE


def expired_grant(unlocked: Unlocked, row: ConsentRow) -> str | None:
    """The day this member's grant on ``row`` ran out, if it did."""
    today = unlocked.today()
    for reader in readers_of(row):
        if reader.name == unlocked.name and reader.until is not None and today > reader.until:
            return reader.until
    return None


def my_readers(unlocked: Unlocked) -> list[str]:
    """The wraps this member can open, in the order she tries them."""
    names = [unlocked.name, TEAM_READER]
    if unlocked.admin is not None:
        names.append(ADMIN_READER)
    return names


def _unwrap_key(unlocked: Unlocked, reader: str) -> tuple[bytes | None, bytes | None]:
    """(wrap key, box secret) this member opens ``reader``'s wraps with."""
    if reader == unlocked.name:
        return unlocked.keys.wrap, unlocked.keys.box_secret
    if reader == TEAM_READER:
        return unlocked.team.wrap, unlocked.team.box_secret
    if reader == ADMIN_READER and unlocked.admin is not None:
        return unlocked.admin.wrap, unlocked.admin.box_secret
    return None, None


def unwrap(
    unlocked: Unlocked, consent_id: str, reader: str, key_version: int, how: str, wrapped: object
) -> bytes:
    """Open one wrap this member holds a key for.

    Raises IntegrityError when it does not open (altered, moved, or not hers).
    """
    where = f"data key of {consent_id}"
    if not isinstance(wrapped, bytes):
        raise IntegrityError(where=where)
    cached = unlocked.cached_data_key(consent_id, wrapped)
    if cached is not None:
        return cached
    wrap_key, box_secret = _unwrap_key(unlocked, reader)
    ad = wrap_ad(unlocked.vault_id, consent_id, reader, key_version)
    try:
        if how == HOW_KEY and wrap_key is not None:
            key = crypto.unseal(wrap_key, wrapped, ad, where=where)
        elif how == HOW_BOX and box_secret is not None:
            key = crypto.open_sealed(box_secret, wrapped, ad, where=where)
        else:
            raise IntegrityError(where=where)
    except UnsupportedVersion:
        raise IntegrityError(where=where) from None
    if len(key) != crypto.KEY_BYTES:
        raise IntegrityError(where=where)
    unlocked.remember_data_key(consent_id, wrapped, key)
    return key


class KeyPlanted(IntegrityError):
    template = (
        "the data key of consent {id} is not the one its signed state names: it was "
        "replaced in the file, and nok will not use it"
    )


def check_key(row: ConsentRow, key: bytes) -> bytes:
    """Raises KeyPlanted unless ``key`` gives the consent public key the state names."""
    _, public = states.consent_box(key)
    if not isinstance(row.consent_box, bytes) or not crypto.same(public, row.consent_box):
        raise KeyPlanted(id=row.id)
    return key


def open_key(
    unlocked: Unlocked, row: ConsentRow, *, admin_ok: bool, store: Store | None = None
) -> bytes:
    """The data key of ``row`` through a wrap this member holds (``admin_ok``: also the
    admins' wrap, for an admin acting outside her assignment), in the vault or in
    ``store`` (a backup being brought up to date).

    Raises:
        IntegrityError: erased, altered, or a planted key (KeyPlanted).
        NoAccess: she holds no wrap for it.
    """
    if row.consent_box is None:
        # An erasure blanks it with the status; an active consent without one had its
        # public key blanked in the file, and must not read as erased or empty.
        gone = "erased" if row.status != states.ACTIVE else "missing"
        raise IntegrityError(where=f"data key of {row.id} ({gone})")
    readers = [r for r in my_readers(unlocked) if admin_ok or r != ADMIN_READER]
    # Her own wrap stays until the contact person or an admin re-keys the consent; from
    # the grant's last day on it must open nothing, for any action.
    ran_out = None if row.contact == unlocked.name else expired_grant(unlocked, row)
    if ran_out is not None:
        readers.remove(unlocked.name)
    source = store if store is not None else unlocked.store
    for reader, version, how, wrapped in source.wrap_for(row.id, readers):
        if version != row.key_version:
            continue
        key = unwrap(unlocked, row.id, reader, version, how, wrapped)
        # Anyone can seal a key to a public key in the file; a key under a wrap key of
        # this member's own cannot be planted without it (and every write checks the
        # state's proof, which a planted key cannot make).
        return check_key(row, key) if how == HOW_BOX else key
    if ran_out is not None:
        raise GrantExpired(name=unlocked.name, id=row.id, until=ran_out, contact=row.contact or "?")
    raise NoAccess(name=unlocked.name, id=row.id, contact=row.contact or "?")


def data_key(unlocked: Unlocked, row: ConsentRow) -> bytes:
    """The data key of ``row`` as policy allows this member to open it: assigned, or an
    admin with a reason (``unlocked.read_reason``).

    Raises NoAccess, GrantExpired, ReasonNeeded, IntegrityError.
    """
    found = level(unlocked, row)
    if found is Level.ASSIGNED:
        return open_key(unlocked, row, admin_ok=True)
    until = expired_grant(unlocked, row)
    if until is not None:
        raise GrantExpired(name=unlocked.name, id=row.id, until=until, contact=row.contact or "?")
    if found is Level.ADMIN:
        if unlocked.read_reason is None:
            raise ReasonNeeded(id=row.id, choices=", ".join(REASONS))
        return open_key(unlocked, row, admin_ok=True)
    raise NoAccess(name=unlocked.name, id=row.id, contact=row.contact or "?")


# -- making wraps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wrap:
    reader: str
    key_version: int
    how: str
    wrapped: bytes

    def row(self) -> tuple[str, int, str, bytes]:
        return (self.reader, self.key_version, self.how, self.wrapped)


def make_wraps(
    unlocked: Unlocked,
    consent_id: str,
    key_version: int,
    data_key: bytes,
    *,
    contact: str,
    readers: Sequence[states.Reader],
    team: bool,
) -> list[Wrap]:
    """Every wrap a consent's data key needs: contact, readers, admins, team, job.

    Raises NotAllowed when the contact person or a reader is not staff of the vault.
    """
    epoch = unlocked.epoch
    vault_id = epoch.vault_id

    def ad(reader: str) -> bytes:
        return wrap_ad(vault_id, consent_id, reader, key_version)

    out: list[Wrap] = []
    for name in dict.fromkeys([contact, *(r.name for r in readers)]):
        if name == unlocked.name:
            out.append(
                Wrap(
                    name, key_version, HOW_KEY, crypto.seal(unlocked.keys.wrap, data_key, ad(name))
                )
            )
            continue
        member = epoch.staff.get(name)
        if member is None:
            raise NotAllowed(
                "{name} is not staff of this vault; nobody else can be given access",
                name=name,
            )
        out.append(Wrap(name, key_version, HOW_BOX, crypto.seal_to(member.box, data_key, ad(name))))
    if unlocked.admin is not None:
        admin = crypto.seal(unlocked.admin.wrap, data_key, ad(ADMIN_READER))
        out.append(Wrap(ADMIN_READER, key_version, HOW_KEY, admin))
    else:
        admin = crypto.seal_to(epoch.keys.admin, data_key, ad(ADMIN_READER))
        out.append(Wrap(ADMIN_READER, key_version, HOW_BOX, admin))
    if team:
        out.append(
            Wrap(
                TEAM_READER,
                key_version,
                HOW_KEY,
                crypto.seal(unlocked.team.wrap, data_key, ad(TEAM_READER)),
            )
        )
    proof = crypto.seal_to(epoch.keys.job, states.proof_key(data_key), ad(JOB_READER))
    out.append(Wrap(JOB_READER, key_version, HOW_BOX, proof))
    return out


def readers_with(
    readers: Sequence[states.Reader], added: states.Reader
) -> tuple[states.Reader, ...]:
    kept = [r for r in readers if r.name != added.name]
    return tuple(sorted([*kept, added], key=lambda r: r.name))


def readers_without(readers: Sequence[states.Reader], name: str) -> tuple[states.Reader, ...]:
    return tuple(r for r in readers if r.name != name)


def with_readers(row: ConsentRow, readers: Sequence[states.Reader]) -> ConsentRow:
    return dataclasses.replace(row, readers=states.encode_readers(readers))
