"""A vault shared on a center's server, tried as the people who share it (issue 22).

Real Unix users, made for this module (tests/osusers.py): an admin and a staff member
in the vault's group, a purge user in the group with the job credential, and an
outsider not in the group. Every nok here is a real process of one of them, so the
kernel, not nok, decides what each may open. One server is set up for the whole module
(users, one vault, its staff and credential): the tests share it and each adds what it
needs, so the module stays fast (about a minute on two cores).
"""

from __future__ import annotations

import grp
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from shlex import quote as shlex_quote

import pytest

from tests import osusers
from tests.conftest import CLOCK_ENV, days_ago
from vault.errors import ExitCode
from vault.files import BESIDE_SUFFIXES

pytestmark = pytest.mark.slow

STAFF_PASSPHRASE = "kari's own passphrase"


@dataclass
class Center:
    srv: osusers.Server
    admin: osusers.User
    staff: osusers.User
    purge: osusers.User
    outsider: osusers.User
    vault: Path
    credential: Path

    def env(self, user: osusers.User, **extra: str) -> dict[str, str]:
        secret = STAFF_PASSPHRASE if user is self.staff else osusers.PASSPHRASE
        return self.srv.env(user, NOK_VAULT=str(self.vault), NOK_PASSPHRASE=secret, **extra)

    def nok(
        self, user: osusers.User, *args: str, timeout: float = 60, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.srv.run(user, *args, env=self.env(user, **extra), timeout=timeout)

    def ok(self, user: osusers.User, *args: str, **extra: str) -> str:
        result = self.nok(user, *args, **extra)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def consent(self, user: osusers.User, subject: str, *extra: str) -> str:
        out = self.ok(
            user, "consent", "add", "--subject", subject, "--purpose", "follow-up",
            "--category", "conversation-notes", "--json", *extra,
        )  # fmt: skip
        return str(json.loads(out)["id"])


@pytest.fixture(scope="module")
def center() -> Iterator[Center]:
    with osusers.server(CLOCK_ENV["NOKTEST_CLOCK"]) as srv:
        admin = srv.add_user("admin", in_group=True)
        staff = srv.add_user("staff", in_group=True)
        purge = srv.add_user("purge", in_group=True)
        outsider = srv.add_user("outsider", in_group=False)
        # The center's directory for nok, as its server administrator makes it.
        top = srv.base / "srv"
        top.mkdir(mode=0o755)
        os.chown(top, admin.uid, -1)
        vault = top / "nok" / "center.db"
        credential = purge.home / "purge.credential"
        c = Center(srv, admin, staff, purge, outsider, vault, credential)
        recovery = admin.home / "recovery.txt"
        c.ok(admin, "init", "--group", srv.group, "--kdf", "interactive",
             "--recovery-file", str(recovery))  # fmt: skip
        c.ok(admin, "staff", "add", staff.name, NOK_NEW_PASSPHRASE=STAFF_PASSPHRASE)
        made = admin.home / "purge.credential"
        c.ok(admin, "key", "job-credential", "--output", str(made))
        # As examples/README.md says: install -o nok-purge -m 0600.
        os.rename(made, credential)
        os.chown(credential, purge.uid, -1)
        yield c


# Runs nok's command line N times in one process, each run as `nok ARGS` would (the vault
# opened and closed again each time), and prints the exit codes: many opens without the
# cost of starting Python for each.
LOOP = """
import json, sys
from nokcli.app import main
times, args = int(sys.argv[1]), sys.argv[2:]
codes = []
for _ in range(times):
    sys.argv = ["nok", *args]
    try:
        main()
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
print("RESULT", json.dumps(codes))
"""


def loop(center: Center, user: osusers.User, times: int, *args: str) -> subprocess.Popen[str]:
    cmd = center.srv.command(user, *args, env=center.env(user))
    at = cmd.index("-m")
    cmd[at : at + 2] = ["-c", LOOP, str(times)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loop_codes(proc: subprocess.Popen[str]) -> tuple[list[int], str]:
    out, err = proc.communicate(timeout=300)
    return json.loads(out.rsplit("RESULT ", 1)[1]), err


def test_two_colleagues_adding_notes_at_once_lose_none(center: Center) -> None:
    """Two counselors each add 100 notes (in five working sessions of 20) at the same time
    as both look at `nok status` over and over: each status opens and closes the vault, so
    its -wal and -shm files are made again and again by one user while the other opens
    them. No note is lost and no command fails (a busy wait is allowed, not an error)."""
    users = (center.admin, center.staff)
    mine = {u.name: center.consent(u, f"Person of {u.name}") for u in users}
    line = "note add {} --kind phone --text 'Called back.'\n"
    lines = {u.name: line.format(mine[u.name]) * 20 for u in users}

    def sessions(user: osusers.User) -> subprocess.Popen[str]:
        shell = " ".join(map(shlex_quote, center.srv.command(user, "shell", env=center.env(user))))
        script = f"for i in 1 2 3 4 5; do {shell} <<'EOF'\n{lines[user.name]}EOF\ndone"
        return subprocess.Popen(
            ["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    lookers = [loop(center, u, 100, "status") for u in users]
    writers = [sessions(u) for u in users]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert "error" not in err, err
    for proc in lookers:
        codes, err = loop_codes(proc)
        assert codes == [0] * 100, err
    for user in users:
        listed = json.loads(center.ok(user, "note", "list", "--consent", mine[user.name], "--json"))
        assert len(listed) == 100


def test_nok_on_the_shared_vault_keeps_the_groups_bits_in_its_umask(center: Center) -> None:
    """The cause of lost notes when two save at once: SQLite makes -wal and -shm with the
    vault's mode cut by the process's umask, then mends it a moment later; a colleague
    opening them in between was refused. Read from the kernel while a session is open:
    nok on the shared vault runs with umask 0007 (its group keeps its bits, others none)."""
    proc = subprocess.Popen(
        center.srv.command(center.staff, "shell", env=center.env(center.staff)),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert "unlocked as" in proc.stderr.readline()
        fields = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        )
        assert int(fields["Uid"].split()[0]) == center.staff.uid
        assert fields["Umask"].strip() == "0007"
    finally:
        proc.communicate("exit\n", timeout=30)


# A command's own time: Python's start and the import of nok's modules come before the
# clock starts (on a loaded two-core machine they alone can take a second); what is timed
# is what nok does with the files it finds.
TIMED = """
import json, sys, time
import commands.purge, commands.status, vault.backup, vault.erasure, vault.jobs
from nokcli.app import main
sys.argv = ["nok", *sys.argv[1:]]
start = time.monotonic()
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("RESULT", json.dumps([code, time.monotonic() - start]))
"""


def timed(center: Center, user: osusers.User, *args: str, **extra: str) -> tuple[int, float, str]:
    cmd = center.srv.command(user, *args, env=center.env(user, **extra))
    at = cmd.index("-m")
    cmd[at : at + 2] = ["-c", TIMED]
    # A hang is the failure this guards against: the timeout turns it into one.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    code, seconds = json.loads(done.stdout.rsplit("RESULT ", 1)[1])
    return code, seconds, done.stderr


@pytest.mark.parametrize("suffix", BESIDE_SUFFIXES)
def test_a_fifo_a_colleague_puts_beside_the_vault_is_refused_at_once(
    center: Center, suffix: str
) -> None:
    """A member of the group may write the vault's directory: her FIFO at any name nok
    opens beside the vault would have made every colleague's command (and the purge)
    wait forever. It is refused, in under a second, naming the file; nothing changes."""
    planted = center.vault.with_name(center.vault.name + suffix)
    os.mkfifo(planted, 0o660)
    os.chown(planted, center.staff.uid, -1)
    try:
        for user, args in ((center.admin, ("status",)), (center.purge, ("purge",))):
            extra = {"NOK_JOB_CREDENTIAL": str(center.credential)} if user is center.purge else {}
            code, seconds, err = timed(center, user, *args, **extra)
            assert code == ExitCode.UNSAFE_PERMISSIONS, err
            assert f"{planted} is not a regular file" in err
            assert seconds < 1.0
    finally:
        planted.unlink()
    center.ok(center.admin, "status")


def test_an_outsider_is_told_the_vault_is_closed_to_her(center: Center) -> None:
    """A login outside the group gets exit 3 and whom to ask, not an internal error."""
    result = center.nok(center.outsider, "status")
    assert result.returncode == ExitCode.NO_VAULT, result.stderr
    assert "you may not open this vault" in result.stderr
    assert "ask the vault's admin to add your login to its group" in result.stderr
    assert "internal error" not in result.stderr


def backup_holds(backup: Path, consent_id: str) -> bool:
    """Whether the backup file still holds the consent's personal data (its subject and
    data key), read straight from the file as anyone with a copy could."""
    with sqlite3.connect(f"file:{backup}?mode=ro&immutable=1", uri=True) as conn:
        wraps = conn.execute(
            "SELECT count(*) FROM consent_keys WHERE consent_id = ?", [consent_id]
        ).fetchone()[0]
        notes = conn.execute(
            "SELECT count(*) FROM notes WHERE consent_id = ?", [consent_id]
        ).fetchone()[0]
    return bool(wraps or notes)


def test_erasures_by_a_colleague_and_by_the_purge_user_reach_the_admins_backup(
    center: Center,
) -> None:
    """The admin backs up; the staff member's withdrawal and the purge user's nightly
    purge then erase in that backup too: it is the group's (0660 in a 2770 directory of
    the group), not the admin's alone, and outsiders still cannot enter."""
    withdrawn = center.consent(center.staff, "Withdraws later")
    center.ok(center.staff, "note", "add", withdrawn, "--text", "First conversation.")
    due = center.consent(center.admin, "Past retention", "--given", days_ago(30),
                         "--retain-days", "7", "--yes")  # fmt: skip
    directory = center.vault.parent.parent / "backups"
    out = center.ok(center.admin, "backup", f"{directory}/", "--json")
    backup = Path(json.loads(out)["path"])
    dir_st, file_st = directory.stat(), backup.stat()
    group = grp.getgrnam(center.srv.group).gr_gid
    assert (stat.S_IMODE(dir_st.st_mode), dir_st.st_gid) == (0o2770, group)
    assert (stat.S_IMODE(file_st.st_mode), file_st.st_gid) == (0o660, group)
    assert backup_holds(backup, withdrawn)
    assert backup_holds(backup, due)

    by_staff = center.nok(center.staff, "consent", "withdraw", withdrawn, "--yes")
    assert by_staff.returncode == 0, by_staff.stderr
    assert "cannot be reached" not in by_staff.stderr
    assert not backup_holds(backup, withdrawn)

    purge = center.nok(center.purge, "--job-credential", str(center.credential), "purge", "--json")
    assert purge.returncode == 0, purge.stderr
    assert due in purge.stdout
    assert "cannot be reached" not in purge.stderr
    assert not backup_holds(backup, due)
    assert center.nok(center.outsider, "--vault", str(backup), "status").returncode == 3


def test_a_backup_of_the_shared_vault_into_a_private_directory_is_refused(
    center: Center,
) -> None:
    """A backup where colleagues' erasures could not reach it would keep the people they
    erase: refused before anything is written, with the chgrp/chmod that fixes it."""
    private = center.admin.home / "mine"
    private.mkdir(mode=0o700)
    os.chown(private, center.admin.uid, -1)
    result = center.nok(center.admin, "backup", str(private / "copy.db"))
    assert result.returncode == ExitCode.UNSAFE_PERMISSIONS, result.stderr
    assert f"chmod 2770 {private}" in result.stderr
    assert list(private.iterdir()) == []
    status = center.nok(center.admin, "status")
    assert f"backups of this shared vault go in a directory of the group {center.srv.group}" in (
        status.stderr
    )


def test_init_refuses_a_path_with_another_vaults_files_beside_it(center: Center) -> None:
    """The vault moved aside without its list of backups and erasure log: a new vault
    there would take them over, and colleagues would meet another vault by the old name."""
    moved_from = center.vault.with_name("old.db")
    for suffix in (".backups", ".erasures"):
        left = moved_from.with_name(moved_from.name + suffix)
        left.write_bytes(b"")
        os.chown(left, center.admin.uid, -1)
    result = center.nok(
        center.admin, "--vault", str(moved_from), "init", "--group", center.srv.group,
        "--kdf", "interactive", "--recovery-file", str(center.admin.home / "r2.txt"),
    )  # fmt: skip
    assert result.returncode == ExitCode.CONFLICT, result.stderr
    assert "old.db.backups, old.db.erasures" in result.stderr
    assert not moved_from.exists()


SERVER_UNIT = Path(__file__).resolve().parent.parent / "examples" / "server" / "nok-purge.service"


def test_the_server_units_commands_run_as_the_purge_user(center: Center) -> None:
    """examples/server/nok-purge.service as systemd would run it (its User, its
    Environment, each ExecStart), with this server's paths for the example's: the purge
    and the night's backup work as the purge user, and the backup is the group's."""
    unit = dict.fromkeys(("User", "Group", "UMask"), "")
    env, commands = {}, []
    for line in SERVER_UNIT.read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "ExecStart":
            commands.append(value.split())
        elif key in unit:
            unit[key] = value
    assert unit == {"User": "nok-purge", "Group": "center", "UMask": "0007"}
    ours = {
        "/srv/nok/center.db": str(center.vault),
        "/var/lib/nok-purge": str(center.purge.home),
        "/srv/nok-backups": str(center.vault.parent.parent / "backups"),
    }

    def here(text: str) -> str:
        for theirs, mine in ours.items():
            text = text.replace(theirs, mine)
        return text

    assert here(env["NOK_JOB_CREDENTIAL"]) == str(center.credential)
    environment = center.srv.env(center.purge, **{k: here(v) for k, v in env.items()})
    made = []
    for program, *args in commands:
        assert program == "/opt/nok/bin/nok"
        result = center.srv.run(center.purge, *map(here, args), env=environment)
        assert result.returncode == 0, (args, result.stderr)
        made.append(result.stdout)
    backup = Path(made[-1].strip().splitlines()[-1])
    st = backup.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (center.purge.uid, 0o660)
    assert st.st_gid == grp.getgrnam(center.srv.group).gr_gid


def test_removing_a_leaver_still_in_the_group_says_so(center: Center) -> None:
    """Last in this module (it removes the staff member). Her login is still in the
    group, so she can still read the live file: nok says so, and that taking her out of
    the group and the deep rotation close it, with the time the rotation takes."""
    result = center.nok(center.admin, "staff", "remove", center.staff.name, "--yes", "--json")
    assert result.returncode == 0, result.stderr
    removal = json.loads(result.stdout)
    gaps = {g["what"]: g for g in removal["gaps"]}
    member = center.staff.name
    assert gaps["group-membership"] == {
        "what": "group-membership",
        "closed_by": f"gpasswd -d {member} {center.srv.group}",
        "closed": False,
    }
    assert gaps["data-keys"]["closed_by"] == "nok key rotate --deep"
    assert removal["group"] == {"name": center.srv.group, "login": member, "login_in_group": True}
    assert removal["deep_rotation"]["notes"] >= 100
    # A staff name that is a login outside the group: nok says she cannot read the file.
    outside = center.outsider.name
    center.ok(center.admin, "staff", "add", outside, NOK_NEW_PASSPHRASE="another passphrase")
    told = center.nok(center.admin, "staff", "remove", outside, "--yes")
    assert told.returncode == 0, told.stderr
    assert f"her Unix login {outside} is not in the vault's group {center.srv.group}" in (
        told.stderr
    )
