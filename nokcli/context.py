"""The state one command runs with: which vault, as whom, with which passphrase source."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nokcli import passphrase
from vault.dates import parse_day, utcnow
from vault.files import default_vault_path

if TYPE_CHECKING:
    from nokcli.shell import Session
    from vault.erasure import Reconciled
    from vault.session import Unlocked, Vault

# The same default as vault.store's, repeated so that --help need not import SQLite layers.
DEFAULT_BUSY_TIMEOUT = 15.0


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


@dataclass
class Context:
    vault_path: Path
    user: str
    passphrase_file: Path | None
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    # Consents erased again when this command opened the vault (nok verify reports them).
    reconciled: list[Reconciled] = field(default_factory=list)
    # Inside `nok shell`: the one unlock that every command it runs borrows.
    session: Session | None = None

    @classmethod
    def build(
        cls,
        vault: Path | None,
        user: str | None,
        passphrase_file: Path | None,
        busy_timeout: float | None = None,
    ) -> Context:
        """Options and environment first, then the configuration file, then defaults."""
        from nokcli import config

        conf = config.load()
        timeout = busy_timeout if busy_timeout is not None else conf.busy_timeout
        return cls(
            vault_path=_vault_file(vault or conf.vault or default_vault_path()),
            user=user or conf.user or login_name(),
            passphrase_file=passphrase_file,
            busy_timeout=timeout if timeout is not None else DEFAULT_BUSY_TIMEOUT,
        )

    def now(self) -> dt.datetime:
        return utcnow()

    def open(self, *, read_only: bool = False) -> Vault:
        """The vault, opened without a key (status, purge), after erasing again at once
        whatever the erasure log says is erased but the file holds again (reported).

        ``read_only`` is for commands that only read: a backup file they are pointed at
        is opened read-only and stays unchanged (it is not the vault: nothing is erased
        again in it)."""
        from vault import erasure
        from vault.session import Vault

        vault = Vault.open(self.vault_path, busy_timeout=self.busy_timeout, read_only=read_only)
        if vault.store.read_only:
            return vault
        try:
            self._reconciled(erasure.reconcile(vault, now=self.now()))
        except BaseException:
            vault.close()
            raise
        return vault

    def _reconciled(self, result: Reconciled) -> None:
        from nokcli import reach

        if result.any:
            self.reconciled.append(result)
            reach.reconciled(result)

    def unlock(self, *, read_only: bool = False, continuity: bool = True) -> Unlocked:
        """Open the vault and unlock it as ``self.user`` (prompts if needed); then erase
        again every active consent a sealed audit entry says was erased. ``continuity``
        as in Vault.unlock (False only for nok verify)."""
        from vault import erasure

        vault = self.open(read_only=read_only)
        try:
            secret = passphrase.current(self.passphrase_file, who=self.user)
            unlocked = vault.unlock(self.user, secret, now=self.now(), continuity=continuity)
        except BaseException:
            vault.close()
            raise
        if unlocked.store.read_only:
            return unlocked
        try:
            self._reconciled(erasure.reconcile_sealed(unlocked))
        except BaseException:
            unlocked.close()
            raise
        return unlocked

    def reconcile_held(self, unlocked: Unlocked) -> None:
        """For an unlock held across commands (nok shell): the erasing again that
        :meth:`open` and :meth:`unlock` do for each command on the command line."""
        from vault import erasure

        self._reconciled(erasure.reconcile(unlocked.vault, now=self.now()))
        self._reconciled(erasure.reconcile_sealed(unlocked))

    @contextlib.contextmanager
    def unlocked(self, *, read_only: bool = False, continuity: bool = True) -> Iterator[Unlocked]:
        """The unlocked vault for the length of a ``with`` block, then closed (in ``nok
        shell``: the session's, checked again and kept open). ``read_only``: see open."""
        if self.session is not None:
            yield self.session.current()
            return
        vault = self.unlock(read_only=read_only, continuity=continuity)
        try:
            yield vault
        finally:
            vault.close()


def _vault_file(path: Path) -> Path:
    """Raises BadInput for an empty path or a directory (``--vault ""``, ``--vault .``)."""
    from vault.errors import BadInput

    path = path.expanduser()
    if path.name in ("", "..") or path.is_dir():
        raise BadInput(
            "--vault names the vault file, not a directory: {path!r} (for example {example})",
            path=str(path),
            example=str(path / "vault.db"),
        )
    return path


def parse_now(text: str | None) -> dt.datetime:
    """``--now YYYY-MM-DD`` for purges run on behalf of another day; noon UTC of that day."""
    if text is None:
        return utcnow()
    from nokcli import dates

    day = parse_day(dates.resolve(text, utcnow(), field="--now") or text, field="--now")
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


def get(ctx: object) -> Context:
    """The Context stored on a typer.Context by the root callback."""
    obj = getattr(ctx, "obj", None)
    if not isinstance(obj, Context):
        find_root = getattr(ctx, "find_root", None)
        obj = getattr(find_root(), "obj", None) if find_root else None
    if not isinstance(obj, Context):
        raise RuntimeError("nok's root callback did not run")
    return obj
