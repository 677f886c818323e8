"""Help for every command, and a fast start: ``nok --help`` must not load the SQLite or
libsodium layers. The command tree is walked, so commands added later are covered too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import Nok, init_args

import nokcli.app as app_module
from nokcli import helpfmt
from nokcli.app import app, version

HEAVY = ("sqlite3", "sqlite_utils", "nacl", "tabulate")


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))
IDS = [" ".join(path) or "nok" for path, _ in COMMANDS]


def test_the_tree_has_the_issue_2_commands() -> None:
    paths = {path for path, _ in COMMANDS}
    for expected in [
        ("init",),
        ("status",),
        ("consent", "add"),
        ("consent", "list"),
        ("consent", "show"),
        ("note", "add"),
        ("note", "list"),
        ("note", "show"),
    ]:
        assert expected in paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_and_option_has_help(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"nok {' '.join(path)} has no help text"
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), (
            f"nok {' '.join(path)}: {param.name} has no help text"
        )


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_exits_0(nok: Nok, path: tuple[str, ...], command: Any) -> None:
    result = nok(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_data_commands_offer_json(path: tuple[str, ...], command: Any) -> None:
    if path and path[-1] in ("list", "show"):
        assert "--json" in {opt for p in command.params for opt in getattr(p, "opts", [])}


def test_version(nok: Nok) -> None:
    result = nok("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"nok {version()}"


def test_python_m_nokcli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nokcli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "consent" in result.stdout


PROBE = """
import json, sys
sys.argv = ["nok", *json.loads(sys.argv[1])]
from nokcli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})), file=sys.stderr)
"""


def loaded_by(args: list[str], heavy: tuple[str, ...], env: dict[str, str] | None = None) -> Any:
    """The modules of ``heavy`` that ``nok ARGS`` imported (through the console script's
    own entry point, nokcli.main)."""
    code = PROBE.replace("{heavy}", repr(set(heavy)))
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["note", "--help"], ["consent", "add", "--help"]]
)
def test_help_does_not_load_heavy_modules(args: list[str]) -> None:
    assert loaded_by(args, HEAVY) == [], f"nok {' '.join(args)} imported heavy modules"


@pytest.mark.parametrize("args", [["--version"], ["completion", "bash"], ["completion", "zsh"]])
def test_version_and_completion_scripts_start_without_the_command_line(args: list[str]) -> None:
    """Run once per new shell (``source <(nok completion bash)``): no Typer, no commands."""
    assert loaded_by(args, (*HEAVY, "typer", "click", "commands", "pydantic")) == []


@pytest.mark.parametrize("line", ["nok ", "nok note li", "nok note add --ki"])
def test_a_tab_press_opens_no_vault_unless_an_id_is_asked_for(line: str, tmp_path: Path) -> None:
    env = {"NOK_COMPLETE": "bash", "NOK_COMPLETE_LINE": line, "NOK_VAULT": str(tmp_path / "v.db")}
    assert loaded_by([], HEAVY, env) == []


TYPE_PLACEHOLDER = re.compile(
    r"<(str|int|float|path|bool|list\[[^\]]*\]|[a-z]+ range)>|\{[A-Z_]+\}"
)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_names_values_in_words_not_python_types(
    nok: Nok, path: tuple[str, ...], command: Any
) -> None:
    text = nok(*path, "--help").stdout
    assert not TYPE_PLACEHOLDER.search(text), TYPE_PLACEHOLDER.findall(text)
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt in helpfmt.BY_OPTION:
                assert f"{opt} {helpfmt.BY_OPTION[opt]}" in text, (path, opt)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_command_lists_show_whole_summaries(nok: Nok, path: tuple[str, ...], command: Any) -> None:
    if not getattr(command, "commands", None):
        return
    listing = nok(*path, "--help").stdout.split("Commands:", 1)[1]
    assert "..." not in listing, listing
    for name, sub in command.commands.items():
        first = (sub.help or "").strip().split("\n\n")[0]
        summary = " ".join(first.split()).split(". ")[0].rstrip(".")
        assert summary in " ".join(listing.split()), (name, summary)


def test_the_version_is_the_package_metadata(nok: Nok) -> None:
    from importlib import metadata

    assert nok("--version").stdout.strip() == f"nok {metadata.version('nok')}"
    assert not hasattr(app_module, "VERSION")


def test_the_configuration_file_is_in_the_root_help(nok: Nok) -> None:
    text = " ".join(nok("--help").stdout.split())
    assert "config.toml" in text
    assert "NOK_CONFIG" in text


# Commands with no result to report: a blank form for people, a completion script for the
# shell, an interactive session (whose commands have their own --json).
DOCUMENTS = {("consent", "form"), ("completion",), ("shell",)}


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_offers_json(path: tuple[str, ...], command: Any) -> None:
    if getattr(command, "commands", None) is None and path not in DOCUMENTS:
        assert "--json" in {opt for p in command.params for opt in getattr(p, "opts", [])}


def test_daily_commands_import_neither_pydantic_nor_sqlite_utils(tmp_path: Path) -> None:
    """typer converts values through pydantic and sqlite-utils builds the schema: a
    counselor's commands need neither (nokcli.coercion, vault.store); 60 to 120 ms each."""
    env = {
        "NOK_VAULT": str(tmp_path / "v" / "vault.db"),
        "NOK_USER": "anne",
        "NOK_PASSPHRASE": "correct horse battery staple",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    made = subprocess.run(
        [sys.executable, "-m", "nokcli", *init_args(tmp_path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    for args in (["status", "--json"], ["note", "list", "--since", "2026-01-01", "--json"]):
        assert loaded_by(args, ("pydantic", "sqlite_utils"), env) == [], args
