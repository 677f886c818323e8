"""Benchmark of a working session: 20 commands in one ``nok shell`` beside the same 20 as
separate ``nok`` processes, with every Argon2id derivation counted.

Both run in child processes of this script (``--child``), which count the calls to
``vault.crypto.derive_kek`` (the one Argon2id function) and then run nok's own entry
point, so the count is that of nok, not of a model of it. The commands touch one consent,
so their cost does not grow with the vault; the target is one Argon2id for the whole
session (the unlock) against one per command. Usage::

    python benchmarks/bench_shell.py [--notes N]

``measure(work, notes=N)`` returns the rows for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

COMMANDS = 20


def session(consent: str, note: str) -> list[str]:
    """Twenty commands of a counselor's hour, on one person's record."""
    day = [
        f"consent show {consent}",
        f"note list --consent {consent}",
        f"note show {note}",
        f"note add {consent} --kind phone --text 'Ringte; avtalt ny samtale.'",
        "status",
    ]
    return (day * (COMMANDS // len(day) + 1))[:COMMANDS]


def child(count_file: Path, args: list[str]) -> None:
    """Run nok with ``args``, counting Argon2id derivations into ``count_file``."""
    from vault import crypto

    calls = 0
    real = crypto.derive_kek

    def counting(passphrase: bytes, salt: bytes, params: Any, *, name: str) -> bytes:
        nonlocal calls
        calls += 1
        return real(passphrase, salt, params, name=name)

    crypto.derive_kek = counting  # type: ignore[assignment]
    sys.argv = ["nok", *args]
    from nokcli.app import main

    try:
        main()
    finally:
        with count_file.open("a") as out:
            out.write(f"{calls}\n")


def first_ids(vault: Path) -> tuple[str, str]:
    from vault import Vault

    with Vault.open(vault) as opened:
        consent = opened.known_ids("consent", "", limit=1)[0]
        note = next(opened.store.iter_notes(consent_id=consent)).id
    return consent, note


def measure(work: Path, *, notes: int) -> list[dict[str, Any]]:
    built = common.vault_for(work, notes)
    vault = common.copy_vault(built, work / "shell-vault")
    env = common.env_for(vault)
    consent, note = first_ids(vault)
    lines = session(consent, note)
    me = [sys.executable, __file__, "--child"]

    cli_counts = work / "cli-kdf"
    cli_counts.unlink(missing_ok=True)
    start = time.perf_counter()
    peak = 0.0
    for line in lines:
        done = common.run([*me, str(cli_counts), *shlex.split(line)], env=env)
        peak = max(peak, done.peak_mib)
    cli_s = time.perf_counter() - start
    cli_kdf = sum(int(n) for n in cli_counts.read_text().split())

    shell_counts = work / "shell-kdf"
    shell_counts.unlink(missing_ok=True)
    script = work / "session.txt"
    script.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    shell = common.run([*me, str(shell_counts), "shell"], env=env, stdin=script)
    shell_kdf = int(shell_counts.read_text().split()[0])
    return [
        common.row(
            f"{COMMANDS} commands as separate nok processes ({cli_kdf} Argon2id)",
            notes,
            cli_s,
            None,
            peak,
            "",
            None,
        ),
        common.row(
            f"the same {COMMANDS} in one nok shell ({shell_kdf} Argon2id)",
            notes,
            shell.seconds,
            None,
            shell.peak_mib,
            "1 Argon2id for the session",
            shell_kdf == 1,
        ),
    ]


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nok-bench-shell-"))
    os.chmod(work, 0o700)
    try:
        print(json.dumps(measure(work, notes=args.notes), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
