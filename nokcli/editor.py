"""Writing a note in $EDITOR without leaving plaintext behind.

The temporary file lives in a directory of its own (0700, named with nok's process id)
inside a private 0700 directory on /dev/shm (memory, not disk) where it exists, and is
created 0600. When the editor exits, everything in that directory is overwritten with
zeros and removed: the note and whatever the editor wrote beside it (vim's
``.note-*.txt.swp`` swap file holds the text too, as do backup files like ``note.txt~``).
Whatever a crash left (its nok process is gone) is wiped the next time nok runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
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


def wipe_tree(directory: Path) -> None:
    """Wipe every file below ``directory`` (symbolic links are removed, never followed),
    then remove it."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            wipe_tree(path)
        elif entry.is_file(follow_symlinks=False):
            wipe(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# note-<pid>-… (an editor file of nok before per-run directories), .note-<pid>-…swp (vim's
# swap file beside it), edit-<pid>-… (a run's directory).
_OWNER = re.compile(r"^\.?(?:note|edit)-(\d+)-")


def _owner_alive(name: str) -> bool:
    match = _OWNER.match(name)
    return match is not None and _alive(int(match.group(1)))


def _own_private(directory: Path, uid: int) -> bool:
    """Only a real directory of this user that no one else can enter is nok's to clean."""
    try:
        st = directory.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not stat.S_IMODE(st.st_mode) & 0o077


def wipe_leftovers() -> int:
    """Wipe everything in nok's private editor directories that no running nok owns
    (a crashed run's note, its editor's swap and backup files); returns how many entries."""
    uid = os.getuid()
    count = 0
    for base in (
        SHM,
        Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")),
        Path(tempfile.gettempdir()),
    ):
        directory = base / f"nok-{uid}"
        if not _own_private(directory, uid):
            continue
        for entry in list(os.scandir(directory)):
            if _owner_alive(entry.name):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if _own_private(path, uid):
                    wipe_tree(path)
                    count += 1
            elif entry.is_file(follow_symlinks=False):
                wipe(path)
                count += 1
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                count += 1
    return count


def editor_command() -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(editor)


# What each editor nok knows keeps of a file beyond the file itself, turned off for the
# note's run: vim's viminfo (registers with yanked and deleted text, every file name),
# swap, backup and undo files; neovim's shada file; nano's backups, search history and
# position log (its rc files); emacs's backups, auto-saves, lock files and saved
# minibuffer history; micro's backups, undo files and history. Given after the user's
# own configuration is read (vim's -c, emacs's --eval), so a vimrc turning undo files
# on does not turn them back on. Other editors run as configured (docs/security.md).
_VIM = ["-n", "-i", "NONE", "-c", "set nobackup nowritebackup", "-c", "silent! set noundofile"]
_NANO = ["--ignorercfiles"]
_EMACS = [
    "--eval",
    "(progn (setq make-backup-files nil backup-inhibited t auto-save-default nil "
    "create-lockfiles nil) (when (fboundp 'savehist-mode) (savehist-mode -1)))",
]
_MICRO = ["-backup", "false", "-saveundo", "false", "-savehistory", "false"]
_MICRO += ["-savecursor", "false"]
KNOWN = {
    "vim": _VIM,
    "gvim": _VIM,
    "nvim": _VIM,
    "nano": _NANO,
    "rnano": _NANO,
    "emacs": _EMACS,
    "micro": _MICRO,
}


def private_flags(command: list[str]) -> list[str]:
    """The options that keep the editor ``command`` from saving any of the note outside
    nok's private directory (none for an editor nok does not know).

    Known by the program it runs, not the name it is called by: ``vi`` and ``view`` are
    vim when they lead to vim.basic (as Debian installs them), but busybox's or a
    traditional vi takes none of vim's options."""
    if not command:
        return []
    found = shutil.which(command[0])
    name = Path(os.path.realpath(found)).name if found else Path(command[0]).name
    # vim.basic, vim.tiny, vim.gtk3; emacs-nox, emacs-gtk, emacs-29.1 (not emacsclient).
    base = name.split(".", 1)[0]
    if base.startswith("emacs-"):
        base = "emacs"
    return list(KNOWN.get(base, []))


def editor_environment() -> dict[str, str]:
    """This process's environment without nok's secrets: editor plugins, language servers
    and shell escapes run with the editor's environment."""
    return {k: v for k, v in os.environ.items() if "PASSPHRASE" not in k.upper()}


def compose(header: str, initial: str = "") -> str:
    """Open $EDITOR on a note (empty, or ``initial`` to correct); returns the text without
    comment lines. ``initial`` is written to the same private, wiped file as the note.

    Raises:
        BadInput: the editor failed or could not be started.
    """
    session = Path(tempfile.mkdtemp(prefix=f"edit-{os.getpid()}-", dir=private_dir()))
    try:
        fd, name = tempfile.mkstemp(prefix=f"note-{os.getpid()}-", suffix=".txt", dir=session)
        path = Path(name)
        os.fchmod(fd, 0o600)
        # The text to correct (or an empty first line for the cursor), the comments below
        # it: text typed on a comment line would be dropped with the comment.
        lead = initial + "\n\n" if initial else "\n"
        os.write(fd, (lead + header).encode("utf-8"))
        os.close(fd)
        try:
            command = editor_command()
            result = subprocess.run(
                [*command, *private_flags(command), str(path)],
                check=False,
                env=editor_environment(),
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
        wipe_tree(session)
    lines = [line for line in text.splitlines() if not line.startswith(COMMENT)]
    return "\n".join(lines).strip()
