"""Placeholders a person can read in ``--help``: TEXT, ID, DATE, DAYS, FILE, DIR...

Typer labels an option's value with its Python type (``<str>``, ``<list[str]>``,
``<float range>``) and wraps a required argument in braces (``{ID}``). nok names each
value by what it is instead: one table here for the options that recur across commands, a
``metavar=`` where a command knows better, and words (never Python types) for the rest.
"""

from __future__ import annotations

from typing import Any

from typer import core

from nokcli.i18n import pgettext

# One word per kind of value, the same in every command.
BY_OPTION = {
    "--actor": "NAME",
    "--admin": "NAME",
    "--as": "NAME",
    "--batch-notes": "N",
    "--consent": "ID",
    "--date": "DATE",
    "--days": "DAYS",
    "--erasures": "FILE",
    "--form-ref": "TEXT",
    "--given": "DATE",
    "--group": "GROUP",
    "--guardian": "NAME",
    "--kdf": "PROFILE",
    "--kind": "KIND",
    "--new-passphrase-file": "FILE",
    "--now": "DATE",
    "--output": "FILE",
    "--passphrase-file": "FILE",
    "--reason": "REASON",
    "--retain-days": "DAYS",
    "--role": "ROLE",
    "--since": "DATE",
    "--vault": "FILE",
}
BY_TYPE = {"str": "TEXT", "int": "N", "float": "SECONDS", "Path": "FILE"}


def _placeholders() -> dict[str, str]:
    # Literal calls, so that nokcli.i18n_tools finds each word for the catalogue.
    return {
        "AUDIENCE": pgettext("placeholder", "AUDIENCE"),
        "CATEGORY": pgettext("placeholder", "CATEGORY"),
        "CHANNEL": pgettext("placeholder", "CHANNEL"),
        "CONSENT_ID": pgettext("placeholder", "CONSENT_ID"),
        "DATE": pgettext("placeholder", "DATE"),
        "DAYS": pgettext("placeholder", "DAYS"),
        "DIR": pgettext("placeholder", "DIR"),
        "FILE": pgettext("placeholder", "FILE"),
        "GROUP": pgettext("placeholder", "GROUP"),
        "KEY": pgettext("placeholder", "KEY"),
        "KIND": pgettext("placeholder", "KIND"),
        "MINUTES": pgettext("placeholder", "MINUTES"),
        "NAME": pgettext("placeholder", "NAME"),
        "PATH": pgettext("placeholder", "PATH"),
        "PROFILE": pgettext("placeholder", "PROFILE"),
        "REASON": pgettext("placeholder", "REASON"),
        "ROLE": pgettext("placeholder", "ROLE"),
        "SECONDS": pgettext("placeholder", "SECONDS"),
        "SHELL": pgettext("placeholder", "SHELL"),
        "TEXT": pgettext("placeholder", "TEXT"),
        "VALUE": pgettext("placeholder", "VALUE"),
        "YYYY-MM-DD": pgettext("placeholder", "YYYY-MM-DD"),
    }


def placeholder(word: str) -> str:
    """A placeholder in the user's language (FIL, NAVN, DATO); ids and N stay as they are.
    ``[CONSENT_ID]`` (an optional argument) keeps its brackets."""
    inner = word.strip("[]")
    return word.replace(inner, _placeholders().get(inner, inner))


def option_label(option: Any) -> str:
    """The placeholder after an option in --help, in the user's language."""
    return placeholder(_option_word(option))


def _option_word(option: Any) -> str:
    known = next((BY_OPTION[o] for o in option.opts if o in BY_OPTION), None)
    if known is not None:
        return known
    if option.metavar is not None:
        return str(option.metavar)
    descriptor = option.type_descriptor
    if descriptor.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in descriptor.choices or ())
    return BY_TYPE.get(option.bare_type().removeprefix("list[").removesuffix("]"), "TEXT")


def _option_display(self: Any, ctx: Any) -> str | None:
    return None if getattr(self, "is_flag", False) else option_label(self)


def _argument_display(self: Any, ctx: Any) -> str | None:
    # The argument's own name (ID, FILE...) already says what it is.
    return None


def _argument_usage(self: Any) -> str:
    name = placeholder(str(self.display_name_raw))
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


_display_name = core.TyperArgument._rich_display_name


def _argument_name(self: Any) -> str:
    # The Arguments column: the same word as the usage line.
    return placeholder(str(_display_name(self)))


_short_help = core.TyperCommand.get_short_help_str


def _whole_summary(self: Any, limit: int = 45) -> str:
    # Click cuts a summary at ``limit`` with "..."; the list of commands wraps it instead.
    return str(_short_help(self, limit=1000))


def install() -> None:
    """Use nok's placeholders and whole command summaries in every help text from now on."""
    core.TyperCommand.get_short_help_str = _whole_summary  # type: ignore[method-assign]
    core.TyperGroup.get_short_help_str = _whole_summary  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = _option_display  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = _argument_display  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
