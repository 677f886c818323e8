"""Real Unix users for the shared-server tests: a group, its members, one outsider.

The tests of a vault shared on a server (tests/test_shared_server.py) run nok as separate
Unix users, with real processes, because what they check is what the kernel enforces
between users: file modes, owners, groups, umasks, FIFOs a colleague plants. Creating
users needs root (CI runs as root); otherwise the tests are skipped with the reason.

Other users must be able to run nok: when the test's interpreter or the source tree is
out of their reach (a checkout or a pyenv under root's 0700 home), the runtime is the
system's python3 of the same version with a copy of nok and its dependencies in a
directory everyone can read.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLOCK_DIR = REPO / "tests" / "testclock"
PASSPHRASE = "shared server passphrase"


def skip_unless_root() -> None:
    """Skip (with the reason shown by ``pytest -rs``) where users cannot be created."""
    if os.geteuid() != 0:
        pytest.skip("creating Unix users for the shared-server tests needs root (CI runs so)")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed; the shared-server tests need it")


def _reachable_by_others(path: Path) -> bool:
    """Whether a user outside root's group can read ``path`` (every directory above it
    searchable by others, the file readable, or executable for a program)."""
    path = path.resolve()
    for parent in path.parents:
        if not parent.stat().st_mode & 0o001:
            return False
    return bool(path.stat().st_mode & 0o005)


def _runtime_dependencies() -> set[str]:
    """The distributions nok needs to run here (its requirements whose markers hold on
    this system, recursively; no test tools)."""
    from packaging.requirements import Requirement

    wanted, todo = set(), ["nok"]
    while todo:
        for line in importlib.metadata.requires(todo.pop()) or ():
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if req.name.lower() not in wanted:
                wanted.add(req.name.lower())
                todo.append(req.name)
    return wanted


# Never imported by nok: sqlite-utils requires pip only for its own `install` command.
NOT_AT_RUNTIME = {"pip"}


def _place(src: str, dest: str) -> None:
    """Put ``src`` at ``dest`` for the other users: a hard link where it is on the same
    disk and readable by all already (instant, and removed as fast), else a 0644 copy."""
    if os.stat(src).st_mode & 0o004:
        with contextlib.suppress(OSError):
            os.link(src, dest)
            return
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o644)


def _copy_runtime(target: Path, system: str) -> Path:
    """Copy nok's packages and its dependencies' files into ``target`` (readable by all)."""
    lib = target / "lib"
    for package in ("vault", "nokcli", "commands"):
        shutil.copytree(REPO / package, lib / package, copy_function=_place)
    for name in _runtime_dependencies() - NOT_AT_RUNTIME:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or ():
            src = Path(str(dist.locate_file(file)))
            if src.is_file() and ".." not in file.parts:
                dest = lib / file
                dest.parent.mkdir(parents=True, exist_ok=True)
                _place(str(src), str(dest))
    shutil.copytree(CLOCK_DIR, target / "testclock", copy_function=_place)
    # Compiled here (what the linked __pycache__ lacks) by the interpreter the users run:
    # without it every nok they start compiles its modules again (about a second each),
    # as they cannot write __pycache__.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([system, "-m", "compileall", "-q", str(target)], check=True, env=clean)
    for path in (target, *target.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
        elif path.suffix == ".pyc":
            path.chmod(0o644)
    return lib


def python_for_others(scratch: Path) -> tuple[str, list[str]]:
    """An interpreter and a PYTHONPATH with which any user can run ``python -m nokcli``."""
    executable = Path(sys.executable)
    site = Path(sysconfig.get_paths()["purelib"])
    if _reachable_by_others(executable) and all(
        _reachable_by_others(p) for p in (REPO / "nokcli" / "app.py", site / "nacl")
    ):
        return str(executable), [str(REPO), str(site), str(CLOCK_DIR)]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system is None or not _reachable_by_others(Path(system)):
        pytest.skip(f"no {version} that other users may run (the tests' one is out of reach)")
    lib = _copy_runtime(scratch, system)
    return system, [str(lib), str(scratch / "testclock")]


@dataclass
class User:
    name: str
    home: Path

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid


@dataclass
class Server:
    """A group of Unix users made for one test module, and how to run nok as each."""

    base: Path
    group: str
    python: str
    pythonpath: list[str]
    clock: str
    users: dict[str, User] = field(default_factory=dict)

    def add_user(self, role: str, *, in_group: bool) -> User:
        name = f"{self.group}{role[0]}"  # short: useradd allows 32 characters
        home = self.base / "home" / role
        args = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh"]
        if in_group:
            args += ["--groups", self.group]
        subprocess.run([*args, "--user-group", name], check=True, capture_output=True)
        user = User(name, home)
        self.users[role] = user
        home.mkdir(parents=True, mode=0o700)
        os.chown(home, user.uid, -1)
        return user

    def env(self, user: User, **extra: str) -> dict[str, str]:
        """A clean environment, as a login shell of ``user`` would have it."""
        return {
            "HOME": str(user.home),
            "USER": user.name,
            "LOGNAME": user.name,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "NOK_CONFIG": os.devnull,
            "XDG_STATE_HOME": str(user.home / "state"),
            "XDG_RUNTIME_DIR": str(user.home / "run"),
            "XDG_CONFIG_HOME": str(user.home / "config"),
            "PYTHONPATH": os.pathsep.join(self.pythonpath),
            "NOKTEST_CLOCK": self.clock,
            **extra,
        }

    def command(self, user: User, *args: str, env: Mapping[str, str] | None = None) -> list[str]:
        """``nok ARGS`` as ``user``: real uid, gid and supplementary groups of that user,
        and only the environment ``env`` (default: :meth:`env`)."""
        return [
            "setpriv",
            f"--reuid={user.name}",
            f"--regid={user.name}",
            "--init-groups",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in (self.env(user) if env is None else env).items()),
            self.python,
            "-P",  # not the working directory's modules: only those on PYTHONPATH
            "-m",
            "nokcli",
            *args,
        ]

    def run(
        self,
        user: User,
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(user, *args, env=env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def remove(self) -> None:
        """Delete the users (--force: also while a process of theirs, left by a failed
        test, still runs) and the group; a user left behind is an error the run shows."""
        for user in self.users.values():
            subprocess.run(["userdel", "--force", user.name], check=True, capture_output=True)
        subprocess.run(["groupdel", self.group], check=True, capture_output=True)


def _open_directory(prefix: str, where: Path | None = None) -> Path:
    """A new temporary directory (0755) under ``where`` that every user can reach."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
    path.chmod(0o755)
    for parent in path.parents:
        if not parent.stat().st_mode & 0o001:
            shutil.rmtree(path)
            pytest.skip(f"{parent} is closed to other users; the shared-server tests need a way in")
    return path


@contextlib.contextmanager
def server(clock: str) -> Iterator[Server]:
    """A fresh group (removed, with its users and files, afterwards) in a temporary
    directory all may enter (pytest's own tmp_path is 0700 for root)."""
    skip_unless_root()
    # What the runtime copy and the fixtures make must be open to the other users however
    # the pytest process was left: every in-process nok (CliRunner) sets umask 0077.
    previous = os.umask(0o022)
    try:
        with _server(clock) as srv:
            yield srv
    finally:
        os.umask(previous)


@contextlib.contextmanager
def _server(clock: str) -> Iterator[Server]:
    # The vaults in memory where /dev/shm has room (a container's may have 64 MB): a
    # commit's fsync costs nothing there, and what is tested (modes, owners, locks, FIFOs)
    # is the same on any local file system. The copied runtime (about 60 MB) stays on disk.
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 28
    base = _open_directory("nok-shared-", shm if roomy else None)
    runtime = _open_directory("nok-runtime-")
    try:
        python, pythonpath = python_for_others(runtime)
        group = "nk" + secrets.token_hex(3)
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        srv = Server(base, group, python, pythonpath, clock)
        try:
            yield srv
        finally:
            srv.remove()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
