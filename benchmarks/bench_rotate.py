"""Benchmark of key rotation, each nok run side by side with a plain baseline loop.

* ``nok key rotate`` over 10,000 consents (target: a few seconds, unlock excluded).
* ``nok key rotate --deep`` over N notes (default 1,000,000), next to a loop that
  decrypts, re-encrypts and updates the same rows with sqlite3 and nacl.bindings directly,
  with the same SQLite pragmas and batch size (target: nok within 1.5x of that loop).

Every timed run is its own child process (so peak memory is per run, from wait4); the
unlock (Argon2id) happens before the clock starts and is not counted, but its memory is
part of the peak. Usage::

    python benchmarks/bench_rotate.py [--notes N] [--consents N] [--work DIR] [--json]

``measure(work, notes=N)`` returns the rows for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
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
CONSENTS = 10_000
BATCH = 5000
PLAIN_TARGET_S = 3.0


# -- building the vault ---------------------------------------------------------------------


def build(path: Path, *, consents: int, notes: int) -> None:
    """A vault with ``consents`` consents and ``notes`` notes spread over them (bulk rows)."""
    from vault import Vault, crypto, ids
    from vault import consents as consents_mod
    from vault import notes as notes_mod

    u = Vault.create(path, admin=ADMIN, passphrase=PASSPHRASE, now=NOW, kdf="interactive")
    try:
        store = u.store
        seen: set[str] = set()
        consent_rows: list[Any] = []
        note_rows: list[Any] = []
        for i in range(consents):
            cid = common.fresh_id(ids.new_id, ids.CONSENT_PREFIX, seen)
            key = crypto.new_key()
            data = consents_mod.ConsentInput(
                subject=f"alias {i}",
                purpose="oppfølging etter samtale",
                categories=("conversation-notes", "follow-up-plan"),
                given="2026-01-05",
                form_ref=f"perm {i % 40}",
            )
            # Notes n = i, i + consents, i + 2 * consents, ... belong to consent i.
            written = [
                notes_mod.build_row(
                    key,
                    note_id=common.fresh_id(ids.new_id, ids.NOTE_PREFIX, seen),
                    consent_id=cid,
                    key_version=1,
                    seq=seq,
                    date="2026-03-01",
                    kind="one-to-one",
                    text=TEXT,
                    author=ADMIN,
                    now=NOW,
                )
                for seq in range(1, len(range(i, notes, consents)) + 1)
            ]
            consent_rows.append(consents_mod.build_row(u, data, cid, key, NOW, notes=written))
            note_rows += written
            if len(note_rows) >= 50_000 or i == consents - 1:
                with store.write():
                    store.insert_consents(consent_rows)
                    store.insert_notes(note_rows)
                consent_rows, note_rows = [], []
        store.checkpoint()
    finally:
        u.close()


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(0o600)
    return dst


# -- children: one timed run each -----------------------------------------------------------


def _unlock(path: Path) -> Any:
    from vault import Vault

    return Vault.open(path).unlock(ADMIN, PASSPHRASE, now=NOW)


def child_nok(path: Path, deep: bool) -> float:
    from vault import rotation

    u = _unlock(path)
    try:
        start = time.perf_counter()
        rotation.rotate(u, deep=deep)
        return time.perf_counter() - start
    finally:
        u.close()


def _ad(*parts: str | int) -> bytes:
    # The same additional data as vault.crypto.bind, written out: the baseline must open
    # what nok sealed.
    out = bytearray(b"nok")
    for part in parts:
        raw = str(part).encode()
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def child_baseline(path: Path, deep: bool) -> float:
    """Same work as nok, straight on sqlite3 and nacl.bindings."""
    import nacl.bindings as nb
    import nacl.utils

    u = _unlock(path)
    master, version = u.master, u.master_version
    u.close()
    enc, dec = (
        nb.crypto_aead_xchacha20poly1305_ietf_encrypt,
        nb.crypto_aead_xchacha20poly1305_ietf_decrypt,
    )
    rand = nacl.utils.random
    head = b"\x01"

    def seal(key: bytes, plain: bytes, ad: bytes) -> bytes:
        nonce = rand(24)
        return head + nonce + enc(plain, head + ad, nonce, key)

    def unseal(key: bytes, blob: bytes, ad: bytes) -> bytes:
        return bytes(dec(blob[25:], head + ad, blob[1:25], key))

    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("foreign_keys = ON", "secure_delete = ON", "synchronous = FULL"):
        conn.execute(f"PRAGMA {pragma}")
    start = time.perf_counter()
    new_master, new_version = rand(32), version + 1
    conn.execute("BEGIN IMMEDIATE")
    consent_rows = conn.execute(
        "SELECT id, master_version, key_version, data_key, record FROM consents"
    ).fetchall()
    keys: dict[str, tuple[bytes, bytes, int]] = {}
    updates = []
    for cid, mv, kv, wrapped, record in consent_rows:
        old = unseal(master, wrapped, _ad("data_key", cid, mv))
        new = rand(32) if deep else old
        nkv = kv + 1 if deep else kv
        keys[cid] = (old, new, kv)
        if deep:
            plain = unseal(old, record, _ad("consent", cid, kv))
            record = seal(new, plain, _ad("consent", cid, nkv))
        rewrapped = seal(new_master, new, _ad("data_key", cid, new_version))
        updates.append((new_version, nkv, rewrapped, record, cid))
    sets = ", ".join(f"{c} = ?" for c in ("master_version", "key_version", "data_key", "record"))
    conn.executemany(f"UPDATE consents SET {sets} WHERE id = ?", updates)
    conn.execute("COMMIT")
    if deep:
        _baseline_notes(conn, keys, seal, unseal)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _baseline_notes(conn: sqlite3.Connection, keys: Any, seal: Any, unseal: Any) -> None:
    last = ""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT id, consent_id, key_version, record FROM notes"
            " WHERE id > ? ORDER BY id LIMIT ?",
            [last, BATCH],
        ).fetchall()
        if not rows:
            conn.execute("COMMIT")
            return
        updates = []
        for nid, cid, kv, record in rows:
            old, new, _ = keys[cid]
            plain = unseal(old, record, _ad("note", nid, cid, kv))
            updates.append((kv + 1, seal(new, plain, _ad("note", nid, cid, kv + 1)), nid))
        conn.executemany("UPDATE notes SET key_version = ?, record = ? WHERE id = ?", updates)
        conn.execute("COMMIT")
        last = rows[-1][0]


def _run_child(kind: str, path: Path, deep: bool) -> tuple[float, float | None]:
    """Run one timed child; returns (seconds, peak MiB)."""
    cmd = [sys.executable, __file__, "--child", kind, "--vault", str(path)]
    if deep:
        cmd.append("--deep")
    done = common.run(cmd, env=dict(os.environ), keep_stdout=True)
    return float(json.loads(done.stdout)["seconds"]), done.peak_mib


# -- the benchmark --------------------------------------------------------------------------


def measure(work: Path, *, notes: int, consents: int = CONSENTS) -> list[dict[str, Any]]:
    """Build a vault under ``work`` and time plain and deep rotation against baselines."""
    os.umask(0o077)
    original = work / "rotate" / "original" / "vault.db"
    if original.exists():
        shutil.rmtree(original.parent)
    build(original, consents=consents, notes=notes)
    nok_vault = _copy(original, work / "rotate" / "nok" / "vault.db")
    plain_s, plain_peak = _run_child("nok", nok_vault, deep=False)
    base_plain_s, _ = _run_child(
        "baseline", _copy(original, work / "rotate" / "base-plain" / "vault.db"), deep=False
    )
    deep_s, deep_peak = _run_child("nok", nok_vault, deep=True)
    base_deep_s, _ = _run_child(
        "baseline", _copy(original, work / "rotate" / "base-deep" / "vault.db"), deep=True
    )
    shutil.rmtree(work / "rotate")
    return [
        {
            "task": "key rotate",
            "size": f"{consents:,} consents",
            "nok_s": round(plain_s, 3),
            "baseline_s": round(base_plain_s, 3),
            "peak_mib": None if plain_peak is None else round(plain_peak, 1),
            "target": f"< {PLAIN_TARGET_S:g} s (unlock excluded)",
            "met": plain_s < PLAIN_TARGET_S,
        },
        {
            "task": "key rotate --deep",
            "size": f"{notes:,} notes",
            "nok_s": round(deep_s, 3),
            "baseline_s": round(base_deep_s, 3),
            "peak_mib": None if deep_peak is None else round(deep_peak, 1),
            "target": common.BULK_TARGET if notes >= common.BULK_FROM else "",
            "met": common.bulk_met(notes, deep_s, base_deep_s),
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=1_000_000, help="notes for --deep")
    parser.add_argument("--consents", type=int, default=CONSENTS, help="consents in the vault")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--child", choices=("nok", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--vault", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = child_nok if args.child == "nok" else child_baseline
        print(json.dumps({"seconds": run(args.vault, args.deep)}))
        return
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = measure(Path(tmp), notes=args.notes, consents=args.consents)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        ratio = r["nok_s"] / r["baseline_s"] if r["baseline_s"] else float("nan")
        print(
            f"{r['task']:<20} {r['size']:>18}  nok {r['nok_s']:8.2f} s  baseline "
            f"{r['baseline_s']:8.2f} s  ({ratio:.2f}x)  peak {r['peak_mib']} MiB  "
            f"target {r['target']}: {'met' if r['met'] else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
