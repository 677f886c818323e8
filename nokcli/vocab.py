"""Note kinds and data categories in the user's words.

The vault stores one language-neutral value (``phone``); people type and read their own
word for it (``telefon``). Both languages' words are accepted whatever the interface
language, so a note typed from an English cheat sheet works on a Norwegian machine.
"""

from __future__ import annotations

import difflib
import unicodedata

from nokcli.i18n import _, pgettext
from vault.errors import BadInput

# Stored value -> the Norwegian words accepted for it (the first is how it is shown).
KIND_WORDS: dict[str, tuple[str, ...]] = {
    "one-to-one": ("enesamtale",),
    "phone": ("telefon", "telefonsamtale"),
    "group": ("gruppe",),
    "next-of-kin": ("pårørende", "pårørendesamtale"),
    "open-house": ("åpent hus", "åpent-hus"),
    "outreach": ("oppsøkende",),
    "follow-up-plan": ("oppfølgingsplan",),
    "other": ("annet",),
}
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "contact": ("kontaktopplysninger", "kontakt"),
    "conversation-notes": ("samtalenotater", "samtalenotat"),
    "safety": ("sikkerhet",),
    "health": ("helse",),
    "follow-up-plan": ("oppfølgingsplan",),
    "next-of-kin": ("pårørende",),
}


REASON_WORDS: dict[str, tuple[str, ...]] = {
    "covering": ("vikar", "vikarierer"),
    "shared-follow-up": ("felles oppfølging", "felles-oppfølging"),
    "person-asked": ("personen ba om det", "personen-ba-om-det"),
    "emergency": ("nødstilfelle", "akutt"),
    "other": ("annet",),
}


# Why a note was deleted (vault.corrections.NOTE_DELETE_REASONS).
NOTE_REASON_WORDS: dict[str, tuple[str, ...]] = {
    "wrong-person": ("feil person", "feil-person"),
    "person-asked": ("personen ba om det", "personen-ba-om-det"),
    "mistake": ("feilføring", "feil"),
}
# How close a typed category must be to a known one to be asked about (difflib's ratio):
# one letter off or missing in a word of ten is 0.9; "helse" against "hjelp" is 0.6.
NEAR = 0.8


def _reasons_shown() -> dict[str, str]:
    return {
        "covering": pgettext("access reason", "covering"),
        "shared-follow-up": pgettext("access reason", "shared-follow-up"),
        "person-asked": pgettext("access reason", "person-asked"),
        "emergency": pgettext("access reason", "emergency"),
        "other": pgettext("access reason", "other"),
    }


def reason(text: str) -> str:
    """The stored access reason for a word typed in either language.

    Raises BadInput: not a reason; the message lists them in the user's language.
    """
    value = _stored(text, REASON_WORDS)
    if value not in REASON_WORDS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=text,
            choices=", ".join(str(reason_shown(v)) for v in REASON_WORDS),
        )
    return value


def reason_shown(value: str | None) -> str | None:
    return _reasons_shown().get(value, value) if value is not None else None


def _kinds_shown() -> dict[str, str]:
    # Literal calls, so that nokcli.i18n_tools finds each word for the catalogue.
    return {
        "one-to-one": pgettext("note kind", "one-to-one"),
        "phone": pgettext("note kind", "phone"),
        "group": pgettext("note kind", "group"),
        "next-of-kin": pgettext("note kind", "next-of-kin"),
        "open-house": pgettext("note kind", "open-house"),
        "outreach": pgettext("note kind", "outreach"),
        "follow-up-plan": pgettext("note kind", "follow-up-plan"),
        "other": pgettext("note kind", "other"),
    }


def _categories_shown() -> dict[str, str]:
    return {
        "contact": pgettext("data category", "contact"),
        "conversation-notes": pgettext("data category", "conversation-notes"),
        "safety": pgettext("data category", "safety"),
        "health": pgettext("data category", "health"),
        "follow-up-plan": pgettext("data category", "follow-up-plan"),
        "next-of-kin": pgettext("data category", "next-of-kin"),
    }


def _states_shown() -> dict[str, str]:
    # A consent's status, and why it ended (the tombstone's reason).
    return {
        "active": pgettext("consent status", "active"),
        "withdrawn": pgettext("consent status", "withdrawn"),
        "expired": pgettext("consent status", "expired"),
        "withdrawn-by-guardian": pgettext("consent status", "withdrawn-by-guardian"),
        "registered-in-error": pgettext("consent status", "registered-in-error"),
    }


def _word(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _stored(text: str, words: dict[str, tuple[str, ...]]) -> str:
    typed = _word(text)
    for value, aliases in words.items():
        if typed == value or typed in aliases:
            return value
    return text


def kind(text: str) -> str:
    """The stored kind for a word typed in either language.

    Raises:
        BadInput: not a kind; the message lists the kinds in the user's language.
    """
    value = _stored(text, KIND_WORDS)
    if value not in KIND_WORDS:
        raise BadInput(
            "unknown note kind {kind!r}; use one of: {kinds}",
            kind=text,
            kinds=", ".join(kind_shown(v) for v in KIND_WORDS),
        )
    return value


def category_value(text: str) -> str:
    """The stored category for a typed word; a center's own category passes unchanged."""
    return _stored(text, CATEGORY_WORDS)


def near_category(text: str) -> str | None:
    """The known category a typed word that is none of them is one or two letters from
    (``samtalenotatr``, ``sikkerhett``), else None: a center's own new category."""
    typed = _word(text)
    words = {w: v for v, aliases in CATEGORY_WORDS.items() for w in (v, *aliases)}
    words.update({_word(shown): v for v, shown in _categories_shown().items()})
    if typed in words:
        return None
    close = difflib.get_close_matches(typed, list(words), n=1, cutoff=NEAR)
    return words[close[0]] if close else None


def _note_reasons_shown() -> dict[str, str]:
    return {
        "wrong-person": pgettext("note delete reason", "wrong-person"),
        "person-asked": pgettext("note delete reason", "person-asked"),
        "mistake": pgettext("note delete reason", "mistake"),
    }


def note_reason(text: str) -> str:
    """The stored reason for deleting a note, for a word typed in either language.

    Raises BadInput: not a reason; the message lists them in the user's language.
    """
    value = _stored(text, NOTE_REASON_WORDS)
    if value not in NOTE_REASON_WORDS:
        raise BadInput(
            "unknown reason {reason!r}; use one of: {choices}",
            reason=text,
            choices=note_reasons_shown(),
        )
    return value


def note_reasons_shown() -> str:
    return ", ".join(_note_reasons_shown().values())


def note_reason_shown(value: str) -> str:
    return _note_reasons_shown().get(value, value)


def kind_shown(value: str) -> str:
    return _kinds_shown().get(value, value)


def category_shown(value: str) -> str:
    return _categories_shown().get(value, value)


def state_shown(value: str | None) -> str | None:
    """A consent's status or end reason as the user reads it."""
    return _states_shown().get(value, value) if value is not None else None


def translate_export(text: str) -> str:
    """The export's translate: its sentence templates, and the stored words it shows."""
    for shown in (_kinds_shown(), _categories_shown(), _states_shown(), _reasons_shown()):
        if text in shown:
            return shown[text]
    return _(text)


def categories_shown(values: tuple[str, ...] | list[str] | None) -> str:
    return ", ".join(category_shown(v) for v in values or ())
