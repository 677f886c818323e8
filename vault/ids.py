"""Short random ids that a person can copy from paper.

Ids are random (they reveal nothing about other records or their order), written in
Crockford's base32 (no I, L, O or U) with a type prefix: ``C-7K2M-9Q4F`` for a consent,
``N-3XH8-P2DW-5`` for a note. Reading is forgiving: case, dashes and the look-alikes
O/0, I/1, L/1 are normalised.
"""

from __future__ import annotations

import secrets

from vault.errors import BadInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
CONSENT_PREFIX = "C"
NOTE_PREFIX = "N"
# A contact or an activity counted for the yearly report (vault.report).
EVENT_PREFIX = "E"
_LENGTHS = {CONSENT_PREFIX: 8, NOTE_PREFIX: 9, EVENT_PREFIX: 9}
# Byte b -> ALPHABET[b % 32]: one random byte per character.
_BASE32 = bytes(ord(ALPHABET[b & 31]) for b in range(256))


def _group(body: str) -> str:
    return "-".join(body[i : i + 4] for i in range(0, len(body), 4))


def new_id(prefix: str) -> str:
    """A fresh random id: 40 bits for consents, 45 for notes."""
    # One random byte per character, reduced mod 32: uniform (32 divides 256), and one
    # system call per id instead of one per character (bulk import makes a million).
    body = secrets.token_bytes(_LENGTHS[prefix]).translate(_BASE32).decode("ascii")
    return f"{prefix}-{_group(body)}"


def parse_id(text: str, prefix: str, what: str) -> str:
    """Normalise a typed id to its canonical form.

    Raises:
        BadInput: the text cannot be an id of this kind.
    """
    typed = text.strip().upper()
    raw = typed.replace("-", "").replace(" ", "")
    # The prefix is optional when typing, and a body may itself start with the prefix letter:
    # it is a prefix when a dash follows it or when the body is complete without it.
    dashed = typed[1:2] == "-"
    if raw.startswith(prefix) and (dashed or len(raw) == len(prefix) + _LENGTHS[prefix]):
        raw = raw[len(prefix) :]
    raw = raw.translate(_LOOKALIKES)
    wrong_prefix = dashed and not typed.startswith(prefix)
    if wrong_prefix or len(raw) != _LENGTHS[prefix] or any(ch not in ALPHABET for ch in raw):
        raise BadInput(
            "{text!r} is not a {what} id (they look like {example})",
            text=text,
            what=what,
            example=example(prefix),
        )
    return f"{prefix}-{_group(raw)}"


def typed_start(text: str, prefix: str) -> str | None:
    """The canonical beginning of an id from its first typed characters (for completion).

    ``c7k2m`` gives ``C-7K2M-``; None when ``text`` cannot begin an id of this kind.
    """
    raw = text.strip().upper().replace("-", "").replace(" ", "")
    # While completing, a leading prefix letter is always read as the prefix.
    raw = raw.removeprefix(prefix).translate(_LOOKALIKES)
    size = _LENGTHS[prefix]
    if len(raw) > size or any(ch not in ALPHABET for ch in raw):
        return None
    dash = "-" if raw and len(raw) % 4 == 0 and len(raw) < size else ""
    return f"{prefix}-{_group(raw)}{dash}"


def example(prefix: str) -> str:
    return f"{prefix}-{_group('7K2M9Q4F3X'[: _LENGTHS[prefix]])}"
