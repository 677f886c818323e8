"""The list of backups nok made, beside the vault, so that later erasures can reach them.

``nok backup`` records every backup it writes in ``<vault>.backups``: one JSON line per
backup with its absolute path, when it was taken, the day nok's ``--keep-days`` policy
deletes it (if any), and, while it is being written, the process id of the writer. Paths
and times only, never personal data; created 0600 (0660 for a group vault), outside the
vault file so that an older copy of the vault put back still finds the newer backups.

Someone who can write this file (a *file writer*) can add paths to it or remove them.
Added paths are harmless: nok erases in a listed file only when it is a regular file
(never a link) owned by the user running nok, opens as a nok vault with the same vault
id, and holds a consent the live vault says was erased; it never writes anything else
there. Removed paths take those backups out of the reach of later erasures; so does
copying the vault file, which a file writer can do anyway (docs/backup.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vault import files
from vault.errors import IntegrityError, NokError, StorageError

REGISTRY_SUFFIX = ".backups"


@dataclass(frozen=True)
class BackupEntry:
    """One backup nok wrote (``writer``: the process id while it is being written)."""

    path: Path
    taken: str
    keep_until: str | None = None
    writer: int | None = None

    @property
    def partial(self) -> Path | None:
        """The hidden file the writer builds the backup in, before it gets its name."""
        if self.writer is None:
            return None
        return partial_path(self.path, self.writer)

    def done(self) -> BackupEntry:
        return replace(self, writer=None)

    def to_line(self) -> str:
        raw: dict[str, object] = {"path": str(self.path), "taken": self.taken}
        if self.keep_until is not None:
            raw["keep_until"] = self.keep_until
        if self.writer is not None:
            raw["writer"] = self.writer
        return json.dumps(raw, separators=(",", ":"))


def partial_path(target: Path, pid: int) -> Path:
    return target.with_name(f".{target.name}.{pid}.partial")


def registry_path(vault_path: Path) -> Path:
    """``<vault path>.backups``."""
    return vault_path.with_name(vault_path.name + REGISTRY_SUFFIX)


def _parse(line: str) -> BackupEntry:
    raw = json.loads(line)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    path, taken = raw.get("path"), raw.get("taken")
    keep_until, writer = raw.get("keep_until"), raw.get("writer")
    if not (isinstance(path, str) and os.path.isabs(path) and isinstance(taken, str)):
        raise ValueError("path or time missing")
    if keep_until is not None and not isinstance(keep_until, str):
        raise ValueError("keep_until")
    if writer is not None and (not isinstance(writer, int) or writer <= 0):
        raise ValueError("writer")
    return BackupEntry(Path(path), taken, keep_until, writer)


def read(vault_path: Path) -> list[BackupEntry]:
    """The backups recorded beside the vault, oldest first; ``[]`` when there is no list.

    Raises:
        SymlinkRefused: the list is a symbolic link.
        NotARegularFile: a FIFO or other non-regular file in its place.
        UnsafePermissions: other users can read it.
        IntegrityError: a line is not a backup record.
        StorageError: it cannot be read.
    """
    path = registry_path(vault_path)
    try:
        data = files.read_regular(path)
    except OSError as exc:
        raise StorageError(
            "could not read the list of backups {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    if data is None:
        return []
    text = data.decode("utf-8", errors="replace")
    entries: dict[Path, BackupEntry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = _parse(line)
        except ValueError:
            raise IntegrityError(where=f"line {number} of the list of backups {path}") from None
        entries[entry.path] = entry
    return sorted(entries.values(), key=lambda e: (e.taken, str(e.path)))


def write(vault_path: Path, entries: Sequence[BackupEntry], *, group: str | None) -> None:
    """Replace the list atomically (a new file renamed over the old one).

    Call it inside a write transaction of the vault: that lock keeps two nok processes
    from losing each other's changes.

    Raises StorageError (the list is unchanged), UnsafePermissions.
    """
    path = registry_path(vault_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = "".join(e.to_line() + "\n" for e in entries).encode()
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        files.create_private_file(tmp, group)
        fd = os.open(tmp, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(
            "could not write the list of backups {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None


def unreachable_reason(
    path: Path, live: Path | None = None, *, group: str | None = None
) -> str | None:
    """Why nok cannot erase in the backup at ``path`` (None: it can try).

    Only a regular file of this user (or, for a ``group`` vault, one of that group that
    the group may write), readable and writable, is a backup nok touches; never the live
    vault ``live`` (under any name) nor a file with a ``-wal`` beside it.
    """
    if live is not None and _same_file(path, live):
        return "the live vault itself"
    if files.side_files(path)[0].exists():
        return "a live vault (it has a -wal file beside it)"
    try:
        st = path.lstat()
    except FileNotFoundError:
        return "not found (moved, deleted, or on a disk that is not attached)"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.getuid() and not _group_shared(st, group):
        return "owned by another user"
    if not os.access(path, os.R_OK | os.W_OK):
        return "not writable"
    return None


def _group_shared(st: os.stat_result, group: str | None) -> bool:
    """A backup of a group vault that the vault's group owns and may read and write."""
    if group is None:
        return False
    try:
        gid = files.group_id(group)
    except NokError:
        return False
    return st.st_gid == gid and stat.S_IMODE(st.st_mode) & 0o060 == 0o060


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def writer_alive(entry: BackupEntry) -> bool:
    """True while the nok process writing this backup still runs."""
    if entry.writer is None:
        return False
    try:
        os.kill(entry.writer, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stray_partials(directory: Path, vault_path: Path) -> list[Path]:
    """Hidden partial backups of this vault's default names in ``directory`` whose writer
    is gone (left by a nok killed before it recorded them)."""
    prefix = f".{vault_path.stem}-backup-"
    try:
        names = [p for p in directory.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    found = []
    for path in names:
        parts = path.name.rsplit(".", 2)
        if len(parts) != 3 or parts[2] != "partial" or not parts[1].isdigit():
            continue
        probe = BackupEntry(path, "", writer=int(parts[1]))
        if not writer_alive(probe) and unreachable_reason(path) is None:
            found.append(path)
    return sorted(found)
