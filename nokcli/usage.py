"""Typer's own words (usage lines, the help option, usage errors) in the user's language.

Typer's headings ("Options", "Commands", "[required]") go through the stdlib's gettext and
come from our catalogue (nokcli.i18n). The click that Typer vendors builds the rest with
f-strings: "Usage: ", "Show this message and exit.", "No such option: --x". Those are
translated here by template: each English message below is matched against the text Typer
made, and its translation filled with what the match found (a message inside a message,
like a bad value inside "Invalid value for ...", is translated the same way).

A usage error then prints as every other nok error: ``nok: error: ...`` and a hint, exit 2.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from typer import core

from nokcli import output
from nokcli.i18n import N_, _, render

# Fields whose text is itself one of these messages.
NESTED = ("message",)
TEMPLATES = (
    N_("No such option: {name}"),
    N_("No such option: {name} (Possible options: {options})"),
    N_("Invalid value for {name}: {message}"),
    N_("Invalid value for {name} (env var: {var}): {message}"),
    N_("Missing option {name}."),
    N_("Missing argument {name}."),
    N_("Missing option {name}. Choose from:\n\t{choices}"),
    N_("Missing argument {name}. Choose from:\n\t{choices}"),
    N_("Option {name} requires an argument."),
    N_("Option {name} requires {count} arguments."),
    N_("Option {name} does not take a value."),
    N_("Argument {name} takes {count} values."),
    N_("Got unexpected extra argument(s) ({args})"),
    N_("{message}. Did you mean {suggestions}?"),
    N_("Value {value} is not a valid {kind}."),
    N_("{value} is not one of {choices}."),
    N_("{value} is not in the range {range}."),
    N_("{kind} {path} does not exist."),
    N_("{kind} {path} is a file."),
    N_("{kind} {path} is a directory."),
    N_("{kind} {path} is not readable."),
    N_("{kind} {path} is not writable."),
    N_("Value must be an iterable."),
    # Typer checks values with pydantic, whose messages come through as they are.
    N_("Input should be greater than or equal to {limit}"),
    N_("Input should be less than or equal to {limit}"),
    N_("Input should be greater than {limit}"),
    N_("Input should be less than {limit}"),
    N_("Input should be a valid integer, unable to parse string as an integer"),
    N_("Input should be a valid integer, got a number with a fractional part"),
    N_("Input should be a valid number, unable to parse string as a number"),
    N_("Input should be a finite number"),
    N_("Input should be {choices}"),
)
# Words Typer puts into those messages.
WORDS = (N_("integer"), N_("float"), N_("boolean"), N_("File"), N_("Directory"), N_("Path"))


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    compiled = []
    # The most specific template first: "No such option: {name}" would also match a
    # message that goes on with "(Possible options: ...)".
    for template in sorted(TEMPLATES, key=lambda t: -len(re.sub(r"\{\w+\}", "", t))):
        pattern = re.escape(template)
        for name in re.findall(r"\{(\w+)\}", template):
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.+?)", 1)
        compiled.append((re.compile(f"^{pattern}$", re.DOTALL), template))
    return tuple(compiled)


def translate(message: str) -> str:
    """Typer's English ``message`` in the user's language (unchanged if no template fits)."""
    for pattern, template in _patterns():
        match = pattern.match(message)
        if match is None:
            continue
        fields = {
            k: translate(v) if k in NESTED else (_(v) if k == "kind" else v)
            for k, v in match.groupdict().items()
        }
        return render(template, **fields)
    return message


def is_usage_error(exc: BaseException) -> bool:
    return any(c.__name__ == "UsageError" for c in type(exc).__mro__) and not any(
        c.__name__ == "NoArgsIsHelpError" for c in type(exc).__mro__
    )


def report(exc: Any) -> int:
    """Print a usage error as nok prints every error; returns its exit code."""
    ctx = getattr(exc, "ctx", None)
    hint = None
    if ctx is not None:
        hint = render("see '{command} --help'", command=ctx.command_path)
    output.error(translate(str(exc.format_message())), hint)
    return int(getattr(exc, "exit_code", 2))


def _usage_pieces() -> dict[str, str]:
    return {"[OPTIONS]": _("[OPTIONS]"), "COMMAND [ARGS]...": _("COMMAND [ARGS]...")}


def _format_usage(self: Any, ctx: Any, formatter: Any) -> None:
    shown = _usage_pieces()
    pieces = [shown.get(p, p) for p in self.collect_usage_pieces(ctx)]
    formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=_("Usage:") + " ")


def _help_option(original: Any) -> Any:
    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option

    return get_help_option


def install() -> None:
    """Translate the usage line and the help option of every command from now on."""
    for cls in (core.TyperCommand, core.TyperGroup):
        cls.format_usage = _format_usage  # type: ignore[method-assign]
        cls.get_help_option = _help_option(cls.get_help_option)  # type: ignore[method-assign]
