"""Need-to-know at scale (issue 17): a staff member who works with 100 of 20,000 consents.

Two vaults from one import file: *big*, 20,000 consents of 10 notes, 100 of them (spread
over the file, so over the dates) with kari as contact person; *small*, only those 100
consents. kari lists and searches everything she may read in both, and unlocks both.

Targets (issue 17, "Speed and size"): her ``note list`` and ``note search`` on *big* cost
at most 1.2x what they cost on *small*, and her unlock does not grow with the consents she
cannot open (judged here as the same 1.2x).

How: each figure is a child process that unlocks first (not timed) and then times the
library call; unlocks are timed in their own children (Argon2id included, the same on both
sides). Big and small are measured as interleaved pairs (big, small, big, small, ...) and
the medians compared, so a change of load lands on both sides. The CLI rows run
``nok note list --json`` / ``nok note search`` as kari, whole processes, the same way.

Standalone::

    python benchmarks/bench_access.py [--consents 20000] [--mine 100] [--pairs 5]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

KARI = "kari"
KARI_PASS = "kari's benchmark passphrase, not secret"
CONSENTS = 20_000
MINE = 100
PAIRS = 5
FACTOR = 1.2
MISSING = "xyzzy-not-in-any-note"


def build(base: Path, lines: list[str], name: str) -> Path:
    """A vault made by ``nok import`` of ``lines``, with kari as staff."""
    from vault import staff

    folder = base / name
    folder.mkdir(mode=0o700, parents=True)
    vault = folder / "vault.db"
    env = common.env_for(vault)
    common.run(
        [
            *common.NOK,
            "init",
            "--kdf",
            common.KDF,
            "--admin",
            common.ADMIN,
            "--recovery-file",
            str(folder / "recovery.txt"),
        ],
        env=env,
    )
    admin = common.unlock(vault)
    try:
        staff.add(admin, KARI, passphrase=KARI_PASS.encode())
    finally:
        admin.close()
    jsonl = folder / "import.jsonl"
    jsonl.write_text("".join(lines), encoding="utf-8")
    common.run([*common.NOK, "import", str(jsonl), "--json"], env=env)
    return vault


def files(work: Path, consents: int, mine: int) -> tuple[list[str], list[str]]:
    """(every line, kari's lines): kari is contact person of every (consents // mine)th."""
    source = common.write_jsonl(work / "all.jsonl", consents * common.NOTES_PER_CONSENT)
    every, hers = [], []
    step = consents // mine
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(True)):
        if number % step == step // 2 and len(hers) < mine:
            record = json.loads(line)
            record["contact"] = KARI
            line = json.dumps(record, ensure_ascii=False) + "\n"
            hers.append(line)
        every.append(line)
    return every, hers


def kari(vault: Path) -> Any:
    from vault import Vault

    return Vault.open(vault).unlock(KARI, KARI_PASS.encode(), now=dt.datetime.now(dt.UTC))


def child(task: str, vault: Path, profile: Path | None) -> dict[str, Any]:
    from vault import notes, search

    if task == "unlock":
        start = time.perf_counter()
        kari(vault).close()
        return {"seconds": time.perf_counter() - start}
    unlocked = kari(vault)
    try:
        prof = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if prof:
            prof.enable()
        if task == "list":
            found = sum(1 for _ in notes.list_notes(unlocked))
        elif task == "search":
            found = sum(1 for _ in search.search(unlocked, MISSING))
        else:
            raise ValueError(task)
        seconds = time.perf_counter() - start
        if prof and profile:
            prof.disable()
            pstats.Stats(prof).dump_stats(str(profile))
        return {"seconds": seconds, "found": found}
    finally:
        unlocked.close()


def run_child(task: str, vault: Path, profile: Path | None = None) -> tuple[float, float]:
    cmd = [sys.executable, __file__, "--child", task, "--vault", str(vault)]
    if profile:
        cmd += ["--profile", str(profile)]
    done = common.run(cmd, keep_stdout=True)
    return float(json.loads(done.stdout)["seconds"]), done.peak_mib


def run_cli(vault: Path, args: list[str]) -> tuple[float, float]:
    env = {**common.env_for(vault), "NOK_USER": KARI, "NOK_PASSPHRASE": KARI_PASS}
    done = common.run([*common.NOK, *args], env=env)
    return done.seconds, done.peak_mib


def pairs(big: Path, small: Path, measure_one: Any, count: int) -> tuple[float, float, float]:
    """Medians of interleaved (big, small) runs, and the peak of the big runs."""
    on_big, on_small, peak = [], [], 0.0
    for _ in range(count):
        seconds, big_peak = measure_one(big)
        on_big.append(seconds)
        peak = max(peak, big_peak)
        on_small.append(measure_one(small)[0])
    return statistics.median(on_big), statistics.median(on_small), peak


def measure(
    work: Path, *, notes: int = 0, consents: int = CONSENTS, mine: int = MINE, count: int = PAIRS
) -> list[dict[str, Any]]:
    """``notes`` is ignored: this benchmark has its own sizes."""
    os.environ.setdefault("XDG_STATE_HOME", str(work / "state"))
    big, small = work / "big" / "vault.db", work / "small" / "vault.db"
    if not (big.exists() and small.exists()):  # --keep: a second run reuses them
        every, hers = files(work, consents, mine)
        big = build(work, every, "big")
        small = build(work, hers, "small")
    label = f"{mine} of {consents:,} consents"
    rows = []
    target = f"<= {FACTOR:g}x the same on {mine} consents"
    for task, how in (
        ("kari's unlock (API, Argon2id included)", lambda v: run_child("unlock", v)),
        ("kari: note list, everything she reads (API)", lambda v: run_child("list", v)),
        ("kari: note search (API)", lambda v: run_child("search", v)),
        ("kari: nok note list --json (CLI)", lambda v: run_cli(v, ["note", "list", "--json"])),
        (
            "kari: nok note search --json (CLI)",
            lambda v: run_cli(v, ["note", "search", MISSING, "--json"]),
        ),
    ):
        on_big, on_small, peak = pairs(big, small, how, count)
        rows.append(
            common.row(task, label, on_big, on_small, peak, target, on_big <= FACTOR * on_small)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consents", type=int, default=CONSENTS)
    parser.add_argument("--mine", type=int, default=MINE)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--work", type=Path)
    parser.add_argument(
        "--keep", action="store_true", help="keep the vaults in --work (and reuse them)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--vault", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.vault, args.profile)))
        return
    os.umask(0o077)
    if args.keep and args.work:
        args.work.mkdir(mode=0o700, parents=True, exist_ok=True)
        rows = measure(args.work, consents=args.consents, mine=args.mine, count=args.pairs)
    else:
        with tempfile.TemporaryDirectory(dir=args.work, prefix="nok-bench-") as tmp:
            rows = measure(Path(tmp), consents=args.consents, mine=args.mine, count=args.pairs)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
