"""nok's core library: an encrypted, consent-bound vault of journal notes.

Usable from a Python script without the command line::

    import datetime as dt
    from pathlib import Path
    from vault import Vault, consents, notes

    now = dt.datetime.now(dt.UTC)
    with Vault.open(Path("vault.db")) as v:
        me = v.unlock("anne", b"passphrase", now=now)
        for note in notes.list_notes(me):
            print(note.date, note.text)

The library never prompts, prints or exits; time (``now``) and secrets are arguments,
and every expected failure is a :class:`vault.errors.NokError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.errors import NokError

if TYPE_CHECKING:
    from vault.session import Settings, Status, Unlocked, Vault

__all__ = ["NokError", "Settings", "Status", "Unlocked", "Vault"]
# The one place the version is written: pyproject.toml reads it (setuptools' dynamic
# version), so the package metadata, `nok --version` and this cannot disagree.
__version__ = "0.1.0"

_LAZY = frozenset({"Settings", "Status", "Unlocked", "Vault"})


def __getattr__(name: str) -> Any:
    # Importing vault.session pulls in SQLite and libsodium layers; importing only
    # vault.errors or vault.dates (as ``nok --help`` does) must not pay for that.
    if name in _LAZY:
        from vault import session

        return getattr(session, name)
    raise AttributeError(f"module 'vault' has no attribute {name!r}")
