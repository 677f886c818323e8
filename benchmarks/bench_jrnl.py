"""nok beside jrnl: add one entry and read it back, each tool with its default key derivation.

jrnl (https://jrnl.sh) is the best-known encrypted journal on the command line: one file,
encrypted whole (Fernet, key from PBKDF2-SHA256 with 100,000 iterations), decrypted and
re-encrypted on every command. nok unlocks a key slot (Argon2id, the default ``moderate``
profile: 256 MiB, 3 passes) and writes or reads only the rows it needs. So jrnl pays a
cheap key derivation and work that grows with the journal; nok pays a deliberately costly
one and work that does not grow.

jrnl is installed from PyPI into the benchmark's own virtual environment (never into
nok's). Its passphrase comes from a keyring backend that reads an environment variable
(``benchkeyring.py``, written here): jrnl runs the same PBKDF2 and Fernet work as after a
typed passphrase, without a terminal. nok reads its passphrase from ``NOK_PASSPHRASE``.

Rows, at 100, 10,000 and 30,000 entries (notes):
* ``jrnl add`` / ``nok note add (CLI)``: a fresh process adding one short entry, medians;
* ``jrnl -n 1`` / ``nok note show (CLI)``: a fresh process reading the newest entry back;
* with ``nok shell`` available: 20 adds after one unlock (see bench_shell, if present).

Usage: ``python benchmarks/bench_jrnl.py`` (about two minutes), or as part of run.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SIZES = tuple(int(s) for s in os.environ.get("BENCH_JRNL_SIZES", "100,10000,30000").split(","))
# Issue 11's target: nok note add faster than jrnl's add at this many entries.
TARGET_SIZE = 10_000
RUNS = 7
JRNL_VERSION = "4.6"
ENTRY = "Kort notat etter samtale."

KEYRING_BACKEND = '''
import os
from keyring.backend import KeyringBackend


class EnvKeyring(KeyringBackend):
    """jrnl's passphrase from BENCH_JRNL_PASSPHRASE: no terminal, same KDF work."""

    priority = 10

    def get_password(self, service, username):
        return os.environ.get("BENCH_JRNL_PASSPHRASE")

    def set_password(self, service, username, password):
        pass

    def delete_password(self, service, username):
        pass
'''

MAKE_JOURNAL = """
import sys
from jrnl.encryption.Jrnlv3Encryption import Jrnlv3Encryption
enc = Jrnlv3Encryption("default", {})
enc.password = sys.argv[2]
with open(sys.argv[1], "rb") as f:
    text = f.read().decode("utf-8")
with open(sys.argv[1], "wb") as f:
    f.write(enc.encrypt(text))
"""


def jrnl_env(work: Path) -> tuple[Path, dict[str, str]] | None:
    """jrnl in its own venv, or None when it cannot be installed here."""
    home = work / "jrnl"
    env_dir = home / "venv"
    if not (env_dir / "bin" / "jrnl").exists():
        venv.create(env_dir, with_pip=True)
        done = subprocess.run(
            [str(env_dir / "bin" / "pip"), "install", "-q", f"jrnl=={JRNL_VERSION}"],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return None
    keys = home / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "benchkeyring.py").write_text(KEYRING_BACKEND, encoding="utf-8")
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHONPATH": str(keys),
        "PYTHON_KEYRING_BACKEND": "benchkeyring.EnvKeyring",
        "BENCH_JRNL_PASSPHRASE": common.PASSPHRASE,
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
    }
    return env_dir, env


def make_journal(env_dir: Path, env: dict[str, str], home: Path, entries: int) -> Path:
    """An encrypted jrnl journal of ``entries`` entries and a config that points at it."""
    journal = home / f"journal-{entries}.txt"
    rnd = random.Random(entries)
    start = dt.datetime(2020, 1, 1, 9, 0)
    with journal.open("w", encoding="utf-8") as out:
        for i in range(entries):
            when = start + dt.timedelta(hours=6 * i)
            out.write(f"[{when:%Y-%m-%d %H:%M:%S %p}] {common.note_text(rnd)}\n\n")
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", MAKE_JOURNAL, str(journal), common.PASSPHRASE],
        env=env,
        check=True,
    )
    config = Path(env["XDG_CONFIG_HOME"]) / "jrnl" / "jrnl.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "colors: {body: none, date: none, tags: none, title: none}\n"
        "default_hour: 9\ndefault_minute: 0\neditor: ''\nencrypt: true\n"
        "highlight: false\nindent_character: '|'\n"
        f"journals:\n  default:\n    journal: {journal}\n    encrypt: true\n"
        "linewrap: 79\ntagsymbols: '#@'\ntemplate: false\n"
        "timeformat: '%Y-%m-%d %H:%M:%S %p'\n"
        f"version: v{JRNL_VERSION}\n",
        encoding="utf-8",
    )
    return journal


def median_run(
    cmd: list[str], env: dict[str, str], stdin: Path | None = None
) -> tuple[float, float]:
    runs = [common.run(cmd, env=env, stdin=stdin) for _ in range(RUNS)]
    return statistics.median(r.seconds for r in runs), max(r.peak_mib for r in runs)


def nok_vault(work: Path, entries: int) -> tuple[dict[str, str], str]:
    """A vault with the DEFAULT key derivation holding ``entries`` notes, via nok import."""
    base = work / f"nok-default-{entries}"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    jsonl = common.write_jsonl(base / "import.jsonl", entries)
    env = common.env_for(base / "vault" / "vault.db")
    recovery = ["--recovery-file", str(base / "recovery.txt")]
    common.run([*common.NOK, "init", "--admin", common.ADMIN, *recovery], env=env)
    common.run([*common.NOK, "import", str(jsonl)], env=env)
    listed = common.run([*common.NOK, "consent", "list", "--json"], env=env, keep_stdout=True)
    return env, json.loads(listed.stdout)[0]["id"]


def shell_add(work: Path, env: dict[str, str], consent: str) -> tuple[float, float]:
    """The cost of one ``note add`` inside ``nok shell``: (21 adds - 1 add) / 20."""

    def session(adds: int) -> tuple[float, float]:
        script = work / f"shell-{adds}.txt"
        line = f"note add {consent} --text '{ENTRY}'\n"
        script.write_text(line * adds, encoding="utf-8")
        runs = [common.run([*nok_script(), "shell"], env=env, stdin=script) for _ in range(3)]
        return statistics.median(r.seconds for r in runs), max(r.peak_mib for r in runs)

    one, _ = session(1)
    many, peak = session(21)
    return (many - one) / 20, peak


def nok_script() -> list[str]:
    script = Path(sys.executable).parent / "nok"
    return [str(script)] if script.exists() else common.NOK


def measure(work: Path, *, notes: int = 0) -> list[dict[str, Any]]:
    del notes  # jrnl's sizes are its own: one file must be decrypted whole
    rows: list[dict[str, Any]] = []
    found = jrnl_env(work)
    if found is None:
        return [common.row("jrnl (could not be installed here)", None, None, None, None, "", None)]
    env_dir, env = found
    entry_file = work / "entry.txt"
    entry_file.write_text(ENTRY + "\n", encoding="utf-8")
    for size in SIZES:
        make_journal(env_dir, env, work / "jrnl", size)
        jrnl = [str(env_dir / "bin" / "jrnl")]
        j_add, j_add_peak = median_run([*jrnl, ENTRY], env)
        j_read, j_read_peak = median_run([*jrnl, "-n", "1"], env)
        nok_env, consent = nok_vault(work, size)
        n_add, n_add_peak = median_run(
            [*nok_script(), "note", "add", consent, "--json"], nok_env, stdin=entry_file
        )
        added = common.run(
            [*nok_script(), "note", "add", consent, "--json"],
            env=nok_env,
            stdin=entry_file,
            keep_stdout=True,
        )
        note_id = json.loads(added.stdout)["id"]
        n_read, n_read_peak = median_run([*nok_script(), "note", "show", note_id], nok_env)
        per_add, shell_peak = shell_add(work, nok_env, consent)
        target = "faster than jrnl" if size == TARGET_SIZE else ""
        rows += [
            common.row("jrnl add (default PBKDF2)", size, j_add, None, j_add_peak, "", None),
            common.row(
                "nok note add (CLI, default Argon2id)",
                size,
                n_add,
                j_add,
                n_add_peak,
                target,
                n_add < j_add if target else None,
            ),
            common.row(
                "nok shell: one more note add, after the unlock (default Argon2id)",
                size,
                per_add,
                j_add,
                shell_peak,
                "",
                None,
            ),
            common.row("jrnl -n 1 (read back)", size, j_read, None, j_read_peak, "", None),
            common.row(
                "nok note show (CLI, default Argon2id)",
                size,
                n_read,
                j_read,
                n_read_peak,
                "",
                None,
            ),
        ]
    kdf_s = argon2id_alone()
    rows.append(
        common.row(
            "Argon2id, nok's default profile, alone (floor)", None, kdf_s, None, None, "", None
        )
    )
    return rows


def argon2id_alone() -> float:
    """The key derivation every nok command pays once (the default ``moderate`` profile):
    the floor under ``nok note add`` as a fresh process."""
    import nacl.pwhash.argon2id as argon2id

    def derive() -> None:
        argon2id.kdf(
            32,
            b"benchmark",
            b"0123456789abcdef",
            argon2id.OPSLIMIT_MODERATE,
            argon2id.MEMLIMIT_MODERATE,
        )

    return common.median(derive, RUNS)


def main() -> None:
    import tempfile

    os.umask(0o077)
    with tempfile.TemporaryDirectory(prefix="nok-bench-jrnl-") as tmp:
        rows = measure(Path(tmp))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
