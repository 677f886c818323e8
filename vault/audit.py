"""The audit trail: a hash chain of who did what to which ids, signed by whoever did it.

Each entry's hash is BLAKE2b(previous hash || encoded entry). Entries are appended in
*batches* (all the entries one command writes in one transaction), and the last entry of
each batch carries its first sequence number and an Ed25519 signature by the batch's
actor, a staff member or a scheduled job, with the signing key the signed epoch named
lists for them (vault.epochs). So editing, removing or inserting an entry, or adding one
in someone's name, needs that person's secret; a colleague cannot write another's entries.

A process with neither a passphrase nor a job credential (a keyless ``nok backup``)
writes unsigned entries with its actor marked keyless (``anne (keyless)``: no staff name
has a space). Nothing is ever sealed later: an unsigned entry stays unsigned, is never
taken as the record of an erasure, and ``verify`` reports any that records more than a
keyless backup. Entries of a format-2 vault, from before its upgrade, are vouched for by
the upgrading admin's signature on the ``vault.upgrade`` entry, which covers them all
through the chain.

Entries hold ids, staff names and fixed codes, never personal data. Which end of the
trail is the newest is for each user's pin to say (vault.pins), not for anything beside
the file.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vault import crypto, identity, ids
from vault.dates import parse_day, timestamp
from vault.errors import KeysRotated
from vault.store import AuditRow, Store

if TYPE_CHECKING:
    from vault.epochs import Chain
    from vault.session import Unlocked

GENESIS = bytes(32)
# Actions that an unsigned entry may record without being a problem: a backup run with
# neither passphrase nor credential, and a failed unlock (nobody's key opened). Every
# other unsigned entry is reported, and no unsigned entry is ever acted on.
KEYLESS_ACTIONS = frozenset({"vault.backup", "unlock.failed"})
ERASURE_ACTIONS = frozenset({"consent.withdraw", "consent.expire"})
# Appended to the actor of every unsigned entry. Staff names never contain a space, so a
# keyless entry can never be read as a staff member's, however it was made.
KEYLESS_SUFFIX = " (keyless)"
FIRST_ACTION = "vault.init"
UPGRADE_ACTION = "vault.upgrade"
MAX_PROBLEMS = 50
# nok stamps each entry with the writing process's clock; one dated further ahead of the
# reader's clock than this came from a clock set wrong, or was planted.
FUTURE_SKEW = dt.timedelta(days=1)


@dataclass(frozen=True)
class Signer:
    """Who signs a batch: a staff member or a job, with her keys and the current epoch."""

    name: str
    keys: identity.KeySet = field(repr=False)
    epoch: int
    vault_id: str


@dataclass(frozen=True)
class Problem:
    """One thing found wrong: a whole-sentence template and its (non-personal) params."""

    kind: str
    template: str
    params: dict[str, object] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.template.format(**self.params)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, **self.params}


@dataclass(frozen=True)
class Entry:
    """An audit entry as a reader sees it (``sealed``: covered by a valid signature)."""

    seq: int
    ts: str
    actor: str
    action: str
    consent_id: str | None
    object_id: str | None
    sealed: bool
    keyless: bool
    detail: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "consent_id": self.consent_id,
            "object_id": self.object_id,
            "detail": self.detail,
            "sealed": self.sealed,
            "keyless": self.keyless,
        }


def keyless_actor(name: str) -> str:
    """``name`` as the actor of an entry written without a passphrase or credential."""
    return name if is_keyless(name) else name + KEYLESS_SUFFIX


def is_keyless(actor: str) -> bool:
    return actor.endswith(KEYLESS_SUFFIX)


def entry_hash(prev: bytes, row: AuditRow) -> bytes:
    """The hash of ``row`` after ``prev``: format 3 when the entry names an epoch, else
    the format-2 encoding (entries from before an upgrade)."""
    if row.epoch is None:
        payload = crypto.bind(
            "audit",
            row.seq,
            row.ts,
            row.actor,
            row.action,
            row.consent_id or "",
            row.object_id or "",
        )
    else:
        payload = crypto.bind(
            "audit3",
            row.seq,
            row.ts,
            row.actor,
            row.action,
            row.consent_id or "",
            row.object_id or "",
            row.epoch,
            row.detail or "",
            "" if row.rev is None else row.rev,
            _blob(row.state),
        )
    return crypto.digest(bytes(prev) + payload)


def batch_message(vault_id: str, first: int, last: AuditRow) -> bytes:
    """What a batch's signature covers: its range, its last hash, its actor and epoch."""
    return crypto.bind(
        "audit-batch", vault_id, first, last.seq, _blob(last.hash), last.actor, last.epoch or 0
    )


def _blob(value: object) -> bytes:
    # A cell altered to text or a number is simply wrong, not a reason to crash.
    return value if isinstance(value, bytes) else b""


def _future_limit(now: dt.datetime) -> str:
    return timestamp(now + FUTURE_SKEW)


@dataclass(frozen=True)
class Target:
    """One entry of a batch: what it is about."""

    consent_id: str | None = None
    object_id: str | None = None
    detail: str | None = None
    rev: int | None = None
    state: bytes | None = None


def append(
    store: Store,
    *,
    now: dt.datetime,
    action: str,
    signer: Signer | None,
    actor: str | None = None,
    consent_id: str | None = None,
    object_id: str | None = None,
    detail: str | None = None,
    rev: int | None = None,
    state: bytes | None = None,
) -> AuditRow:
    """Append one entry (a batch of one); call inside the write transaction of the change
    it records. Unsigned (``signer`` None) it records ``actor`` in its keyless form."""
    target = Target(consent_id, object_id, detail, rev, state)
    return append_batch(store, now=now, action=action, signer=signer, actor=actor, targets=[target])


def append_batch(
    store: Store,
    *,
    now: dt.datetime,
    action: str,
    signer: Signer | None,
    targets: Iterable[Target],
    actor: str | None = None,
    covers_from: int | None = None,
) -> AuditRow:
    """Append one entry per target, signed together by ``signer`` (or unsigned).

    ``covers_from`` (the upgrade of a format-2 vault only): the signature covers the
    trail from that entry on, vouching for the format-2 entries before this batch.
    """
    if signer is not None and signer.epoch < store.last_epoch_number():
        # Signed with an epoch another process replaced: the walk would take the entry for
        # a replaced key's, and the write may hold keys of the old epoch.
        raise KeysRotated()
    last = store.last_audit()
    name = signer.name if signer is not None else keyless_actor(actor or "nok")
    epoch = signer.epoch if signer is not None else 0
    ts = timestamp(now)
    prev = _blob(last.hash) if last is not None else GENESIS
    seq = last.seq if last is not None else 0
    rows: list[AuditRow] = []
    for t in targets:
        seq += 1
        row = AuditRow(
            seq=seq,
            ts=ts,
            actor=name,
            action=action,
            consent_id=t.consent_id,
            object_id=t.object_id,
            prev=prev,
            hash=b"",
            mac=None,
            epoch=epoch,
            detail=t.detail,
            rev=t.rev,
            state=t.state,
        )
        row.hash = entry_hash(prev, row)
        prev = row.hash
        rows.append(row)
    if not rows:
        raise ValueError("an audit entry needs at least one target")
    if signer is not None:
        tail = rows[-1]
        tail.batch_start = covers_from if covers_from is not None else rows[0].seq
        tail.sig = signer.keys.sign(batch_message(signer.vault_id, tail.batch_start, tail))
    store.insert_audit_many(rows)
    return rows[-1]


def record_each(
    unlocked: Unlocked, action: str, consent_ids: Iterable[str], *, detail: str | None = None
) -> None:
    """Record a read of several consents' data as this staff member: one entry per consent
    (so each person's export shows it), or one without a consent when there are none, all
    under one signature. Call inside the write transaction; raises KeysRotated as
    :meth:`Unlocked.record`."""
    unlocked.ensure_current()
    targets = [Target(consent_id=c, detail=detail) for c in consent_ids] or [Target(detail=detail)]
    append_batch(
        unlocked.store, now=unlocked.now, action=action, signer=unlocked.signer(), targets=targets
    )


def entry_signed(store: Store, chain: Chain, row: AuditRow) -> bool:
    """Whether ``row`` is covered by a valid signature of its actor: the batch it belongs to
    ends with a signed entry whose range holds it, every entry of that range names the same
    actor and links right, and the signature checks out. For one entry (a purge relying on
    it), not for walking the trail: :func:`verify_chain` does that."""
    return Seals(store, chain).sealed(row)


class Seals:
    """Which entries are covered by a valid batch signature, for reading entries one by
    one (a purge, a listing): each batch is checked once, however many of its entries are
    asked about, so a listing of the whole trail costs one pass over it."""

    def __init__(self, store: Store, chain: Chain) -> None:
        self.store = store
        self.chain = chain
        # seq -> the signed entry that ends its batch (None: no signed entry follows).
        self._ends: dict[int, AuditRow | None] = {}
        self._valid: dict[int, bool] = {}

    def sealed(self, row: AuditRow) -> bool:
        if is_keyless(str(row.actor)):
            return False  # no staff member or job signs a keyless actor's work
        end = self._end(row)
        if end is None:
            return False
        first = end.batch_start
        if not isinstance(first, int) or first > row.seq:
            return False
        if end.seq not in self._valid:
            self._valid[end.seq] = self._batch_ok(first, end)
        return self._valid[end.seq]

    def _end(self, row: AuditRow) -> AuditRow | None:
        """The first signed entry from ``row`` on, in one query (a gap before it is found
        by :meth:`_batch_ok`, which walks the whole range)."""
        if row.sig is not None:
            return row
        if row.seq not in self._ends:
            self._ends[row.seq] = self.store.next_signed_audit(row.seq)
        return self._ends[row.seq]

    def _batch_ok(self, first: int, end: AuditRow) -> bool:
        """The entries ``first`` to ``end`` are one actor's, link right, and ``end``'s
        signature checks out (an upgrade's batch also covers the format-2 entries)."""
        key = self.chain.listed_key(end.actor, end.epoch or 0)
        # The signature first: a forged one fails here, before any walk of its range.
        if key is None or not crypto.verify(
            key, batch_message(self.chain.current.vault_id, first, end), end.sig
        ):
            return False
        prev_row = self.store.audit_entry(first - 1) if first > 1 else None
        prev = _blob(prev_row.hash) if prev_row is not None else GENESIS
        upgrade = end.action == UPGRADE_ACTION
        # One query for the range; a missing seq shows as a gap, and the entry that ends
        # the range is the one whose signature was checked.
        expected = first
        for entry in itertools.chain(self.store.audit_range(first, end.seq - 1), [end]):
            if entry.seq != expected or not _links(prev, entry):
                return False
            expected += 1
            if (entry.actor != end.actor or entry.epoch != end.epoch) and not (
                upgrade and entry.epoch is None
            ):
                return False
            prev = _blob(entry.hash)
        return self.chain.standing(end.actor, key) or _while_it_counted(self.chain, end, prev_row)


def _while_it_counted(chain: Chain, end: AuditRow, before: AuditRow | None) -> bool:
    """Whether a batch signed with a key that no longer counts (a leaver's, a revoked
    job's, a replaced one) was written while it did: dated before the epoch that dropped
    the key, and not after the entry it links to. Its holder can still sign, so an entry
    appended now must either carry today's date (too late) or a date older than the entry
    before it (out of order)."""
    until = chain.counted_until(end.actor, end.epoch or 0)
    if until is None or str(end.ts) >= until:
        return False
    return before is None or str(before.ts) <= str(end.ts)


def _links(prev: bytes, row: AuditRow) -> bool:
    return _blob(row.prev) == prev and crypto.same(entry_hash(prev, row), _blob(row.hash))


def clock_floor(store: Store, chain: Chain) -> str | None:
    """The time the clock must not be behind: the date of the newest entry covered by a
    valid signature, however it is dated (only a staff member's or the job's key makes
    one, so a clock found behind it is a clock set back, or one of theirs set wrong).

    Unsigned entries and signatures that do not check out never count, so a planted
    entry cannot stall the purge; and every signed-looking entry is tried, however many
    were planted after the real work.
    """
    seals = Seals(store, chain)
    for row in store.signed_audit_newest_first():
        if seals.sealed(row):
            return row.ts
    return None


# -- reading the trail --------------------------------------------------------------------


def _entry(row: AuditRow, sealed: bool) -> Entry:
    return Entry(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        consent_id=row.consent_id,
        object_id=row.object_id,
        sealed=sealed,
        keyless=is_keyless(row.actor),
        detail=row.detail,
    )


def list_entries(
    store: Store,
    since: str | None = None,
    actor: str | None = None,
    consent_id: str | None = None,
    *,
    chain: Chain,
) -> Iterator[Entry]:
    """Entries in order; ``since`` is a day (YYYY-MM-DD, compared with UTC timestamps);
    ``actor`` also matches that name's keyless entries. ``sealed`` says whether an entry
    is covered by a valid signature of its actor (checked with ``chain``'s keys), so a
    listing never shows an entry added without its author's key as hers.

    Raises:
        BadInput: a malformed date or consent id.
    """
    if since is not None:
        parse_day(since, field="--since")
    canonical = None
    if consent_id is not None:
        canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    actors = None if actor is None else (actor, keyless_actor(actor))
    rows = store.audit_entries(since=since, actor=actors, consent_id=canonical)
    seals = Seals(store, chain)
    return (_entry(row, seals.sealed(row)) for row in rows)


def read_trail(
    unlocked: Unlocked,
    since: str | None = None,
    actor: str | None = None,
    consent_id: str | None = None,
) -> Iterator[Entry]:
    """:func:`list_entries` for an admin; reading the trail is itself recorded.

    Raises:
        NotAllowed: not an admin (the trail shows every colleague's work).
        BadInput: a malformed date or consent id.
    """
    unlocked.require_admin("reading the audit trail")
    entries = list_entries(unlocked.store, since, actor, consent_id, chain=unlocked.chain)
    canonical = None
    if consent_id is not None:
        canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    with unlocked.store.write():
        unlocked.record("audit.list", consent_id=canonical)
    return entries


# -- verifying it -------------------------------------------------------------------------


@dataclass
class _Walk:
    """State while walking the chain in order."""

    chain: Chain
    now: dt.datetime
    # The newest epoch a valid batch was signed in so far: a later batch naming an older
    # one was signed with a key that had been replaced (or by someone who had left).
    floor: int = 0
    problems: list[Problem] = field(default_factory=list)
    extra: int = 0
    expected: int = 1
    prev: bytes = GENESIS
    last_seq: int = 0
    # Entries since the last signed one (seq, actor, epoch, action), not yet covered.
    open: list[AuditRow] = field(default_factory=list)
    upgraded: bool = False
    # Leave out what only entries no signature covers show (see verify_chain).
    signed_only: bool = False
    # Entries dated too far ahead, reported once a signature is found to cover them.
    ahead: list[AuditRow] = field(default_factory=list)
    limit: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.limit = _future_limit(self.now)

    def report(self, kind: str, template: str, **params: object) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, template, params))
        else:
            self.extra += 1


def _check_row(w: _Walk, row: AuditRow) -> None:
    if row.seq != w.expected:
        if row.seq - 1 == w.expected:
            w.report("deleted", "audit entry {seq} is missing: it was deleted", seq=w.expected)
        else:
            w.report(
                "deleted",
                "audit entries {first} to {last} are missing: they were deleted",
                first=w.expected,
                last=row.seq - 1,
            )
    elif _blob(row.prev) != w.prev:
        w.report(
            "link",
            "audit entry {seq} does not follow entry {before}: an entry was inserted, "
            "removed or reordered between them",
            seq=row.seq,
            before=row.seq - 1,
        )
    if row.seq == 1 and row.action != FIRST_ACTION:
        w.report(
            "replaced",
            "audit entry {seq} is not the vault's creation: the trail was replaced or its "
            "first entry edited",
            seq=row.seq,
        )
    digest = _blob(row.hash)
    if not crypto.same(entry_hash(_blob(row.prev), row), digest):
        w.report(
            "edited",
            "audit entry {seq} does not match its hash: it was edited or moved",
            seq=row.seq,
        )
    if str(row.ts) > w.limit:
        if w.signed_only:
            w.ahead.append(row)
        else:
            _report_ahead(w, row)
    if is_keyless(str(row.actor)) and row.sig is not None:
        w.report(
            "keyless-claim",
            "audit entry {seq} is marked keyless but carries a signature: it was forged",
            seq=row.seq,
        )
    w.open.append(row)
    if row.sig is not None:
        _close_batch(w, row)
    w.expected, w.prev, w.last_seq = row.seq + 1, digest, row.seq


def _report_ahead(w: _Walk, row: AuditRow) -> None:
    w.report(
        "future",
        "audit entry {seq} is dated {ts}, more than a day after this computer's clock "
        "({now}): it was planted, or written with a clock set wrong",
        seq=row.seq,
        ts=row.ts,
        now=timestamp(w.now),
    )


def _close_batch(w: _Walk, end: AuditRow) -> None:
    """A signed entry ends a batch: check its signature and range, and report what it
    leaves uncovered before the range."""
    first = end.batch_start if isinstance(end.batch_start, int) else end.seq
    covered = [r for r in w.open if r.seq >= first]
    _uncovered(w, [r for r in w.open if r.seq < first])
    w.open = []
    for row in w.ahead:
        if row.seq >= first:
            _report_ahead(w, row)
    w.ahead = []
    upgrade = end.action == UPGRADE_ACTION
    if any(
        (r.actor != end.actor or r.epoch != end.epoch)
        for r in covered
        if not (upgrade and r.epoch is None)
    ):
        w.report(
            "bad-sig",
            "audit entries {first} to {last} are signed together by {actor}, but not all "
            "are hers: entries were inserted into her batch",
            first=first,
            last=end.seq,
            actor=end.actor,
        )
        return
    if upgrade:
        w.upgraded = True
    key = w.chain.listed_key(end.actor, end.epoch or 0)
    message = batch_message(w.chain.current.vault_id, first, end)
    if key is None or not crypto.verify(key, message, end.sig):
        w.report(
            "bad-sig",
            "audit entry {seq} fails its signature: it was written or rewritten without "
            "the key of {actor}",
            seq=end.seq,
            actor=end.actor,
        )
        return
    epoch = end.epoch or 0
    until = w.chain.counted_until(end.actor, epoch)
    if epoch < w.floor or (until is not None and str(end.ts) >= until):
        w.report(
            "stale-key",
            "audit entry {seq} is signed by {actor} with the key of epoch {epoch}, which no "
            "longer counted when the entry was written: it was added with a leaver's, a "
            "revoked or a replaced key",
            seq=end.seq,
            actor=end.actor,
            epoch=epoch,
        )
        return
    w.floor = max(w.floor, epoch)


def _uncovered(w: _Walk, rows: list[AuditRow]) -> None:
    if w.signed_only:
        return
    for row in rows:
        if is_keyless(str(row.actor)) and row.action in KEYLESS_ACTIONS:
            continue
        if row.action in ERASURE_ACTIONS:
            w.report(
                "unsigned-erasure",
                "audit entry {seq} records {action} of consent {id} but is not signed by a "
                "staff member or the job: nok never erases on it; it was forged",
                seq=row.seq,
                action=row.action,
                id=row.consent_id,
            )
        else:
            w.report(
                "no-sig",
                "audit entry {seq} ({action}) is not signed by a staff member or the job: "
                "it was added without their key",
                seq=row.seq,
                action=row.action,
            )


def verify_chain(
    store: Store, chain: Chain, now: dt.datetime, *, signed_only: bool = False
) -> list[Problem]:
    """Walk the whole trail and report what is wrong with it, first broken link first.

    Finds edited, deleted, inserted or reordered entries, entries dated more than
    :data:`FUTURE_SKEW` after ``now``, batches whose signature does not check out with the
    signing key the epoch it names lists for its actor, and unsigned entries other than a
    keyless backup's. At most :data:`MAX_PROBLEMS` problems are listed, then a count of the
    rest. Reads inside one snapshot; raises only storage errors.

    ``signed_only`` leaves out what only entries no signature covers show (that they are
    unsigned, and how they are dated): anyone who can write the file can add such entries
    and nobody can take them out again (the chain would break), and nothing nok decides
    rests on them. The purge checks the trail so, lest a planted entry stall it for good.
    """
    w = _Walk(chain, now, signed_only=signed_only)
    with store.read():
        for row in store.audit_entries():
            _check_row(w, row)
        _uncovered(w, w.open)
        if w.last_seq == 0:
            w.report("deleted", "the audit trail is empty: every vault starts with an entry")
    if w.extra:
        w.problems.append(
            Problem(
                "more",
                "{count} further problem(s) in the audit trail were not listed",
                {"count": w.extra},
            )
        )
    return w.problems
