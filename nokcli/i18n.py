"""Where user-facing strings pass through translation.

Every message the CLI shows goes through :func:`_` as a whole sentence with named
placeholders, so a later Norwegian catalogue (``nok`` domain, gettext) can translate it.
"""

from __future__ import annotations

import gettext
from pathlib import Path

_catalog = gettext.translation(
    "nok", localedir=str(Path(__file__).parent / "locale"), fallback=True
)


def _(message: str) -> str:
    return _catalog.gettext(message)


def render(template: str, **params: object) -> str:
    """Translate a template, then fill in its named placeholders."""
    return _(template).format(**params)
