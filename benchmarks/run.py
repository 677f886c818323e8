"""nok's speed, measured in one run and printed as one table, each figure beside a baseline.

The baseline is a plain loop doing the same work with ``sqlite3`` and ``nacl.bindings``
directly and nothing else: one XChaCha20-Poly1305 call per note, and the work format 3
makes necessary per consent (its wraps, its signed state and proof, one trail signature
per eight consents; on reads one signature verified and one wrap opened) and per note
(one link of the notes hash), listed in benchmarks/common.py; on a database with the same
tables and indexes, built from the same import file: the practical limit for Python.
Vaults of 1,000 / 100,000 / 1,000,000 notes are built through ``nok import``.

How each figure is taken:

* start-up (``nok --version``, ``--help``, ``completion bash`` and one tab press): median
  wall time of fresh processes of the installed ``nok`` script, with its modules compiled
  as an installed package has them, beside ``python -c pass``.
* nok and its baseline run as interleaved pairs (nok, loop, nok, loop, ...; ROUNDS pairs)
  and their medians are compared, so a change of load lands on both sides; the import is
  one run each (it builds the vaults).
* import: ``nok import FILE`` as a process (start, unlock, fingerprint, write).
* note add, note list --consent, note search, verify: through the library in a child
  process, with the vault already unlocked, so the Argon2id unlock is NOT timed; medians.
* note search runs on every core; its baseline is the bare loop split over the same number
  of forked workers, each reading its own rows. Two reference rows: the search on one core
  beside the one-core loop, and the part of the search the parent does alone (reading the
  rows and unwrapping their keys), which is the floor of nok's design.
* note list (everything): ``nok note list --json`` as a process, output to /dev/null.
* peak MiB: the peak RSS of that process (GNU time), which includes the unlock's Argon2id
  memory (64 MiB with the ``interactive`` profile these vaults use).
* format 3's records: their bytes in the largest vault, and the time of their necessary
  work in the bare loop (per consent written and read, per note written).
* need-to-know at scale: benchmarks/bench_access.py (a colleague with 100 of 20,000
  consents against a vault of only those 100).

Usage::

    python benchmarks/run.py            # full run: 1,000 / 100,000 / 1,000,000 notes
    python benchmarks/run.py --quick    # 1,000 / 10,000 notes, a minute or two
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

HERE = Path(__file__).resolve().parent
FULL_SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
SEARCH_SIZE = 100_000
SEARCH_FACTOR = 1.2
STARTUP_RUNS = 21
ADD_RUNS = 30
LIST_RUNS = 30
MISSING = "xyzzy-not-in-any-note"
# Run at every size from common.BULK_FROM on (their targets are set there), then the
# rest once, at the largest size.
# bench_rotate and bench_purge still build their vaults from format-2 rows and are not run
# until they are ported to format 3 (benchmarks/RESULTS.md says so).
SIZED_BENCHES = ("bench_verify",)
EXTRA_BENCHES = ("bench_shell", "bench_jrnl", "bench_access")
STARTUP_TARGET_S = 0.100
ROUNDS = 5  # interleaved nok/baseline pairs per row; medians are compared


# -- children: one timed piece of library work, the unlock not counted ---------------------


def child(task: str, vault: Path, arg: str, repeat: int) -> float:
    from vault import access, notes, search

    unlocked = common.unlock(vault)
    times = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            if task == "add":
                notes.add(unlocked, arg, "Kort notat etter samtale.", kind="phone")
            elif task == "list-consent":
                list(notes.list_notes(unlocked, consent_id=arg))
            elif task == "search":
                list(search.search(unlocked, arg))
            elif task == "search-one-core":
                list(search.search(unlocked, arg, processes=1))
            elif task == "search-read":
                # The parent's own share of a search: read the rows, open their wraps.
                for r in unlocked.store.iter_note_bodies(reader=access.ADMIN_READER):
                    access.unwrap(
                        unlocked, r.consent_id, str(r.reader), r.key_version, str(r.how), r.wrapped
                    )
            else:
                raise ValueError(task)
            times.append(time.perf_counter() - start)
    finally:
        unlocked.close()
    return statistics.median(times)


def cli_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    done = common.run(cmd, env=env)
    return done.seconds, done.peak_mib


def run_child(task: str, vault: Path, arg: str, repeat: int) -> tuple[float, float]:
    cmd = [sys.executable, __file__, "--child", task, "--vault", str(vault), "--arg", arg]
    done = common.run([*cmd, "--repeat", str(repeat)], keep_stdout=True)
    return float(json.loads(done.stdout)["seconds"]), done.peak_mib


# -- measurements --------------------------------------------------------------------------


def nok_script() -> list[str]:
    script = Path(sys.executable).parent / "nok"
    return [str(script)] if script.exists() else common.NOK


def startup_rows() -> list[dict[str, Any]]:
    """The four start-up paths of issue 11, each a median of fresh processes."""
    import compileall

    for package in ("vault", "nokcli", "commands"):
        compileall.compile_dir(HERE.parent / package, quiet=1)

    def med(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
        runs = [common.run(cmd, env=env) for _ in range(STARTUP_RUNS)]
        return statistics.median(r.seconds for r in runs), max(r.peak_mib for r in runs)

    bare, _ = med([sys.executable, "-c", "pass"])
    tab = {**os.environ, "NOK_COMPLETE": "bash", "NOK_COMPLETE_LINE": "nok note li"}
    rows = []
    for label, args, env in (
        ("nok --version", ["--version"], None),
        ("nok --help", ["--help"], None),
        ("nok completion bash", ["completion", "bash"], None),
        ("a tab press (nok note li<TAB>)", [], tab),
    ):
        seconds, peak = med([*nok_script(), *args], env)
        target = f"< {STARTUP_TARGET_S * 1000:.0f} ms median"
        rows.append(
            common.row(label, None, seconds, bare, peak, target, seconds < STARTUP_TARGET_S)
        )
    return rows


def a_consent(vault: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{vault}?mode=ro", uri=True)) as db:
        return str(db.execute("SELECT id FROM consents ORDER BY id LIMIT 1").fetchone()[0])


def paired(
    nok: Callable[[], tuple[float, float]], baseline: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """Medians of ``rounds`` interleaved runs (nok, baseline, nok, baseline, ...), and
    nok's highest peak: a change of load lands on both sides."""
    on_nok, on_base, peak = [], [], 0.0
    for _ in range(rounds):
        seconds, nok_peak = nok()
        on_nok.append(seconds)
        peak = max(peak, nok_peak)
        on_base.append(baseline())
    return statistics.median(on_nok), statistics.median(on_base), peak


def size_rows(work: Path, size: int) -> list[dict[str, Any]]:
    built = common.vault_for(work, size)
    base, base_import = common.baseline_for(work, built)
    env = common.env_for(built.vault)
    rows = [
        common.row(
            "nok import (one run each)",
            size,
            built.import_run.seconds,
            base_import,
            built.import_run.peak_mib,
            common.BULK_TARGET if size >= common.BULK_FROM else "",
            common.bulk_met(size, built.import_run.seconds, base_import),
        ),
    ]
    consent = a_consent(built.vault)
    base_consent = a_consent(base.path)
    today = dt.date.today().isoformat()
    add_s, base_add, add_peak = paired(
        lambda: run_child("add", built.vault, consent, ADD_RUNS),
        lambda: common.median(
            lambda: common.b_note_add(base, base_consent, "Kort notat etter samtale.", today),
            ADD_RUNS,
        ),
        ROUNDS,
    )
    list_s, base_list, list_peak = paired(
        lambda: run_child("list-consent", built.vault, consent, LIST_RUNS),
        lambda: common.median(lambda: common.b_list_consent(base, base_consent), LIST_RUNS),
        ROUNDS,
    )
    every_s, base_all, every_peak = paired(
        lambda: cli_run([*nok_script(), "note", "list", "--json"], env),
        lambda: common.timed(lambda: common.b_list_all(base)),
        ROUNDS,
    )
    rows += [
        common.row(
            "note add (API, unlocked)",
            size,
            add_s,
            base_add,
            add_peak,
            "same within 20% at every size",
            None,
        ),
        common.row(
            "note list --consent (API, unlocked)",
            size,
            list_s,
            base_list,
            list_peak,
            "same within 20% at every size",
            None,
        ),
        common.row(
            "note list --json, all notes (CLI)",
            size,
            every_s,
            base_all,
            every_peak,
            "streams: flat peak < 200 MiB + Argon2id"
            + (f"; {common.BULK_TARGET}" if size >= common.BULK_FROM else ""),
            common.bulk_met(size, every_s, base_all),
        ),
    ]

    cores = parallel_cores()
    search_s, base_search, search_peak = paired(
        lambda: run_child("search", built.vault, MISSING, 1),
        lambda: common.timed(lambda: common.b_search_split(base, MISSING, cores)),
        ROUNDS,
    )
    one_s, base_one, one_peak = paired(
        lambda: run_child("search-one-core", built.vault, MISSING, 1),
        lambda: common.timed(lambda: common.b_search(base, MISSING)),
        ROUNDS,
    )
    read_s, read_peak = run_child("search-read", built.vault, MISSING, ROUNDS)
    at_target = size >= SEARCH_SIZE
    rows += [
        common.row(
            f"note search, {cores} cores (API, unlocked)",
            size,
            search_s,
            base_search,
            search_peak,
            f"<= {SEARCH_FACTOR:g}x the loop on {cores} cores" if at_target else "",
            search_s <= SEARCH_FACTOR * base_search if at_target else None,
        ),
        common.row("note search, one core (API)", size, one_s, base_one, one_peak, "", None),
        common.row(
            "note search: the parent's read alone (API)",
            size,
            read_s,
            None,
            read_peak,
            "",
            None,
        ),
    ]
    return rows


def parallel_cores() -> int:
    from vault import parallel

    return parallel.cores()


def cli_peak_rows(work: Path, size: int) -> list[dict[str, Any]]:
    """Peak memory of the commands not measured as a process above, at the largest size."""
    built = common.vault_for(work, size)
    env = common.env_for(built.vault)
    consent = a_consent(built.vault)
    rows = []
    for label, args in (
        ("nok note add (CLI)", ["note", "add", consent, "--text", "Kort notat.", "--json"]),
        ("nok note list --consent (CLI)", ["note", "list", "--consent", consent, "--json"]),
        ("nok note search (CLI)", ["note", "search", MISSING, "--json"]),
        ("nok status (CLI)", ["status", "--json"]),
    ):
        done = common.run([*nok_script(), *args], env=env)
        rows.append(
            common.row(
                label,
                size,
                done.seconds,
                None,
                done.peak_mib,
                "peak < 200 MiB + Argon2id",
                done.peak_mib - common.KDF_MIB < 200,
            )
        )
    return rows


def record_cost_rows(work: Path, size: int) -> list[dict[str, Any]]:
    """What format 3's new records cost (issue 16): bytes per consent and per note in the
    vault built at ``size``, and the time of their necessary work in the bare loop."""
    built = common.vault_for(work, size)
    with contextlib.closing(sqlite3.connect(f"file:{built.vault}?mode=ro", uri=True)) as db:
        consents = db.execute("SELECT count(*) FROM consents").fetchone()[0]
        notes = db.execute("SELECT count(*) FROM notes").fetchone()[0]
        state = db.execute(
            "SELECT sum(length(state_sig) + length(proof) + length(consent_box)"
            " + length(notes_hash) + length(contact) + length(access) + length(readers)"
            " + length(state_signer) + 8) FROM consents"
        ).fetchone()[0]
        wraps, wrap_rows = db.execute(
            "SELECT sum(length(wrapped) + length(consent_id) + length(reader) + length(how)"
            " + 1), count(*) FROM consent_keys"
        ).fetchone()
        trail = db.execute(
            "SELECT sum(coalesce(length(state), 0) + coalesce(length(sig), 0) + 8),"
            " count(sig) FROM audit"
        ).fetchone()
        note_cols = db.execute(
            "SELECT sum(coalesce(length(sig), 0) + coalesce(length(signer), 0)) FROM notes"
        ).fetchone()[0]
    micro = common.record_micro_costs()
    per_consent = (state + wraps + trail[0]) / consents
    label = f"{consents:,} consents"
    return [
        common.row(
            f"format 3 bytes per consent: state {state / consents:.0f} B (signature, proof, box"
            f" key, notes hash, access columns), {wrap_rows / consents:.0f} wraps"
            f" {wraps / consents:.0f} B, trail state and batch signatures"
            f" {trail[0] / consents:.0f} B ({trail[1]:,} signatures); per note"
            f" {note_cols / notes:.0f} B; total {per_consent:.0f} B per consent (payload"
            " bytes, before SQLite's row and index overhead)",
            label,
            None,
            None,
            None,
            "",
            None,
        ),
        common.row(
            "format 3 work per consent written (bare loop): 2 AEAD wraps, 1 sealed box,"
            " box key pair, state digest, Ed25519 signature, proof MAC, 1/8 batch signature",
            label,
            None,
            micro["write"],
            None,
            "",
            None,
        ),
        common.row(
            "format 3 work per consent read (bare loop): state digest, Ed25519 verify, 1 wrap",
            label,
            None,
            micro["read"],
            None,
            "",
            None,
        ),
        common.row(
            "format 3 work per note written (bare loop): one notes hash link",
            label,
            None,
            micro["note"],
            None,
            "",
            None,
        ),
    ]


def extra_rows(work: Path, names: tuple[str, ...], size: int) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        module = importlib.import_module(name)
        scratch = work / name
        scratch.mkdir(parents=True, exist_ok=True)
        rows.extend(module.measure(scratch, notes=size))
    return rows


def judge(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> None:
    """Targets relative to the smallest vault (same time at every size, flat memory)."""
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["size"] == sizes[0]:
            first.setdefault(r["task"], r)
    for r in rows:
        ref = first.get(r["task"])
        if ref is None or r is ref or r["size"] == sizes[0]:
            continue
        if r["target"] == "same within 20% at every size":
            r["met"] = r["nok_s"] <= 1.2 * ref["nok_s"]
        elif r["target"].startswith("streams"):
            flat = r["peak_mib"] - common.KDF_MIB < 200 and r["peak_mib"] <= ref["peak_mib"] + 16
            r["met"] = flat and r["met"] is not False


def peak_summary(rows: list[dict[str, Any]], size: int) -> dict[str, Any]:
    # The jrnl comparison's nok vaults use the default Argon2id (256 MiB, not 64): their
    # peaks are in their own rows.
    peaks = [
        r["peak_mib"]
        for r in rows
        if r["peak_mib"] is not None
        and (r["size"] == size or r["size"] is None)
        and "default Argon2id" not in r["task"]
    ]
    worst = max(peaks)
    return common.row(
        f"peak memory, worst command (Argon2id {common.KDF_MIB} MiB included)",
        size,
        None,
        None,
        worst,
        "< 200 MiB + Argon2id",
        worst - common.KDF_MIB < 200,
    )


# -- the table -----------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    if value is None:
        return ""
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_size(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| task | notes | nok | baseline | nok / baseline | peak MiB | target | met |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ratio = f"{r['nok_s'] / r['baseline_s']:.2f}x" if r["nok_s"] and r["baseline_s"] else ""
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(
            f"| {r['task']} | {fmt_size(r['size'])} | {fmt_s(r['nok_s'])} | "
            f"{fmt_s(r['baseline_s'])} | {ratio} | {peak} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


def machine() -> str:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout
    return (
        f"{nproc.strip()} CPU(s) (`nproc`), {model}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 notes only")
    parser.add_argument("--sizes", help="comma-separated note counts instead of the defaults")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--results",
        type=Path,
        help="write the table here (default: benchmarks/RESULTS.md, full run)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--vault", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"seconds": child(args.child, args.vault, args.arg, args.repeat)}))
        return

    os.umask(0o077)
    sizes: tuple[int, ...] = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    command = (
        "python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + (f" --sizes {args.sizes}" if args.sizes else "")
    )
    results = args.results or (None if args.quick or args.sizes else HERE / "RESULTS.md")
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.work, prefix="nok-bench-") as tmp:
        work = Path(tmp)
        # Each unlock keeps pins in the user's state directory: here, the scratch one.
        os.environ["XDG_STATE_HOME"] = str(work / "state")
        rows = startup_rows()
        for size in sizes:
            print(f"measuring {size:,} notes ...", file=sys.stderr, flush=True)
            rows.extend(size_rows(work, size))
        rows.extend(cli_peak_rows(work, sizes[-1]))
        rows.extend(record_cost_rows(work, sizes[-1]))
        for size in sizes:
            if size >= common.BULK_FROM or size == sizes[-1]:
                rows.extend(extra_rows(work, SIZED_BENCHES, size))
        rows.extend(extra_rows(work, EXTRA_BENCHES, sizes[-1]))
        judge(rows, sizes)
        rows.append(peak_summary(rows, sizes[-1]))
        shutil.rmtree(work, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    load = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(load_before, os.getloadavg(), strict=True))
    text = (
        f"{table(rows)}\n\nMachine: {machine()}.\nCommand: `{command}` ({minutes:.0f} min).\n"
        f"Load average (`uptime`; 1, 5 and 15 min; at start/at end): {load}.\n"
    )
    print(text)
    if results is not None:
        results.write_text(RESULTS_HEAD + text + RESULTS_NOTES, encoding="utf-8")


RESULTS_HEAD = """# nok benchmark results

Made by `benchmarks/run.py` (how each figure is taken: its docstring). Baseline = the same
work as a plain loop on `sqlite3` and `nacl.bindings`, nothing else.

"""
RESULTS_NOTES = """
## Reading the table

* **Format 3, what it adds.** Per consent: its data key wrapped for each reader (the
  contact person and the admins by AEAD, the job's proof key by a sealed box), a signed
  state with its proof, and its trail entry; the import signs the trail every 8 consents.
  The bytes and the bare loop's time for that work are in the "format 3" rows; a note
  gains nothing unless it is pending (written by a colleague without access: a sealed box
  and a signature instead of the AEAD record). The baseline does exactly that work too
  (benchmarks/common.py lists it), so the ratios compare nok with the necessary work.
* **Need-to-know at scale (issue 17).** kari is contact person of 100 consents spread
  over a vault of 20,000 (200,000 notes); the same 100 in a vault of their own are the
  reference ("baseline" column). Before this run her listing checked each consent's
  newest trail entry by walking its whole signed batch again, one query per entry (3.3x
  the small vault's time at 20,000 consents), and her unlock scanned every note and wrap
  for tombstones that hold data and every consent for grants (3.4x). Both now follow her
  consents: a listing walks each signed batch once, in one query; an import signs every
  8 consents; the unlock finds ended consents through the status index and a colleague's
  grants through her wraps. What still grows with the vault: the batch walk (8 entries per
  consent of hers, against one batch of 100 in the small vault), and `nok note list`'s
  count on standard error of the notes she may not open, which counts every note of the
  vault (one pass over the (consent, date) index).
* **Not yet measured on format 3:** `key rotate`, `key rotate --deep` and `purge`
  (benchmarks/bench_rotate.py and bench_purge.py still build their vaults from format-2
  rows and call the format-2 purge; they are left out of run.py until ported).
* **Loaded machine.** Other test suites ran on the same 2 cores during this run (the load
  average is given beside it): start-up rows in particular are above their targets here
  and met them on an idle machine (benchmarks/RESULTS.md of 2026-12-01: 94 and 89 ms).
* Rows without a target at 1,000 and 10,000 notes are start-up bound: a fresh Python,
  nok's imports and the Argon2id unlock (`interactive` profile) against a loop that has
  none of them. Issue 11 sets the bulk targets from 100,000 notes on.
* **Peak memory** is each process's own peak RSS through GNU time, Argon2id included
  (64 MiB with `interactive`, 256 MiB with the default `moderate`). Library children
  (the "API" rows) load the vault in one process and keep it open while timing.
* **Times** are medians of interleaved nok/baseline pairs on a shared 2-core machine: a
  difference under about 10% between two rows is noise.
"""

if __name__ == "__main__":
    main()
