"""The optional configuration file, for what a center sets once per machine.

``$XDG_CONFIG_HOME/nok/config.toml`` (else ``~/.config/nok/config.toml``; ``NOK_CONFIG``
names another file). Command-line options and environment variables win over it::

    vault = "/srv/nok/center.db"   # shared vault made with nok init --group
    user = "anne"                  # staff name, if it differs from the login name
    busy_timeout = 30              # seconds to wait for another nok process
    language = "nb"                # nb (bokmål) or en; NOK_LANG wins, then this, then LANG
    idle_lock_minutes = 5          # nok shell drops its keys after this long unused

Passphrases never belong here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from vault.errors import BadInput

MAX_BUSY_TIMEOUT = 86400.0
KEYS: dict[str, type | tuple[type, ...]] = {
    "vault": str,
    "user": str,
    "busy_timeout": (int, float),
    "language": str,
    "idle_lock_minutes": (int, float),
}
LANGUAGE_CODES = ("nb", "no", "nn", "en")


@dataclass(frozen=True)
class Config:
    vault: Path | None = None
    user: str | None = None
    busy_timeout: float | None = None
    language: str | None = None
    idle_lock_minutes: float | None = None


def config_path() -> Path:
    explicit = os.environ.get("NOK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nok" / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read the configuration file; a missing file is an empty configuration.

    Raises:
        BadInput: the file cannot be read, is not TOML, has an unknown key, or a value of
            the wrong type.
    """
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise BadInput(
            "cannot read the configuration file {path}: {reason}",
            path=path,
            reason=exc.strerror or type(exc).__name__,
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(
            "the configuration file {path} is not valid TOML: {reason}", path=path, reason=exc
        ) from None
    for key, value in data.items():
        expected = KEYS.get(key)
        if expected is None:
            raise BadInput(
                "unknown key {key!r} in {path}; known keys: {known}",
                key=key,
                path=path,
                known=", ".join(KEYS),
            )
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadInput("{key} in {path} has the wrong type", key=key, path=path)
    language = data.get("language")
    if language is not None and language.split("_")[0].lower() not in LANGUAGE_CODES:
        raise BadInput(
            "language in {path} must be one of: {known}", path=path, known=", ".join(LANGUAGE_CODES)
        )
    vault = data.get("vault")
    timeout = data.get("busy_timeout")
    idle = data.get("idle_lock_minutes")
    # TOML allows inf and nan; SQLite needs a whole number of milliseconds.
    if timeout is not None and not 0 <= timeout <= MAX_BUSY_TIMEOUT:
        raise BadInput(
            "busy_timeout in {path} must be between 0 and {most} seconds",
            path=path,
            most=int(MAX_BUSY_TIMEOUT),
        )
    return Config(
        vault=Path(vault).expanduser() if vault else None,
        user=data.get("user"),
        busy_timeout=float(timeout) if timeout is not None else None,
        language=language,
        idle_lock_minutes=float(idle) if idle is not None else None,
    )
