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
import dataclasses
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
from collections.abc import Callable
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
#
# Format 3 adds necessary work that the loop does too, and nothing else:
#   per consent written: its data key wrapped for each reader nok wraps it for when an admin
#     imports for herself (her own wrap and the admins', one AEAD each; the job's proof key
#     as one sealed box), the consent box key pair derived from the data key (its public
#     key is in the signed state), the state digest, one Ed25519 signature and one MAC
#     (the proof); one trail entry naming the state, and one Ed25519 signature per
#     SIGNED_EVERY entries (nok's import batch);
#   per note written: one link of the consent's notes hash;
#   per consent read: its state digest recomputed and its signature verified (the access
#     columns decide who reads), and one wrap opened;
#   verify: every signature, proof, wrap, record, notes hash link and trail entry.
# The loop's encodings are its own (it needs no compatibility with nok's), with the same
# number of calls into libsodium and SQLite of the same sizes.

NONCE = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
ALPHABET = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SIGNED_EVERY = 8  # trail entries per signature in nok's import (vault.importer)
READERS = "[]"


def b_ad(*parts: str | int | bytes) -> bytes:
    out = bytearray(b"\x01nok")
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
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
    """The record plaintext: length-prefixed fields, zero-padded to 256."""
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
    wrap_key: bytes  # the member's own wrap key
    admin_wrap: bytes  # the admins' wrap key
    job_public: bytes  # the job's box key: each consent's proof key is sealed to it
    sign_secret: bytes  # the member's Ed25519 key
    sign_public: bytes
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


def new_baseline(path: Path, schema_from: Path) -> Baseline:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    conn = b_connect(path)
    for sql in b_schema_from(schema_from):
        conn.execute(sql)
    job_public, _ = sodium.crypto_box_keypair()
    sign_public, sign_secret = sodium.crypto_sign_keypair()
    return Baseline(
        path,
        sodium.randombytes(32),
        sodium.randombytes(32),
        job_public,
        sign_secret,
        sign_public,
        conn,
    )


def baseline_for(work: Path, built: Built) -> tuple[Baseline, float]:
    """The baseline database made from the same file (once per size); and its import time."""
    if built.notes in _BASELINES:
        return _BASELINES[built.notes]
    base = new_baseline(built.vault.parent.parent / "baseline.db", built.vault)
    seconds = timed(lambda: b_import(base, built.jsonl))
    _BASELINES[built.notes] = (base, seconds)
    return base, seconds


def b_sign(base: Baseline, message: bytes) -> bytes:
    return sodium.crypto_sign(message, base.sign_secret)[: sodium.crypto_sign_BYTES]


def b_signed(base: Baseline, sig: bytes, message: bytes) -> bool:
    try:
        sodium.crypto_sign_open(sig + message, base.sign_public)
    except Exception:  # nacl.exceptions.BadSignatureError
        return False
    return True


def b_wrap_ad(cid: str, reader: str) -> bytes:
    return b_ad("consent-key", cid, reader, 1)


def b_state_digest(
    cid: str, rev: int, given: str, created: str, last: str, days: int, box: bytes,
    count: int, notes_hash: bytes, record: bytes,
) -> bytes:  # fmt: skip
    return b_hash(
        b_ad(
            "consent-state",
            cid,
            rev,
            "active",
            given,
            created,
            last,
            days,
            1,
            box,
            ADMIN,
            "need-to-know",
            READERS,
            count,
            notes_hash,
            record[-16:],
        )
    )


def b_link(cid: str, seq: int, prev: bytes, nid: str, record: bytes) -> bytes:
    return b_hash(b_ad("notes", cid, 1, seq, prev, nid, record[-16:]))


def b_link0(cid: str) -> bytes:
    return b_hash(b_ad("notes", cid, 1, 0))


class Trail:
    """The trail as the loop appends it: each entry hashed onto the one before, and the
    batch signed every SIGNED_EVERY entries (or at :meth:`close`)."""

    def __init__(self, base: Baseline) -> None:
        last = base.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        self.base = base
        self.seq, self.prev = (last[0], last[1]) if last else (0, bytes(32))
        self.rows: list[list[Any]] = []
        self.first = self.seq + 1

    def add(self, ts: str, action: str, cid: str, rev: int, state: bytes) -> None:
        self.seq += 1
        digest = b_hash(self.prev + b_ad("audit3", self.seq, ts, ADMIN, action, cid, rev, state))
        self.rows.append([self.seq, ts, ADMIN, action, cid, self.prev, digest, 1, rev, state])
        self.rows[-1] += [None, None]
        self.prev = digest
        if self.seq - self.first + 1 >= SIGNED_EVERY:
            self.close()

    def close(self) -> None:
        if self.rows and self.rows[-1][-1] is None and self.rows[-1][0] >= self.first:
            tail = self.rows[-1]
            tail[-2] = self.first
            tail[-1] = b_sign(self.base, b_ad("audit-batch", self.first, tail[0], tail[6]))
        self.first = self.seq + 1

    def flush(self) -> None:
        self.base.conn.executemany(AUDIT_INSERT, self.rows)
        self.rows.clear()


CONSENT_INSERT = (
    "INSERT INTO consents (id, status, given, created, last_activity, retain_days,"
    " retain_until, key_version, record, notes_count, contact, access, readers, consent_box,"
    " rev, notes_hash, state_signer, state_epoch, state_sig, proof)"
    " VALUES (?, 'active', ?, ?, ?, ?, ?, 1, ?, ?, ?, 'need-to-know', ?, ?, 1, ?, ?, 1, ?, ?)"
)
NOTE_INSERT = (
    "INSERT INTO notes (id, consent_id, date, created, key_version, seq, record)"
    " VALUES (?, ?, ?, ?, 1, ?, ?)"
)
WRAP_INSERT = (
    "INSERT INTO consent_keys (consent_id, reader, key_version, how, wrapped)"
    " VALUES (?, ?, 1, ?, ?)"
)
AUDIT_INSERT = (
    "INSERT INTO audit (seq, ts, actor, action, consent_id, prev, hash, epoch, rev, state,"
    " batch_start, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def b_import(base: Baseline, jsonl: Path) -> None:
    """Read the file, encrypt every field, wrap, sign, insert in batches in one transaction."""
    conn = base.conn
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN IMMEDIATE")
    trail = Trail(base)
    consents: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    wraps: list[tuple[Any, ...]] = []
    with jsonl.open("rb") as lines:
        for line in lines:
            rec = json.loads(line)
            cid = b_id("C", 8)
            key = sodium.randombytes(32)
            box, _ = sodium.crypto_box_seed_keypair(b_hash(b"box", key))
            proof_key = b_hash(b"proof", key)
            wraps += [
                (cid, ADMIN, "key", b_seal(base.wrap_key, key, b_wrap_ad(cid, ADMIN))),
                (cid, "#admin", "key", b_seal(base.admin_wrap, key, b_wrap_ad(cid, "#admin"))),
                (cid, "#job", "box", sodium.crypto_box_seal(proof_key, base.job_public)),
            ]
            link = b_link0(cid)
            for seq, n in enumerate(rec["notes"], start=1):
                nid = b_id("N", 9)
                sealed = b_seal(
                    key,
                    b_record(n["date"], now, n["kind"], ADMIN, n["text"]),
                    b_ad("note", nid, cid, 1),
                )
                link = b_link(cid, seq, link, nid, sealed)
                notes.append((nid, cid, n["date"], now, seq, sealed))
            last = max(n["date"] for n in rec["notes"])
            fields = (
                rec["subject"],
                rec["purpose"],
                json.dumps(rec["categories"]),
                "false",
                "",
                rec["form_ref"],
                ADMIN,
            )
            record = b_seal(key, b_record(*fields), b_ad("consent", cid, 1))
            count, days = len(rec["notes"]), rec["retain_days"]
            digest = b_state_digest(cid, 1, rec["given"], now, last, days, box, count, link, record)
            sig = b_sign(base, b_ad("consent-signed", digest, ADMIN, 1))
            proof = b_hash(b_ad("consent-proof", digest), proof_key)
            state = (link, ADMIN, sig, proof)
            consents.append(
                (
                    cid,
                    rec["given"],
                    now,
                    last,
                    days,
                    last,
                    record,
                    count,
                    ADMIN,
                    READERS,
                    box,
                    *state,
                )
            )
            trail.add(now, "consent.import", cid, 1, digest)
            if len(notes) >= 2000:
                b_flush(conn, consents, notes, wraps, trail)
    trail.close()
    b_flush(conn, consents, notes, wraps, trail)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def b_flush(
    conn: sqlite3.Connection,
    consents: list[Any],
    notes: list[Any],
    wraps: list[Any],
    trail: Trail,
) -> None:
    conn.executemany(CONSENT_INSERT, consents)
    conn.executemany(NOTE_INSERT, notes)
    conn.executemany(WRAP_INSERT, wraps)
    trail.flush()
    consents.clear()
    notes.clear()
    wraps.clear()


STATE_COLS = (
    "c.id, c.rev, c.given, c.created, c.last_activity, c.retain_days, c.consent_box,"
    " c.notes_count, c.notes_hash, c.record, c.state_sig"
)


def b_checked_key(base: Baseline, row: tuple[Any, ...], wrapped: bytes) -> bytes:
    """A consent's data key after its state signature checks out: one digest, one Ed25519
    verification, one AEAD."""
    cid, rev, given, created, last, days, box, count, notes_hash, record, sig = row
    digest = b_state_digest(cid, rev, given, created, last, days, box, count, notes_hash, record)
    if not b_signed(base, sig, b_ad("consent-signed", digest, ADMIN, 1)):
        raise RuntimeError(f"baseline state of {cid} not signed")
    return b_open(base.wrap_key, wrapped, b_wrap_ad(cid, ADMIN))


def b_keys(base: Baseline, conn: sqlite3.Connection | None = None) -> dict[str, bytes]:
    """Every active consent's data key through the member's own wrap, each state checked."""
    return {
        row[0]: b_checked_key(base, row[:-1], row[-1])
        for row in (conn or base.conn).execute(
            f"SELECT {STATE_COLS}, k.wrapped FROM consents c JOIN consent_keys k"
            " ON k.consent_id = c.id AND k.reader = ? WHERE c.status = 'active'",
            (ADMIN,),
        )
    }


def b_one_key(base: Baseline, conn: sqlite3.Connection, cid: str) -> bytes:
    row = conn.execute(
        f"SELECT {STATE_COLS}, k.wrapped FROM consents c JOIN consent_keys k"
        " ON k.consent_id = c.id AND k.reader = ? WHERE c.id = ?",
        (ADMIN, cid),
    ).fetchone()
    return b_checked_key(base, row[:-1], row[-1])


def b_note_fields(key: bytes, nid: str, cid: str, record: bytes) -> list[str]:
    """(date, created, kind, author, text): one AEAD call."""
    return b_fields(b_open(key, record, b_ad("note", nid, cid, 1)), 5)


def b_note_add(base: Baseline, consent_id: str, text: str, day: str) -> str:
    """One note in its own transaction: the state checked and the key opened, one record,
    the next link, the new state signed and proved, one signed trail entry."""
    conn = base.conn
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(
        f"SELECT {STATE_COLS}, k.wrapped FROM consents c JOIN consent_keys k"
        " ON k.consent_id = c.id AND k.reader = ? WHERE c.id = ? AND c.status = 'active'",
        (ADMIN, consent_id),
    ).fetchone()
    key = b_checked_key(base, row[:-1], row[-1])
    _, rev, given, created, _, days, box, count, link, record, _ = row[:-1]
    note_id = b_id("N", 9)
    while conn.execute("SELECT 1 FROM notes WHERE id = ?", (note_id,)).fetchone():
        note_id = b_id("N", 9)
    sealed = b_seal(
        key, b_record(day, now, "phone", ADMIN, text), b_ad("note", note_id, consent_id, 1)
    )
    conn.execute(NOTE_INSERT, (note_id, consent_id, day, now, count + 1, sealed))
    link = b_link(consent_id, count + 1, link, note_id, sealed)
    digest = b_state_digest(
        consent_id, rev + 1, given, created, day, days, box, count + 1, link, record
    )
    sig = b_sign(base, b_ad("consent-signed", digest, ADMIN, 1))
    proof = b_hash(b_ad("consent-proof", digest), b_hash(b"proof", key))
    until = (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
    conn.execute(
        "UPDATE consents SET last_activity = ?, retain_until = ?, notes_count = ?, rev = ?,"
        " notes_hash = ?, state_sig = ?, proof = ? WHERE id = ?",
        (day, until, count + 1, rev + 1, link, sig, proof, consent_id),
    )
    trail = Trail(base)
    trail.add(now, "note.add", consent_id, rev + 1, digest)
    trail.close()
    trail.flush()
    conn.execute("COMMIT")
    return note_id


def b_list_consent(base: Baseline, consent_id: str) -> list[list[str]]:
    """One consent's notes: its state and its notes hash checked, every note opened."""
    conn = base.conn
    key = b_one_key(base, conn, consent_id)
    found = []
    link = b_link0(consent_id)
    rows = conn.execute(
        "SELECT id, seq, record FROM notes WHERE consent_id = ? ORDER BY seq", (consent_id,)
    ).fetchall()
    for nid, seq, record in rows:
        link = b_link(consent_id, seq, link, nid, record)
    stored = conn.execute("SELECT notes_hash FROM consents WHERE id = ?", (consent_id,)).fetchone()
    if stored[0] != link:
        raise RuntimeError("baseline notes hash")
    for nid, record in conn.execute(
        "SELECT id, record FROM notes WHERE consent_id = ? ORDER BY date, created, id",
        (consent_id,),
    ):
        found.append(b_note_fields(key, nid, consent_id, record))
    return found


def b_list_all(base: Baseline) -> int:
    """Every note by date, decrypted, written as JSON to /dev/null (streaming)."""
    keys = b_keys(base)
    count = 0
    with open(os.devnull, "w", encoding="utf-8") as out:
        for nid, cid, record in base.conn.execute(
            "SELECT n.id, n.consent_id, n.record FROM notes n ORDER BY n.date, n.created, n.id"
        ):
            date, _, kind, author, text = b_note_fields(keys[cid], nid, cid, record)
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
    keys = b_keys(base)
    found = []
    for nid, cid, record in base.conn.execute(
        "SELECT n.id, n.consent_id, n.record FROM notes n ORDER BY n.date, n.created, n.id"
    ):
        if needle in b_note_fields(keys[cid], nid, cid, record)[4].casefold():
            found.append(nid)
    return found


def b_search_split(base: Baseline, text: str, processes: int) -> list[str]:
    """:func:`b_search` split over ``processes`` forked workers, each reading its own
    range of rows with its own connection and opening the keys of the consents it meets;
    matches come back unordered (the floor of a parallel scan: no ordering, no parent
    reading for the workers).

    The workers are forked from a process with an open connection, which SQLite warns
    against; here nothing writes the baseline database meanwhile, so no lock is needed.
    """
    import multiprocessing

    low, high = base.conn.execute("SELECT min(rowid), max(rowid) FROM notes").fetchone()
    step = (high - low) // processes + 1
    ranges = [(low + i * step, low + (i + 1) * step) for i in range(processes)]
    light = dataclasses.replace(base, conn=None)  # type: ignore[arg-type]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.starmap(_b_search_range, [(light, text, a, b) for a, b in ranges])
    return [nid for part in parts for nid in part]


def _b_search_range(base: Baseline, text: str, low: int, high: int) -> list[str]:
    needle = text.casefold()
    keys: dict[str, bytes] = {}
    found = []
    with contextlib.closing(sqlite3.connect(f"file:{base.path}?mode=ro", uri=True)) as conn:
        for nid, cid, record in conn.execute(
            "SELECT n.id, n.consent_id, n.record FROM notes n WHERE n.rowid >= ? AND n.rowid < ?",
            (low, high),
        ):
            key = keys.get(cid)
            if key is None:
                key = keys[cid] = b_one_key(base, conn, cid)
            if needle in b_note_fields(key, nid, cid, record)[4].casefold():
                found.append(nid)
    return found


def b_verify(base: Baseline) -> int:
    """SQLite's checks; every state signature, proof, wrap, consent and note record and
    notes hash link; the trail's chain and batch signatures."""
    conn = base.conn
    opened = 0
    conn.execute("BEGIN")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    keys: dict[str, bytes] = {}
    links: dict[str, bytes] = {}
    for row in conn.execute(
        f"SELECT {STATE_COLS}, c.proof, k.wrapped FROM consents c JOIN consent_keys k"
        " ON k.consent_id = c.id AND k.reader = ? WHERE c.status = 'active'",
        (ADMIN,),
    ):
        cid, rev, given, created, last, days, box, count, notes_hash, record, sig = row[:11]
        key = keys[cid] = b_checked_key(base, row[:11], row[12])
        digest = b_state_digest(
            cid, rev, given, created, last, days, box, count, notes_hash, record
        )
        if b_hash(b_ad("consent-proof", digest), b_hash(b"proof", key)) != row[11]:
            raise RuntimeError(f"baseline proof of {cid}")
        b_fields(b_open(key, record, b_ad("consent", cid, 1)), 7)
        links[cid] = notes_hash
        opened += 1
    chains: dict[str, bytes] = {}
    for nid, cid, seq, record in conn.execute(
        "SELECT id, consent_id, seq, record FROM notes ORDER BY consent_id, seq"
    ):
        prev = chains.get(cid) or b_link0(cid)
        chains[cid] = b_link(cid, seq, prev, nid, record)
        b_note_fields(keys[cid], nid, cid, record)
        opened += 1
    if any(links[cid] != link for cid, link in chains.items()):
        raise RuntimeError("baseline notes hash")
    prev = bytes(32)
    for seq, ts, actor, action, cid, stored_prev, digest, rev, state, first, sig in conn.execute(
        "SELECT seq, ts, actor, action, consent_id, prev, hash, rev, state, batch_start, sig"
        " FROM audit ORDER BY seq"
    ):
        payload = b_ad("audit3", seq, ts, actor, action, cid or "", rev, state or b"")
        if stored_prev != prev or b_hash(prev + payload) != digest:
            raise RuntimeError(f"baseline audit chain broken at {seq}")
        if sig is not None and not b_signed(base, sig, b_ad("audit-batch", first, seq, digest)):
            raise RuntimeError(f"baseline audit signature at {seq}")
        prev = digest
    conn.execute("ROLLBACK")
    return opened


def record_micro_costs(count: int = 2000) -> dict[str, float]:
    """Seconds per consent (written, read) and per note of format 3's necessary extra work
    in the bare loop, medians of five runs of ``count``."""
    base = Baseline(
        Path(os.devnull),
        sodium.randombytes(32),
        sodium.randombytes(32),
        *sodium.crypto_box_keypair()[:1],
        *reversed(sodium.crypto_sign_keypair()),
        None,  # type: ignore[arg-type]
    )
    key, record, cid = sodium.randombytes(32), sodium.randombytes(300), "C-ABCD-EFGH"

    def write() -> None:
        for i in range(count):
            box, _ = sodium.crypto_box_seed_keypair(b_hash(b"box", key))
            proof_key = b_hash(b"proof", key)
            b_seal(base.wrap_key, key, b_wrap_ad(cid, ADMIN))
            b_seal(base.admin_wrap, key, b_wrap_ad(cid, "#admin"))
            sodium.crypto_box_seal(proof_key, base.job_public)
            digest = b_state_digest(cid, 1, "2026-01-01", "t", "d", 30, box, 10, key, record)
            b_sign(base, b_ad("consent-signed", digest, ADMIN, 1))
            b_hash(b_ad("consent-proof", digest), proof_key)
            if i % SIGNED_EVERY == 0:
                b_sign(base, b_ad("audit-batch", 1, 8, digest))

    wrapped = b_seal(base.wrap_key, key, b_wrap_ad(cid, ADMIN))
    box, _ = sodium.crypto_box_seed_keypair(b_hash(b"box", key))
    digest = b_state_digest(cid, 1, "2026-01-01", "t", "d", 30, box, 10, key, record)
    row = (cid, 1, "2026-01-01", "t", "d", 30, box, 10, key, record)
    sig = b_sign(base, b_ad("consent-signed", digest, ADMIN, 1))

    def read() -> None:
        for _ in range(count):
            b_checked_key(base, (*row, sig), wrapped)

    def note() -> None:
        link = key
        for seq in range(count):
            link = b_link(cid, seq, link, "N-ABCD-EFGH-J", record)

    return {
        name: median(fn, 5) / count
        for name, fn in (("write", write), ("read", read), ("note", note))
    }


def fresh_id(new_id: Callable[[str], str], prefix: str, seen: set[str]) -> str:
    """A new random id of ``prefix`` not in ``seen`` (bulk builds make millions)."""
    while True:
        candidate = str(new_id(prefix))
        if candidate not in seen:
            seen.add(candidate)
            return candidate
