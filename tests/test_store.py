"""The vault file on disk: SQLite settings read back, who may open it, what opening may
never do (create or alter a file), busy and damaged files, ids, retention deadlines."""

from __future__ import annotations

import grp
import os
import re
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from conftest import NOW, PASSPHRASE

from vault import Vault, consents, ids, notes
from vault.errors import (
    BadInput,
    ExitCode,
    IntegrityError,
    NotAVault,
    StorageError,
    SymlinkRefused,
    UnsafePermissions,
    UnsupportedVersion,
    VaultBusy,
    VaultNotFound,
)
from vault.session import Unlocked
from vault.store import MIGRATIONS_TABLE, SCHEMA_VERSION, Store, sqlite_errors


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def make_vault(path: Path, **kwargs: object) -> None:
    Vault.create(
        path, admin="anne", passphrase=PASSPHRASE.encode(), now=NOW, kdf="interactive", **kwargs
    ).close()


# -- SQLite settings ---------------------------------------------------------------------


def test_pragmas_are_set_and_read_back_on_every_open(unlocked: Unlocked, vault_path: Path) -> None:
    store = Store.open(vault_path, busy_timeout=3.5)
    try:
        pragma = lambda name: store.conn.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert str(pragma("journal_mode")).lower() == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("secure_delete") == 1
        assert pragma("busy_timeout") == 3500
    finally:
        store.close()


def test_foreign_keys_cascade_notes_with_their_consent(unlocked: Unlocked) -> None:
    consent = consents.add(
        unlocked, consents.ConsentInput(subject="Kari", purpose="p", categories=("c",))
    )
    notes.add(unlocked, consent.id, "one")
    with unlocked.store.write():
        unlocked.store.conn.execute("DELETE FROM consents WHERE id = ?", [consent.id])
    assert unlocked.store.count_notes() == 0


def test_checkpoint_empties_the_wal(unlocked: Unlocked, vault_path: Path) -> None:
    consents.add(unlocked, consents.ConsentInput(subject="Kari", purpose="p", categories=("c",)))
    wal = vault_path.with_name(vault_path.name + "-wal")
    assert wal.exists()
    assert wal.stat().st_size > 0
    assert unlocked.store.checkpoint()
    assert wal.stat().st_size == 0


def test_schema_version_counts_the_migrations(unlocked: Unlocked) -> None:
    assert unlocked.store.schema_version() == SCHEMA_VERSION == 5
    assert unlocked.vault.status().schema_version == unlocked.store.schema_version()


def test_the_schema_is_read_without_sqlite_utils_and_named_as_it_names_it() -> None:
    """Opening a vault reads the applied migrations with plain SQL (sqlite-utils is
    imported only to change the schema): its table name must be sqlite-utils' own."""
    import sqlite_utils

    assert sqlite_utils.Migrations.migrations_table == MIGRATIONS_TABLE


# -- only init creates -------------------------------------------------------------------


def test_opening_a_missing_vault_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothere" / "vault.db"
    with pytest.raises(VaultNotFound) as info:
        Vault.open(missing)
    assert info.value.exit_code == ExitCode.NO_VAULT
    assert not missing.parent.exists()
    other = tmp_path / "typo.db"
    with pytest.raises(VaultNotFound):
        Vault.open(other)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_not_a_vault(tmp_path: Path) -> None:
    with pytest.raises(VaultNotFound):
        Vault.open(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is a shopping list\n", b"\x00" * 4096, b"SQLite format 2\x00"]
)
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(NotAVault) as info:
        Vault.open(path)
    assert info.value.exit_code == ExitCode.NO_VAULT
    assert snapshot(tmp_path) == {"notes.txt": content}


def test_an_sqlite_file_without_the_nok_schema_is_not_a_vault(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    path.chmod(0o600)
    with pytest.raises(NotAVault):
        Vault.open(path)


def test_a_damaged_vault_is_an_integrity_error(unlocked: Unlocked, vault_path: Path) -> None:
    unlocked.store.checkpoint()
    unlocked.close()
    for side in vault_path.parent.glob("vault.db-*"):
        side.unlink()
    data = bytearray(vault_path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    vault_path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        Vault.open(vault_path)
    assert info.value.exit_code == ExitCode.INTEGRITY


def test_a_symlinked_vault_is_refused(unlocked: Unlocked, vault_path: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(vault_path)
    with pytest.raises(SymlinkRefused) as info:
        Vault.open(link)
    assert info.value.exit_code == ExitCode.UNSAFE_PERMISSIONS


def test_a_symlinked_wal_is_refused(unlocked: Unlocked, vault_path: Path, tmp_path: Path) -> None:
    unlocked.close()
    wal = vault_path.with_name(vault_path.name + "-wal")
    wal.unlink(missing_ok=True)
    wal.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SymlinkRefused):
        Vault.open(vault_path)
    assert not (tmp_path / "elsewhere").exists()


# -- permissions -------------------------------------------------------------------------


def test_new_vault_is_private(unlocked: Unlocked, vault_path: Path) -> None:
    assert mode(vault_path) == 0o600
    assert mode(vault_path.parent) == 0o700
    for side in vault_path.parent.glob("vault.db-*"):
        assert mode(side) & 0o077 == 0


@pytest.mark.parametrize(
    ("bits", "who"), [(0o644, "every user"), (0o604, "every user"), (0o640, "its group")]
)
def test_a_vault_others_can_read_is_refused_with_a_fix(
    unlocked: Unlocked, vault_path: Path, bits: int, who: str
) -> None:
    unlocked.close()
    vault_path.chmod(bits)
    with pytest.raises(UnsafePermissions) as info:
        Vault.open(vault_path)
    assert info.value.exit_code == ExitCode.UNSAFE_PERMISSIONS
    assert who in info.value.message
    assert info.value.hint == f"restrict it: chmod 600 {vault_path}"
    os.chmod(vault_path, 0o600)  # the hint's fix is enough in one step
    Vault.open(vault_path).close()


def test_a_world_readable_wal_is_refused(unlocked: Unlocked, vault_path: Path) -> None:
    consents.add(unlocked, consents.ConsentInput(subject="Kari", purpose="p", categories=("c",)))
    wal = vault_path.with_name(vault_path.name + "-wal")
    wal.chmod(0o644)
    with pytest.raises(UnsafePermissions):
        Vault.open(vault_path)


def _primary_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


def test_group_vault_is_shared_with_the_group_only(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "vault.db"
    make_vault(path, group=_primary_group())
    assert mode(path) == 0o660
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o2770
    assert path.stat().st_gid == os.getgid()
    with Vault.open(path) as v:
        me = v.unlock("anne", PASSPHRASE.encode(), now=NOW)
        consents.add(me, consents.ConsentInput(subject="Kari", purpose="p", categories=("c",)))
        for side in path.parent.glob("vault.db-*"):
            assert mode(side) == 0o660, side
    path.chmod(0o664)
    with pytest.raises(UnsafePermissions) as info:
        Vault.open(path)
    assert info.value.hint == f"restrict it: chmod 660 {path}"


def test_group_bits_are_refused_without_group(unlocked: Unlocked, vault_path: Path) -> None:
    unlocked.close()
    vault_path.chmod(0o660)
    with pytest.raises(UnsafePermissions):
        Vault.open(vault_path)


def test_unknown_group_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    with pytest.raises(BadInput):
        make_vault(path, group="no-such-group-for-nok")
    assert not path.parent.exists()


# -- versions ----------------------------------------------------------------------------


def test_a_schema_from_a_newer_nok_is_refused(unlocked: Unlocked, vault_path: Path) -> None:
    with unlocked.store.write():
        unlocked.store.conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
            " VALUES ('nok', '9999_from_the_future', '2030-01-01')"
        )
    before = vault_path.read_bytes()
    with pytest.raises(UnsupportedVersion) as info:
        Vault.open(vault_path)
    assert info.value.exit_code == ExitCode.UNSUPPORTED_VERSION
    assert vault_path.read_bytes() == before


# -- busy --------------------------------------------------------------------------------


def test_a_held_write_lock_gives_vault_busy_after_the_timeout(
    unlocked: Unlocked, vault_path: Path
) -> None:
    blocker = sqlite3.connect(vault_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Vault.open(vault_path, busy_timeout=0.2) as v:
            assert v.status().active_consents == 0  # readers are never blocked (WAL)
            me = None
            started = time.perf_counter()
            with pytest.raises(VaultBusy) as info:
                me = v.unlock("anne", PASSPHRASE.encode(), now=NOW)
            assert me is None
            assert 0.15 < time.perf_counter() - started < 5
            assert info.value.exit_code == ExitCode.BUSY
            assert "0.2 s" in info.value.message
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("database is locked", VaultBusy),
        ("database or disk is full", StorageError),
        ("disk I/O error", StorageError),
        ("attempt to write a readonly database", StorageError),
    ],
)
def test_sqlite_errors_become_nok_errors(message: str, error: type[Exception]) -> None:
    with pytest.raises(error), sqlite_errors(1.0):
        raise sqlite3.OperationalError(message)


def test_malformed_database_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError), sqlite_errors(1.0):
        raise sqlite3.DatabaseError("database disk image is malformed")


# -- ids ---------------------------------------------------------------------------------

CROCKFORD = "[0-9A-HJKMNP-TV-Z]"


def test_id_format() -> None:
    for _ in range(200):
        assert re.fullmatch(f"C-{CROCKFORD}{{4}}-{CROCKFORD}{{4}}", ids.new_id("C"))
        assert re.fullmatch(f"N-{CROCKFORD}{{4}}-{CROCKFORD}{{4}}-{CROCKFORD}", ids.new_id("N"))


def test_ids_are_random_and_use_the_whole_alphabet() -> None:
    made = [ids.new_id("C") for _ in range(2000)]
    assert len(set(made)) == len(made)
    bodies = "".join(m[2:].replace("-", "") for m in made)
    assert set(bodies) == set(ids.ALPHABET)
    # No order leaks: consecutive ids are not sorted (p of 2000 sorted by chance ~ 0).
    assert made != sorted(made)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("C-7K2M-9Q4F", "C-7K2M-9Q4F"),
        ("c-7k2m-9q4f", "C-7K2M-9Q4F"),
        ("C7K2M9Q4F", "C-7K2M-9Q4F"),
        ("7K2M9Q4F", "C-7K2M-9Q4F"),
        (" c 7k2m 9q4f ", "C-7K2M-9Q4F"),
        ("C-OOII-LLOO", "C-0011-1100"),
        ("C-CAB0-DEFG", "C-CAB0-DEFG"),
        ("CAB0DEFG", "C-CAB0-DEFG"),
        ("cab0-defg", "C-CAB0-DEFG"),
    ],
)
def test_typed_consent_ids_are_normalised(typed: str, canonical: str) -> None:
    assert ids.parse_id(typed, "C", "consent") == canonical


def test_typed_note_ids_are_normalised() -> None:
    assert ids.parse_id("n-3xh8-p2dw-5", "N", "note") == "N-3XH8-P2DW-5"
    assert ids.parse_id("N3XH8P2DW5", "N", "note") == "N-3XH8-P2DW-5"
    assert ids.parse_id("NO1L-0000-0", "N", "note") == "N-N011-0000-0"
    assert ids.parse_id("N-NO1L-0000-0", "N", "note") == "N-N011-0000-0"


@pytest.mark.parametrize("typed", ["", "C-", "C-7K2M-9Q4", "C-7K2M-9Q4FF", "C-7K2M-9Q4U", "N-7K2M"])
def test_malformed_ids_are_bad_input(typed: str) -> None:
    with pytest.raises(BadInput) as info:
        ids.parse_id(typed, "C", "consent")
    assert info.value.exit_code == ExitCode.USAGE


def test_a_note_id_is_not_a_consent_id() -> None:
    with pytest.raises(BadInput):
        ids.parse_id(ids.new_id("N"), "C", "consent")
    with pytest.raises(BadInput):
        ids.parse_id("C-0000-0000", "N", "note")
    with pytest.raises(BadInput):
        ids.parse_id("X-0000-0000", "C", "consent")


# -- retention ---------------------------------------------------------------------------


def test_deadline_runs_from_the_later_of_consent_and_last_note() -> None:
    assert consents.deadline("2026-01-10", None, 30) == "2026-02-09"
    assert consents.deadline("2026-01-10", "2026-02-01", 30) == "2026-03-03"
    assert consents.deadline("2026-01-10", "2025-12-01", 30) == "2026-02-09"


def test_notes_move_the_deadline_forward_only(unlocked: Unlocked) -> None:
    consent = consents.add(
        unlocked,
        consents.ConsentInput(
            subject="Kari", purpose="p", categories=("c",), retain_days=30, given="2026-01-10"
        ),
    )
    assert consent.retain_until == "2026-02-09"
    notes.add(unlocked, consent.id, "later", date="2026-02-01")
    assert consents.show(unlocked, consent.id).retain_until == "2026-03-03"
    notes.add(unlocked, consent.id, "earlier", date="2026-01-15")
    assert consents.show(unlocked, consent.id).retain_until == "2026-03-03"
    assert unlocked.vault.status().next_deadline == "2026-03-03"
