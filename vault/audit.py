"""The audit trail: a hash chain of who did what to which ids, sealed with a key.

Each entry's hash is BLAKE2b(previous hash || encoded entry). Entries written while the
vault is unlocked also carry a MAC (keyed BLAKE2b over the hash) under the vault's audit
key, so editing the trail needs a passphrase. The keyless purge writes entries without a
MAC; the next unlock seals them. Entries hold ids and staff names, never personal data.
"""

from __future__ import annotations

import datetime as dt

from vault import crypto
from vault.dates import timestamp
from vault.store import AuditRow, Store

GENESIS = bytes(32)
AUDIT_KEY = "audit"


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
    """Append one entry; call inside the write transaction of the change it records."""
    last = store.last_audit()
    prev = bytes(last.hash) if last is not None else GENESIS
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
    return row


def seal_pending(store: Store, key: bytes) -> int:
    """MAC the entries written without a key (by purge); returns how many."""
    pending = store.unsealed_audit()
    for row in pending:
        store.set_audit_mac(row.seq, crypto.mac(key, bytes(row.hash)))
    return len(pending)
