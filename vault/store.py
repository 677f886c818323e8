"""The one module that speaks SQL: connection, pragmas, schema, migrations, queries.

Rows come back as small dataclasses holding what is on disk (ciphertexts stay
ciphertexts); encryption and decryption happen in the modules above this one.
"""

from __future__ import annotations

import contextlib
import json
import operator
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from vault import files
from vault.errors import (
    IntegrityError,
    NotAVault,
    ReadOnlyVault,
    StorageError,
    UnsupportedVersion,
    VaultBusy,
    VaultNotFound,
)

if TYPE_CHECKING:
    import sqlite_utils

MIGRATION_SET = "nok"
# The vault format (docs/format.md). Format 1 existed only in development: no vault in
# that format was ever in use, so format 2 reads none and refuses them (exit 8).
FORMAT = 2
DEFAULT_BUSY_TIMEOUT = 15.0

# sqlite-utils' record of applied migrations (sqlite_utils.Migrations.migrations_table).
MIGRATIONS_TABLE = "_sqlite_migrations"

# sqlite-utils builds and changes the schema; it is imported only to do that (creating a
# vault, upgrading an older one): reading the schema back is plain SQL, so the commands a
# counselor runs all day do not pay for importing it.


def _m0001_initial(db: sqlite_utils.Database) -> None:
    from sqlite_utils.db import ForeignKey

    db.table("settings").create({"key": str, "value": str}, pk="key")
    db.table("settings").insert({"key": "format", "value": str(FORMAT)})
    db.table("staff").create(
        {
            "name": str,
            "role": str,
            "role_tag": bytes,
            "created": str,
            "last_used": str,
            "master_version": int,
            "slot": bytes,
            "public_key": bytes,
            "sealed_master": bytes,
        },
        pk="name",
        not_null={"role", "created", "master_version", "slot", "public_key", "sealed_master"},
    )
    db.table("vault_keys").create(
        {"purpose": str, "master_version": int, "wrapped": bytes},
        pk="purpose",
        not_null={"master_version", "wrapped"},
    )
    db.table("consents").create(
        {
            "id": str,
            "status": str,
            "given": str,
            "created": str,
            "last_activity": str,
            "retain_days": int,
            "retain_until": str,
            "ended": str,
            "end_reason": str,
            "ended_by": str,
            "master_version": int,
            "key_version": int,
            "data_key": bytes,
            "record": bytes,
            "retention_tag": bytes,
            "notes_count": int,
            "notes_tag": bytes,
        },
        pk="id",
        not_null={"status", "given", "created", "retain_until", "key_version"},
    )
    db.table("consents").create_index(["status", "retain_until"])
    db.table("notes").create(
        {
            "id": str,
            "consent_id": str,
            "date": str,
            "created": str,
            "key_version": int,
            "seq": int,
            "record": bytes,
        },
        pk="id",
        not_null={"consent_id", "date", "created", "key_version", "seq", "record"},
        foreign_keys=[
            ForeignKey("notes", "consent_id", "consents", "id", on_delete="CASCADE"),
        ],
    )
    db.table("notes").create_index(["consent_id", "date"])
    db.table("notes").create_index(["date"])
    db.table("audit").create(
        {
            "seq": int,
            "ts": str,
            "actor": str,
            "action": str,
            "consent_id": str,
            "object_id": str,
            "prev": bytes,
            "hash": bytes,
            "mac": bytes,
        },
        pk="seq",
        not_null={"ts", "actor", "action", "prev", "hash"},
    )
    db.table("audit").create_index(["consent_id"])
    db.table("rotation").create(
        {"id": int, "kind": str, "started": str, "target_version": int, "state": str},
        pk="id",
        not_null={"kind", "started", "target_version"},
    )


def _m0002_keys(db: sqlite_utils.Database) -> None:
    # A deep rotation commits batch by batch; the cursor lets a rerun continue after a crash.
    rotation = db.table("rotation")
    rotation.add_column("actor", str)
    rotation.add_column("cursor", str)
    rotation.add_column("done", int)
    rotation.add_column("finished", str)


def _m0003_corrections(db: sqlite_utils.Database) -> None:
    from sqlite_utils.db import ForeignKey

    # Apart from the notes table, so that a note's own format stays as it was: an amended
    # note keeps its id and gets a row here; a deleted note leaves a tombstone without content.
    db.table("note_amendments").create(
        {"note_id": str, "amended": str, "amended_by": str},
        pk="note_id",
        not_null={"amended", "amended_by"},
        foreign_keys=[ForeignKey("note_amendments", "note_id", "notes", "id", on_delete="CASCADE")],
    )
    db.table("note_tombstones").create(
        {"id": str, "consent_id": str, "deleted": str, "reason": str, "deleted_by": str},
        pk="id",
        not_null={"consent_id", "deleted", "reason", "deleted_by"},
        foreign_keys=[
            ForeignKey("note_tombstones", "consent_id", "consents", "id", on_delete="CASCADE")
        ],
    )
    db.table("note_tombstones").create_index(["consent_id"])


# In the order they are applied; a name, once released, never changes.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite_utils.Database], None]], ...] = (
    ("0001_initial", _m0001_initial),
    ("0002_keys", _m0002_keys),
    ("0003_corrections", _m0003_corrections),
)
MIGRATION_NAMES = tuple(name for name, _ in MIGRATIONS)
SCHEMA_VERSION = len(MIGRATIONS)


def _apply_migrations(conn: sqlite3.Connection) -> None:
    """Apply every migration not yet applied, through sqlite-utils."""
    import sqlite_utils

    migrations = sqlite_utils.Migrations(MIGRATION_SET)
    for name, migration in MIGRATIONS:
        migrations(name=name)(migration)
    migrations.apply(sqlite_utils.Database(conn, execute_plugins=False, recursive_triggers=False))


# -- schema check --

# What each migration adds to sqlite_schema, as (type, name, table). Opening a vault refuses
# anything else: a trigger planted in the file would copy rows aside before an erasure (and
# VACUUM INTO carries it into every backup), and trusted_schema=OFF does not stop plain SQL
# triggers. Names only, not SQL text: sqlite-utils versions word the same CREATE differently.
# A migration that adds an object adds it here; tests/test_schema.py fails otherwise.
SCHEMA_OBJECTS: dict[str, frozenset[tuple[str, str, str]]] = {
    "0001_initial": frozenset(
        {
            ("table", "settings", "settings"),
            ("table", "staff", "staff"),
            ("table", "vault_keys", "vault_keys"),
            ("table", "consents", "consents"),
            ("index", "idx_consents_status_retain_until", "consents"),
            ("table", "notes", "notes"),
            ("index", "idx_notes_consent_id_date", "notes"),
            ("index", "idx_notes_date", "notes"),
            ("table", "audit", "audit"),
            ("index", "idx_audit_consent_id", "audit"),
            ("table", "rotation", "rotation"),
        }
    ),
    "0002_keys": frozenset(),
    "0003_corrections": frozenset(
        {
            ("table", "note_amendments", "note_amendments"),
            ("table", "note_tombstones", "note_tombstones"),
            ("index", "idx_note_tombstones_consent_id", "note_tombstones"),
        }
    ),
}
# sqlite-utils' record of applied migrations; allowed, not required (older versions made no index).
MIGRATIONS_OBJECTS = frozenset(
    {
        ("table", MIGRATIONS_TABLE, MIGRATIONS_TABLE),
        ("index", "idx__sqlite_migrations_migration_set_name", MIGRATIONS_TABLE),
    }
)
_SHOWN_NAME_LENGTH = 60


def _known_objects(applied: Iterable[str]) -> frozenset[tuple[str, str, str]]:
    """The objects the given migrations make, without sqlite-utils' and SQLite's own."""
    return frozenset().union(*(SCHEMA_OBJECTS[name] for name in applied))


def _sqlite_own(kind: str, name: str, table: str, tables: set[str]) -> bool:
    """Objects SQLite makes itself: PRIMARY KEY indexes, AUTOINCREMENT counters, ANALYZE."""
    if kind == "index":
        return name.startswith("sqlite_autoindex_") and table in tables
    return kind == "table" and (name == "sqlite_sequence" or name.startswith("sqlite_stat"))


def _shown(name: str) -> str:
    """An object name fit for a one-line message (the file's author chose it)."""
    clean = "".join(c if c.isascii() and c.isprintable() else "?" for c in name)
    return clean[:_SHOWN_NAME_LENGTH]


def _unexpected_object(rows: list[tuple[str, str, str]]) -> IntegrityError | None:
    allowed = _known_objects(SCHEMA_OBJECTS) | MIGRATIONS_OBJECTS
    tables = {name for kind, name, _ in allowed if kind == "table"}
    for kind, name, table in rows:
        if (kind, name, table) in allowed or _sqlite_own(kind, name, table, tables):
            continue
        return IntegrityError(
            "the vault file holds a {kind} named {name} that nok does not make: "
            "someone changed the file outside nok",
            kind=_shown(str(kind)),
            name=_shown(str(name)),
        )
    return None


def _missing_object(
    rows: list[tuple[str, str, str]], applied: Iterable[str]
) -> IntegrityError | None:
    missing = sorted(_known_objects(applied) - set(rows))
    if not missing:
        return None
    kind, name, _ = missing[0]
    return IntegrityError(
        "the vault file lacks the {kind} {name} that nok needs: "
        "someone changed the file outside nok",
        kind=kind,
        name=name,
    )


@dataclass
class StaffRow:
    name: str
    role: str
    role_tag: bytes | None
    created: str
    last_used: str | None
    master_version: int
    slot: bytes
    public_key: bytes
    sealed_master: bytes


@dataclass
class ConsentRow:
    id: str
    status: str
    given: str
    created: str
    last_activity: str | None
    retain_days: int | None
    retain_until: str
    ended: str | None
    end_reason: str | None
    ended_by: str | None
    master_version: int | None
    key_version: int
    data_key: bytes | None
    record: bytes | None
    retention_tag: bytes | None
    notes_count: int | None
    notes_tag: bytes | None


@dataclass
class NoteRow:
    id: str
    consent_id: str
    date: str
    created: str
    key_version: int
    seq: int
    record: bytes


@dataclass
class KeyedNoteRow(NoteRow):
    """A note as list and search stream it: with its consent's wrapped data key alongside."""

    master_version: int | None
    data_key: bytes | None
    amended: str | None = None
    amended_by: str | None = None


@dataclass
class AmendmentRow:
    """When and by whom a note's text, kind or date was last replaced."""

    note_id: str
    amended: str
    amended_by: str


@dataclass
class NoteTombstoneRow:
    """What stays of a deleted note: no content, only that it existed and why it went."""

    id: str
    consent_id: str
    deleted: str
    reason: str
    deleted_by: str


@dataclass
class AuditRow:
    seq: int
    ts: str
    actor: str
    action: str
    consent_id: str | None
    object_id: str | None
    prev: bytes
    hash: bytes
    mac: bytes | None


@dataclass
class RotationRow:
    id: int
    kind: str
    started: str
    target_version: int
    state: str | None
    actor: str | None
    cursor: str | None
    done: int | None
    finished: str | None


R = TypeVar("R")


def _columns(cls: type[Any]) -> str:
    return ", ".join(f.name for f in fields(cls))


_CONSENT_COLS = _columns(ConsentRow)
_NOTE_COLS = _columns(NoteRow)
_STAFF_COLS = _columns(StaffRow)
_AUDIT_COLS = _columns(AuditRow)
_ROTATION_COLS = _columns(RotationRow)
_AMENDMENT_COLS = _columns(AmendmentRow)
_NOTE_TOMBSTONE_COLS = _columns(NoteTombstoneRow)
# What an erasure blanks in a consent's row: its key, its sealed record and its seals.
_PERSONAL_CONSENT_COLS = ("data_key", "record", "retention_tag", "notes_count", "notes_tag")


@contextlib.contextmanager
def sqlite_errors(busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Iterator[None]:
    """Turn sqlite3 exceptions into nok errors with a user-facing message."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise VaultBusy(seconds=busy_timeout) from None
        if "readonly" in text or "read-only" in text:
            raise ReadOnlyVault(reason=str(exc)) from None
        if "full" in text or "i/o" in text:
            raise StorageError(reason=str(exc)) from None
        raise
    except sqlite3.DatabaseError as exc:
        text = str(exc).lower()
        if "not a database" in text or "encrypted" in text:
            raise IntegrityError(where="the vault file (not a SQLite database)") from None
        if "malformed" in text or "corrupt" in text:
            raise IntegrityError(where="the vault file (damaged SQLite pages)") from None
        raise


def _is_copy(path: Path) -> bool:
    """Whether the file is not in WAL mode (bytes 18 and 19 of the SQLite header are 2 in
    WAL mode): a copy made by ``nok backup``, never a vault nok has opened."""
    with path.open("rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18:20] != b"\x02\x02"


class Store:
    """An open SQLite connection to one vault file."""

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout: float) -> None:
        self.path = path
        self.conn = conn
        self.busy_timeout = busy_timeout
        self._schema_cookie: int | None = None
        self.read_only = False
        # Work that must happen only once the transaction in progress has committed (the
        # audit anchor beside the file), by name: a later registration replaces an earlier.
        self._after_commit: dict[str, Callable[[], None]] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path, *, group: str | None, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> Store:
        """Create a new, empty vault file with the current schema."""
        files.create_private_file(path, group)
        store = cls._connect(path, busy_timeout)
        try:
            with sqlite_errors(busy_timeout):
                _apply_migrations(store.conn)
            store.check_objects(MIGRATION_NAMES)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(
        cls, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, read_only: bool = False
    ) -> Store:
        """Open an existing vault read-write; never creates one.

        With ``read_only``, a file not in WAL mode (a copy made by ``nok backup``) is
        opened read-only and left byte for byte as it was; a live vault opens as usual.

        Raises:
            VaultNotFound, SymlinkRefused, UnsafePermissions: see files.check_existing and
                files.check_directory.
            NotAVault: the file holds no nok schema.
            UnsupportedVersion: a newer nok made the schema.
            IntegrityError: the file is not SQLite or is damaged.
            VaultBusy: another process held a lock for longer than ``busy_timeout``.
        """
        files.check_existing(path, group_ok=True)
        store = cls._connect(path, busy_timeout, read_only=read_only and _is_copy(path))
        try:
            store._check_schema()
            group_ok = store.get_setting("group") is not None
            files.check_directory(path.absolute().parent, group_ok=group_ok)
            # The mode only: opening and closing the file again here would drop every
            # POSIX lock SQLite holds on it, and another process could then reset the WAL.
            files.check_mode(path, path.stat().st_mode, group_ok=group_ok)
            for side in files.side_files(path):
                if side.exists():
                    files.check_mode(side, side.stat().st_mode, group_ok=group_ok)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _connect(cls, path: Path, busy_timeout: float, *, read_only: bool = False) -> Store:
        uri = "file:" + str(path.absolute()).replace("?", "%3f").replace("#", "%23")
        uri += "?mode=ro" if read_only else "?mode=rw"
        with sqlite_errors(busy_timeout):
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
            try:
                store = cls(path, conn, busy_timeout)
                store.read_only = read_only
                store._pragmas()
            except BaseException:
                conn.close()
                raise
        return store

    def _pragmas(self) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA secure_delete = ON")
        c.execute("PRAGMA temp_store = MEMORY")
        c.execute("PRAGMA trusted_schema = OFF")
        checks = {
            "foreign_keys": c.execute("PRAGMA foreign_keys").fetchone()[0] == 1,
            "secure_delete": c.execute("PRAGMA secure_delete").fetchone()[0] == 1,
        }
        if not self.read_only:
            # Setting WAL mode rewrites the file's header: never on a copy only read.
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            c.execute("PRAGMA synchronous = FULL")
            checks["journal_mode"] = str(mode).lower() == "wal"
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise StorageError(reason="SQLite refused " + ", ".join(failed))

    def _check_schema(self) -> None:
        applied = self._applied()
        if applied is None:
            raise NotAVault(path=str(self.path))
        unknown = [name for name in applied if name not in MIGRATION_NAMES]
        if unknown:
            raise UnsupportedVersion(what="the vault's schema", version=len(applied))
        self.check_objects(applied)
        self._check_format()
        if len(applied) < len(MIGRATION_NAMES):
            with self.write():
                _apply_migrations(self.conn)

    def _applied(self) -> list[str] | None:
        """The migrations applied, in order; None when the file holds no nok schema."""
        with sqlite_errors(self.busy_timeout):
            tables = {
                str(r[0])
                for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if "settings" not in tables or MIGRATIONS_TABLE not in tables:
                return None
            rows = self.conn.execute(
                f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid",
                [MIGRATION_SET],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _check_format(self) -> None:
        """Raises UnsupportedVersion for a vault in a format other than FORMAT."""
        found = self.get_setting("format")
        if found != str(FORMAT):
            raise UnsupportedVersion(what="the vault", version=found or 1)

    def schema_version(self) -> int:
        return len(self._applied() or ())

    # -- schema check ----------------------------------------------------------------------

    def check_objects(self, applied: Iterable[str] | None = None) -> None:
        """Refuse a file holding any schema object nok's migrations do not make.

        With ``applied`` (migration names), also refuse one of theirs that is missing.
        Remembers the schema cookie, so that a write can tell when it must look again.

        Raises:
            IntegrityError: a trigger, view, table or index nok does not make, or a
                table or index that the applied migrations make is missing.
        """
        with sqlite_errors(self.busy_timeout), self.read():
            cookie = int(self.conn.execute("PRAGMA schema_version").fetchone()[0])
            rows = self.conn.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
        problem = _unexpected_object(rows)
        if problem is None and applied is not None:
            problem = _missing_object(rows, applied)
        if problem is not None:
            raise problem
        self._schema_cookie = cookie

    def _recheck_objects(self) -> None:
        """Inside a write transaction: look again if the schema changed since the last look.

        The cookie costs one header read; another process cannot change the schema while
        this transaction holds the write lock, so what is checked here is what the write sees.
        """
        cookie = int(self.conn.execute("PRAGMA schema_version").fetchone()[0])
        if cookie != self._schema_cookie:
            self.check_objects()

    def close(self) -> None:
        self.conn.close()

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Store]:
        """A write transaction taken at once (BEGIN IMMEDIATE), so waiting happens up front."""
        if self.conn.in_transaction:
            yield self
            return
        with sqlite_errors(self.busy_timeout):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._recheck_objects()
                yield self
            except BaseException:
                self._after_commit.clear()
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        pending, self._after_commit = self._after_commit, {}
        for action in pending.values():
            action()

    def after_commit(self, name: str, action: Callable[[], None]) -> None:
        """Run ``action`` once the write transaction in progress commits (never on rollback);
        outside a transaction, at once."""
        if self.conn.in_transaction:
            self._after_commit[name] = action
        else:
            action()

    def end_open_transaction(self) -> bool:
        """Roll back a transaction an interrupted caller left open; True if there was one.

        A long-lived connection (``nok shell``) must not let the next command's writes join
        it (:meth:`write` joins an open transaction) or read from its old snapshot.
        """
        if not self.conn.in_transaction:
            return False
        with sqlite_errors(self.busy_timeout):
            self.conn.execute("ROLLBACK")
        return True

    @contextlib.contextmanager
    def read(self) -> Iterator[Store]:
        """A read transaction: one consistent snapshot for several queries."""
        if self.conn.in_transaction:
            yield self
            return
        with sqlite_errors(self.busy_timeout):
            self.conn.execute("BEGIN")
            try:
                yield self
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")

    def checkpoint(self) -> bool:
        """Move the WAL into the main file and truncate it; True when it fully succeeded.

        Deleted content stays in the -wal file until this runs, whatever secure_delete says.
        """
        with sqlite_errors(self.busy_timeout):
            busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(busy) == 0

    def _one(self, cls: type[R], sql: str, params: Iterable[Any] = ()) -> R | None:
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else cls(*row)

    def _many(self, cls: type[R], sql: str, params: Iterable[Any] = ()) -> Iterator[R]:
        with sqlite_errors(self.busy_timeout):
            cursor = self.conn.execute(sql, tuple(params))
            while batch := cursor.fetchmany(500):
                for row in batch:
                    yield cls(*row)

    def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> int:
        with sqlite_errors(self.busy_timeout):
            return self.conn.execute(sql, tuple(params)).rowcount

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with sqlite_errors(self.busy_timeout):
            self.conn.executemany(sql, rows)

    # -- settings --------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        value = self._scalar("SELECT value FROM settings WHERE key = ?", [key])
        return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def settings(self) -> dict[str, str]:
        with sqlite_errors(self.busy_timeout):
            return dict(self.conn.execute("SELECT key, value FROM settings").fetchall())

    # -- staff -----------------------------------------------------------------------------

    def insert_staff(self, row: StaffRow) -> None:
        self._exec(
            f"INSERT INTO staff ({_STAFF_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [getattr(row, f.name) for f in fields(StaffRow)],
        )

    def get_staff(self, name: str) -> StaffRow | None:
        return self._one(StaffRow, f"SELECT {_STAFF_COLS} FROM staff WHERE name = ?", [name])

    def list_staff(self) -> list[StaffRow]:
        return list(self._many(StaffRow, f"SELECT {_STAFF_COLS} FROM staff ORDER BY name"))

    def update_staff_slot(self, name: str, slot: bytes, *, was: bytes) -> int:
        """Replace ``name``'s slot only if it is still ``was``; returns rows changed."""
        return self._exec(
            "UPDATE staff SET slot = ? WHERE name = ? AND slot = ?", [slot, name, was]
        )

    def update_staff_master(self, name: str, sealed_master: bytes, master_version: int) -> None:
        self._exec(
            "UPDATE staff SET sealed_master = ?, master_version = ? WHERE name = ?",
            [sealed_master, master_version, name],
        )

    def update_staff_role(self, name: str, role: str, role_tag: bytes) -> None:
        self._exec("UPDATE staff SET role = ?, role_tag = ? WHERE name = ?", [role, role_tag, name])

    def touch_staff(self, name: str, when: str) -> None:
        self._exec("UPDATE staff SET last_used = ? WHERE name = ?", [when, name])

    def delete_staff(self, name: str) -> int:
        return self._exec("DELETE FROM staff WHERE name = ?", [name])

    def count_admins(self) -> int:
        return int(self._scalar("SELECT count(*) FROM staff WHERE role = 'admin'"))

    # -- wrapped vault-wide keys -----------------------------------------------------------

    def get_vault_key(self, purpose: str) -> tuple[int, bytes] | None:
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(
                "SELECT master_version, wrapped FROM vault_keys WHERE purpose = ?", [purpose]
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def put_vault_key(self, purpose: str, master_version: int, wrapped: bytes) -> None:
        self._exec(
            "INSERT INTO vault_keys (purpose, master_version, wrapped) VALUES (?, ?, ?)"
            " ON CONFLICT(purpose) DO UPDATE SET master_version = excluded.master_version,"
            " wrapped = excluded.wrapped",
            [purpose, master_version, wrapped],
        )

    def list_vault_keys(self) -> list[tuple[str, int, bytes]]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT purpose, master_version, wrapped FROM vault_keys ORDER BY purpose"
            ).fetchall()
        return [(str(p), int(v), bytes(w)) for p, v, w in rows]

    # -- keys ------------------------------------------------------------------------------

    def consent_keys(self) -> list[tuple[str, int | None, bytes]]:
        """(id, master version, wrapped data key) of every consent that still has a key."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT id, master_version, data_key FROM consents"
                " WHERE data_key IS NOT NULL ORDER BY id"
            ).fetchall()
        return [(str(i), None if v is None else int(v), bytes(k)) for i, v, k in rows]

    def rewrap_consent_keys(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Set (id, master version, wrapped data key) for many consents at once."""
        self._exec_many(
            "UPDATE consents SET master_version = ?, data_key = ? WHERE id = ?",
            ((version, wrapped, consent_id) for consent_id, version, wrapped in rows),
        )

    def reseal_staff(self, rows: Iterable[tuple[str, bytes, bytes, int]]) -> None:
        """Set (name, sealed master key, role tag, master version) for many staff rows."""
        self._exec_many(
            "UPDATE staff SET sealed_master = ?, role_tag = ?, master_version = ? WHERE name = ?",
            ((sealed, tag, version, name) for name, sealed, tag, version in rows),
        )

    def replace_staff_keys(
        self, name: str, *, slot: bytes, public_key: bytes, sealed_master: bytes, role_tag: bytes
    ) -> int:
        return self._exec(
            "UPDATE staff SET slot = ?, public_key = ?, sealed_master = ?, role_tag = ?"
            " WHERE name = ?",
            [slot, public_key, sealed_master, role_tag, name],
        )

    def delete_setting(self, key: str) -> None:
        self._exec("DELETE FROM settings WHERE key = ?", [key])

    def start_rotation(self, *, kind: str, started: str, target_version: int, actor: str) -> int:
        with sqlite_errors(self.busy_timeout):
            cursor = self.conn.execute(
                "INSERT INTO rotation (kind, started, target_version, state, actor, cursor, done)"
                " VALUES (?, ?, ?, 'running', ?, '', 0)",
                [kind, started, target_version, actor],
            )
        return int(cursor.lastrowid or 0)

    def pending_rotation(self) -> RotationRow | None:
        return self._one(
            RotationRow,
            f"SELECT {_ROTATION_COLS} FROM rotation WHERE state = 'running' ORDER BY id LIMIT 1",
        )

    def list_rotations(self) -> list[RotationRow]:
        return list(self._many(RotationRow, f"SELECT {_ROTATION_COLS} FROM rotation ORDER BY id"))

    def advance_rotation(self, rotation_id: int, *, cursor: str, done: int) -> None:
        self._exec(
            "UPDATE rotation SET cursor = ?, done = ? WHERE id = ?", [cursor, done, rotation_id]
        )

    def finish_rotation(self, rotation_id: int, *, finished: str) -> None:
        self._exec(
            "UPDATE rotation SET state = 'done', finished = ? WHERE id = ?",
            [finished, rotation_id],
        )

    def key_versioned_tables(self) -> list[str]:
        """Tables with a key_version column: the ones holding fields under data keys."""
        with sqlite_errors(self.busy_timeout):
            return [
                str(name)
                for (name,) in self.conn.execute(
                    "SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) p"
                    " WHERE m.type = 'table' AND p.name = 'key_version' ORDER BY m.name"
                )
            ]

    def rekey_counts(self, after: str) -> tuple[int, int]:
        """(consents with a data key, their notes) whose id sorts after ``after``."""
        with sqlite_errors(self.busy_timeout):
            consents, notes = self.conn.execute(
                "SELECT count(*), coalesce(sum("
                " (SELECT count(*) FROM notes n WHERE n.consent_id = c.id)), 0)"
                " FROM consents c WHERE c.id > ? AND c.data_key IS NOT NULL",
                [after],
            ).fetchone()
        return int(consents), int(notes)

    def next_rekey_batch(
        self, after: str, *, max_notes: int, max_consents: int
    ) -> tuple[list[ConsentRow], list[NoteRow]]:
        """The next consents by id after ``after`` (and all their notes), about
        ``max_notes`` notes in all; always at least one consent while any is left."""
        with sqlite_errors(self.busy_timeout):
            counts = self.conn.execute(
                "SELECT c.id, (SELECT count(*) FROM notes n WHERE n.consent_id = c.id)"
                " FROM consents c WHERE c.id > ? AND c.data_key IS NOT NULL"
                " ORDER BY c.id LIMIT ?",
                [after, max_consents],
            ).fetchall()
        if not counts:
            return [], []
        last, total = str(counts[0][0]), 0
        for consent_id, notes in counts:
            if total and total + int(notes) > max_notes:
                break
            last, total = str(consent_id), total + int(notes)
        consents = list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents"
                " WHERE id > ? AND id <= ? AND data_key IS NOT NULL ORDER BY id",
                [after, last],
            )
        )
        notes = list(
            self._many(
                NoteRow,
                f"SELECT {_NOTE_COLS} FROM notes WHERE consent_id > ? AND consent_id <= ?",
                [after, last],
            )
        )
        return consents, notes

    def update_consents_rekeyed(self, rows: Iterable[ConsentRow]) -> None:
        """Write new keys, key versions and ciphertexts of many consents at once."""
        columns = ("master_version", "key_version", *_PERSONAL_CONSENT_COLS)
        assignments = ", ".join(f"{col} = ?" for col in columns)
        self._exec_many(
            f"UPDATE consents SET {assignments} WHERE id = ?",
            ([*(getattr(r, col) for col in columns), r.id] for r in rows),
        )

    def update_notes_rekeyed(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Set (id, key version, record) of many notes at once."""
        self._exec_many(
            "UPDATE notes SET key_version = ?, record = ? WHERE id = ?",
            ((version, record, note_id) for note_id, version, record in rows),
        )

    # -- consents --------------------------------------------------------------------------

    def insert_consent(self, row: ConsentRow) -> None:
        placeholders = ", ".join("?" for _ in fields(ConsentRow))
        self._exec(
            f"INSERT INTO consents ({_CONSENT_COLS}) VALUES ({placeholders})",
            [getattr(row, f.name) for f in fields(ConsentRow)],
        )

    def insert_consents(self, rows: Iterable[ConsentRow]) -> None:
        placeholders = ", ".join("?" for _ in fields(ConsentRow))
        values = operator.attrgetter(*(f.name for f in fields(ConsentRow)))
        self._exec_many(
            f"INSERT INTO consents ({_CONSENT_COLS}) VALUES ({placeholders})", map(values, rows)
        )

    def consent_id_exists(self, consent_id: str) -> bool:
        return self._scalar("SELECT 1 FROM consents WHERE id = ?", [consent_id]) is not None

    def get_consent(self, consent_id: str) -> ConsentRow | None:
        return self._one(
            ConsentRow, f"SELECT {_CONSENT_COLS} FROM consents WHERE id = ?", [consent_id]
        )

    def iter_consents(self, *, include_ended: bool) -> Iterator[ConsentRow]:
        where = "" if include_ended else "WHERE status = 'active'"
        return self._many(
            ConsentRow, f"SELECT {_CONSENT_COLS} FROM consents {where} ORDER BY given, id"
        )

    def update_consent_retention(
        self, consent_id: str, *, last_activity: str | None, retain_until: str
    ) -> None:
        """Keyless: the erasure's tombstone and a new vault default (neither is sealed)."""
        self._exec(
            "UPDATE consents SET last_activity = ?, retain_until = ? WHERE id = ?",
            [last_activity, retain_until, consent_id],
        )

    def update_consent_sealed(
        self,
        consent_id: str,
        *,
        last_activity: str | None,
        retain_days: int | None,
        retain_until: str,
        retention_tag: bytes,
        notes: tuple[int, bytes] | None = None,
    ) -> None:
        """Set a consent's retention with its new seal, and with ``notes`` its new note
        count and note seal."""
        count, tag = (None, None) if notes is None else notes
        self._exec(
            "UPDATE consents SET last_activity = ?, retain_days = ?, retain_until = ?,"
            " retention_tag = ?, notes_count = coalesce(?, notes_count),"
            " notes_tag = coalesce(?, notes_tag) WHERE id = ?",
            [last_activity, retain_days, retain_until, retention_tag, count, tag, consent_id],
        )

    def note_chain(self, consent_id: str) -> list[tuple[str, int, bytes]]:
        """(id, seq, record tag) of every note under ``consent_id`` in order of seq: what
        its note seal covers (a tampered cell comes back as it is stored)."""
        with sqlite_errors(self.busy_timeout):
            return self.conn.execute(
                "SELECT id, seq, substr(record, -16) FROM notes WHERE consent_id = ?"
                " ORDER BY seq, id",
                [consent_id],
            ).fetchall()

    def active_consents_without_notes(self) -> Iterator[str]:
        """Ids of active consents that hold no note, by id, streamed."""
        with sqlite_errors(self.busy_timeout):
            cursor = self.conn.execute(
                "SELECT c.id FROM consents c WHERE c.status = 'active' AND NOT EXISTS"
                " (SELECT 1 FROM notes n WHERE n.consent_id = c.id) ORDER BY c.id"
            )
            while batch := cursor.fetchmany(500):
                yield from (str(r[0]) for r in batch)

    def iter_notes_by_consent(self) -> Iterator[NoteRow]:
        """Every note, grouped by consent and in order of seq within it, streamed."""
        return self._many(NoteRow, f"SELECT {_NOTE_COLS} FROM notes ORDER BY consent_id, seq, id")

    def sample_consent_keys(self) -> list[tuple[str, int | None, bytes]]:
        """(id, master version, wrapped data key) of the first, the last and a random
        active consent that has a key (at most three rows, each found through the rowid)."""
        # NOT INDEXED: walked in rowid order each stops at its first match; through the
        # status index SQLite would sort every active consent first (0.4 s at 100,000).
        keyed = "FROM consents NOT INDEXED WHERE status = 'active' AND data_key IS NOT NULL"
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT id, master_version, data_key FROM consents WHERE rowid IN ("
                f" (SELECT rowid {keyed} ORDER BY rowid LIMIT 1),"
                f" (SELECT rowid {keyed} ORDER BY rowid DESC LIMIT 1),"
                f" (SELECT rowid {keyed} AND rowid >= abs(random()) %"
                "  (SELECT max(rowid) FROM consents) ORDER BY rowid LIMIT 1))"
            ).fetchall()
        return [(str(i), v, k) for i, v, k in rows]

    def tombstone_consent(
        self, consent_id: str, *, status: str, ended: str, reason: str, ended_by: str
    ) -> None:
        """Delete every note under the consent and null its personal columns in place.

        With secure_delete on, SQLite zeroes the freed cells; the caller checkpoints the WAL.
        """
        self._exec("DELETE FROM notes WHERE consent_id = ?", [consent_id])
        self._exec("DELETE FROM note_tombstones WHERE consent_id = ?", [consent_id])
        nulls = ", ".join(f"{col} = NULL" for col in _PERSONAL_CONSENT_COLS)
        self._exec(
            f"UPDATE consents SET status = ?, ended = ?, end_reason = ?, ended_by = ?, {nulls}"
            " WHERE id = ?",
            [status, ended, reason, ended_by, consent_id],
        )

    def due_consents(self, today: str) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT id FROM consents WHERE status = 'active' AND retain_until < ?"
                " ORDER BY retain_until, id",
                [today],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def update_consent_keys(
        self, consent_id: str, *, master_version: int, key_version: int, data_key: bytes
    ) -> None:
        self._exec(
            "UPDATE consents SET master_version = ?, key_version = ?, data_key = ? WHERE id = ?",
            [master_version, key_version, data_key, consent_id],
        )

    # -- notes -----------------------------------------------------------------------------

    def insert_note(self, row: NoteRow) -> None:
        self._exec(
            f"INSERT INTO notes ({_NOTE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [getattr(row, f.name) for f in fields(NoteRow)],
        )

    def insert_notes(self, rows: Iterable[NoteRow]) -> None:
        values = operator.attrgetter(*(f.name for f in fields(NoteRow)))
        self._exec_many(
            f"INSERT INTO notes ({_NOTE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", map(values, rows)
        )

    def note_id_exists(self, note_id: str) -> bool:
        """Also true for a deleted note's id: its tombstone keeps it from being reused."""
        return (
            self._scalar(
                "SELECT 1 FROM notes WHERE id = ? UNION ALL SELECT 1 FROM note_tombstones"
                " WHERE id = ?",
                [note_id, note_id],
            )
            is not None
        )

    def get_note(self, note_id: str) -> NoteRow | None:
        return self._one(NoteRow, f"SELECT {_NOTE_COLS} FROM notes WHERE id = ?", [note_id])

    def iter_notes(
        self, *, consent_id: str | None = None, since: str | None = None
    ) -> Iterator[NoteRow]:
        """Notes ordered by date, streamed from the database in batches."""
        clauses, params = [], []
        if consent_id is not None:
            clauses.append("consent_id = ?")
            params.append(consent_id)
        if since is not None:
            clauses.append("date >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._many(
            NoteRow, f"SELECT {_NOTE_COLS} FROM notes {where} ORDER BY date, created, id", params
        )

    def ids_starting(self, kind: str, start: str, limit: int) -> list[str]:
        """Up to ``limit`` ids beginning with ``start``, in order: of active consents for
        ``kind`` "consent", of notes for "note". A range over the primary key, so it stays
        fast in a vault of a million notes."""
        table = {"consent": "consents WHERE status = 'active' AND", "note": "notes WHERE"}[kind]
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                f"SELECT id FROM {table} id >= ? AND id < ? ORDER BY id LIMIT ?",
                # Ids are ASCII letters, digits and dashes, all below DEL.
                [start, start + "\x7f", limit],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def note_ids_for_consent(self, consent_id: str) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT id FROM notes WHERE consent_id = ?", [consent_id]
            ).fetchall()
        return [str(r[0]) for r in rows]

    # -- counts and status -----------------------------------------------------------------

    def count_consents(self, status: str | None = "active") -> int:
        if status is None:
            return int(self._scalar("SELECT count(*) FROM consents"))
        return int(self._scalar("SELECT count(*) FROM consents WHERE status = ?", [status]))

    def count_notes(self, consent_id: str | None = None) -> int:
        if consent_id is None:
            return int(self._scalar("SELECT count(*) FROM notes"))
        return int(self._scalar("SELECT count(*) FROM notes WHERE consent_id = ?", [consent_id]))

    def next_deadline(self) -> str | None:
        value = self._scalar("SELECT min(retain_until) FROM consents WHERE status = 'active'")
        return None if value is None else str(value)

    # -- audit -----------------------------------------------------------------------------

    def last_audit(self) -> AuditRow | None:
        return self._one(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit ORDER BY seq DESC LIMIT 1")

    def insert_audit(self, row: AuditRow) -> None:
        self.insert_audit_many([row])

    def insert_audit_many(self, rows: Iterable[AuditRow]) -> None:
        self._exec_many(
            f"INSERT INTO audit ({_AUDIT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ([getattr(row, f.name) for f in fields(AuditRow)] for row in rows),
        )

    def newest_audit_ts(self, *, after_seq: int, not_after: str) -> str | None:
        """The latest entry time after entry ``after_seq`` that is not later than ``not_after``."""
        value = self._scalar(
            "SELECT max(ts) FROM audit WHERE seq > ? AND ts <= ?", [after_seq, not_after]
        )
        return None if value is None else str(value)

    def iter_audit(self) -> Iterator[AuditRow]:
        return self._many(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit ORDER BY seq")

    def unsealed_audit(self) -> list[AuditRow]:
        return list(
            self._many(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit WHERE mac IS NULL ORDER BY seq")
        )

    def set_audit_mac(self, seq: int, mac: bytes) -> None:
        self._exec("UPDATE audit SET mac = ? WHERE seq = ?", [mac, seq])

    # -- audit and backup ------------------------------------------------------------------

    def audit_unsealed_tail(self) -> list[AuditRow]:
        """Entries without a MAC after the last entry that has one (read from the end)."""
        return list(
            self._many(
                AuditRow,
                f"SELECT {_AUDIT_COLS} FROM audit WHERE seq > coalesce("
                " (SELECT seq FROM audit WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1), 0)"
                " ORDER BY seq",
            )
        )

    def audit_entry(self, seq: int) -> AuditRow | None:
        return self._one(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit WHERE seq = ?", [seq])

    def count_audit(self) -> int:
        return int(self._scalar("SELECT count(*) FROM audit"))

    def audit_entries(
        self,
        *,
        since: str | None = None,
        actor: str | tuple[str, ...] | None = None,
        consent_id: str | None = None,
    ) -> Iterator[AuditRow]:
        """Entries in order, filtered by timestamp (``ts >= since``), actor and consent.

        ``actor`` is one name, or several (a staff name and its keyless form).
        """
        clauses: list[str] = []
        params: list[str] = []
        for clause, value in (("ts >= ?", since), ("consent_id = ?", consent_id)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        if actor is not None:
            names = (actor,) if isinstance(actor, str) else actor
            clauses.append(f"actor IN ({', '.join('?' * len(names))})")
            params.extend(names)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._many(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit {where} ORDER BY seq", params)

    def integrity_problems(self) -> list[str]:
        """SQLite's page, index and foreign-key checks; an empty list when all pass."""
        with sqlite_errors(self.busy_timeout):
            lines = [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check").fetchall()]
            dangling = self.conn.execute("PRAGMA foreign_key_check").fetchall()
        problems = [] if lines == ["ok"] else lines
        problems += [
            f"row {rowid} of {table} refers to a missing {parent} row"
            for table, rowid, parent, _ in dangling
        ]
        return problems

    def ended_consents(self) -> list[ConsentRow]:
        """Tombstones: every consent that was withdrawn or expired."""
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents WHERE status != 'active' ORDER BY id",
            )
        )

    def tombstones_with_data(self) -> list[str]:
        """Ids of ended consents that still hold a personal column or a note."""
        held = " OR ".join(f"{col} IS NOT NULL" for col in _PERSONAL_CONSENT_COLS)
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                f"SELECT id FROM consents WHERE status != 'active' AND ({held})"
                " UNION SELECT n.consent_id FROM notes n JOIN consents c ON c.id = n.consent_id"
                " WHERE c.status != 'active'"
                " UNION SELECT t.consent_id FROM note_tombstones t"
                " JOIN consents c ON c.id = t.consent_id WHERE c.status != 'active' ORDER BY 1"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def vacuum_into(self, dest: Path) -> None:
        """A consistent, compacted copy of the vault (one read snapshot; writers go on).

        The copy is rebuilt row by row, so freed pages and old page images are not in it.
        ``dest`` must not exist or be an empty file. Not inside a transaction.
        """
        with sqlite_errors(self.busy_timeout):
            self.conn.execute("VACUUM INTO ?", [str(dest)])

    def vacuum(self) -> None:
        """Rebuild the file so that no freed page keeps old content. Not inside a transaction."""
        with sqlite_errors(self.busy_timeout):
            self.conn.execute("VACUUM")

    @classmethod
    def open_copy(cls, path: Path, *, writable: bool = False) -> Store:
        """Open a backup file read-only (no locks, no -wal), to inspect it.

        With ``writable``, open it to erase in it: a rollback journal instead of a WAL (so
        no ``-wal`` is left beside the backup), ``secure_delete`` on, locks taken.

        Raises:
            VaultNotFound, SymlinkRefused: nothing usable at ``path``.
            NotAVault: the file holds no nok schema.
            UnsupportedVersion: a newer nok made the schema.
            IntegrityError: the file is not SQLite or is damaged, or holds a schema object
                nok does not make.
        """
        files.refuse_symlinks(path)
        if not path.is_file():
            raise VaultNotFound(path=str(path))
        uri = "file:" + str(path.absolute()).replace("?", "%3f").replace("#", "%23")
        mode = "?mode=rw" if writable else "?mode=ro&immutable=1"
        with sqlite_errors():
            conn = sqlite3.connect(
                uri + mode, uri=True, timeout=DEFAULT_BUSY_TIMEOUT, isolation_level=None
            )
        store = cls(path, conn, DEFAULT_BUSY_TIMEOUT)
        try:
            applied = store._applied()
            if applied is None:
                raise NotAVault(path=str(path))
            if not set(applied) <= set(MIGRATION_NAMES):
                raise UnsupportedVersion(what="the backup's schema", version=len(applied))
            store.check_objects(applied)
            store._check_format()
            if writable:
                # Only now that it is known to be a nok vault: these change the file.
                with sqlite_errors():
                    store._copy_pragmas()
        except BaseException:
            conn.close()
            raise
        return store

    def _copy_pragmas(self) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        c.execute("PRAGMA trusted_schema = OFF")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA secure_delete = ON")
        c.execute("PRAGMA temp_store = MEMORY")
        mode = c.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        c.execute("PRAGMA synchronous = FULL")
        if str(mode).lower() != "delete" or c.execute("PRAGMA secure_delete").fetchone()[0] != 1:
            raise StorageError(reason="SQLite refused secure_delete or the rollback journal")

    def erasures_of_active(self, actions: Iterable[str]) -> list[AuditRow]:
        """Audit entries of ``actions`` (erasures) about consents that are active now."""
        wanted = list(actions)
        marks = ", ".join("?" for _ in wanted)
        return list(
            self._many(
                AuditRow,
                # The trail is the outer loop: erasure entries are few, active consents
                # many (probing the trail once per active consent took 0.4 s at 100,000).
                "SELECT a.seq, a.ts, a.actor, a.action, a.consent_id, a.object_id, a.prev,"
                " a.hash, a.mac FROM audit a CROSS JOIN consents c ON c.id = a.consent_id"
                f" WHERE a.action IN ({marks}) AND c.status = 'active' ORDER BY a.seq",
                wanted,
            )
        )

    def still_active(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` are active consents (one query, one index probe each)."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT c.id FROM json_each(?) j CROSS JOIN consents c ON c.id = j.value"
                " WHERE c.status = 'active'",
                [json.dumps(list(candidates))],
            ).fetchall()
        return {str(r[0]) for r in rows}

    def holding_data(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` are ended consents that hold a personal column or a note
        (:meth:`tombstones_with_data` for these ids only, by index)."""
        held = " OR ".join(f"c.{col} IS NOT NULL" for col in _PERSONAL_CONSENT_COLS)
        wanted = json.dumps(list(candidates))
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT c.id FROM json_each(?) j CROSS JOIN consents c ON c.id = j.value"
                f" WHERE c.status != 'active' AND ({held})"
                " UNION SELECT c.id FROM json_each(?) j CROSS JOIN consents c ON c.id = j.value"
                " WHERE c.status != 'active'"
                " AND EXISTS (SELECT 1 FROM notes n WHERE n.consent_id = c.id)",
                [wanted, wanted],
            ).fetchall()
        return {str(r[0]) for r in rows}

    # -- import and search -----------------------------------------------------------------

    def taken_consent_ids(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` are already consent ids."""
        return self._taken("consents", candidates)

    def taken_note_ids(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` are already note ids (live or deleted)."""
        return self._taken("notes", candidates) | self._taken("note_tombstones", candidates)

    def _taken(self, table: str, candidates: Iterable[str]) -> set[str]:
        wanted = list(candidates)
        found: set[str] = set()
        with sqlite_errors(self.busy_timeout):
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = self.conn.execute(f"SELECT id FROM {table} WHERE id IN ({marks})", chunk)
                found.update(str(r[0]) for r in rows)
        return found

    def active_consent_ids(self) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute("SELECT id FROM consents WHERE status = 'active'").fetchall()
        return [str(row[0]) for row in rows]

    def consents_with_notes(self, *, since: str | None = None) -> list[str]:
        """Ids of active consents with at least one note (dated ``since`` or later)."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT c.id FROM consents c WHERE c.status = 'active' AND EXISTS"
                " (SELECT 1 FROM notes n WHERE n.consent_id = c.id AND n.date >= ?)"
                " ORDER BY c.id",
                [since or ""],
            ).fetchall()
        return [str(row[0]) for row in rows]

    def iter_note_bodies(
        self, *, consent_id: str | None = None, since: str | None = None
    ) -> Iterator[KeyedNoteRow]:
        """Notes under active consents with their wrapped data keys, by date, streamed."""
        clauses, params = ["c.status = 'active'"], []
        if consent_id is not None:
            clauses.append("n.consent_id = ?")
            params.append(consent_id)
        if since is not None:
            clauses.append("n.date >= ?")
            params.append(since)
        return self._many(
            KeyedNoteRow,
            "SELECT n.id, n.consent_id, n.date, n.created, n.key_version, n.seq, n.record,"
            " c.master_version, c.data_key, a.amended, a.amended_by"
            # CROSS JOIN keeps notes the outer loop, so the date index gives the order and
            # rows stream; the planner's choice would sort every note in a temporary b-tree.
            " FROM notes n CROSS JOIN consents c ON c.id = n.consent_id"
            " LEFT JOIN note_amendments a ON a.note_id = n.id"
            f" WHERE {' AND '.join(clauses)} ORDER BY n.date, n.created, n.id",
            params,
        )

    # -- corrections: amended and deleted notes ----------------------------------------------

    def replace_note(self, row: NoteRow) -> None:
        """Overwrite a note's date, key version and sealed record in place (id and created
        stay). With secure_delete on, SQLite zeroes the old cells; the caller checkpoints."""
        self._exec(
            "UPDATE notes SET date = ?, key_version = ?, record = ? WHERE id = ?",
            [row.date, row.key_version, row.record, row.id],
        )

    def latest_note_date(self, consent_id: str) -> str | None:
        value = self._scalar("SELECT max(date) FROM notes WHERE consent_id = ?", [consent_id])
        return None if value is None else str(value)

    def update_consent_record(self, consent_id: str, record: bytes) -> None:
        """Overwrite a consent's sealed record in place (see :meth:`replace_note`)."""
        self._exec("UPDATE consents SET record = ? WHERE id = ?", [record, consent_id])

    def set_note_amendment(self, row: AmendmentRow) -> None:
        self._exec(
            f"INSERT INTO note_amendments ({_AMENDMENT_COLS}) VALUES (?, ?, ?)"
            " ON CONFLICT(note_id) DO UPDATE SET amended = excluded.amended,"
            " amended_by = excluded.amended_by",
            [row.note_id, row.amended, row.amended_by],
        )

    def get_note_amendment(self, note_id: str) -> AmendmentRow | None:
        return self._one(
            AmendmentRow,
            f"SELECT {_AMENDMENT_COLS} FROM note_amendments WHERE note_id = ?",
            [note_id],
        )

    def note_amendments(self, consent_id: str) -> dict[str, AmendmentRow]:
        """Every amendment of a note under ``consent_id``, by note id."""
        rows = self._many(
            AmendmentRow,
            "SELECT a.note_id, a.amended, a.amended_by FROM note_amendments a"
            " JOIN notes n ON n.id = a.note_id WHERE n.consent_id = ?",
            [consent_id],
        )
        return {r.note_id: r for r in rows}

    def delete_note(self, note_id: str, tombstone: NoteTombstoneRow) -> None:
        """Delete one note (and its amendment row) and leave its tombstone, in one statement
        pair inside the caller's transaction; secure_delete zeroes the freed cells."""
        self._exec("DELETE FROM notes WHERE id = ?", [note_id])
        placeholders = ", ".join("?" for _ in fields(NoteTombstoneRow))
        self._exec(
            f"INSERT INTO note_tombstones ({_NOTE_TOMBSTONE_COLS}) VALUES ({placeholders})",
            [getattr(tombstone, f.name) for f in fields(NoteTombstoneRow)],
        )

    def get_note_tombstone(self, note_id: str) -> NoteTombstoneRow | None:
        return self._one(
            NoteTombstoneRow,
            f"SELECT {_NOTE_TOMBSTONE_COLS} FROM note_tombstones WHERE id = ?",
            [note_id],
        )

    def note_tombstones(self, consent_id: str) -> list[NoteTombstoneRow]:
        return list(
            self._many(
                NoteTombstoneRow,
                f"SELECT {_NOTE_TOMBSTONE_COLS} FROM note_tombstones WHERE consent_id = ?"
                " ORDER BY deleted, id",
                [consent_id],
            )
        )
