"""The audit trail: a hash chain of who did what to which ids, sealed with a key.

Each entry's hash is BLAKE2b(previous hash || encoded entry). Entries written while the
vault is unlocked also carry a MAC (keyed BLAKE2b over the hash) under the vault's audit
key, so editing the trail needs a passphrase. The keyless purge (and backup, restore)
writes entries without a MAC and with its actor marked keyless (``purge (keyless)``: no
staff name has a space, so such an entry can never pass for a staff member's); the next
unlock, or the next keyed entry, seals them, and they stay marked keyless for ever.
Entries hold ids and staff names, never personal data.

The *head* (setting ``audit_head``: the sequence number and hash of the last sealed entry,
under a MAC of its own) moves with every sealed entry, so deleting entries from the end of
the trail is noticed. The *anchor*, a small file beside the vault (``<vault>.audit-anchor``),
holds a copy of the head and the newest entry, moved after every audited commit: cutting
the tail and putting back an older head (or an older copy of the whole file) no longer
matches it. What stays undetectable is listed in docs/audit.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vault import crypto, files, ids
from vault.dates import parse_day, timestamp
from vault.errors import IntegrityError, StorageError
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
# Appended to the actor of every keyless entry. Staff names never contain a space, so a
# keyless entry can never be read as a staff member's, however it was made.
KEYLESS_SUFFIX = " (keyless)"
FIRST_ACTION = "vault.init"
MAX_PROBLEMS = 50
# nok stamps each entry with the writing process's clock; one dated further ahead of the
# reader's clock than this came from a clock set wrong, or was planted (see clock_floor).
FUTURE_SKEW = dt.timedelta(days=1)
ANCHOR_SUFFIX = ".audit-anchor"
ANCHOR_VERSION = 1


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
    keyless: bool

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "actor": self.actor,
            "action": self.action,
            "consent_id": self.consent_id,
            "object_id": self.object_id,
            "sealed": self.sealed,
            "keyless": self.keyless,
        }


@dataclass(frozen=True)
class Head:
    seq: int
    hash: bytes
    mac: bytes


@dataclass(frozen=True)
class Anchor:
    """The file beside the vault: a copy of the head, and the newest entry (sealed or not)."""

    vault_id: str
    head: Head
    tail_seq: int
    tail_hash: bytes

    def to_bytes(self) -> bytes:
        value = {
            "v": ANCHOR_VERSION,
            "vault_id": self.vault_id,
            "seq": self.head.seq,
            "hash": self.head.hash.hex(),
            "mac": self.head.mac.hex(),
            "tail_seq": self.tail_seq,
            "tail_hash": self.tail_hash.hex(),
        }
        return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def keyless_actor(name: str) -> str:
    """``name`` as the actor of an entry written without a passphrase."""
    return name if is_keyless(name) else name + KEYLESS_SUFFIX


def is_keyless(actor: str) -> bool:
    return actor.endswith(KEYLESS_SUFFIX)


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


def _future_limit(now: dt.datetime) -> str:
    return timestamp(now + FUTURE_SKEW)


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
    only ever at the end of the trail) and the head moves to the new entry. Without it,
    the actor is recorded in its keyless form (:func:`keyless_actor`).
    """
    return _append(store, now, key, actor, action, [(consent_id, object_id)])


def append_each(
    store: Store,
    *,
    now: dt.datetime,
    actor: str,
    action: str,
    consent_ids: Iterable[str],
    key: bytes,
) -> AuditRow:
    """One keyed entry per consent id, inserted together (a read of many people's data)."""
    return _append(store, now, key, actor, action, ((c, None) for c in consent_ids))


def _append(
    store: Store,
    now: dt.datetime,
    key: bytes | None,
    actor: str,
    action: str,
    targets: Iterable[tuple[str | None, str | None]],
) -> AuditRow:
    last = store.last_audit()
    if key is not None and last is not None and last.mac is None:
        seal_pending(store, key, now)
    if key is None:
        actor = keyless_actor(actor)
    ts = timestamp(now)
    written: list[AuditRow] = []

    def rows() -> Iterator[AuditRow]:
        prev = _blob(last.hash) if last is not None else GENESIS
        seq = last.seq if last is not None else 0
        for consent_id, object_id in targets:
            seq += 1
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
            written[:] = [row]
            prev = digest
            yield row

    store.insert_audit_many(rows())
    if not written:
        raise ValueError("an audit entry needs at least one target")
    if key is not None:
        _set_head(store, key, written[0])
    _advance_anchor(store)
    return written[0]


def record_each(unlocked: Unlocked, action: str, consent_ids: Iterable[str]) -> None:
    """Record a read of several consents' data as this staff member: one entry per consent
    (so each person's export shows it), or one without a consent when there are none.
    Call inside the write transaction; raises KeysRotated as :meth:`Unlocked.record`."""
    unlocked.ensure_current()
    targets = list(consent_ids)
    if not targets:
        unlocked.record(action)
        return
    append_each(
        unlocked.store,
        now=unlocked.now,
        actor=unlocked.name,
        action=action,
        consent_ids=targets,
        key=unlocked.vault_key(AUDIT_KEY),
    )


def _sealable(row: AuditRow, prev: bytes, limit: str) -> bool:
    """A keyless job's entry, linked and hashed right, and not dated in the future."""
    return (
        row.action in KEYLESS_ACTIONS
        and is_keyless(row.actor)
        and row.ts <= limit
        and _blob(row.prev) == prev
        and crypto.same(_row_hash(row), _blob(row.hash))
    )


def seal_pending(store: Store, key: bytes, now: dt.datetime) -> int:
    """MAC the keyless entries at the end of the trail; returns how many.

    Only entries a keyless job could have written (:data:`KEYLESS_ACTIONS`, a keyless
    actor, not dated in the future) whose links check out are sealed, stopping at the
    first that is not: a forged entry stays unsealed, and verify reports it.
    """
    pending = store.audit_unsealed_tail()
    if not pending:
        return 0
    before = store.audit_entry(pending[0].seq - 1)
    prev = _blob(before.hash) if before is not None else GENESIS
    limit = _future_limit(now)
    sealed = 0
    for row in pending:
        if not _sealable(row, prev, limit):
            break
        digest = _blob(row.hash)
        store.set_audit_mac(row.seq, crypto.mac(key, digest))
        prev, sealed = digest, sealed + 1
        _set_head(store, key, row)
    if sealed:
        _advance_anchor(store)
    return sealed


def clock_floor(store: Store, now: dt.datetime) -> str | None:
    """The time the clock must not be behind: what the purge's clock check compares with.

    That is the newest of the last sealed entry (as the head records it: every staff
    command moves the head to an entry of its own, so a planted head lasts until the next
    one) and the keyless entries after it that are not dated more than
    :data:`FUTURE_SKEW` ahead of ``now``. A planted far-future entry therefore cannot stop
    the keyless purge for good, while a clock set back is still caught.
    """
    floor, after = None, 0
    head = read_head(store)
    if head is not None:
        row = store.audit_entry(head.seq)
        if row is not None and crypto.same(_blob(row.hash), head.hash):
            floor, after = row.ts, head.seq
    tail = store.newest_audit_ts(after_seq=after, not_after=_future_limit(now))
    return max((t for t in (floor, tail) if t is not None), default=None)


# -- the anchor beside the vault ----------------------------------------------------------


def anchor_path(vault_path: Path) -> Path:
    """Where the anchor of the vault at ``vault_path`` lives: ``<vault path>.audit-anchor``."""
    return vault_path.with_name(vault_path.name + ANCHOR_SUFFIX)


def read_anchor(vault_path: Path) -> Anchor | None:
    """The anchor beside the vault; None when there is none.

    Raises:
        IntegrityError: it is a symbolic link, not a file, or not an anchor.
    """
    path = anchor_path(vault_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(where=f"the audit anchor {path} (a symbolic link)") from None
        raise IntegrityError(where=f"the audit anchor {path} (unreadable)") from None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        raise IntegrityError(where=f"the audit anchor {path} (unreadable)") from None
    finally:
        os.close(fd)
    try:
        value = json.loads(raw)
        if value["v"] != ANCHOR_VERSION:
            raise ValueError("version")
        head = Head(int(value["seq"]), bytes.fromhex(value["hash"]), bytes.fromhex(value["mac"]))
        return Anchor(
            str(value["vault_id"]),
            head,
            int(value["tail_seq"]),
            bytes.fromhex(value["tail_hash"]),
        )
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(where=f"the audit anchor {path}") from None


def _current_anchor(store: Store) -> Anchor:
    """The anchor that describes the trail as it is in ``store`` now."""
    head = read_head(store) or Head(0, GENESIS, b"")
    last = store.last_audit()
    return Anchor(
        vault_id=store.get_setting("vault_id") or "",
        head=head,
        tail_seq=last.seq if last is not None else 0,
        tail_hash=_blob(last.hash) if last is not None else GENESIS,
    )


def write_anchor(store: Store, anchor: Anchor) -> None:
    """Replace the anchor beside the vault (atomically, 0600; 0660 in a group vault).

    Raises StorageError when it cannot be written.
    """
    mode = 0o660 if store.get_setting("group") is not None else 0o600
    path = anchor_path(store.path)
    try:
        files.write_private(path, anchor.to_bytes(), mode=mode)
    except OSError as exc:
        raise StorageError(
            "could not write the audit anchor {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None


def reset_anchor(store: Store) -> None:
    """Anchor the trail as it is now, whatever anchor was there: for a new vault, and after
    a restore (whose trail is legitimately older than the anchor). Call outside a write
    transaction. Raises StorageError when the anchor cannot be written."""
    with store.read():
        anchor = _current_anchor(store)
    write_anchor(store, anchor)


def reanchor(unlocked: Unlocked) -> Anchor:
    """Anchor the trail as it is now, after an admin has looked into what verify reported
    about the anchor (a cut, a rollback, a deleted anchor); recorded as
    ``audit.anchor-reset``. Returns the new anchor.

    Raises:
        NotAllowed: not an admin.
        StorageError: the anchor cannot be written (the entry is recorded all the same).
    """
    unlocked.require_admin("resetting the audit anchor")
    with unlocked.store.write():
        unlocked.record("audit.anchor-reset")
    reset_anchor(unlocked.store)
    with unlocked.store.read():
        return _current_anchor(unlocked.store)


def _points_into(store: Store, seq: int, digest: bytes) -> bool:
    if seq == 0:
        return True
    row = store.audit_entry(seq)
    return row is not None and crypto.same(_blob(row.hash), digest)


def _agrees(store: Store, anchor: Anchor, new: Anchor) -> bool:
    """Whether the trail in ``store`` still holds what ``anchor`` recorded, and moving to
    ``new`` goes forward (a head moved back means an older head was put back)."""
    return (
        anchor.vault_id == new.vault_id
        and new.head.seq >= anchor.head.seq
        and _points_into(store, anchor.head.seq, anchor.head.hash)
        and _points_into(store, anchor.tail_seq, anchor.tail_hash)
    )


def _advance_anchor(store: Store) -> None:
    """Inside a write transaction: once it commits, move the anchor to the trail's new end.

    Only if the anchor agrees with the trail: one that does not is evidence of a cut or
    a rollback, and stays for verify to report (so is a missing one; only
    :func:`reset_anchor` makes one). The anchor is written after the commit, so a crash
    leaves it behind the trail (which verify accepts), never ahead of it; one that
    cannot be written stays behind as well.
    """
    try:
        anchor = read_anchor(store.path)
    except IntegrityError:
        return
    if anchor is None:
        return
    new = _current_anchor(store)
    if not _agrees(store, anchor, new):
        return

    def write() -> None:
        with contextlib.suppress(StorageError):
            write_anchor(store, new)

    store.after_commit("audit-anchor", write)


# -- reading the trail --------------------------------------------------------------------


def _entry(row: AuditRow) -> Entry:
    return Entry(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        consent_id=row.consent_id,
        object_id=row.object_id,
        sealed=row.mac is not None,
        keyless=is_keyless(row.actor),
    )


def list_entries(
    store: Store,
    since: str | None = None,
    actor: str | None = None,
    consent_id: str | None = None,
) -> Iterator[Entry]:
    """Entries in order; ``since`` is a day (YYYY-MM-DD, compared with UTC timestamps);
    ``actor`` also matches that name's keyless entries.

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


# -- verifying it -------------------------------------------------------------------------


@dataclass
class _Walk:
    """State while walking the chain in order."""

    key: bytes | None
    now: dt.datetime
    problems: list[Problem] = field(default_factory=list)
    extra: int = 0
    expected: int = 1
    prev: bytes = GENESIS
    last_seq: int = 0
    last_sealed: int = 0
    last_sealed_hash: bytes = GENESIS
    first_unsealed: int | None = None
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
    if not crypto.same(_row_hash(row), digest):
        w.report(
            "edited",
            "audit entry {seq} does not match its hash: it was edited or moved",
            seq=row.seq,
        )
    if str(row.ts) > w.limit:
        w.report(
            "future",
            "audit entry {seq} is dated {ts}, more than a day after this computer's clock "
            "({now}): it was planted, or written with a clock set wrong",
            seq=row.seq,
            ts=row.ts,
            now=timestamp(w.now),
        )
    _check_keyless(w, row)
    _check_mac(w, row, digest)
    w.expected, w.prev, w.last_seq = row.seq + 1, digest, row.seq


def _check_keyless(w: _Walk, row: AuditRow) -> None:
    """A keyless entry records only what keyless jobs do, and never names a staff member."""
    if is_keyless(str(row.actor)):
        if row.action not in KEYLESS_ACTIONS:
            w.report(
                "keyless-claim",
                "audit entry {seq} was written without a passphrase but records {action}, "
                "which only a staff member can do: it was forged",
                seq=row.seq,
                action=row.action,
            )
    elif row.mac is None and row.action in KEYLESS_ACTIONS:
        w.report(
            "keyless-claim",
            "audit entry {seq} has no MAC but names {actor} as the staff member who did "
            "{action}: entries written without a passphrase are marked keyless; it was forged",
            seq=row.seq,
            actor=row.actor,
            action=row.action,
        )


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


def _check_anchor(w: _Walk, store: Store) -> None:
    """The trail must still hold the entries the anchor beside the vault recorded."""
    try:
        anchor = read_anchor(store.path)
    except IntegrityError as exc:
        w.report("anchor", exc.template, **exc.params)
        return
    if anchor is None:
        return
    vault_id = store.get_setting("vault_id") or ""
    if anchor.vault_id != vault_id:
        w.report(
            "anchor",
            "the audit anchor beside the vault belongs to another vault ({other}): the "
            "vault file or the anchor was replaced",
            other=anchor.vault_id,
        )
        return
    head = anchor.head
    if w.key is not None and not crypto.same(_head_mac(w.key, head.seq, head.hash), head.mac):
        w.report("anchor", "the audit anchor beside the vault fails its MAC: it was altered")
        return
    for seq, digest in ((head.seq, head.hash), (anchor.tail_seq, anchor.tail_hash)):
        if seq > w.last_seq:
            w.report(
                "rollback",
                "the audit trail ends at entry {last}, but the anchor beside the vault records "
                "entry {seq}: entries were cut from its end (and an older head put back), or "
                "an older copy of the vault was put back",
                last=w.last_seq,
                seq=seq,
            )
            return
        if not _points_into(store, seq, digest):
            w.report(
                "rollback",
                "audit entry {seq} is not the one the anchor beside the vault records: the "
                "trail was rolled back and written again, or rewritten",
                seq=seq,
            )
            return


def anchor_warnings(store: Store) -> list[Problem]:
    """What verify says, without failing, when no anchor lies beside the vault: a copy (a
    backup opened elsewhere) has none, and someone who deleted it wants it unnoticed."""
    path = anchor_path(store.path)
    if path.exists() or path.is_symlink():
        return []
    return [
        Problem(
            "anchor-missing",
            "there is no audit anchor beside the vault ({path}): entries cut from the end of "
            "the trail, or an older copy of the vault put back, cannot be noticed; if this is "
            "the live vault, someone deleted it",
            {"path": str(path)},
        )
    ]


def verify_chain(store: Store, key: bytes | None, now: dt.datetime) -> list[Problem]:
    """Walk the whole trail and report what is wrong with it, first broken link first.

    Finds edited, deleted, inserted or reordered entries, missing entries at the end,
    entries dated more than :data:`FUTURE_SKEW` after ``now``, keyless entries that claim
    a staff member's action, a trail that no longer holds what the anchor beside the vault
    recorded, and (with the audit ``key``) entries whose MAC is wrong or missing. Without
    the key MACs cannot be checked. At most :data:`MAX_PROBLEMS` problems are listed, then
    a count of the rest. Reads inside one snapshot; raises only storage errors.
    """
    w = _Walk(key, now)
    with store.read():
        for row in store.audit_entries():
            _check_row(w, row)
        head = read_head(store)
        if w.last_seq == 0:
            w.report("deleted", "the audit trail is empty: every vault starts with an entry")
        _check_head(w, head)
        _check_anchor(w, store)
    if w.extra:
        w.problems.append(
            Problem(
                "more",
                "{count} further problem(s) in the audit trail were not listed",
                {"count": w.extra},
            )
        )
    return w.problems
