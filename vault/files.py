"""The vault's place on disk: paths, permissions, and private files.

A vault file is 0600 in a 0700 directory, or 0660 in a 2770 directory owned by a group
when made with ``nok init --group``. Any access for other users is refused.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from vault.errors import (
    BadInput,
    CannotCreate,
    NoAccess,
    NotAVault,
    SymlinkRefused,
    UnsafePermissions,
    VaultNotFound,
)

SIDE_SUFFIXES = ("-wal", "-shm")
SQLITE_MAGIC = b"SQLite format 3\x00"


def default_vault_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/nok/vault.db``, else ``~/.local/share/nok/vault.db``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nok" / "vault.db"


def side_files(path: Path) -> list[Path]:
    """The vault's SQLite companions (-wal, -shm)."""
    return [path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES]


def identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of ``path`` (None if it is gone): a file put in its place differs."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def refuse_symlinks(path: Path) -> None:
    """Raises SymlinkRefused if the vault or one of its side files is a symlink."""
    for candidate in (path, *side_files(path)):
        if candidate.is_symlink():
            raise SymlinkRefused(path=str(candidate))


def check_existing(path: Path, *, group_ok: bool) -> None:
    """Check that ``path`` is a regular vault file only its owner (or group) can use.

    Raises:
        SymlinkRefused, VaultNotFound, UnsafePermissions, NotAVault.
    """
    refuse_symlinks(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise VaultNotFound(path=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise VaultNotFound(path=str(path))
    check_mode(path, st.st_mode, group_ok=group_ok)
    check_sqlite_header(path)


def check_sqlite_header(path: Path) -> None:
    """Raises NotAVault unless ``path`` starts like an SQLite database.

    Checked before SQLite opens the file: SQLite would turn an empty file into a new
    database, and report any other file as damaged, when the user only mistyped --vault.
    """
    try:
        with path.open("rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except PermissionError:
        raise NoAccess(path=str(path)) from None
    if magic != SQLITE_MAGIC:
        raise NotAVault(path=str(path))


class NotRegularFile(UnsafePermissions):
    template = "{path} is not a regular file (a FIFO, device or directory); nok will not use it"
    hint_template = "remove it, or ask who manages the machine why it is there"


def check_regular(path: Path, mode: int) -> None:
    """Raises NotRegularFile unless ``mode`` (from an fstat of what was opened) is a
    regular file: a FIFO beside the vault would make every command hang."""
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path=str(path))


def check_mode(path: Path, mode: int, *, group_ok: bool) -> None:
    """Raises UnsafePermissions for world access, or group access when not expected."""
    perms = stat.S_IMODE(mode)
    if perms & 0o007:
        # One chmod that leaves an acceptable mode, not o-rwx followed by a second refusal
        # for the group bits. Before the vault is read, its setgid directory (made by
        # ``nok init --group``) is the sign that group access is meant.
        shared = group_ok and bool(path.parent.stat().st_mode & stat.S_ISGID)
        fix = "660" if shared else "600"
        raise UnsafePermissions(path=str(path), who="every user", mode=f"{perms:04o}", fix=fix)
    if perms & 0o070 and not group_ok:
        raise UnsafePermissions(path=str(path), who="its group", mode=f"{perms:04o}", fix="600")


def check_directory(directory: Path, *, group_ok: bool) -> None:
    """Raises UnsafePermissions when others (or, unless ``group_ok``, the group) can write
    to ``directory``: they could swap the vault file for an old copy, or plant a -wal file
    beside it. A sticky bit does not help against the planted file."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o002:
        # One chmod that leaves an acceptable mode, not a second refusal for the group.
        raise UnsafePermissions(
            "{path} is a directory {who} can write to (mode {mode})",
            path=str(directory),
            who="every user",
            mode=f"{mode:04o}",
            fix="o-w" if group_ok else "go-w",
        )
    if mode & 0o020 and not group_ok:
        raise UnsafePermissions(
            "{path} is a directory {who} can write to (mode {mode})",
            path=str(directory),
            who="its group",
            mode=f"{mode:04o}",
            fix="g-w",
        )


def group_id(group: str) -> int:
    """Raises BadInput for an unknown group name."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise BadInput("no such group: {group}", group=group) from None


def prepare_directory(directory: Path, group: str | None, *, group_ok: bool | None = None) -> None:
    """Create the vault's directory 0700 (or 2770 for ``group``) if missing.

    An existing directory that other users can write to is refused (see check_directory);
    its group may write when ``group_ok`` (default: when ``group`` is given).

    Raises:
        UnsafePermissions: see check_directory.
        CannotCreate: the directory could not be made (no permission, read-only disk).
    """
    if not directory.exists():
        try:
            directory.mkdir(parents=True, mode=0o700)
            if group is not None:
                os.chown(directory, -1, group_id(group))
                directory.chmod(0o2770)
            else:
                directory.chmod(0o700)
        except OSError as exc:
            raise CannotCreate(path=str(directory), reason=exc.strerror or str(exc)) from None
    check_directory(directory, group_ok=group is not None if group_ok is None else group_ok)


def create_private_file(path: Path, group: str | None) -> None:
    """Create an empty file 0600 (0660 for ``group``); never overwrites.

    Raises:
        FileExistsError: something is already at ``path``.
        CannotCreate: no permission, or a read-only disk.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise CannotCreate(path=str(path), reason=exc.strerror or str(exc)) from None
    try:
        if group is not None:
            os.fchown(fd, -1, group_id(group))
            os.fchmod(fd, 0o660)
        else:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to a new or existing file with ``mode``, atomically via a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
