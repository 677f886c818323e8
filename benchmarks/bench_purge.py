"""Benchmark of the retention purge, next to a bare sqlite3 loop doing the same work.

The vault holds N notes (default 1,000,000) in consents of 10 notes each; one consent in
ten is past its deadline, so at full size 10,000 expired consents hold 100,000 notes.
Timed, each as its own child process (wall time and peak RSS from wait4):

* ``nok purge`` with no passphrase, exactly as a nightly job runs it;
* the baseline: plain ``sqlite3`` with the same pragmas (WAL, secure_delete, synchronous
  FULL), the same per-consent deletes and tombstone updates, a hash-chained audit row per
  consent, the same fsynced erasure-log lines and commit batches, then
  ``wal_checkpoint(TRUNCATE)``; no validation, no dataclasses, no library layers;
* ``nok purge`` again on the same vault: the nightly run when nothing is due.

The vault is built quickly from bulk rows (``build_row`` + ``insert_consents/notes``,
interactive Argon2id), not through the CLI. Usage::

    python benchmarks/bench_purge.py [--notes N] [--work DIR] [--json]

``measure(work, notes=N)`` returns the rows for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

NOW, ADMIN, TEXT = common.NOW, common.ADMIN, common.TEXT
PASSPHRASE = common.PASSPHRASE.encode()
NOTES_PER_CONSENT = 10
EXPIRED_EVERY = 10  # one consent in ten is past its deadline
BATCH = 10_000
TARGET_S = 10.0  # "seconds, not minutes"
IDLE_TARGET_S = 2.0
ROOT = Path(__file__).resolve().parent.parent


# -- building the vault ---------------------------------------------------------------------


def build(path: Path, *, notes: int) -> int:
    """A vault of ``notes`` notes, 10 per consent, every tenth consent expired long ago.

    Returns how many consents are expired.
    """
    from vault import Vault, crypto, ids
    from vault import consents as consents_mod
    from vault import notes as notes_mod

    count = max(1, notes // NOTES_PER_CONSENT)
    expired = 0
    seen: set[str] = set()
    u = Vault.create(path, admin=ADMIN, passphrase=PASSPHRASE, now=NOW, kdf="interactive")
    try:
        store = u.store
        for start in range(0, count, BATCH // NOTES_PER_CONSENT):
            consent_rows, note_rows = [], []
            for i in range(start, min(count, start + BATCH // NOTES_PER_CONSENT)):
                old = i % EXPIRED_EVERY == 0
                expired += old
                cid = common.fresh_id(ids.new_id, ids.CONSENT_PREFIX, seen)
                key = crypto.new_key()
                data = consents_mod.ConsentInput(
                    subject=f"alias {i}",
                    purpose="oppfølging etter samtale",
                    categories=("conversation-notes", "follow-up-plan"),
                    given="2023-01-05" if old else "2026-01-05",
                    form_ref=f"perm {i % 40}",
                    retain_days=30 if old else None,
                )
                written = [
                    notes_mod.build_row(
                        key,
                        note_id=common.fresh_id(ids.new_id, ids.NOTE_PREFIX, seen),
                        consent_id=cid,
                        key_version=1,
                        seq=n + 1,
                        date=f"{2023 if old else 2026}-01-{10 + n:02d}",
                        kind="one-to-one",
                        text=f"{TEXT} ({i}/{n})",
                        author=ADMIN,
                        now=NOW,
                    )
                    for n in range(NOTES_PER_CONSENT)
                ]
                consent_rows.append(consents_mod.build_row(u, data, cid, key, NOW, notes=written))
                note_rows += written
            with store.write():
                store.insert_consents(consent_rows)
                store.insert_notes(note_rows)
    finally:
        u.close()
    return expired


def _copy(src: Path, dest: Path) -> Path:
    shutil.rmtree(dest.parent, ignore_errors=True)
    dest.parent.mkdir(parents=True, mode=0o700)
    shutil.copy2(src, dest)
    dest.chmod(0o600)
    return dest


# -- timing children ------------------------------------------------------------------------


def _spawn(cmd: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall seconds, the child's own peak RSS in MiB, and its stdout."""
    done = common.run(cmd, env=env, keep_stdout=True)
    return done.seconds, done.peak_mib, done.stdout


def _env(vault: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env["NOK_VAULT"] = str(vault)
    env["PYTHONPATH"] = str(ROOT)
    return env


# -- the baseline ---------------------------------------------------------------------------

# What an erasure blanks in a format-2 consent row (vault.store._PERSONAL_CONSENT_COLS).
_NULLS = ", ".join(
    f"{c} = NULL" for c in ("data_key", "record", "retention_tag", "notes_count", "notes_tag")
)


def _bind(*parts: str | int) -> bytes:
    out = bytearray(b"\x01nok")
    for part in parts:
        raw = str(part).encode()
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def baseline(path: Path) -> int:
    """The bare loop: what the purge must do, with sqlite3 and hashlib only."""
    now = dt.datetime.now(dt.UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    today = now.astimezone().date().isoformat()
    conn = sqlite3.connect(path, isolation_level=None, timeout=15)
    for pragma in ("foreign_keys = ON", "secure_delete = ON", "journal_mode = WAL"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("PRAGMA synchronous = FULL")
    due = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM consents WHERE status = 'active' AND retain_until < ?"
            " ORDER BY retain_until, id",
            [today],
        )
    ]
    seq, prev = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    log = os.open(f"{path}.erasures", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    done = 0
    while done < len(due):
        conn.execute("BEGIN IMMEDIATE")
        started, lines = time.monotonic(), []
        while done < len(due) and time.monotonic() - started < 0.25:
            cid = due[done]
            done += 1
            conn.execute("DELETE FROM notes WHERE consent_id = ?", [cid])
            conn.execute("DELETE FROM note_tombstones WHERE consent_id = ?", [cid])
            conn.execute(
                f"UPDATE consents SET status = 'expired', ended = ?, end_reason = 'expired',"
                f" ended_by = 'purge', retain_until = ?, {_NULLS} WHERE id = ?",
                [ts, today, cid],
            )
            seq += 1
            payload = _bind("audit", seq, ts, "purge", "consent.expire", cid, "")
            digest = hashlib.blake2b(bytes(prev) + payload, digest_size=32).digest()
            conn.execute(
                "INSERT INTO audit (seq, ts, actor, action, consent_id, object_id, prev, hash,"
                " mac) VALUES (?, ?, 'purge', 'consent.expire', ?, NULL, ?, ?, NULL)",
                [seq, ts, cid, prev, digest],
            )
            prev = digest
            lines.append(json.dumps({"consent_id": cid, "ended": ts, "reason": "expired"}) + "\n")
        os.write(log, "".join(lines).encode())
        os.fsync(log)
        conn.execute("COMMIT")
    os.close(log)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return done


# -- measuring ------------------------------------------------------------------------------


def _check(vault: Path, expired: int, notes: int) -> None:
    from vault import Vault

    with Vault.open(vault) as v:
        ended = v.store.count_consents("expired")
        left = v.store.count_notes()
    if ended != expired or left != notes - expired * NOTES_PER_CONSENT:
        raise RuntimeError(f"purge left {ended} tombstones and {left} notes")


def measure(work: Path, *, notes: int) -> list[dict[str, Any]]:
    """Build a vault of ``notes`` notes under ``work`` and time the purge and its baseline."""
    os.umask(0o077)
    base = work / "purge"
    original = base / "original" / "vault.db"
    shutil.rmtree(base, ignore_errors=True)
    expired = build(original, notes=notes)
    nok_vault = _copy(original, base / "nok" / "vault.db")
    nok_s, nok_peak, out = _spawn(
        [sys.executable, "-m", "nokcli", "purge", "--json"], _env(nok_vault)
    )
    if len(json.loads(out)["purged"]) != expired:
        raise RuntimeError("nok purge did not erase every expired consent")
    _check(nok_vault, expired, notes)
    idle_s, idle_peak, _ = _spawn([sys.executable, "-m", "nokcli", "purge"], _env(nok_vault))
    base_vault = _copy(original, base / "baseline" / "vault.db")
    base_s, _, _ = _spawn(
        [sys.executable, str(Path(__file__).resolve()), "--baseline-child", str(base_vault)],
        _env(base_vault),
    )
    _check(base_vault, expired, notes)
    shutil.rmtree(base)
    size = f"{expired:,} of {notes // NOTES_PER_CONSENT:,} consents, "
    return [
        {
            "task": "purge (expired consents)",
            "size": size + f"{expired * NOTES_PER_CONSENT:,} of {notes:,} notes",
            "nok_s": round(nok_s, 3),
            "baseline_s": round(base_s, 3),
            "peak_mib": round(nok_peak, 1),
            "target": f"< {TARGET_S:g} s",
            "met": nok_s < TARGET_S,
        },
        {
            "task": "purge (nothing due)",
            "size": f"{notes - expired * NOTES_PER_CONSENT:,} notes",
            "nok_s": round(idle_s, 3),
            "baseline_s": None,
            "peak_mib": round(idle_peak, 1),
            "target": f"< {IDLE_TARGET_S:g} s",
            "met": idle_s < IDLE_TARGET_S,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1_000_000, help="notes in the vault")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--baseline-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        baseline(args.baseline_child)
        return
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        started = time.perf_counter()
        rows = measure(Path(tmp), notes=args.notes)
        total = time.perf_counter() - started
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(
            f"{r['task']:<26} {r['size']:<52} nok {r['nok_s']:>7.3f} s  "
            f"baseline {'-' if r['baseline_s'] is None else format(r['baseline_s'], '.3f'):>7} s  "
            f"peak {r['peak_mib']} MiB  target {r['target']}  met {r['met']}"
        )
    print(f"(whole run including the build: {total:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
