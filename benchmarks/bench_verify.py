"""Benchmark of ``nok verify`` beside a baseline loop (target: within 1.5x of it).

nok: ``vault.verify.verify`` in a child process with the vault already unlocked (the
Argon2id unlock is not timed; its memory is in the peak). Baseline: SQLite's integrity
and foreign-key checks, every state signature and proof checked, every wrap, consent and
note record opened, every notes hash link and the trail's chain and batch signatures
recomputed, with sqlite3 and nacl.bindings directly (common.b_verify). Three interleaved
pairs, medians.

``measure(work, notes=N)`` returns the rows for benchmarks/run.py; standalone::

    python benchmarks/bench_verify.py [--notes N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

ROUNDS = 3


def child(vault: Path) -> float:
    from vault import verify

    unlocked = common.unlock(vault)
    try:
        start = time.perf_counter()
        report = verify.verify(unlocked)
        seconds = time.perf_counter() - start
    finally:
        unlocked.close()
    if not report.ok:
        raise RuntimeError(f"verify found problems in the benchmark vault: {report.problems}")
    return seconds


def measure(work: Path, *, notes: int) -> list[dict[str, Any]]:
    built = common.vault_for(work, notes)
    base, _ = common.baseline_for(work, built)
    # Interleaved pairs, medians compared (a change of load lands on both sides).
    on_nok, on_base, peak = [], [], 0.0
    for _ in range(ROUNDS):
        cmd = [sys.executable, __file__, "--child", str(built.vault)]
        done = common.run(cmd, keep_stdout=True)
        on_nok.append(float(json.loads(done.stdout)["seconds"]))
        peak = max(peak, done.peak_mib)
        on_base.append(common.timed(lambda: common.b_verify(base)))
    nok_s, base_s = statistics.median(on_nok), statistics.median(on_base)
    return [
        common.row(
            "verify (API, unlocked)",
            notes,
            nok_s,
            base_s,
            peak,
            common.BULK_TARGET if notes >= common.BULK_FROM else "",
            common.bulk_met(notes, nok_s, base_s),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"seconds": child(args.child)}))
        return
    with tempfile.TemporaryDirectory(prefix="nok-bench-") as tmp:
        print(json.dumps(measure(Path(tmp), notes=args.notes), indent=2))


if __name__ == "__main__":
    main()
