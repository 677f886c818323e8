"""``nok completion SHELL``: the script that lets bash, zsh or fish complete nok commands."""

from typing import Annotated

import typer

from nokcli.i18n import _
from nokcli.shells import SCRIPTS

app = typer.Typer()


@app.command("completion")
def completion(
    shell: Annotated[
        str, typer.Argument(metavar="SHELL", help=_("bash, zsh or fish."), show_default=False)
    ],
) -> None:
    """Print the completion script for bash, zsh or fish.

    It completes commands, options, and consent and note ids (ids only, without a
    passphrase). bash: add 'source <(nok completion bash)' to ~/.bashrc; zsh: add
    'source <(nok completion zsh)' to ~/.zshrc after compinit; fish: nok completion fish >
    ~/.config/fish/completions/nok.fish
    """
    from vault.errors import BadInput

    script = SCRIPTS.get(shell)
    if script is None:
        raise BadInput("no completion for {shell!r}; use bash, zsh or fish", shell=shell)
    typer.echo(script, nl=False)
