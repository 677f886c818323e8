"""``nok shell``: unlock once, then run nok commands at a prompt."""

from typing import Annotated

import typer

from nokcli import context
from nokcli.i18n import _

app = typer.Typer()


@app.command("shell")
def shell(
    ctx: typer.Context,
    idle_minutes: Annotated[
        float | None,
        typer.Option(
            "--idle-minutes",
            metavar="MINUTES",
            help=_(
                "Lock after this many minutes without a command: the keys are dropped and "
                "the next command asks for the passphrase. Default: idle_lock_minutes in the "
                "configuration file, else 10."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Unlock once, then run nok commands at a prompt.

    Type the commands without 'nok': note add C-7K2M-9Q4F, consent list... Tab completes;
    exit or Ctrl-D leaves. Output, exit codes and audit entries are those of the command
    line. Nothing typed is saved to a history file; Ctrl-C cancels the command, not the
    session.
    """
    from nokcli import config
    from nokcli import shell as session
    from nokcli.app import app as root_app

    idle = session.idle_seconds(idle_minutes, config.load().idle_lock_minutes)
    root = typer.main.get_command(root_app)
    raise typer.Exit(session.run(context.get(ctx), idle, root))
