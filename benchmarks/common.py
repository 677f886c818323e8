"""Shared pieces of the benchmarks: test data, vaults built through ``nok import``, timing,
peak memory of a subprocess, and the *baseline*: plain loops that do the same work with
``sqlite3`` and ``nacl.bindings`` directly and nothing else (no validation, no audit
helpers, no dataclasses), which is the practical limit for Python.

Bench modules (``bench_*.py``) expose ``measure(work: Path, *, notes: int) -> list[dict]``
with the keys of :func:`row`. They may call :func:`vault_for` to get a vault of ``notes``
notes (built once per run and size, then shared: copy it with :func:`copy_vault` before
changing it) and :func:`baseline_for` for the baseline database made from the same data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

PASSPHRASE = "benchmark passphrase, not secret"
ADMIN = "bench"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)  # for vaults built from bulk rows
TEXT = (
    "Samtale om oppfølging og trygghet. Avtalt ny samtale om to uker; ønsker å ta opp "
    "kontakt med familien. Ingen akutte behov."
)
KDF = "interactive"
KDF_MIB = 64  # Argon2id memory of the interactive profile (libsodium MEMLIMIT_INTERACTIVE)
NOTES_PER_CONSENT = 10
NOK = [sys.executable, "-m", "nokcli"]
# Issue 11: import, list, verify and deep rotation within this factor of the one-AEAD loop
# (judged from 100,000 notes on; below that, start-up and the unlock dominate).
BULK_FACTOR = 1.5
BULK_FROM = 100_000
BULK_TARGET = f"<= {BULK_FACTOR:g}x baseline"


def bulk_met(size: int, nok_s: float, baseline_s: float) -> bool | None:
    """The bulk target, judged only where issue 11 sets it."""
    return nok_s <= BULK_FACTOR * baseline_s if size >= BULK_FROM else None


_VOCABULARY = (
    "samtale trygghet oppfølging familie skole angst søvn venner jobb rådgiver plan mål gruppe "
    "mor far søster bror barnevern helsesøster fastlege politi avhør skam skyld sinne tristhet "
    "mareritt minner kropp grenser tillit nettverk pårørende åpent hus telefon veiledning "
    "henvisning psykolog dps neste time avtalt ønsker snakke om hvordan hun han har det "
    "bedre verre uken helgen jul sommer flytte bolig økonomi nav arbeid studier trening"
)
WORDS = tuple(_VOCABULARY.split())


def row(
    task: str,
    size: int | None,
    nok_s: float | None,
    baseline_s: float | None,
    peak_mib: float | None,
    target: str,
    met: bool | None,
) -> dict[str, Any]:
    """One line of the results table."""
    return {
        "task": task,
        "size": size,
        "nok_s": nok_s,
        "baseline_s": baseline_s,
        "peak_mib": peak_mib,
        "target": target,
        "met": met,
    }


# -- test data ---------------------------------------------------------------------------


def note_text(rnd: random.Random) -> str:
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(20, 60))]
    return " ".join(words).capitalize() + "."


def write_jsonl(path: Path, notes: int, *, seed: int = 6) -> Path:
    """``notes`` notes in consents of NOTES_PER_CONSENT, as a ``nok import`` file."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        number = 0
        while notes > 0:
            count = min(NOTES_PER_CONSENT, notes)
            notes -= count
            year = 2016 + number % 9
            dates = sorted(
                f"{year}-{rnd.randint(2, 12):02d}-{rnd.randint(1, 28):02d}" for _ in range(count)
            )
            record = {
                "subject": f"Person {number}",
                "purpose": "oppfølging etter samtaler",
                "categories": ["conversation-notes", "safety"],
                "given": f"{year}-01-15",
                "form_ref": f"perm {year}/{number}",
                "retain_days": 36500,
                "notes": [
                    {
                        "date": d,
                        "kind": rnd.choice(("one-to-one", "phone", "group")),
                        "text": note_text(rnd),
                    }
                    for d in dates
                ],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            number += 1
    return path


# -- processes, time and memory ----------------------------------------------------------


def env_for(vault: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update(
        {
            "NOK_VAULT": str(vault),
            "NOK_USER": ADMIN,
            "NOK_PASSPHRASE": PASSPHRASE,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
PEAK_TAG = "nok-bench-peak-kib "


@dataclass
class Run:
    seconds: float
    peak_mib: float
    returncode: int
    stdout: bytes


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: Path | None = None,
    keep_stdout: bool = False,
) -> Run:
    """Run ``cmd`` and report its wall time and its own peak RSS.

    The peak comes from GNU time when there is one: on Linux a child's ru_maxrss counts
    the RSS of the process that forked it (this script, hundreds of MiB after building a
    vault), so ``wait4`` on a direct child over-reports. /usr/bin/time is a small process
    whose own child starts clean. Its start-up adds about a millisecond to the wall time.
    """
    timed = [GNU_TIME, "-f", f"{PEAK_TAG}%M", *cmd] if GNU_TIME else cmd
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        sink = subprocess.PIPE if keep_stdout else subprocess.DEVNULL
        start = time.perf_counter()
        proc = subprocess.Popen(timed, env=env, stdin=source, stdout=sink, stderr=subprocess.PIPE)
        out = b""
        if keep_stdout:
            out = proc.stdout.read()  # type: ignore[union-attr]
        err = proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err.decode()[-2000:]}")
    peak_kib = float(usage.ru_maxrss)
    for line in err.decode(errors="replace").splitlines():
        if line.startswith(PEAK_TAG):
            peak_kib = float(line[len(PEAK_TAG) :])
    return Run(seconds, peak_kib / 1024, proc.returncode, out)


def median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed(fn: Callable[[], object]) -> float:
    return median(fn, 1)


# -- nok vaults, built through import ----------------------------------------------------


@dataclass
class Built:
    vault: Path
    jsonl: Path
    notes: int
    import_run: Run


_BUILT: dict[int, Built] = {}


def vault_for(work: Path, notes: int) -> Built:
    """A vault with ``notes`` notes made by ``nok import`` (once per size and run)."""
    if notes in _BUILT:
        return _BUILT[notes]
    base = work / f"n{notes}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o700)
    jsonl = write_jsonl(base / "import.jsonl", notes)
    vault = base / "vault" / "vault.db"
    env = env_for(vault)
    recovery = base / "recovery.txt"
    run([*NOK, "init", "--kdf", KDF, "--admin", ADMIN, "--recovery-file", str(recovery)], env=env)
    imported = run([*NOK, "import", str(jsonl), "--json"], env=env)
    _BUILT[notes] = Built(vault, jsonl, notes, imported)
    return _BUILT[notes]


def copy_vault(built: Built, dest_dir: Path) -> Path:
    """A private copy of a built vault (for benchmarks that change it)."""
    shutil.rmtree(dest_dir, ignore_errors=True)
    dest_dir.mkdir(parents=True)
    dest_dir.chmod(0o700)
    dest = dest_dir / "vault.db"
    with sqlite3.connect(built.vault) as src:
        src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy2(built.vault, dest)
    dest.chmod(0o600)
    return dest


def unlock(vault: Path, now: dt.datetime | None = None) -> Any:
    """The vault unlocked through the API (the Argon2id cost is paid here, not timed)."""
    from vault import Vault

    return Vault.open(vault).unlock(ADMIN, PASSPHRASE.encode(), now=now or dt.datetime.now(dt.UTC))


# -- the baseline: sqlite3 + nacl.bindings, nothing else ---------------------------------

NONCE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def b_ad(*parts: str | int) -> bytes:
    out = bytearray(b"\x01nok")
    for part in parts:
        raw = str(part).encode()
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def b_seal(key: bytes, plain: bytes, ad: bytes) -> bytes:
    nonce = sodium.randombytes(NONCE)
    return (
        b"\x01" + nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, nonce, key)
    )


def b_open(key: bytes, blob: bytes, ad: bytes) -> bytes:
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        blob[1 + NONCE :], ad, blob[1 : 1 + NONCE], key
    )


def b_record(*fields: str) -> bytes:
    """The record plaintext of vault format 2: length-prefixed fields, zero-padded to 256."""
    out = b"".join(struct.pack(">I", len(raw)) + raw for raw in (f.encode() for f in fields))
    return out + bytes(-len(out) % 256)


def b_fields(plain: bytes, count: int) -> list[str]:
    fields, offset = [], 0
    for _ in range(count):
        (size,) = struct.unpack_from(">I", plain, offset)
        fields.append(plain[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return fields


def b_hash(data: bytes, key: bytes = b"") -> bytes:
    return sodium.crypto_generichash_blake2b_salt_personal(data, digest_size=32, key=key)


def b_id(prefix: str, size: int) -> str:
    return prefix + "-" + bytes(ALPHABET[b & 31] for b in os.urandom(size)).decode()


@dataclass
class Baseline:
    path: Path
    master: bytes
    audit_key: bytes
    conn: sqlite3.Connection


def b_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "foreign_keys = ON",
        "secure_delete = ON",
        "temp_store = MEMORY",
        "journal_mode = WAL",
        "synchronous = FULL",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def b_schema_from(vault: Path) -> list[str]:
    """The nok vault's own CREATE statements, so the baseline has the same tables and indexes."""
    with contextlib.closing(sqlite3.connect(f"file:{vault}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
            " AND type IN ('table', 'index') ORDER BY type DESC"
        ).fetchall()
    return [r[0] for r in rows]


_BASELINES: dict[int, tuple[Baseline, float]] = {}


def baseline_for(work: Path, built: Built) -> tuple[Baseline, float]:
    """The baseline database made from the same file (once per size); and its import time."""
    if built.notes in _BASELINES:
        return _BASELINES[built.notes]
    path = built.vault.parent.parent / "baseline.db"
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    conn = b_connect(path)
    for sql in b_schema_from(built.vault):
        conn.execute(sql)
    base = Baseline(path, sodium.randombytes(32), sodium.randombytes(32), conn)
    seconds = timed(lambda: b_import(base, built.jsonl))
    _BASELINES[built.notes] = (base, seconds)
    return base, seconds


def b_audit(
    conn: sqlite3.Connection,
    state: list[Any],
    key: bytes,
    action: str,
    consent_id: str | None,
    now: str,
) -> tuple[Any, ...]:
    seq, prev = state
    seq += 1
    payload = b_ad("audit", seq, now, ADMIN, action, consent_id or "", "")
    digest = b_hash(prev + payload)
    mac = b_hash(digest, key)
    state[:] = [seq, digest]
    return (seq, now, ADMIN, action, consent_id, None, prev, digest, mac)


def b_audit_state(conn: sqlite3.Connection) -> list[Any]:
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return [last[0], last[1]] if last else [0, bytes(32)]


CONSENT_INSERT = (
    "INSERT INTO consents (id, status, given, created, last_activity, retain_days,"
    " retain_until, master_version, key_version, data_key, record) VALUES (?, 'active', ?, ?,"
    " ?, ?, ?, 1, 1, ?, ?)"
)
NOTE_INSERT = (
    "INSERT INTO notes (id, consent_id, date, created, key_version, seq, record)"
    " VALUES (?, ?, ?, ?, 1, ?, ?)"
)
AUDIT_INSERT = (
    "INSERT INTO audit (seq, ts, actor, action, consent_id, object_id, prev, hash,"
    " mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def b_import(base: Baseline, jsonl: Path) -> None:
    """Read the file, encrypt every field, insert in batches inside one transaction."""
    conn, master = base.conn, base.master
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN IMMEDIATE")
    state = b_audit_state(conn)
    consents: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    audits: list[tuple[Any, ...]] = []
    with jsonl.open("rb") as lines:
        for line in lines:
            rec = json.loads(line)
            cid = b_id("C", 8)
            key = sodium.randombytes(32)
            wrapped = b_seal(master, key, b_ad("data_key", cid, 1))

            last = max(n["date"] for n in rec["notes"])
            categories = json.dumps(rec["categories"])
            fields = (
                rec["subject"],
                rec["purpose"],
                categories,
                "false",
                "",
                rec["form_ref"],
                ADMIN,
            )
            consents.append(
                (
                    cid,
                    rec["given"],
                    now,
                    last,
                    rec["retain_days"],
                    last,
                    wrapped,
                    b_seal(key, b_record(*fields), b_ad("consent", cid, 1)),
                )
            )
            for seq, n in enumerate(rec["notes"], start=1):
                nid = b_id("N", 9)
                notes.append(
                    (
                        nid,
                        cid,
                        n["date"],
                        now,
                        seq,
                        b_seal(
                            key,
                            b_record(n["date"], now, n["kind"], ADMIN, n["text"]),
                            b_ad("note", nid, cid, 1),
                        ),
                    )
                )
            audits.append(b_audit(conn, state, base.audit_key, "consent.import", cid, now))
            if len(notes) >= 2000:
                b_flush(conn, consents, notes, audits)
    b_flush(conn, consents, notes, audits)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def b_flush(
    conn: sqlite3.Connection, consents: list[Any], notes: list[Any], audits: list[Any]
) -> None:
    conn.executemany(CONSENT_INSERT, consents)
    conn.executemany(NOTE_INSERT, notes)
    conn.executemany(AUDIT_INSERT, audits)
    consents.clear()
    notes.clear()
    audits.clear()


def b_keys(base: Baseline) -> Iterator[tuple[str, bytes]]:
    for cid, wrapped in base.conn.execute("SELECT id, data_key FROM consents"):
        yield cid, b_open(base.master, wrapped, b_ad("data_key", cid, 1))


def b_note_fields(key: bytes, nid: str, cid: str, record: bytes) -> list[str]:
    """(date, created, kind, author, text): one AEAD call."""
    return b_fields(b_open(key, record, b_ad("note", nid, cid, 1)), 5)


def b_note_add(base: Baseline, consent_id: str, text: str, day: str) -> str:
    """One note in its own transaction: key, one record, retention, audit entry."""
    conn = base.conn
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN IMMEDIATE")
    wrapped, master_version, key_version, retain_days, count = conn.execute(
        "SELECT data_key, master_version, key_version, retain_days, notes_count FROM consents"
        " WHERE id = ? AND status = 'active'",
        (consent_id,),
    ).fetchone()
    key = b_open(base.master, wrapped, b_ad("data_key", consent_id, master_version))
    note_id = b_id("N", 9)
    while conn.execute("SELECT 1 FROM notes WHERE id = ?", (note_id,)).fetchone():
        note_id = b_id("N", 9)
    conn.execute(
        NOTE_INSERT,
        (
            note_id,
            consent_id,
            day,
            now,
            (count or 0) + 1,
            b_seal(
                key,
                b_record(day, now, "phone", ADMIN, text),
                b_ad("note", note_id, consent_id, key_version),
            ),
        ),
    )
    until = (dt.date.fromisoformat(day) + dt.timedelta(days=retain_days)).isoformat()
    conn.execute(
        "UPDATE consents SET last_activity = ?, retain_until = ?, notes_count = ? WHERE id = ?",
        (day, until, (count or 0) + 1, consent_id),
    )
    state = b_audit_state(conn)
    conn.execute(AUDIT_INSERT, b_audit(conn, state, base.audit_key, "note.add", consent_id, now))
    conn.execute("COMMIT")
    return note_id


def b_list_consent(base: Baseline, consent_id: str) -> list[list[str]]:
    conn = base.conn
    wrapped, master_version = conn.execute(
        "SELECT data_key, master_version FROM consents WHERE id = ?", (consent_id,)
    ).fetchone()
    key = b_open(base.master, wrapped, b_ad("data_key", consent_id, master_version))
    return [
        b_note_fields(key, nid, consent_id, record)
        for nid, record in conn.execute(
            "SELECT id, record FROM notes WHERE consent_id = ? ORDER BY date, created, id",
            (consent_id,),
        )
    ]


def b_list_all(base: Baseline) -> int:
    """Every note by date, decrypted, written as JSON to /dev/null (streaming)."""
    keys: dict[str, bytes] = {}
    count = 0
    with open(os.devnull, "w", encoding="utf-8") as out:
        for nid, cid, record, wrapped in base.conn.execute(
            "SELECT n.id, n.consent_id, n.record, c.data_key"
            " FROM notes n JOIN consents c ON c.id = n.consent_id ORDER BY n.date, n.created, n.id"
        ):
            key = keys.get(cid)
            if key is None:
                key = keys[cid] = b_open(base.master, wrapped, b_ad("data_key", cid, 1))
            date, _, kind, author, text = b_note_fields(key, nid, cid, record)
            out.write(
                json.dumps(
                    {
                        "id": nid,
                        "consent_id": cid,
                        "date": date,
                        "kind": kind,
                        "text": text,
                        "author": author,
                    },
                    ensure_ascii=False,
                )
            )
            count += 1
    return count


def b_search(base: Baseline, text: str) -> list[str]:
    needle = text.casefold()
    keys: dict[str, bytes] = {}
    found = []
    for nid, cid, record, wrapped in base.conn.execute(
        "SELECT n.id, n.consent_id, n.record, c.data_key FROM notes n"
        " JOIN consents c ON c.id = n.consent_id WHERE c.status = 'active'"
        " ORDER BY n.date, n.created, n.id"
    ):
        key = keys.get(cid)
        if key is None:
            key = keys[cid] = b_open(base.master, wrapped, b_ad("data_key", cid, 1))
        if needle in b_note_fields(key, nid, cid, record)[4].casefold():
            found.append(nid)
    return found


def b_search_split(base: Baseline, text: str, processes: int) -> list[str]:
    """:func:`b_search` split over ``processes`` forked workers, each reading its own
    range of rows with its own connection; matches come back unordered (the floor of a
    parallel scan: no ordering, no parent reading for the workers).

    The workers are forked from a process with an open connection, which SQLite warns
    against; here nothing writes the baseline database meanwhile, so no lock is needed.
    """
    import multiprocessing

    low, high = base.conn.execute("SELECT min(rowid), max(rowid) FROM notes").fetchone()
    step = (high - low) // processes + 1
    ranges = [(low + i * step, low + (i + 1) * step) for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.starmap(
            _b_search_range, [(base.path, base.master, text, a, b) for a, b in ranges]
        )
    return [nid for part in parts for nid in part]


def _b_search_range(path: Path, master: bytes, text: str, low: int, high: int) -> list[str]:
    needle = text.casefold()
    keys: dict[str, bytes] = {}
    found = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        for nid, cid, record, wrapped in conn.execute(
            "SELECT n.id, n.consent_id, n.record, c.data_key FROM notes n"
            " JOIN consents c ON c.id = n.consent_id WHERE c.status = 'active'"
            " AND n.rowid >= ? AND n.rowid < ?",
            (low, high),
        ):
            key = keys.get(cid)
            if key is None:
                key = keys[cid] = b_open(master, wrapped, b_ad("data_key", cid, 1))
            if needle in b_note_fields(key, nid, cid, record)[4].casefold():
                found.append(nid)
    return found


def b_verify(base: Baseline) -> int:
    """SQLite's checks, every key and ciphertext opened, the audit chain recomputed."""
    conn = base.conn
    opened = 0
    conn.execute("BEGIN")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    keys: dict[str, bytes] = {}
    for cid, wrapped, record in conn.execute(
        "SELECT id, data_key, record FROM consents WHERE status = 'active'"
    ):
        key = keys[cid] = b_open(base.master, wrapped, b_ad("data_key", cid, 1))
        b_fields(b_open(key, record, b_ad("consent", cid, 1)), 7)
        opened += 1
    for nid, cid, record in conn.execute("SELECT id, consent_id, record FROM notes"):
        b_note_fields(keys[cid], nid, cid, record)
        opened += 1
    prev = bytes(32)
    for seq, ts, actor, action, cid, oid, stored_prev, digest, mac in conn.execute(
        "SELECT seq, ts, actor, action, consent_id, object_id, prev, hash, mac FROM audit"
        " ORDER BY seq"
    ):
        payload = b_ad("audit", seq, ts, actor, action, cid or "", oid or "")
        ok = stored_prev == prev and b_hash(prev + payload) == digest
        if not ok or b_hash(digest, base.audit_key) != mac:
            raise RuntimeError(f"baseline audit chain broken at {seq}")
        prev = digest
    conn.execute("ROLLBACK")
    return opened


def fresh_id(new_id: Callable[[str], str], prefix: str, seen: set[str]) -> str:
    """A new random id of ``prefix`` not in ``seen`` (bulk builds make millions)."""
    while True:
        candidate = str(new_id(prefix))
        if candidate not in seen:
            seen.add(candidate)
            return candidate
