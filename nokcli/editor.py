"""Writing a note in $EDITOR without leaving plaintext behind.

The temporary file lives in a private 0700 directory on /dev/shm (memory, not disk)
where it exists, is created 0600, and is overwritten with zeros and removed as soon as
the editor exits. A file left by a crash (its nok process is gone) is wiped the next
time nok runs.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import subprocess
import tempfile
from pathlib import Path

from vault.errors import BadInput, UnsafePermissions

COMMENT = "#"
# Memory-backed, so the note never reaches a disk; the per-user 0700 directory below it
# (checked for owner and mode) is what keeps other users out.
SHM = Path("/dev/shm")  # noqa: S108


def private_dir() -> Path:
    """The per-user 0700 directory for editor files (created if missing)."""
    uid = os.getuid()
    shm = SHM
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if shm.is_dir() and os.access(shm, os.W_OK):
        base = shm
    elif runtime and Path(runtime).is_dir():
        base = Path(runtime)
    else:
        base = Path(tempfile.gettempdir())
    directory = base / f"nok-{uid}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
        raise UnsafePermissions(
            path=str(directory),
            who="other users",
            mode=f"{stat.S_IMODE(st.st_mode):04o}",
            fix="700",
        )
    return directory


def wipe(path: Path) -> None:
    """Overwrite a file with zeros, flush it, and remove it."""
    try:
        size = path.stat().st_size
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.write(fd, bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wipe_leftovers() -> int:
    """Wipe editor files whose nok process is gone; returns how many."""
    uid = os.getuid()
    count = 0
    for base in (
        SHM,
        Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")),
        Path(tempfile.gettempdir()),
    ):
        directory = base / f"nok-{uid}"
        if not directory.is_dir() or directory.is_symlink():
            continue
        for leftover in directory.glob("note-*.txt"):
            pid = leftover.name.split("-")[1]
            if pid.isdigit() and not _alive(int(pid)):
                wipe(leftover)
                count += 1
    return count


def editor_command() -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(editor)


def editor_environment() -> dict[str, str]:
    """This process's environment without nok's secrets: editor plugins, language servers
    and shell escapes run with the editor's environment."""
    return {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k.upper()}


def compose(header: str) -> str:
    """Open $EDITOR on an empty note; returns the text without comment lines.

    Raises:
        BadInput: the editor failed or could not be started.
    """
    directory = private_dir()
    fd, name = tempfile.mkstemp(prefix=f"note-{os.getpid()}-", suffix=".txt", dir=directory)
    path = Path(name)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, header.encode("utf-8"))
        os.close(fd)
        try:
            result = subprocess.run(
                [*editor_command(), str(path)], check=False, env=editor_environment()
            )
        except OSError as exc:
            raise BadInput(
                "could not start the editor {editor!r}: {reason}",
                editor=" ".join(editor_command()),
                reason=exc.strerror,
            ) from None
        if result.returncode != 0:
            raise BadInput(
                "the editor exited with status {code}; nothing was saved",
                code=result.returncode,
            )
        text = path.read_text(encoding="utf-8")
    finally:
        wipe(path)
    lines = [line for line in text.splitlines() if not line.startswith(COMMENT)]
    return "\n".join(lines).strip()
