"""The reason an admin gives to read a consent outside her assignment: a fixed code,
given with ``--reason`` in scripts and asked for on a terminal, recorded with the read."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from nokcli import context, output, vocab
from nokcli.i18n import _, render

if TYPE_CHECKING:
    from vault.session import Unlocked

T = TypeVar("T")

REASON_HELP = _(
    "For an admin reading consents she is not assigned to: why (covering, shared-follow-up, "
    "person-asked, emergency or other), recorded with each read. Asked on a terminal when "
    "needed; without it a listing shows those consents without their personal data."
)
ReasonOption = Annotated[
    str | None, typer.Option("--reason", metavar="REASON", help=REASON_HELP, show_default=False)
]


def ask() -> str:
    """A reason typed at the terminal, in either language."""
    choices = ", ".join(str(vocab.reason_shown(r)) for r in vocab.REASON_WORDS)
    answer: str = typer.prompt(
        render(
            "This consent is not assigned to you. Reason for reading it ({choices})",
            choices=choices,
        ),
        err=True,
    )
    return vocab.reason(answer)


def retry(state: context.Context, vault: Unlocked, call: Callable[[], T]) -> T:
    """``call()``; when it needs a reason and none was given, ask on a terminal and call
    again (in a script the refusal stands: exit 11 with a hint)."""
    from vault.access import ReasonNeeded

    try:
        return call()
    except ReasonNeeded:
        if vault.read_reason is not None or not sys.stdin.isatty():
            raise
        reason = ask()
        state.reason = vault.read_reason = reason
        output.info("the reason is recorded with the read")
        return call()
