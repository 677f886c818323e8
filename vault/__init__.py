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

from vault.errors import NokError
from vault.session import Settings, Status, Unlocked, Vault

__all__ = ["NokError", "Settings", "Status", "Unlocked", "Vault"]
__version__ = "0.1.0"
