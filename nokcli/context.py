"""The state one command runs with: which vault, as whom, with which passphrase source."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nokcli import passphrase
from vault.dates import parse_day, utcnow
from vault.files import default_vault_path

if TYPE_CHECKING:
    from nokcli.shell import Session
    from vault.erasure import Reconciled
    from vault.jobs import JobUnlocked
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
    # The scheduled job's credential (--job-credential, NOK_JOB_CREDENTIAL).
    job_credential: Path | None = None
    # What opening or unlocking found (erased again, waiting for a key, not authentic).
    reconciled: list[Reconciled] = field(default_factory=list)
    # Inside `nok shell`: the one unlock that every command it runs borrows.
    session: Session | None = None
    # The reason an admin gives for this command's reads outside her assignment.
    reason: str | None = None
    # Rolled-back corrections the unlock applied again (nok verify reports them).
    repairs: list[Any] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        vault: Path | None,
        user: str | None,
        passphrase_file: Path | None,
        busy_timeout: float | None = None,
        job_credential: Path | None = None,
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
            job_credential=job_credential,
        )

    def now(self) -> dt.datetime:
        return utcnow()

    def open(self, *, read_only: bool = False) -> Vault:
        """The vault, opened without a key (status, keyless backups); what opening found
        that only someone with a key may act on is reported on stderr.

        ``read_only`` is for commands that only read: a backup file they are pointed at
        is opened read-only and stays unchanged."""
        from vault.session import Vault

        vault = Vault.open(self.vault_path, busy_timeout=self.busy_timeout, read_only=read_only)
        for found in vault.reconciled:
            self._reconciled(found)
        return vault

    def _reconciled(self, result: Reconciled) -> None:
        from nokcli import reach

        if result.any:
            self.reconciled.append(result)
            reach.reconciled(result)

    def unlock(self, *, read_only: bool = False) -> Unlocked:
        """Open the vault and unlock it as ``self.user`` (prompts if needed); the unlock
        erases again, corrects again and completes expired grants as the library does
        (vault.session.Unlocked.catch_up), and what it did is reported here."""
        from vault.session import Vault

        vault = Vault.open(
            self.vault_path, busy_timeout=self.busy_timeout, read_only=read_only, report=False
        )
        try:
            unlocked = self._unlock_with_tries(vault)
        except BaseException:
            vault.close()
            raise
        self.report_unlock(unlocked)
        unlocked.read_reason = self.reason
        return unlocked

    def _unlock_with_tries(self, vault: Vault) -> Unlocked:
        """Unlock as ``self.user``; a person typing at a terminal may mistype twice (every
        wrong try is recorded in the trail as one), a file or variable is tried once."""
        from nokcli import output
        from vault.errors import WrongPassphrase

        tries = passphrase.TRIES if passphrase.prompted(self.passphrase_file) else 1
        for attempt in range(1, tries + 1):
            secret = passphrase.current(self.passphrase_file, who=self.user)
            try:
                return vault.unlock(self.user, secret, now=self.now())
            except WrongPassphrase:
                if attempt == tries:
                    raise
                output.info("the passphrase for {name} is wrong; try again", name=self.user)
        raise AssertionError("unreachable: the last try returns or raises")

    def report_unlock(self, unlocked: Unlocked) -> None:
        from nokcli import reach

        for found in unlocked.reconciled:
            self._reconciled(found)
        reach.repairs(unlocked.repairs, unlocked.expired)
        self.repairs.extend(unlocked.repairs)
        unlocked.reconciled.clear()
        unlocked.repairs.clear()
        unlocked.expired.clear()

    def job(self) -> JobUnlocked | None:
        """The vault as the scheduled job holds it, when a credential is given (None
        otherwise: the command then erases nothing)."""
        from vault import jobs
        from vault.session import Vault

        if self.job_credential is None:
            return None
        credential = jobs.read(self.job_credential)
        vault = Vault.open(self.vault_path, busy_timeout=self.busy_timeout)
        try:
            return jobs.unlock(vault, credential, now=self.now())
        except BaseException:
            vault.close()
            raise

    def reconcile_held(self, unlocked: Unlocked) -> None:
        """For an unlock held across commands (nok shell): what :meth:`unlock` does for
        each command on the command line."""
        unlocked.catch_up()
        self.report_unlock(unlocked)
        unlocked.read_reason = self.reason

    @contextlib.contextmanager
    def unlocked(self, *, read_only: bool = False) -> Iterator[Unlocked]:
        """The unlocked vault for the length of a ``with`` block, then closed (in ``nok
        shell``: the session's, checked again and kept open). ``read_only``: see open."""
        if self.session is not None:
            held = self.session.current()
            held.read_reason = self.reason
            yield held
            return
        vault = self.unlock(read_only=read_only)
        try:
            yield vault
        finally:
            vault.close()


def _vault_file(path: Path) -> Path:
    """Raises BadInput for an empty path or a directory (``--vault ""``, ``--vault .``)."""
    from vault.errors import BadInput

    path = path.expanduser()
    # os.path.isdir, not Path.is_dir: a directory closed to this user (a shared vault of
    # a group she is not in) is not an error here; opening the vault says what it is.
    if path.name in ("", "..") or os.path.isdir(path):
        raise BadInput(
            "--vault names the vault file, not a directory: {path!r} (for example {example})",
            path=str(path),
            example=str(path / "vault.db"),
        )
    return path


def parse_now(text: str | None) -> dt.datetime:
    """``--now YYYY-MM-DD`` for purges run on behalf of another day; noon UTC of that day.

    Today (as a date or a word) is now: noon would be before the entries of this
    afternoon, which the clock check refuses."""
    now = utcnow()
    if text is None:
        return now
    from nokcli import dates

    day = parse_day(dates.resolve(text, now, field="--now") or text, field="--now")
    if day == now.astimezone().date():
        return now
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)


def get(ctx: object) -> Context:
    """The Context stored on a typer.Context by the root callback."""
    obj = getattr(ctx, "obj", None)
    if not isinstance(obj, Context):
        find_root = getattr(ctx, "find_root", None)
        obj = getattr(find_root(), "obj", None) if find_root else None
    if not isinstance(obj, Context):
        raise RuntimeError("nok's root callback did not run")
    return obj


def use_reason(ctx: object, reason: str | None) -> None:
    """Record the reason (--reason, in either language) an admin gives for this command's
    reads outside her assignment; at a terminal, nok asks when one is needed."""
    if reason is None:
        return
    from nokcli import vocab

    get(ctx).reason = vocab.reason(reason)
