"""``nok completion SHELL``: the script that lets bash, zsh or fish complete nok commands."""

from __future__ import annotations

from typing import Annotated

import typer

from nokcli.i18n import _

app = typer.Typer()

# Each script hands the line up to the cursor to nok (nokcli.complete), in the environment
# rather than the arguments, and offers what comes back: commands, options, ids.
SCRIPTS = {
    "bash": """\
_nok_complete() {
    local IFS=$'\\n'
    COMPREPLY=( $(NOK_COMPLETE=bash NOK_COMPLETE_LINE="${COMP_LINE:0:COMP_POINT}" \\
                  command nok 2>/dev/null) )
}
complete -o default -F _nok_complete nok
""",
    "zsh": """\
#compdef nok
_nok() {
    local -a matches
    matches=(${(f)"$(NOK_COMPLETE=zsh NOK_COMPLETE_LINE="${BUFFER[1,CURSOR]}" \\
                      command nok 2>/dev/null)"})
    if (( ${#matches} )); then
        compadd -U -- "${matches[@]}"
    else
        _files
    fi
}
compdef _nok nok
""",
    "fish": """\
function __nok_complete
    env NOK_COMPLETE=fish NOK_COMPLETE_LINE=(commandline -cp) nok 2>/dev/null
end
complete --command nok --no-files --arguments '(__nok_complete)'
""",
}


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
