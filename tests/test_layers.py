"""The architecture holds: the library stays a library, crypto and SQL each live in one
module, nobody imports click, and the linters, formatter and type checker are clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("vault", "nokcli", "commands")


def python_files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def imports(path: Path) -> Iterator[str]:
    """Every module name an ``import`` statement in ``path`` names, at any depth."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def top(name: str) -> str:
    return name.split(".")[0]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_vault_never_imports_the_cli() -> None:
    for path in python_files("vault"):
        bad = {n for n in imports(path) if top(n) in {"typer", "nokcli", "commands", "tabulate"}}
        assert not bad, f"{rel(path)} imports {sorted(bad)}"


def test_only_crypto_imports_nacl() -> None:
    for path in python_files(*PRODUCT):
        if rel(path) != "vault/crypto.py":
            assert "nacl" not in {top(n) for n in imports(path)}, rel(path)


def test_only_store_imports_sqlite() -> None:
    for path in python_files(*PRODUCT):
        if rel(path) != "vault/store.py":
            found = {top(n) for n in imports(path)} & {"sqlite3", "sqlite_utils"}
            assert not found, f"{rel(path)} imports {sorted(found)}"


def test_only_store_executes_sql() -> None:
    for path in python_files(*PRODUCT):
        if rel(path) == "vault/store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in {"execute", "executemany", "executescript"}, (
                    f"{rel(path)}:{node.lineno} runs SQL outside vault/store.py"
                )


def test_nothing_imports_click() -> None:
    everything = python_files(*PRODUCT, "tests", "benchmarks", "examples")
    for path in everything:
        assert "click" not in {top(n) for n in imports(path)}, rel(path)


def test_vault_never_prints_or_exits() -> None:
    for path in python_files("vault"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "input", "exit"}, f"{rel(path)}:{node.lineno}"
        assert "sys.exit" not in path.read_text("utf-8"), rel(path)


def tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize(
    "command",
    [
        ["lint-imports"],
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=lambda c: " ".join(c),
)
def test_tooling_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [tool(command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
