"""Where user-facing strings pass through translation.

Every message the CLI shows goes through :func:`_` (or :func:`render`) as a whole sentence
with named placeholders; ``nokcli/locale/nb/LC_MESSAGES/nok.po`` holds their Norwegian
bokmål translations (gettext domain ``nok``; ``nokcli/locale/README.md`` says how to add
one). The vault library stays English: its error and problem templates are translated
here, at the CLI boundary, by template.

The language is chosen once per process: ``NOK_LANG``, else ``language`` in the
configuration file, else the POSIX locale variables ``LC_ALL``, ``LC_MESSAGES``, ``LANG``
(the first one set wins). ``nb``, ``no`` and ``nn`` give bokmål; anything else, ``C``
included, English.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "nok"
LOCALEDIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "nb")
NORWEGIAN = ("nb", "no", "nn")
PHRASE = "phrase"
STATUS = "consent status"


def normalise(value: str) -> str:
    """``nb_NO.UTF-8``, ``no``, ``nn_NO`` -> ``nb``; anything else -> ``en``."""
    code = value.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return "nb" if code in NORWEGIAN else "en"


def choose(env: Mapping[str, str], configured: str | None = None) -> str:
    """The language for an environment and the configuration file's ``language``."""
    for value in (
        env.get("NOK_LANG"),
        configured,
        env.get("LC_ALL"),
        env.get("LC_MESSAGES"),
        env.get("LANG"),
    ):
        if value:
            return normalise(value)
    return "en"


def _configured() -> str | None:
    """The configuration file's language, if it names one."""
    if os.environ.get("NOK_LANG"):
        return None
    from nokcli import config
    from vault.errors import NokError

    try:
        return config.load().language
    except (NokError, OSError, ValueError):
        # Unreadable or broken: the command reports it (nokcli.context), as one error line.
        return None


LANGUAGE = choose(os.environ, _configured())
_catalog = gettext.translation(
    DOMAIN, localedir=str(LOCALEDIR), languages=[LANGUAGE], fallback=True
)


def _serve_typer() -> None:
    """Let Typer's own headings ("Options", "Commands", "[required]") come from our
    catalogue. Typer calls the stdlib's ``gettext.gettext``, which looks in the process's
    text domain for the language named by ``LANGUAGE`` (GNU gettext's override of the locale):
    naming our domain and our choice there is the interface gettext offers an application.
    (The texts of the click Typer vendors are not marked for gettext: nokcli/usage.py.)"""
    if LANGUAGE == "en":
        return
    gettext.bindtextdomain(DOMAIN, str(LOCALEDIR))
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = LANGUAGE


_serve_typer()


def _(message: str) -> str:
    return _catalog.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog.ngettext(singular, plural, n)


def notes_counted(n: int) -> str:
    """``n`` with "note" in the right plural form of the user's language ("1 notat",
    "2 notater"), for a template's ``{notes}``: never "note(s)"."""
    return ngettext("{n} note", "{n} notes", n).format(n=n)


def consents_counted(n: int) -> str:
    """``n`` with "consent" in the right plural form ("1 samtykke", "2 samtykker")."""
    return ngettext("{n} consent", "{n} consents", n).format(n=n)


def pgettext(context: str, message: str) -> str:
    return _catalog.pgettext(context, message)


def N_(message: str) -> str:
    """Marks a template for the catalogue where it is defined; translated where shown."""
    return message


def render(template: str, **params: object) -> str:
    """Translate a template, then fill in its named placeholders."""
    return _(template).format(**params)


def _phrase(text: str) -> str:
    for context in (PHRASE, STATUS):
        shown = pgettext(context, text)
        if shown != text:
            return shown
    return text


def render_vault(template: str, params: Mapping[str, object]) -> str:
    """A vault error's or problem's message in the user's language.

    Besides the template, the library passes a few English phrases as parameters ("staff
    member", "the vault file"); those are catalogue entries too, in the context ``phrase``,
    and so is a consent's status ("withdrawn"). Ids, paths, names and numbers have no
    entry there and pass unchanged.
    """
    shown = {k: _phrase(v) if isinstance(v, str) else v for k, v in params.items()}
    return _(template).format(**shown)
