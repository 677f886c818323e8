"""The audit trail: a hash chain of who did what to which ids, sealed with a key.

Each entry's hash is BLAKE2b(previous hash || encoded entry). Entries written while the
vault is unlocked also carry a MAC (keyed BLAKE2b over the hash) under the vault's audit
key, so editing the trail needs a passphrase. The keyless purge (and backup, restore)
writes entries without a MAC; the next unlock, or the next keyed entry, seals them.
Entries hold ids and staff names, never personal data.

The *head* (setting ``audit_head``: the sequence number and hash of the last sealed entry,
under a MAC of its own) moves with every sealed entry, so deleting entries from the end of
the trail is noticed. What stays undetectable is listed in docs/audit.md: putting back an
older copy of the whole file (or of the trail with its head), and changing the unsealed
keyless tail before the next unlock.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vault import crypto, ids
from vault.dates import parse_day, timestamp
from vault.store import AuditRow, Store

if TYPE_CHECKING:
    from vault.session import Unlocked

GENESIS = bytes(32)
AUDIT_KEY = "audit"
HEAD_SETTING = "audit_head"
# Actions written without a key (by processes that hold no passphrase: purge, backup,
# restore; a restore re-applies withdrawals as consent.withdraw, and deletes again the key
# slots of staff removed since the backup as staff.remove-again). Only these may lack a
# MAC, and only at the end of the trail until the next unlock seals them.
KEYLESS_ACTIONS = frozenset(
    {"consent.expire", "consent.withdraw", "vault.backup", "vault.restore", "staff.remove-again"}
)
FIRST_ACTION = "vault.init"
MAX_PROBLEMS = 50


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
    """An audit entry as a reader sees it."""

    seq: int
    ts: str
    actor: str
    action: str
    consent_id: str | None
    object_id: str | None
    sealed: bool

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "consent_id": self.consent_id,
            "object_id": self.object_id,
            "sealed": self.sealed,
        }


@dataclass(frozen=True)
class Head:
    seq: int
    hash: bytes
    mac: bytes


def entry_hash(
    prev: bytes,
    seq: int,
    ts: str,
    actor: str,
    action: str,
    consent_id: str | None,
    object_id: str | None,
) -> bytes:
    payload = crypto.bind("audit", seq, ts, actor, action, consent_id or "", object_id or "")
    return crypto.digest(bytes(prev) + payload)


def _blob(value: object) -> bytes:
    # A cell altered to text or a number is simply wrong, not a reason to crash.
    return value if isinstance(value, bytes) else b""


def _row_hash(row: AuditRow) -> bytes:
    return entry_hash(
        _blob(row.prev), row.seq, row.ts, row.actor, row.action, row.consent_id, row.object_id
    )


def _head_mac(key: bytes, seq: int, digest: bytes) -> bytes:
    return crypto.mac(key, crypto.bind("audit-head", seq) + digest)


def _set_head(store: Store, key: bytes, row: AuditRow) -> None:
    digest = bytes(row.hash)
    value = {"seq": row.seq, "hash": digest.hex(), "mac": _head_mac(key, row.seq, digest).hex()}
    store.set_setting(HEAD_SETTING, json.dumps(value, separators=(",", ":")))


def read_head(store: Store) -> Head | None:
    """The recorded end of the sealed trail; None when absent or unreadable."""
    raw = store.get_setting(HEAD_SETTING)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return Head(int(value["seq"]), bytes.fromhex(value["hash"]), bytes.fromhex(value["mac"]))
    except (ValueError, KeyError, TypeError):
        return None


def append(
    store: Store,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    consent_id: str | None = None,
    object_id: str | None = None,
    key: bytes | None = None,
) -> AuditRow:
    """Append one entry; call inside the write transaction of the change it records.

    With ``key``, keyless entries before it are sealed first (so unsealed entries are
    only ever at the end of the trail) and the head moves to the new entry.
    """
    last = store.last_audit()
    if key is not None and last is not None and last.mac is None:
        seal_pending(store, key)
    prev = _blob(last.hash) if last is not None else GENESIS
    seq = last.seq + 1 if last is not None else 1
    ts = timestamp(now)
    digest = entry_hash(prev, seq, ts, actor, action, consent_id, object_id)
    row = AuditRow(
        seq=seq,
        ts=ts,
        actor=actor,
        action=action,
        consent_id=consent_id,
        object_id=object_id,
        prev=prev,
        hash=digest,
        mac=None if key is None else crypto.mac(key, digest),
    )
    store.insert_audit(row)
    if key is not None:
        _set_head(store, key, row)
    return row


def seal_pending(store: Store, key: bytes) -> int:
    """MAC the keyless entries at the end of the trail; returns how many.

    Only entries of :data:`KEYLESS_ACTIONS` whose links check out are sealed, stopping at
    the first that is not: a forged entry stays unsealed, and verify reports it.
    """
    pending = store.audit_unsealed_tail()
    if not pending:
        return 0
    before = store.audit_entry(pending[0].seq - 1)
    prev = _blob(before.hash) if before is not None else GENESIS
    sealed = 0
    for row in pending:
        digest = _blob(row.hash)
        if row.action not in KEYLESS_ACTIONS or _blob(row.prev) != prev:
            break
        if not crypto.same(_row_hash(row), digest):
            break
        store.set_audit_mac(row.seq, crypto.mac(key, digest))
        prev, sealed = digest, sealed + 1
        _set_head(store, key, row)
    return sealed


def _entry(row: AuditRow) -> Entry:
    return Entry(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        consent_id=row.consent_id,
        object_id=row.object_id,
        sealed=row.mac is not None,
    )


def list_entries(
    store: Store,
    since: str | None = None,
    actor: str | None = None,
    consent_id: str | None = None,
) -> Iterator[Entry]:
    """Entries in order; ``since`` is a day (YYYY-MM-DD, compared with UTC timestamps).

    Raises:
        BadInput: a malformed date or consent id.
    """
    if since is not None:
        parse_day(since, field="--since")
    canonical = None
    if consent_id is not None:
        canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    rows = store.audit_entries(since=since, actor=actor, consent_id=canonical)
    return (_entry(row) for row in rows)


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
    entries = list_entries(unlocked.store, since, actor, consent_id)
    canonical = None
    if consent_id is not None:
        canonical = ids.parse_id(consent_id, ids.CONSENT_PREFIX, "consent")
    with unlocked.store.write():
        unlocked.record("audit.list", consent_id=canonical)
    return entries


@dataclass
class _Walk:
    """State while walking the chain in order."""

    key: bytes | None
    problems: list[Problem] = field(default_factory=list)
    extra: int = 0
    expected: int = 1
    prev: bytes = GENESIS
    last_seq: int = 0
    last_sealed: int = 0
    last_sealed_hash: bytes = GENESIS
    first_unsealed: int | None = None

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
    if not crypto.same(_row_hash(row), digest):
        w.report(
            "edited",
            "audit entry {seq} does not match its hash: it was edited or moved",
            seq=row.seq,
        )
    _check_mac(w, row, digest)
    w.expected, w.prev, w.last_seq = row.seq + 1, digest, row.seq


def _check_mac(w: _Walk, row: AuditRow, digest: bytes) -> None:
    if row.mac is None:
        if w.first_unsealed is None:
            w.first_unsealed = row.seq
        if row.action not in KEYLESS_ACTIONS:
            w.report(
                "no-mac",
                "audit entry {seq} ({action}) has no MAC, but only entries written without "
                "a passphrase may lack one: it was added without the vault's key",
                seq=row.seq,
                action=row.action,
            )
        return
    if w.first_unsealed is not None:
        w.report(
            "no-mac",
            "audit entry {seq} has no MAC, though a later entry was sealed: "
            "it was added or altered without the vault's key",
            seq=w.first_unsealed,
        )
        w.first_unsealed = None
    w.last_sealed = row.seq
    w.last_sealed_hash = digest
    if w.key is not None and not crypto.same(crypto.mac(w.key, digest), _blob(row.mac)):
        w.report(
            "bad-mac",
            "audit entry {seq} fails its MAC: it was written or rewritten without the vault's key",
            seq=row.seq,
        )


def _check_head(w: _Walk, head: Head | None) -> None:
    if head is None:
        if w.last_sealed:
            w.report(
                "head",
                "the record of where the audit trail ends is missing or damaged, so "
                "entries deleted from its end would go unnoticed",
            )
        return
    if w.key is not None and not crypto.same(_head_mac(w.key, head.seq, head.hash), head.mac):
        w.report("head", "the record of where the audit trail ends fails its MAC: it was altered")
        return
    if head.seq > w.last_seq:
        w.report(
            "truncated",
            "the audit trail ends at entry {last}, but entry {head} was recorded as written: "
            "entries at the end were deleted",
            last=w.last_seq,
            head=head.seq,
        )
    elif head.seq < w.last_sealed:
        w.report(
            "head",
            "the record of where the audit trail ends points to entry {head}, but entry "
            "{last} is sealed: an older copy of that record was put back",
            head=head.seq,
            last=w.last_sealed,
        )
    elif head.seq > w.last_sealed:
        w.report(
            "no-mac",
            "audit entry {seq} was sealed but has lost its MAC: it was altered without the "
            "vault's key",
            seq=head.seq,
        )
    elif not crypto.same(w.last_sealed_hash, head.hash):
        w.report(
            "edited",
            "audit entry {seq} differs from the one recorded as the end of the trail: "
            "the trail was rewritten",
            seq=head.seq,
        )


def verify_chain(store: Store, key: bytes | None) -> list[Problem]:
    """Walk the whole trail and report what is wrong with it, first broken link first.

    Finds edited, deleted, inserted or reordered entries, missing entries at the end,
    and (with the audit ``key``) entries whose MAC is wrong or missing. Without the key
    MACs cannot be checked. At most :data:`MAX_PROBLEMS` problems are listed, then a
    count of the rest. Reads inside one snapshot; raises only storage errors.
    """
    w = _Walk(key)
    with store.read():
        for row in store.audit_entries():
            _check_row(w, row)
        head = read_head(store)
    if w.last_seq == 0:
        w.report("deleted", "the audit trail is empty: every vault starts with an entry")
    _check_head(w, head)
    if w.extra:
        w.problems.append(
            Problem(
                "more",
                "{count} further problem(s) in the audit trail were not listed",
                {"count": w.extra},
            )
        )
    return w.problems
