"""Completion of nok command lines: commands, options, consent and note ids, note kinds
and data categories.

One engine serves the prompt of ``nok shell`` (readline) and bash, zsh and fish (the
scripts ``nok completion SHELL`` prints call ``nok`` with ``NOK_COMPLETE`` set). It is
keyless by design: ids come from their plaintext columns through a vault opened without a
key, never a name or anything decrypted, and nothing here asks for a passphrase.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

ENV_SHELL = "NOK_COMPLETE"
ENV_LINE = "NOK_COMPLETE_LINE"
SHELLS = ("bash", "zsh", "fish")
# A tab press must not hang on a vault another process holds.
BUSY_TIMEOUT = 1.0

# Which parameters take a consent id or a note id, by parameter name, in every command
# (new commands get completion by naming their id parameters the same way).
ID_PARAMS = {"consent_id": "consent", "consent": "consent", "note_id": "note"}

# (kind, typed) -> ids
FindIds = Callable[[str, str], list[str]]


def split_line(line: str) -> tuple[list[str], str]:
    """The words before the cursor and the word being typed (perhaps ''), as a shell would
    split them; an unclosed quote belongs to the word being typed."""
    for closing in ("", '"', "'"):
        try:
            words = shlex.split(line + closing)
        except ValueError:
            continue
        if closing == "" and (not line or line[-1].isspace()):
            return words, ""
        if not words:
            return [], ""
        return words[:-1], words[-1]
    return [], ""


def candidates(root: Any, words: list[str], typed: str, find_ids: FindIds) -> list[str]:
    """What may follow ``words`` (the line after ``nok``) where ``typed`` is being typed."""
    where = _walk(root, words)
    if where is None:
        return []
    command, awaiting, positional = where
    if awaiting is not None:
        return _values(awaiting, typed, find_ids)
    if typed.startswith("-"):
        return _starting(_option_names(command), typed)
    if hasattr(command, "commands"):
        names = [name for name, sub in command.commands.items() if not sub.hidden]
        return _starting(sorted(names), typed)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if positional < len(arguments):
        return _values(arguments[positional], typed, find_ids)
    return []


def _walk(root: Any, words: list[str]) -> tuple[Any, Any, int] | None:
    """The command the words lead to, the option still waiting for its value, and how
    many arguments it already has; None for a word that is no command."""
    command, awaiting, positional, options_done = root, None, 0, False
    for word in words:
        if awaiting is not None:
            awaiting = None
        elif word == "--":
            options_done = True
        elif word.startswith("-") and len(word) > 1 and not options_done:
            option = _option(command, word.split("=", 1)[0])
            if option is not None and _takes_value(option) and "=" not in word:
                awaiting = option
        elif hasattr(command, "commands"):
            command = command.commands.get(word)
            if command is None:
                return None
        else:
            positional += 1
    return command, awaiting, positional


def _option(command: Any, name: str) -> Any:
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _takes_value(option: Any) -> bool:
    return not (option.is_flag or option.count)


def _option_names(command: Any) -> list[str]:
    names = ["--help"]
    for param in command.params:
        if param.param_type_name == "option" and not param.hidden:
            names += [n for n in (*param.opts, *param.secondary_opts) if n.startswith("--")]
    return sorted(set(names))


def _values(param: Any, typed: str, find_ids: FindIds) -> list[str]:
    kind = ID_PARAMS.get(param.name or "")
    if kind is not None:
        return find_ids(kind, typed)
    words = _words(param.name or "")
    if words:
        # In the user's language; "åpent hus" needs its quotes on a command line.
        return [shlex.quote(w) for w in _starting(words, typed)]
    choices = getattr(param.type, "choices", None)
    if choices:
        return _starting([str(c) for c in choices], typed)
    return []


def _words(name: str) -> list[str]:
    """Note kinds and data categories as the user writes them (nokcli.vocab)."""
    from nokcli import vocab

    if name == "kind":
        return [vocab.kind_shown(v) for v in vocab.KIND_WORDS]
    if name == "category":
        return [vocab.category_shown(v) for v in vocab.CATEGORY_WORDS]
    return []


def _starting(names: Iterable[str], typed: str) -> list[str]:
    return [n for n in names if n.startswith(typed)]


def vault_ids(path: Path | Callable[[], Path]) -> FindIds:
    """Keyless id lookups in the vault at ``path`` (or the one a function names, found
    only when an id is asked for: the rest of completion never opens a vault, and never
    imports the modules that would); any failure offers nothing."""

    def find(kind: str, typed: str) -> list[str]:
        from vault.errors import NokError
        from vault.session import Vault

        try:
            where = path if isinstance(path, Path) else path()
            with Vault.open(where, busy_timeout=BUSY_TIMEOUT) as vault:
                return vault.known_ids(kind, typed)
        except (NokError, OSError):
            return []

    return find


def answer(root: Any) -> None:
    """Print the candidates for ``$NOK_COMPLETE_LINE`` (a whole ``nok ...`` line up to the
    cursor), one per line, for the scripts of ``nok completion``. Never prints an error."""
    words, typed = split_line(os.environ.get(ENV_LINE, ""))
    words = words[1:]  # the program's own name, however it was typed
    found = candidates(root, words, typed, vault_ids(lambda: _vault_path(words)))
    if found:
        typer.echo("\n".join(found))


def _vault_path(words: list[str]) -> Path:
    """The vault the finished line would use: --vault, NOK_VAULT, the configuration file
    or the default, as for every command."""
    from nokcli.context import Context
    from vault.errors import NokError
    from vault.files import default_vault_path

    given = Path(os.environ["NOK_VAULT"]) if os.environ.get("NOK_VAULT") else None
    for word, following in itertools.pairwise(words):
        if word == "--vault":
            given = Path(following)
    for word in words:
        if word.startswith("--vault="):
            given = Path(word.split("=", 1)[1])
    with contextlib.suppress(NokError):
        return Context.build(given, None, None).vault_path
    return (given or default_vault_path()).expanduser()
