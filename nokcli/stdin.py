"""Text from standard input: UTF-8 only, with one clear error for anything else."""

from __future__ import annotations

import sys

from vault.errors import BadInput


def read(*, line: bool = False) -> str:
    """All of standard input (or its first line), decoded as UTF-8.

    Raises:
        BadInput: the bytes are not UTF-8 (Latin-1 or Windows-1252 from an older system).
    """
    raw = sys.stdin.buffer.readline() if line else sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            "standard input is not UTF-8 text (byte {offset} is {byte}); nothing was saved, "
            "convert it first, e.g. with: iconv -f latin1 -t utf-8",
            offset=exc.start,
            byte=f"0x{raw[exc.start]:02x}",
        ) from None
