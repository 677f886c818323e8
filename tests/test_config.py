"""The configuration file: set once per machine, overridden by options and environment."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import init_args


def _write_config(nok_env, text):
    path = Path(nok_env["XDG_CONFIG_HOME"]) / "nok" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_config_names_the_vault_and_user(nok, nok_env, monkeypatch, tmp_path):
    other = tmp_path / "center" / "shared.db"
    _write_config(nok_env, f'vault = "{other}"\nuser = "bodil"\n')
    monkeypatch.delenv("NOK_VAULT")
    monkeypatch.delenv("NOK_USER")
    made = nok(*init_args(tmp_path, "--json"))
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout) == {"vault": str(other), "admin": "bodil", "kdf": "interactive"}
    assert other.exists()


def test_environment_wins_over_config(cli_vault, nok_env, tmp_path):
    _write_config(nok_env, f'vault = "{tmp_path / "elsewhere.db"}"\n')
    status = cli_vault("status", "--json")
    assert status.exit_code == 0, status.stderr
    assert json.loads(status.stdout)["vault"] == nok_env["NOK_VAULT"]


def test_bad_config_is_one_line_exit_2(nok, nok_env):
    path = _write_config(nok_env, "vault = \n")
    result = nok("status")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"nok: error: the configuration file {path} is not valid TOML")
    assert "Traceback" not in result.stderr


def test_unknown_config_key_is_refused(nok, nok_env):
    _write_config(nok_env, 'passphrase = "hunter2"\n')
    result = nok("status")
    assert result.exit_code == 2
    assert "unknown key 'passphrase'" in result.stderr
    assert "hunter2" not in result.stderr


def test_an_unreadable_config_file_is_one_error_line(nok, nok_env):
    # A directory where the file should be: before, an internal error (exit 1).
    (Path(nok_env["XDG_CONFIG_HOME"]) / "nok" / "config.toml").mkdir(parents=True)
    result = nok("status")
    assert result.exit_code == 2
    assert result.stderr.startswith("nok: error: cannot read the configuration file")
