"""The vault's schema is exactly what nok's migrations make: an object planted in the file
(a trigger copying rows aside before an erasure, a view, a table, an index) makes every
command refuse with exit 7 before it writes anything."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from conftest import NOW, PASSPHRASE, run_nok

from vault import Vault, consents, erasure, notes
from vault.errors import ExitCode, IntegrityError
from vault.session import Unlocked
from vault.store import MIGRATION_NAMES, MIGRATIONS_OBJECTS, SCHEMA_OBJECTS, Store

PLANTED = {
    # Alone, this one silently skips every note deletion an erasure makes.
    "trigger": (
        "CREATE TRIGGER keep_notes BEFORE DELETE ON notes BEGIN SELECT RAISE(IGNORE); END;",
        "trigger",
    ),
    "view": ("CREATE VIEW everything AS SELECT * FROM consents;", "view"),
    "table": ("CREATE TABLE shadow (x);", "table"),
    "index": ("CREATE INDEX idx_notes_record ON notes (record);", "index"),
}
# The attack from the review: copy every erased secret aside as the erasure happens.
SHADOW_ATTACK = """
CREATE TABLE shadow (tbl TEXT, id TEXT, consent_box BLOB, a BLOB, b BLOB, c BLOB);
CREATE TRIGGER keep_consent AFTER UPDATE OF status ON consents BEGIN
  INSERT INTO shadow VALUES ('consents', old.id, old.consent_box, old.record, NULL, NULL);
END;
CREATE TRIGGER keep_note BEFORE DELETE ON notes BEGIN
  INSERT INTO shadow VALUES ('notes', old.id, NULL, old.record, NULL, NULL);
END;
"""


def plant(path: Path, sql: str) -> None:
    with sqlite3.connect(path, isolation_level=None) as db:
        db.executescript(sql)
    db.close()


def file_state(path: Path) -> str:
    """The vault's bytes with its -wal (where a write would land first)."""
    digest = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        digest.update(wal.read_bytes())
    return digest.hexdigest()


def objects(path: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
    db.close()
    return {(str(k), str(n), str(t)) for k, n, t in rows}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("nok: error:")]


@pytest.fixture
def consent_id(cli_vault) -> str:
    result = cli_vault(
        "consent", "add", "--subject", "Kari", "--purpose", "follow-up", "--category", "notes"
    )
    assert result.exit_code == 0, result.stderr
    cid = result.stdout.strip().split()[0]
    result = cli_vault("note", "add", cid, "--text", "a note long enough to be a note")
    assert result.exit_code == 0, result.stderr
    return cid


# -- the list of known objects -----------------------------------------------------------


def test_a_new_vault_holds_exactly_the_known_objects(unlocked: Unlocked, vault_path: Path) -> None:
    assert list(SCHEMA_OBJECTS) == list(MIGRATION_NAMES)
    found = objects(vault_path)
    own = {o for o in found if o[0] == "index" and o[1].startswith("sqlite_autoindex_")}
    known = frozenset().union(*SCHEMA_OBJECTS.values())
    assert found - own == known | MIGRATIONS_OBJECTS
    # Every table nok's migrations make is listed, and nothing the migrations do not make.
    tables = ("settings", "staff", "vault_keys", "consents", "notes")
    tables += ("note_amendments", "note_tombstones", "sealed_keys", "consent_keys")
    tables += ("report_events", "report_shares")  # migration 0005: the yearly report
    assert {o[1] for o in own} == {f"sqlite_autoindex_{t}_1" for t in tables}


def test_sqlite_own_statistics_tables_are_allowed(cli_vault, vault_path: Path) -> None:
    plant(vault_path, "ANALYZE;")
    assert any(name.startswith("sqlite_stat") for _, name, _ in objects(vault_path))
    result = cli_vault("status")
    assert result.exit_code == 0, result.stderr


# -- planted objects, every command ------------------------------------------------------


@pytest.mark.parametrize("what", list(PLANTED))
@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("purge", "--yes"),
        ("consent", "withdraw", "CONSENT", "--yes"),
        ("backup", "BACKUP"),
        ("verify",),
        ("note", "add", "CONSENT", "--text", "another note long enough"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_planted_object_makes_every_command_refuse_untouched(
    cli_vault, consent_id: str, vault_path: Path, tmp_path: Path, what: str, command: tuple
) -> None:
    sql, kind = PLANTED[what]
    plant(vault_path, sql)
    before = file_state(vault_path)
    backup = tmp_path / "backup.db"
    args = [consent_id if a == "CONSENT" else str(backup) if a == "BACKUP" else a for a in command]
    result = cli_vault(*args)
    assert result.exit_code == ExitCode.INTEGRITY, result.stderr
    assert result.stdout == ""
    (line,) = error_lines(result.stderr)
    assert f"holds a {kind} named " in line
    assert "Traceback" not in result.stderr
    assert file_state(vault_path) == before
    assert not backup.exists()


def test_a_withdrawal_refuses_when_triggers_would_copy_the_erased_data(
    cli_vault, consent_id: str, vault_path: Path
) -> None:
    plant(vault_path, SHADOW_ATTACK)
    before = file_state(vault_path)
    result = cli_vault("consent", "withdraw", consent_id, "--yes")
    assert result.exit_code == ExitCode.INTEGRITY
    assert len(error_lines(result.stderr)) == 1
    assert file_state(vault_path) == before
    with sqlite3.connect(vault_path) as db:
        assert db.execute("SELECT count(*) FROM shadow").fetchone()[0] == 0
        status = db.execute("SELECT status FROM consents WHERE id = ?", [consent_id]).fetchone()
    db.close()
    assert status == ("active",)


def test_the_shadow_triggers_do_copy_secrets_when_they_fire(
    cli_vault, consent_id: str, vault_path: Path
) -> None:
    # The attack above is real: without the check, an erasure would feed the shadow table.
    plant(vault_path, SHADOW_ATTACK)
    with sqlite3.connect(vault_path, isolation_level=None) as db:
        db.execute("PRAGMA trusted_schema = OFF")
        db.execute("BEGIN")
        db.execute("DELETE FROM notes WHERE consent_id = ?", [consent_id])
        db.execute("UPDATE consents SET status = 'withdrawn', record = NULL")
        copied = db.execute("SELECT count(*), count(a) FROM shadow").fetchone()
        db.execute("ROLLBACK")
    db.close()
    # The consent's sealed record and its note's: both would be kept past the erasure.
    assert copied == (2, 2)


def test_a_trigger_planted_while_the_vault_is_open_stops_the_next_write(
    unlocked: Unlocked, vault_path: Path
) -> None:
    c = consents.add(unlocked, consents.ConsentInput("Kari", "follow-up", ("notes",)))
    notes.add(unlocked, c.id, "a note long enough to be a note")
    plant(vault_path, SHADOW_ATTACK)
    with pytest.raises(IntegrityError) as info:
        erasure.withdraw(unlocked, c.id)
    assert "holds a table named shadow" in info.value.message
    assert unlocked.store.conn.execute("SELECT count(*) FROM shadow").fetchone()[0] == 0
    assert consents.get_row(unlocked.store, c.id).status == "active"


def test_a_scheduled_purge_refuses_a_planted_trigger(
    cli_vault, consent_id: str, vault_path: Path, nok_env: dict[str, str]
) -> None:
    plant(vault_path, PLANTED["trigger"][0])
    before = file_state(vault_path)
    env = {k: v for k, v in nok_env.items() if k != "NOK_PASSPHRASE"}
    done = run_nok("purge", "--now", "2099-01-01", "--dry-run", env=env)
    assert done.returncode == ExitCode.INTEGRITY
    assert done.stdout == ""
    assert len(error_lines(done.stderr)) == 1
    assert "Traceback" not in done.stderr
    done = run_nok("purge", env=env)
    assert done.returncode == ExitCode.INTEGRITY
    assert file_state(vault_path) == before


# -- the message -------------------------------------------------------------------------


def test_a_strange_object_name_is_shown_on_one_line(cli_vault, vault_path: Path) -> None:
    plant(vault_path, 'CREATE TABLE "evil\nname\x1b[2J" (x);')
    result = cli_vault("status")
    assert result.exit_code == ExitCode.INTEGRITY
    (line,) = error_lines(result.stderr)
    assert "evil?name?[2J" in line
    assert "\x1b" not in result.stderr


def test_a_missing_index_is_refused(cli_vault, vault_path: Path) -> None:
    plant(vault_path, "DROP INDEX idx_notes_date;")
    result = cli_vault("status")
    assert result.exit_code == ExitCode.INTEGRITY
    (line,) = error_lines(result.stderr)
    assert "lacks the index idx_notes_date" in line


def test_verify_refuses_a_planted_object_as_json_too(cli_vault, vault_path: Path) -> None:
    plant(vault_path, PLANTED["trigger"][0])
    result = cli_vault("verify", "--json")
    assert result.exit_code == ExitCode.INTEGRITY
    assert result.stdout == ""
    assert "holds a trigger named keep_notes" in result.stderr


# -- backups -----------------------------------------------------------------------------


def test_a_backup_with_a_planted_trigger_is_not_restored(
    cli_vault, consent_id: str, vault_path: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "b" / "backup.db"
    result = cli_vault("backup", str(backup) + "/")
    assert result.exit_code == 0, result.stderr
    (made,) = [p for p in backup.iterdir() if p.suffix == ".db"]
    made.chmod(0o600)
    plant(made, SHADOW_ATTACK)
    before = file_state(vault_path)
    result = cli_vault("restore", str(made), "--yes")
    assert result.exit_code == ExitCode.INTEGRITY, result.stderr
    assert len(error_lines(result.stderr)) == 1
    assert file_state(vault_path) == before
    with pytest.raises(IntegrityError):
        Store.open_copy(made)


def test_the_check_runs_before_pending_migrations(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    Vault.create(
        path, admin="anne", passphrase=PASSPHRASE.encode(), now=NOW, kdf="interactive"
    ).close()
    last = MIGRATION_NAMES[-1]
    plant(path, PLANTED["view"][0])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [last])
    db.close()
    before = file_state(path)
    # Rerunning the last migration would fail on its existing columns with an SQLite error;
    # the planted view is found first, and nothing is migrated.
    with pytest.raises(IntegrityError):
        Vault.open(path)
    assert file_state(path) == before
