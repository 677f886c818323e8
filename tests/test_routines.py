"""The center's routine (docs/routines.md, docs/nb/rutiner.md): every command in it runs,
in order, against a temporary vault, as real processes started by a shell."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ADMIN, CLOCK_ENV, PASSPHRASE

from vault import Vault, consents
from vault.dates import utcnow

DOCS = Path(__file__).parent.parent / "docs"
ROUTINES = DOCS / "routines.md"
RUTINER = DOCS / "nb" / "rutiner.md"
EXAMPLE_ID = "C-7K2M-9Q4F"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def commands(doc: Path) -> list[str]:
    """Every command line in the document's ``sh`` blocks, in order."""
    lines = []
    for block in BLOCK.findall(doc.read_text(encoding="utf-8")):
        lines += [line.strip() for line in block.splitlines() if line.strip()]
    return lines


def test_both_languages_give_the_same_commands():
    assert commands(RUTINER) == commands(ROUTINES)


def test_every_command_is_a_nok_command():
    for line in commands(ROUTINES):
        assert shlex.split(line)[0] == "nok", line


@pytest.mark.slow
def test_every_command_in_the_routine_runs(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    vault_path = home / "vault" / "vault.db"
    u = Vault.create(
        vault_path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=utcnow(), kdf="interactive"
    )
    try:
        consent_id = consents.add(u, consents.ConsentInput("S", "P", ("conversation-notes",))).id
    finally:
        u.close()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "NOK_NEW_PASSPHRASE": "kari's new passphrase",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        **CLOCK_ENV,
    }
    lines = commands(ROUTINES)
    assert len(lines) >= 15
    for line in lines:
        line = line.replace(EXAMPLE_ID, consent_id)
        done = subprocess.run(
            ["bash", "-c", line],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
    assert (home / "consent-form.html").stat().st_mode & 0o777 == 0o600
    assert consent_id in (home / f"copy-{consent_id}.md").read_text(encoding="utf-8")
    assert list((home / "nok-backups").glob("vault-backup-*.db"))
