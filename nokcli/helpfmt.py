"""Placeholders a person can read in ``--help``: TEXT, ID, DATE, DAYS, FILE, DIR...

Typer labels an option's value with its Python type (``<str>``, ``<list[str]>``,
``<float range>``) and wraps a required argument in braces (``{ID}``). nok names each
value by what it is instead: one table here for the options that recur across commands, a
``metavar=`` where a command knows better, and words (never Python types) for the rest.
"""

from __future__ import annotations

from typing import Any

from typer import core

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


def option_label(option: Any) -> str:
    """The placeholder after an option in --help."""
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
    name = str(self.display_name_raw)
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


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
