"""The vault's place on disk: paths, permissions, and private files.

A vault file is 0600 in a 0700 directory, or 0660 in a 2770 directory owned by a group
when made with ``nok init --group``. Any access for other users is refused.

On a shared vault every member of the group can put anything beside the vault (the
directory is theirs to write): a FIFO at a name nok opens would make every command of
every colleague, and the nightly purge, wait forever. So every file nok opens beside the
vault is looked at first and opened without blocking (check_beside, open_regular), and
anything but a regular file is refused (NotARegularFile).
"""

from __future__ import annotations

import errno
import grp
import os
import stat
from pathlib import Path

from vault.errors import (
    BadInput,
    CannotCreate,
    NoAccess,
    NotARegularFile,
    NotAVault,
    OutsideGroup,
    SymlinkRefused,
    UnsafePermissions,
    UnsharedDirectory,
    VaultNotFound,
)

SIDE_SUFFIXES = ("-wal", "-shm")
# Every name nok (or SQLite for it) opens beside the vault file: SQLite's companions, the
# rollback journal SQLite looks for at every open, the list of backups and its pending
# mark (vault.copies, vault.erasure), the erasure log (vault.endings).
BESIDE_SUFFIXES = (*SIDE_SUFFIXES, "-journal", ".backups", ".backups-pending", ".erasures")
# The umask of a process working on a shared vault: SQLite creates -wal and -shm with the
# vault's mode (0660) only after the umask has cut it, and fixes the mode a moment later;
# a colleague opening the file in that moment was refused (issue 22). 0o007 keeps the
# group's bits from the start and still shuts out everyone else.
PRIVATE_UMASK = 0o077
GROUP_UMASK = 0o007
SQLITE_MAGIC = b"SQLite format 3\x00"


def default_vault_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/nok/vault.db``, else ``~/.local/share/nok/vault.db``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nok" / "vault.db"


def side_files(path: Path) -> list[Path]:
    """The vault's SQLite companions (-wal, -shm)."""
    return [path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES]


def beside(path: Path) -> list[Path]:
    """Every file nok opens beside the vault at ``path`` (BESIDE_SUFFIXES)."""
    return [path.with_name(path.name + suffix) for suffix in BESIDE_SUFFIXES]


def umask_for(path: Path) -> int:
    """The umask for working on the vault at ``path``: GROUP_UMASK when it is a shared
    vault (a group-writable file in a setgid directory, as ``nok init --group`` makes
    it), PRIVATE_UMASK otherwise (also when there is nothing there yet)."""
    try:
        directory = path.parent.stat()
        st = path.stat()
    except OSError:
        return PRIVATE_UMASK
    shared = directory.st_mode & stat.S_ISGID and stat.S_IMODE(st.st_mode) & 0o060 == 0o060
    return GROUP_UMASK if shared and stat.S_ISREG(st.st_mode) else PRIVATE_UMASK


def check_beside(path: Path) -> None:
    """Refuse the vault at ``path`` when anything other than a regular file (or nothing)
    is at a name nok opens beside it; a look at each name, nothing is opened.

    Raises:
        SymlinkRefused: a symbolic link there.
        NotARegularFile: a FIFO, device, socket or directory there.
    """
    for candidate in beside(path):
        try:
            st = candidate.lstat()
        except FileNotFoundError:
            continue
        except OSError:
            continue  # not even visible to this user: opening the vault says why
        if stat.S_ISLNK(st.st_mode):
            raise SymlinkRefused(path=str(candidate))
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(path=str(candidate))


def open_regular(path: Path, flags: int) -> int:
    """Open ``path`` with ``flags`` without following a link and without blocking, and
    return the descriptor only if it is a regular file: a FIFO opened for reading would
    otherwise wait for a writer that never comes.

    Raises:
        FileNotFoundError: nothing at ``path`` (callers decide what that means).
        SymlinkRefused, NotARegularFile: see check_beside.
        OSError: any other failure to open it.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkRefused(path=str(path)) from None
        if exc.errno == errno.ENXIO:  # a FIFO opened write-only with no reader
            raise NotARegularFile(path=str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(path=str(path))
    return fd


def read_regular(path: Path) -> bytes | None:
    """The bytes of the regular file at ``path``; None when there is none.

    Raises:
        SymlinkRefused, NotARegularFile: see open_regular.
        UnsafePermissions: every user may read it.
        OSError: it cannot be read (callers say what it is).
    """
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        check_mode(path, os.fstat(handle.fileno()).st_mode, group_ok=True)
        return handle.read()


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
    try:
        refuse_symlinks(path)
        st = path.stat()
    except FileNotFoundError:
        raise VaultNotFound(path=str(path)) from None
    except PermissionError:
        # The directory is closed to this user: a shared vault of a group she is not in.
        raise OutsideGroup(path=str(path), directory=str(path.parent)) from None
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


def check_regular(path: Path, mode: int) -> None:
    """Raises NotARegularFile unless ``mode`` (from an fstat of what was opened) is a
    regular file: a FIFO beside the vault would make every command hang."""
    if not stat.S_ISREG(mode):
        raise NotARegularFile(path=str(path))


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


def check_group_directory(directory: Path, group: str) -> None:
    """Raises UnsharedDirectory unless ``directory`` belongs to ``group``, which may
    enter and write it (to erase in a backup, SQLite writes a journal beside it), has the
    setgid bit (so every file made there gets the group), and is closed to others.

    Raises also UnsafePermissions (others may enter it), BadInput (no such group).
    """
    st = directory.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o007:
        raise UnsafePermissions(
            path=str(directory), who="every user", mode=f"{mode:04o}", fix="o-rwx"
        )
    if st.st_gid != group_id(group) or mode & 0o2070 != 0o2070:
        try:
            owner = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            owner = str(st.st_gid)
        raise UnsharedDirectory(path=str(directory), group=group, mode=f"{mode:04o}", owner=owner)


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
