"""The errors the vault library raises.

Every error a user can cause is a subclass of :class:`NokError`. Each class carries a
message *template* (English, with named ``{placeholders}``), the parameters to fill it,
an optional hint template, and the exit code the command line uses for it. Keeping the
template and its parameters apart lets the CLI translate the template before filling it,
and keeps sentences whole instead of glued from fragments.

No message ever contains a passphrase, a key, or personal data from the vault: parameters
are ids, paths, counts and names of staff.
"""

from __future__ import annotations

from typing import ClassVar


class ExitCode:
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    NO_VAULT = 3
    WRONG_PASSPHRASE = 4
    BUSY = 5
    NOT_FOUND = 6
    INTEGRITY = 7
    UNSUPPORTED_VERSION = 8
    CONFLICT = 9
    UNSAFE_PERMISSIONS = 10
    NOT_ALLOWED = 11
    STORAGE = 12
    VERIFY_FAILED = 13
    CLOCK = 14
    INTERRUPTED = 130
    BROKEN_PIPE = 141


class NokError(Exception):
    """Base of every error nok expects and explains."""

    exit_code: ClassVar[int] = ExitCode.INTERNAL
    template: ClassVar[str] = "{detail}"
    hint_template: ClassVar[str | None] = None

    def __init__(self, template: str | None = None, /, **params: object) -> None:
        """``template`` overrides the class's message template for this one error."""
        if template is not None:
            self.template = template  # type: ignore[misc]
        self.params = params
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.template.format(**self.params)

    @property
    def hint(self) -> str | None:
        if self.hint_template is None:
            return None
        return self.hint_template.format(**self.params)


class BadInput(NokError):
    """A value given by the user is not acceptable (a date, a kind, a length...)."""

    exit_code = ExitCode.USAGE


class VaultNotFound(NokError):
    exit_code = ExitCode.NO_VAULT
    template = "no vault at {path}"
    hint_template = "create one with 'nok init', or point --vault / NOK_VAULT at an existing vault"


class VaultExists(NokError):
    exit_code = ExitCode.CONFLICT
    template = "a vault already exists at {path}"
    hint_template = "nok init never overwrites a vault; choose another --vault path"


class LeftBeside(VaultExists):
    """``nok init`` at a path whose neighbours belong to another vault (one moved aside
    without them): the new vault would take over its list of backups, its erasure log
    and its -wal, and a colleague would meet another vault under the old name."""

    template = "{path} is free, but files of another vault are still beside it: {found}"
    hint_template = (
        "nothing was made; move them along with the vault they belong to, or choose "
        "another --vault path"
    )


class NotAVault(NokError):
    exit_code = ExitCode.NO_VAULT
    template = "{path} is not a nok vault"
    hint_template = "check the --vault path"


class SymlinkRefused(NokError):
    exit_code = ExitCode.UNSAFE_PERMISSIONS
    template = "{path} is a symbolic link; nok refuses to follow it"
    hint_template = "point --vault at the real file"


class UnsafePermissions(NokError):
    exit_code = ExitCode.UNSAFE_PERMISSIONS
    template = "{path} is accessible to {who} (mode {mode})"
    hint_template = "restrict it: chmod {fix} {path}"


class NotARegularFile(UnsafePermissions):
    """A FIFO, device or directory where nok expects one of its files: opening it would
    block every command (a FIFO) or read something else."""

    template = "{path} is not a regular file (a FIFO, device or directory); nok will not use it"
    hint_template = "remove it, or ask who manages the machine why it is there"


class UnsharedDirectory(UnsafePermissions):
    """A backup of a shared vault would be out of the reach of colleagues' erasures."""

    template = (
        "{path} is not a directory the vault's group {group} shares (mode {mode}, group "
        "{owner}): erasures by colleagues and by the purge could not reach a backup there"
    )
    hint_template = (
        "make it the group's: chgrp {group} {path} && chmod 2770 {path} (or give a new "
        "directory ending in /, which nok makes so)"
    )


class ForeignFile(UnsafePermissions):
    template = "{path} belongs to another user (uid {uid})"
    hint_template = "use a file of your own that only you can read (chmod 600)"


class WrongPassphrase(NokError):
    exit_code = ExitCode.WRONG_PASSPHRASE
    template = "wrong passphrase for {name}"
    hint_template = "check the passphrase, or ask an admin to reset your key slot"


class NoSuchStaff(NokError):
    exit_code = ExitCode.WRONG_PASSPHRASE
    template = "no key slot for {name} in this vault"
    hint_template = "use --as NAME (or NOK_USER) with your staff name; 'nok staff list' shows them"


class PassphraseUnavailable(NokError):
    exit_code = ExitCode.WRONG_PASSPHRASE
    template = "{detail}"
    hint_template = "run in a terminal, or set NOK_PASSPHRASE_FILE or NOK_PASSPHRASE"


class PassphraseFileUnreadable(PassphraseUnavailable):
    hint_template = (
        "check the path given with --passphrase-file or NOK_PASSPHRASE_FILE: a file of yours, "
        "mode 0600, with the passphrase on its first line"
    )


class NoAccess(NokError):
    exit_code = ExitCode.NO_VAULT
    template = "you have no permission to open {path}"
    hint_template = (
        "a shared vault needs you in its group (ls -l shows it); else check the --vault path"
    )


class OutsideGroup(NoAccess):
    """The vault's directory is closed to this user: a shared vault whose group she is
    not in (or a colleague's private vault)."""

    template = "you may not open this vault: {path} is closed to you"
    hint_template = (
        "ask the vault's admin to add your login to its group (ls -ld {directory} shows "
        "it), then log in again"
    )


class VaultBusy(NokError):
    exit_code = ExitCode.BUSY
    template = "vault busy: another nok process holds it (waited {seconds:g} s)"
    hint_template = "try again in a moment; if it persists, look for a stuck nok process"


class NotFound(NokError):
    exit_code = ExitCode.NOT_FOUND
    template = "no {what} with id {id}"


class IntegrityError(NokError):
    """Authentication failed: the data was altered, swapped or damaged."""

    exit_code = ExitCode.INTEGRITY
    template = "integrity check failed for {where}: the data was altered or damaged"
    hint_template = "run 'nok verify' and restore from a backup if needed"


class DamagedBackup(IntegrityError):
    hint_template = (
        "this backup cannot be restored and the vault was not touched; "
        "check the one before it with 'nok --vault BACKUP verify'"
    )


class UnsupportedVersion(NokError):
    exit_code = ExitCode.UNSUPPORTED_VERSION
    template = "{what} has format version {version}, which this nok does not know"
    hint_template = "upgrade nok"


class NeedsUpgrade(UnsupportedVersion):
    template = "{what} is in format {version}, which this nok reads only to upgrade it"
    hint_template = "an admin upgrades it with 'nok upgrade' (it makes a backup first)"


class Conflict(NokError):
    """The request is valid but the vault's state does not allow it now."""

    exit_code = ExitCode.CONFLICT


class KeysRotated(Conflict):
    """Another process replaced the vault keys (a new key epoch) after this one unlocked."""

    template = (
        "the vault keys were changed by another process while this command ran;"
        " nothing was changed, run the command again"
    )


class SlotChanged(Conflict):
    """A held unlock (``nok shell``) is outdated: the staff member's slot or role changed."""

    template = (
        "the key slot of {name} changed since it was unlocked (a reset, a new role or a removal)"
    )


class VaultReplaced(Conflict):
    """A held unlock (``nok shell``) is outdated: another file now has the vault's name."""

    template = "the vault file {path} was replaced since it was unlocked (a restore?)"


class InactiveConsent(Conflict):
    template = "consent {id} is {status}; nothing can be added under it"
    hint_template = (
        "'nok consent show {id}' shows when and why it ended; if the person consents again, "
        "register a new consent"
    )


class NotAllowed(NokError):
    exit_code = ExitCode.NOT_ALLOWED
    template = "{name} has role {role}; {action} needs the role {needed}"
    hint_template = "ask an admin"


class StorageError(NokError):
    exit_code = ExitCode.STORAGE
    template = "could not write the vault: {reason}"
    hint_template = "nothing was changed; free disk space or check the disk, then try again"


class ReadOnlyVault(StorageError):
    template = "could not write the vault: it is read-only ({reason})"
    hint_template = (
        "nothing was changed; make the vault file and its directory writable for you "
        "(ls -l shows who may write), or ask who manages the disk if it is mounted read-only"
    )


class CannotCreate(StorageError):
    template = "could not create {path}: {reason}"
    hint_template = (
        "nothing was made; choose a place you can write to, or make the directory writable for you"
    )


class ClockError(NokError):
    exit_code = ExitCode.CLOCK
    template = "the clock says {now}, but the vault has entries from {newest}"
    hint_template = "fix the system clock (or pass --now) and run again; nothing was changed"


class VerifyFailed(NokError):
    exit_code = ExitCode.VERIFY_FAILED
    template = "{count} problem(s) found"
    hint_template = (
        "the lines above name each problem; check your newest backup with "
        "'nok --vault BACKUP verify' (it stays unchanged), then 'nok restore BACKUP'"
    )
