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
    NeedsUpgrade,
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
# that format was ever in use, so nok reads none and refuses them (exit 8). A format-2
# vault is refused too until an admin upgrades it (vault.upgrade, `nok upgrade`).
FORMAT = 3
UPGRADABLE_FORMAT = 2
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


def _m0004_format3(db: sqlite_utils.Database) -> None:
    from sqlite_utils.db import ForeignKey

    # The signed epoch statements: the vault's keys, staff, jobs and settings (vault.epochs).
    db.table("epochs").create(
        {"number": int, "body": bytes, "sig": bytes}, pk="number", not_null={"body", "sig"}
    )
    # Seeds sealed to their holders: the admin seed to each admin and the recovery key,
    # the team seed to each staff member and the admin key, the job seed to each job.
    db.table("sealed_keys").create(
        {"holder": str, "purpose": str, "version": int, "sealed": bytes},
        pk=("holder", "purpose"),
        not_null={"version", "sealed"},
    )
    # A consent's data key, wrapped once for each reader (need-to-know, vault.access).
    db.table("consent_keys").create(
        {"consent_id": str, "reader": str, "key_version": int, "how": str, "wrapped": bytes},
        pk=("consent_id", "reader"),
        not_null={"key_version", "how", "wrapped"},
        foreign_keys=[
            ForeignKey("consent_keys", "consent_id", "consents", "id", on_delete="CASCADE")
        ],
    )
    db.table("consent_keys").create_index(["reader", "consent_id"])
    consents = db.table("consents")
    for column, kind in (
        ("contact", str),
        ("access", str),
        ("readers", str),
        ("consent_box", bytes),
        ("rev", int),
        ("notes_hash", bytes),
        ("state_signer", str),
        ("state_epoch", int),
        ("state_sig", bytes),
        ("proof", bytes),
    ):
        consents.add_column(column, kind)
    notes = db.table("notes")
    for column, kind in (("pending", int), ("signer", str), ("sig_epoch", int), ("sig", bytes)):
        notes.add_column(column, kind)
    audit = db.table("audit")
    for column, kind in (
        ("epoch", int),
        ("detail", str),
        ("rev", int),
        ("state", bytes),
        ("batch_start", int),
        ("sig", bytes),
    ):
        audit.add_column(column, kind)
    # The purge and the unlock find a consent's newest state-changing entry, and every
    # erasure or correction entry, without walking the trail.
    audit.create_index(["consent_id", "rev"])
    audit.create_index(["action", "consent_id"])
    for table in ("note_amendments", "note_tombstones"):
        db.table(table).add_column("epoch", int)
        db.table(table).add_column("sig", bytes)


def _m0005_report(db: sqlite_utils.Database) -> None:
    from sqlite_utils.db import ForeignKey

    # What the yearly report counts that no note holds (vault.report): an anonymous contact
    # or an activity (consent_id NULL, sealed under the team's report key), or a contact
    # under a consent (sealed under its data key, erased with it). The signed trail names
    # each row's digest, so a row removed or put back from an older copy is seen.
    db.table("report_events").create(
        {"id": str, "consent_id": str, "key_version": int, "record": bytes},
        pk="id",
        not_null={"key_version", "record"},
        foreign_keys=[
            ForeignKey("report_events", "consent_id", "consents", "id", on_delete="CASCADE")
        ],
    )
    db.table("report_events").create_index(["consent_id"])
    # A consent's contribution to the figures, sealed to the admin key and signed by who
    # wrote it, so that the scheduled job, which cannot read it, can keep it when it
    # erases the consent; ``kept`` = 1 once the consent is erased, until an admin folds it.
    db.table("report_shares").create(
        {
            "consent_id": str,
            "rev": int,
            "admin_version": int,
            "sealed": bytes,
            "signer": str,
            "epoch": int,
            "sig": bytes,
            "kept": int,
        },
        pk="consent_id",
        not_null={"rev", "admin_version", "sealed", "kept"},
        foreign_keys=[
            ForeignKey("report_shares", "consent_id", "consents", "id", on_delete="CASCADE")
        ],
    )
    # The yearly totals of what erased consents contributed (one row), sealed to the admin
    # key; the newest report.fold entry of the signed trail names its digest.
    db.table("report_totals").create(
        {"id": int, "admin_version": int, "sealed": bytes},
        pk="id",
        not_null={"admin_version", "sealed"},
    )


# In the order they are applied; a name, once released, never changes.
MIGRATIONS: tuple[tuple[str, Callable[[sqlite_utils.Database], None]], ...] = (
    ("0001_initial", _m0001_initial),
    ("0002_keys", _m0002_keys),
    ("0003_corrections", _m0003_corrections),
    ("0004_format3", _m0004_format3),
    ("0005_report", _m0005_report),
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
    "0004_format3": frozenset(
        {
            ("table", "epochs", "epochs"),
            ("table", "sealed_keys", "sealed_keys"),
            ("table", "consent_keys", "consent_keys"),
            ("index", "idx_consent_keys_reader_consent_id", "consent_keys"),
            ("index", "idx_audit_consent_id_rev", "audit"),
            ("index", "idx_audit_action_consent_id", "audit"),
        }
    ),
    "0005_report": frozenset(
        {
            ("table", "report_events", "report_events"),
            ("index", "idx_report_events_consent_id", "report_events"),
            ("table", "report_shares", "report_shares"),
            ("table", "report_totals", "report_totals"),
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
    # Format 3 (migration 0004): the consent's signed state (vault.states).
    contact: str | None = None
    access: str | None = None
    readers: str | None = None
    consent_box: bytes | None = None
    rev: int | None = None
    notes_hash: bytes | None = None
    state_signer: str | None = None
    state_epoch: int | None = None
    state_sig: bytes | None = None
    proof: bytes | None = None


@dataclass
class NoteRow:
    id: str
    consent_id: str
    date: str
    created: str
    key_version: int
    seq: int
    record: bytes
    # Format 3: a note written by a colleague without access to its consent is sealed to
    # the consent's public key and signed by her until someone with access folds it in.
    pending: int | None = None
    signer: str | None = None
    sig_epoch: int | None = None
    sig: bytes | None = None


@dataclass
class KeyedNoteRow:
    """A note as list and search stream it: with the reader's wrap of its consent's data key."""

    id: str
    consent_id: str
    date: str
    created: str
    key_version: int
    seq: int
    record: bytes
    pending: int | None
    signer: str | None
    sig_epoch: int | None
    sig: bytes | None
    how: str | None
    wrapped: bytes | None
    reader: str | None
    amended: str | None = None
    amended_by: str | None = None


@dataclass
class AmendmentRow:
    """When and by whom a note's text, kind or date was last replaced."""

    note_id: str
    amended: str
    amended_by: str
    # Format 3: signed by ``amended_by`` in epoch ``epoch`` (vault.corrections).
    epoch: int | None = None
    sig: bytes | None = None


@dataclass
class NoteTombstoneRow:
    """What stays of a deleted note: no content, only that it existed and why it went."""

    id: str
    consent_id: str
    deleted: str
    reason: str
    deleted_by: str
    epoch: int | None = None
    sig: bytes | None = None


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
    # Format 3 (migration 0004): entries are signed in batches (vault.audit).
    epoch: int | None = None
    detail: str | None = None
    rev: int | None = None
    state: bytes | None = None
    batch_start: int | None = None
    sig: bytes | None = None


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


def _columns(cls: type[Any], prefix: str = "") -> str:
    return ", ".join(prefix + f.name for f in fields(cls))


def _marks(cls: type[Any]) -> str:
    return ", ".join("?" for _ in fields(cls))


_CONSENT_COLS = _columns(ConsentRow)
_NOTE_COLS = _columns(NoteRow)
_STAFF_COLS = _columns(StaffRow)
_AUDIT_COLS = _columns(AuditRow)
_ROTATION_COLS = _columns(RotationRow)
_AMENDMENT_COLS = _columns(AmendmentRow)
_NOTE_TOMBSTONE_COLS = _columns(NoteTombstoneRow)
# What an erasure blanks in a consent's row: its key, its sealed record and its seals.
_PERSONAL_CONSENT_COLS = (
    "data_key",
    "record",
    "retention_tag",
    "notes_count",
    "notes_tag",
    "notes_hash",
    "consent_box",
    "proof",
)


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


# The consents a deep rotation gives new keys: every one with a key, and every active one
# (an active consent whose public key was blanked in the file must stop the rotation as
# tampering, not be skipped and left under a key a leaver may have kept).
_REKEYED = "({t}consent_box IS NOT NULL OR {t}status = 'active')"


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
        cls,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        read_only: bool = False,
        upgrading: bool = False,
    ) -> Store:
        """Open an existing vault read-write; never creates one.

        With ``read_only``, a file not in WAL mode (a copy made by ``nok backup``) is
        opened read-only and left byte for byte as it was; a live vault opens as usual.
        With ``upgrading`` (vault.upgrade only), a format-2 vault opens as it is: no
        migration runs until the upgrade has made its backup.

        Raises:
            VaultNotFound, SymlinkRefused, UnsafePermissions, OutsideGroup: see
                files.check_existing and files.check_directory.
            NotARegularFile: a FIFO or other non-regular file beside it (files.check_beside).
            NotAVault: the file holds no nok schema.
            UnsupportedVersion: a newer nok made the schema.
            IntegrityError: the file is not SQLite or is damaged.
            VaultBusy: another process held a lock for longer than ``busy_timeout``.
        """
        files.check_existing(path, group_ok=True)
        # Before SQLite opens anything: a FIFO at -wal or -journal would hang it.
        files.check_beside(path)
        store = cls._connect(path, busy_timeout, read_only=read_only and _is_copy(path))
        try:
            store._check_schema(upgrading=upgrading)
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

    def _check_schema(self, *, upgrading: bool = False) -> None:
        applied = self._applied()
        if applied is None:
            raise NotAVault(path=str(self.path))
        unknown = [name for name in applied if name not in MIGRATION_NAMES]
        if unknown:
            raise UnsupportedVersion(what="the vault's schema", version=len(applied))
        self.check_objects(applied)
        if upgrading and self.get_setting("format") == str(UPGRADABLE_FORMAT):
            return
        self._check_format()
        if len(applied) < len(MIGRATION_NAMES):
            with self.write():
                _apply_migrations(self.conn)

    def apply_migrations(self) -> None:
        """Apply the migrations a vault lacks (the upgrade, after its backup)."""
        with self.write():
            _apply_migrations(self.conn)
        self.check_objects(MIGRATION_NAMES)

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
        """Raises NeedsUpgrade for a format-2 vault, UnsupportedVersion for any other
        format than FORMAT."""
        found = self.get_setting("format")
        if found == str(UPGRADABLE_FORMAT):
            raise NeedsUpgrade(what="the vault", version=found)
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
            f"INSERT INTO staff ({_STAFF_COLS}) VALUES ({_marks(StaffRow)})",
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

    def update_staff_role(self, name: str, role: str, role_tag: bytes) -> None:
        self._exec("UPDATE staff SET role = ?, role_tag = ? WHERE name = ?", [role, role_tag, name])

    def touch_staff(self, name: str, when: str) -> None:
        self._exec("UPDATE staff SET last_used = ? WHERE name = ?", [when, name])

    def delete_staff(self, name: str) -> int:
        return self._exec("DELETE FROM staff WHERE name = ?", [name])

    # -- format 3: epochs, sealed seeds, consent keys ---------------------------------------

    def epoch_rows(self, after: int = 0) -> list[tuple[Any, Any, Any]]:
        """(number, body, sig) of every epoch after ``after``, oldest first, as stored."""
        with sqlite_errors(self.busy_timeout):
            return self.conn.execute(
                "SELECT number, body, sig FROM epochs WHERE number > ? ORDER BY number", [after]
            ).fetchall()

    def last_epoch_number(self) -> int:
        return int(self._scalar("SELECT coalesce(max(number), 0) FROM epochs"))

    def insert_epoch(self, number: int, body: bytes, sig: bytes) -> None:
        self._exec("INSERT INTO epochs (number, body, sig) VALUES (?, ?, ?)", [number, body, sig])

    def replace_epochs(self, rows: Iterable[tuple[int, bytes, bytes]]) -> None:
        """The whole chain at once (a restore carries the live vault's chain forward)."""
        self._exec("DELETE FROM epochs")
        self._exec_many("INSERT INTO epochs (number, body, sig) VALUES (?, ?, ?)", rows)

    def get_sealed(self, holder: str, purpose: str) -> tuple[int, bytes] | None:
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(
                "SELECT version, sealed FROM sealed_keys WHERE holder = ? AND purpose = ?",
                [holder, purpose],
            ).fetchone()
        if row is None or not isinstance(row[1], bytes) or not isinstance(row[0], int):
            return None
        return int(row[0]), bytes(row[1])

    def put_sealed(self, holder: str, purpose: str, version: int, sealed: bytes) -> None:
        self._exec(
            "INSERT INTO sealed_keys (holder, purpose, version, sealed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(holder, purpose) DO UPDATE SET version = excluded.version,"
            " sealed = excluded.sealed",
            [holder, purpose, version, sealed],
        )

    def delete_sealed(self, holder: str) -> None:
        self._exec("DELETE FROM sealed_keys WHERE holder = ?", [holder])

    def delete_sealed_one(self, holder: str, purpose: str) -> None:
        self._exec("DELETE FROM sealed_keys WHERE holder = ? AND purpose = ?", [holder, purpose])

    def sealed_holders(self, purpose: str) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT holder FROM sealed_keys WHERE purpose = ? ORDER BY holder", [purpose]
            ).fetchall()
        return [str(r[0]) for r in rows]

    def wraps(self, consent_id: str) -> list[tuple[str, int, str, bytes]]:
        """(reader, key version, how, wrapped) of every wrap of ``consent_id``'s key."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT reader, key_version, how, wrapped FROM consent_keys"
                " WHERE consent_id = ? ORDER BY reader",
                [consent_id],
            ).fetchall()
        return [(str(r), v, str(h), w) for r, v, h, w in rows]

    def wrap_for(
        self, consent_id: str, readers: Sequence[str]
    ) -> list[tuple[str, int, str, bytes]]:
        """The wraps of ``consent_id``'s key for any of ``readers``, in their order."""
        found = {r: (r, v, h, w) for r, v, h, w in self.wraps(consent_id) if r in readers}
        return [found[r] for r in readers if r in found]

    def put_wraps(self, consent_id: str, rows: Iterable[tuple[str, int, str, bytes]]) -> None:
        """Set (reader, key version, how, wrapped) wraps of ``consent_id``'s key."""
        self._exec_many(
            "INSERT INTO consent_keys (consent_id, reader, key_version, how, wrapped)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(consent_id, reader) DO UPDATE SET"
            " key_version = excluded.key_version, how = excluded.how,"
            " wrapped = excluded.wrapped",
            ((consent_id, r, v, h, w) for r, v, h, w in rows),
        )

    def put_many_wraps(self, rows: Iterable[tuple[str, str, int, str, bytes]]) -> None:
        """(consent id, reader, key version, how, wrapped) for many consents (an import)."""
        self._exec_many(
            "INSERT INTO consent_keys (consent_id, reader, key_version, how, wrapped)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def delete_wraps(self, consent_id: str, readers: Sequence[str] | None = None) -> int:
        if readers is None:
            return self._exec("DELETE FROM consent_keys WHERE consent_id = ?", [consent_id])
        marks = ", ".join("?" for _ in readers)
        return self._exec(
            f"DELETE FROM consent_keys WHERE consent_id = ? AND reader IN ({marks})",
            [consent_id, *readers],
        )

    def delete_reader(self, reader: str) -> list[str]:
        """Delete every wrap for ``reader``; the consent ids it opened."""
        with sqlite_errors(self.busy_timeout):
            ids_ = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT consent_id FROM consent_keys WHERE reader = ? ORDER BY consent_id",
                    [reader],
                )
            ]
            self.conn.execute("DELETE FROM consent_keys WHERE reader = ?", [reader])
        return ids_

    def wraps_of_reader(self, reader: str) -> list[tuple[str, int, str, bytes]]:
        """(consent id, key version, how, wrapped) of every wrap for ``reader``."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT consent_id, key_version, how, wrapped FROM consent_keys"
                " WHERE reader = ? ORDER BY consent_id",
                [reader],
            ).fetchall()
        return [(str(c), int(v), str(h), w) for c, v, h, w in rows]

    def consents_naming(self, name: str) -> list[ConsentRow]:
        """Active consents with ``name`` as contact person or among their readers."""
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents WHERE status = 'active' AND"
                " (contact = ? OR EXISTS (SELECT 1 FROM json_each(readers) j"
                " WHERE json_extract(j.value, '$[0]') = ?)) ORDER BY id",
                [name, name],
            )
        )

    def reader_counts(self) -> dict[str, tuple[int, int]]:
        """Per staff name: (active consents she is contact person for, those she was
        granted)."""
        with sqlite_errors(self.busy_timeout):
            contact = self.conn.execute(
                "SELECT contact, count(*) FROM consents WHERE status = 'active' GROUP BY contact"
            ).fetchall()
            granted = self.conn.execute(
                "SELECT json_extract(j.value, '$[0]'), count(*) FROM consents c,"
                " json_each(c.readers) j WHERE c.status = 'active' GROUP BY 1"
            ).fetchall()
        out: dict[str, tuple[int, int]] = {}
        for name, n in contact:
            out[str(name)] = (int(n), 0)
        for name, n in granted:
            out[str(name)] = (out.get(str(name), (0, 0))[0], int(n))
        return out

    def consents_with_readers(self) -> list[ConsentRow]:
        """Active consents that name readers besides their contact person."""
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents WHERE status = 'active'"
                " AND readers IS NOT NULL AND readers != '[]' ORDER BY id",
            )
        )

    def consents_of_reader(self, reader: str) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            return [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT consent_id FROM consent_keys WHERE reader = ? ORDER BY consent_id",
                    [reader],
                )
            ]

    def update_consent_state(self, consent_id: str, values: dict[str, Any]) -> None:
        """Set some of a consent's columns (named by the caller, never by input)."""
        known = {f.name for f in fields(ConsentRow)}
        if not values or not set(values) <= known:
            raise ValueError("unknown consent column")
        assignments = ", ".join(f"{col} = ?" for col in values)
        self._exec(
            f"UPDATE consents SET {assignments} WHERE id = ?", [*values.values(), consent_id]
        )

    def latest_state_entry(self, consent_id: str) -> AuditRow | None:
        """The newest audit entry that recorded a new state of ``consent_id``."""
        return self._one(
            AuditRow,
            f"SELECT {_AUDIT_COLS} FROM audit WHERE consent_id = ? AND rev IS NOT NULL"
            " ORDER BY rev DESC, seq DESC LIMIT 1",
            [consent_id],
        )

    def state_entries_after(self, consent_id: str, rev: int) -> list[AuditRow]:
        """Entries that recorded a state of ``consent_id`` newer than ``rev``, in order."""
        return list(
            self._many(
                AuditRow,
                f"SELECT {_AUDIT_COLS} FROM audit WHERE consent_id = ? AND rev > ? ORDER BY seq",
                [consent_id, rev],
            )
        )

    def entries_of(self, actions: Sequence[str], consent_id: str | None = None) -> list[AuditRow]:
        """Entries of ``actions`` (by index), of one consent or all, in order."""
        marks = ", ".join("?" for _ in actions)
        clause, params = f"action IN ({marks})", list(actions)
        if consent_id is not None:
            clause += " AND consent_id = ?"
            params.append(consent_id)
        return list(
            self._many(
                AuditRow, f"SELECT {_AUDIT_COLS} FROM audit WHERE {clause} ORDER BY seq", params
            )
        )

    def stale_consents(self, actions: Sequence[str]) -> list[tuple[str, int]]:
        """(id, stored rev) of consents whose stored revision is older than an entry of
        ``actions`` (corrections, erasures) recorded for them: a rolled-back correction."""
        marks = ", ".join("?" for _ in actions)
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT c.id, c.rev FROM consents c JOIN (SELECT consent_id, max(rev) AS r"
                f" FROM audit WHERE action IN ({marks}) AND rev IS NOT NULL"
                " GROUP BY consent_id) a ON a.consent_id = c.id"
                " WHERE c.status = 'active' AND coalesce(c.rev, 0) < a.r ORDER BY c.id",
                list(actions),
            ).fetchall()
        return [(str(i), int(r or 0)) for i, r in rows]

    def signed_audit_newest_first(self) -> Iterator[AuditRow]:
        """Entries that carry a signature, newest first."""
        return self._many(
            AuditRow, f"SELECT {_AUDIT_COLS} FROM audit WHERE sig IS NOT NULL ORDER BY seq DESC"
        )

    def audit_hash_at(self, seq: int) -> bytes | None:
        value = self._scalar("SELECT hash FROM audit WHERE seq = ?", [seq])
        return value if isinstance(value, bytes) else None

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

    def delete_vault_key(self, purpose: str) -> None:
        self._exec("DELETE FROM vault_keys WHERE purpose = ?", [purpose])

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
                f" FROM consents c WHERE c.id > ? AND {_REKEYED.format(t='c.')}",
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
                f" FROM consents c WHERE c.id > ? AND {_REKEYED.format(t='c.')}"
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
                f" WHERE id > ? AND id <= ? AND {_REKEYED.format(t='')} ORDER BY id",
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

    def update_notes_rekeyed(self, rows: Iterable[tuple[str, int, bytes, int]]) -> None:
        """Set (id, key version, record, seq) of many notes at once; a pending note so
        rewritten is folded into its consent's chain."""
        self._exec_many(
            "UPDATE notes SET key_version = ?, record = ?, seq = ?, pending = NULL,"
            " signer = NULL, sig_epoch = NULL, sig = NULL WHERE id = ?",
            ((version, record, seq, note_id) for note_id, version, record, seq in rows),
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
        its notes chain covers (not pending notes; a tampered cell comes back as it is
        stored)."""
        with sqlite_errors(self.busy_timeout):
            return self.conn.execute(
                "SELECT id, seq, substr(record, -16) FROM notes WHERE consent_id = ?"
                " AND pending IS NULL ORDER BY seq, id",
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

    def iter_notes_by_consent_id(self, consent_id: str) -> list[NoteRow]:
        return list(
            self._many(
                NoteRow,
                f"SELECT {_NOTE_COLS} FROM notes WHERE consent_id = ? ORDER BY seq, id",
                [consent_id],
            )
        )

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
        self,
        consent_id: str,
        *,
        status: str,
        ended: str,
        reason: str,
        ended_by: str,
        signer: str | None = None,
        epoch: int | None = None,
        sig: bytes | None = None,
        retain_until: str | None = None,
    ) -> None:
        """Delete every note, note tombstone, key wrap and report row under the consent (and
        a report share its erasure did not keep) and null its personal columns in place;
        the row keeps the signed ending (``epoch``, ``sig``).

        With secure_delete on, SQLite zeroes the freed cells; the caller checkpoints the WAL.
        """
        self._exec("DELETE FROM notes WHERE consent_id = ?", [consent_id])
        self._exec("DELETE FROM note_tombstones WHERE consent_id = ?", [consent_id])
        self._exec("DELETE FROM consent_keys WHERE consent_id = ?", [consent_id])
        self._exec("DELETE FROM report_events WHERE consent_id = ?", [consent_id])
        # A share the erasure did not keep (in a copy: the live vault kept its own).
        self._exec("DELETE FROM report_shares WHERE consent_id = ? AND kept = 0", [consent_id])
        nulls = ", ".join(f"{col} = NULL" for col in _PERSONAL_CONSENT_COLS)
        self._exec(
            f"UPDATE consents SET status = ?, ended = ?, end_reason = ?, ended_by = ?, {nulls},"
            " last_activity = NULL, retain_until = coalesce(?, retain_until),"
            " rev = coalesce(rev, 0) + 1, state_signer = ?, state_epoch = ?, state_sig = ?"
            " WHERE id = ?",
            [
                status,
                ended,
                reason,
                ended_by,
                retain_until,
                signer or ended_by,
                epoch,
                sig,
                consent_id,
            ],
        )

    def due_consents(self, today: str) -> list[str]:
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT id FROM consents WHERE status = 'active' AND retain_until < ?"
                " ORDER BY retain_until, id",
                [today],
            ).fetchall()
        return [str(r[0]) for r in rows]

    # -- notes -----------------------------------------------------------------------------

    def insert_note(self, row: NoteRow) -> None:
        self._exec(
            f"INSERT INTO notes ({_NOTE_COLS}) VALUES ({_marks(NoteRow)})",
            [getattr(row, f.name) for f in fields(NoteRow)],
        )

    def insert_notes(self, rows: Iterable[NoteRow]) -> None:
        values = operator.attrgetter(*(f.name for f in fields(NoteRow)))
        self._exec_many(
            f"INSERT INTO notes ({_NOTE_COLS}) VALUES ({_marks(NoteRow)})", map(values, rows)
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

    def count_notes_created_after(self, taken: str) -> int:
        """Notes under active consents written after ``taken`` (a timestamp)."""
        return int(
            self._scalar(
                "SELECT count(*) FROM notes n JOIN consents c ON c.id = n.consent_id"
                " WHERE c.status = 'active' AND n.created > ?",
                [taken],
            )
        )

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

    def insert_audit_many(self, rows: Iterable[AuditRow]) -> None:
        self._exec_many(
            f"INSERT INTO audit ({_AUDIT_COLS}) VALUES ({_marks(AuditRow)})",
            ([getattr(row, f.name) for f in fields(AuditRow)] for row in rows),
        )

    def iter_audit(self) -> Iterator[AuditRow]:
        return self._many(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit ORDER BY seq")

    # -- audit and backup ------------------------------------------------------------------

    def audit_entry(self, seq: int) -> AuditRow | None:
        return self._one(AuditRow, f"SELECT {_AUDIT_COLS} FROM audit WHERE seq = ?", [seq])

    def next_signed_audit(self, seq: int) -> AuditRow | None:
        """The first entry at or after ``seq`` that carries a batch signature."""
        return self._one(
            AuditRow,
            f"SELECT {_AUDIT_COLS} FROM audit WHERE seq >= ? AND sig IS NOT NULL"
            " ORDER BY seq LIMIT 1",
            [seq],
        )

    def audit_range(self, first: int, last: int) -> Iterator[AuditRow]:
        """Entries ``first`` to ``last`` in order, streamed (one query for a batch's walk)."""
        return self._many(
            AuditRow,
            f"SELECT {_AUDIT_COLS} FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq",
            [first, last],
        )

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
        """Tombstones: every consent that was withdrawn or expired. Every unlock asks, so
        they are found through the status index, in two ranges (`!=` uses no index), and
        sorted after (`+id`: ordering by the id index would read every consent)."""
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents"
                " WHERE status < 'active' OR status > 'active' ORDER BY +id",
            )
        )

    def tombstones_with_data(self) -> list[str]:
        """Ids of ended consents that still hold a personal column, a note or a key wrap."""
        held = " OR ".join(f"c.{col} IS NOT NULL" for col in _PERSONAL_CONSENT_COLS)
        # Every unlock asks this: the ended consents are found through the status index
        # (two ranges, as `!=` uses none) and their rows through the consent id indexes,
        # so the cost follows the ended consents, not every note and wrap of the vault.
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "WITH ended(id) AS (SELECT id FROM consents"
                " WHERE status < 'active' OR status > 'active')"
                f" SELECT c.id FROM ended e CROSS JOIN consents c ON c.id = e.id WHERE {held}"
                " UNION SELECT n.consent_id FROM ended e CROSS JOIN notes n"
                " ON n.consent_id = e.id"
                " UNION SELECT k.consent_id FROM ended e CROSS JOIN consent_keys k"
                " ON k.consent_id = e.id"
                " UNION SELECT t.consent_id FROM ended e CROSS JOIN note_tombstones t"
                " ON t.consent_id = e.id ORDER BY 1"
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
    def open_copy(
        cls, path: Path, *, writable: bool = False, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> Store:
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
        if writable:
            # SQLite opens a -journal beside a copy it writes (a colleague may plant one).
            files.check_beside(path)
        uri = "file:" + str(path.absolute()).replace("?", "%3f").replace("#", "%23")
        mode = "?mode=rw" if writable else "?mode=ro&immutable=1"
        with sqlite_errors():
            conn = sqlite3.connect(uri + mode, uri=True, timeout=busy_timeout, isolation_level=None)
        store = cls(path, conn, busy_timeout)
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
                with sqlite_errors(busy_timeout):
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
                f"SELECT {_columns(AuditRow, 'a.')}"
                " FROM audit a CROSS JOIN consents c ON c.id = a.consent_id"
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
                " AND (EXISTS (SELECT 1 FROM notes n WHERE n.consent_id = c.id)"
                " OR EXISTS (SELECT 1 FROM consent_keys k WHERE k.consent_id = c.id))",
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

    def consents_with_notes(
        self, *, since: str | None = None, among: Sequence[str] | None = None
    ) -> list[str]:
        """Ids of active consents (of ``among``, when given) with at least one note (dated
        ``since`` or later)."""
        source = "consents c"
        params: list[Any] = []
        if among is not None:
            source = "json_each(?) j CROSS JOIN consents c ON c.id = j.value"
            params.append(json.dumps(list(among)))
        params.append(since or "")
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                f"SELECT c.id FROM {source} WHERE c.status = 'active' AND EXISTS"
                " (SELECT 1 FROM notes n WHERE n.consent_id = c.id AND n.date >= ?)"
                " ORDER BY c.id",
                params,
            ).fetchall()
        return [str(row[0]) for row in rows]

    def iter_note_bodies(
        self,
        *,
        consent_ids: Sequence[str] | None = None,
        since: str | None = None,
        reader: str | None = None,
    ) -> Iterator[KeyedNoteRow]:
        """Notes under active consents, by date, streamed: of ``consent_ids`` (their wraps
        are found by the caller), or of every consent with the wrap for ``reader``."""
        clauses, params = ["c.status = 'active'"], []
        wrap = "NULL, NULL, NULL"
        joins = ""
        if reader is not None:
            wrap = "k.how, k.wrapped, k.reader"
            joins = " CROSS JOIN consent_keys k ON k.consent_id = n.consent_id AND k.reader = ?"
            params.append(reader)
        if consent_ids is not None:
            clauses.append("n.consent_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(consent_ids)))
        if since is not None:
            clauses.append("n.date >= ?")
            params.append(since)
        return self._many(
            KeyedNoteRow,
            "SELECT n.id, n.consent_id, n.date, n.created, n.key_version, n.seq, n.record,"
            f" n.pending, n.signer, n.sig_epoch, n.sig, {wrap}, a.amended, a.amended_by"
            # CROSS JOIN keeps notes the outer loop, so the date index gives the order and
            # rows stream; the planner's choice would sort every note in a temporary b-tree.
            " FROM notes n CROSS JOIN consents c ON c.id = n.consent_id"
            f"{joins}"
            " LEFT JOIN note_amendments a ON a.note_id = n.id"
            f" WHERE {' AND '.join(clauses)} ORDER BY n.date, n.created, n.id",
            params,
        )

    def consents_by_id(self, consent_ids: Sequence[str]) -> list[ConsentRow]:
        if not consent_ids:
            return []
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents WHERE id IN"
                " (SELECT value FROM json_each(?)) ORDER BY id",
                [json.dumps(list(consent_ids))],
            )
        )

    def count_notes_outside(
        self, consent_ids: Sequence[str], *, since: str | None = None
    ) -> tuple[int, int]:
        """(notes, consents) under active consents not in ``consent_ids``."""
        with sqlite_errors(self.busy_timeout):
            # Counted per consent on the (consent_id, date) index first, so each consent's
            # status is looked up once, not once per note.
            row = self.conn.execute(
                "SELECT coalesce(sum(g.k), 0), count(*) FROM (SELECT consent_id, count(*) AS k"
                " FROM notes WHERE date >= ? GROUP BY consent_id) g"
                " CROSS JOIN consents c ON c.id = g.consent_id WHERE c.status = 'active'"
                " AND g.consent_id NOT IN (SELECT value FROM json_each(?))",
                [since or "", json.dumps(list(consent_ids))],
            ).fetchone()
        return int(row[0]), int(row[1])

    def pending_notes(self, consent_id: str) -> list[NoteRow]:
        return list(
            self._many(
                NoteRow,
                f"SELECT {_NOTE_COLS} FROM notes WHERE consent_id = ? AND pending = 1"
                " ORDER BY created, id",
                [consent_id],
            )
        )

    def consents_signed_by(self, names: Sequence[str]) -> list[ConsentRow]:
        """Consents (active or ended) whose state or tombstone ``names`` signed."""
        return list(
            self._many(
                ConsentRow,
                f"SELECT {_CONSENT_COLS} FROM consents WHERE state_signer IN"
                " (SELECT value FROM json_each(?)) ORDER BY id",
                [json.dumps(list(names))],
            )
        )

    def pending_notes_signed_by(self, names: Sequence[str]) -> list[NoteRow]:
        return list(
            self._many(
                NoteRow,
                f"SELECT {_NOTE_COLS} FROM notes WHERE pending = 1 AND signer IN"
                " (SELECT value FROM json_each(?)) ORDER BY id",
                [json.dumps(list(names))],
            )
        )

    def countersign_pending(self, note_id: str, signer: str, epoch: int, sig: bytes) -> None:
        self._exec(
            "UPDATE notes SET signer = ?, sig_epoch = ?, sig = ? WHERE id = ? AND pending = 1",
            [signer, epoch, sig, note_id],
        )

    def fold_note(self, row: NoteRow) -> None:
        """A pending note sealed again under its consent's key and given its place in the
        chain (secure_delete zeroes the old cells; the caller checkpoints)."""
        self._exec(
            "UPDATE notes SET seq = ?, record = ?, key_version = ?, pending = NULL,"
            " signer = NULL, sig_epoch = NULL, sig = NULL WHERE id = ?",
            [row.seq, row.record, row.key_version, row.id],
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
            f"INSERT INTO note_amendments ({_AMENDMENT_COLS}) VALUES ({_marks(AmendmentRow)})"
            " ON CONFLICT(note_id) DO UPDATE SET amended = excluded.amended,"
            " amended_by = excluded.amended_by, epoch = excluded.epoch, sig = excluded.sig",
            [getattr(row, f.name) for f in fields(AmendmentRow)],
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
            f"SELECT {_columns(AmendmentRow, 'a.')} FROM note_amendments a"
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

    # -- the yearly report (vault.report) --------------------------------------------------

    def insert_report_event(
        self, event_id: str, consent_id: str | None, key_version: int, record: bytes
    ) -> None:
        self._exec(
            "INSERT INTO report_events (id, consent_id, key_version, record) VALUES (?, ?, ?, ?)",
            [event_id, consent_id, key_version, record],
        )

    def report_event_id_exists(self, event_id: str) -> bool:
        return self._scalar("SELECT 1 FROM report_events WHERE id = ?", [event_id]) is not None

    def report_events(
        self, consent_id: str | None = None
    ) -> list[tuple[str, str | None, int, bytes]]:
        """(id, consent id, key version, record): all rows, or those of one consent."""
        sql = "SELECT id, consent_id, key_version, record FROM report_events"
        params: list[Any] = []
        if consent_id is not None:
            sql += " WHERE consent_id = ?"
            params.append(consent_id)
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        return [(str(i), c, int(v), r) for i, c, v, r in rows]

    def delete_report_event(self, event_id: str) -> int:
        return self._exec("DELETE FROM report_events WHERE id = ?", [event_id])

    def put_report_share(
        self,
        consent_id: str,
        *,
        rev: int,
        admin_version: int,
        sealed: bytes,
        signer: str,
        epoch: int,
        sig: bytes,
        kept: int = 0,
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO report_shares"
            " (consent_id, rev, admin_version, sealed, signer, epoch, sig, kept)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [consent_id, rev, admin_version, sealed, signer, epoch, sig, kept],
        )

    def report_share(self, consent_id: str) -> tuple[Any, ...] | None:
        """(rev, admin version, sealed, signer, epoch, sig, kept) of one consent's share."""
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(
                "SELECT rev, admin_version, sealed, signer, epoch, sig, kept FROM report_shares"
                " WHERE consent_id = ?",
                [consent_id],
            ).fetchone()
        return None if row is None else tuple(row)

    def stale_report_shares(self, readers: Sequence[str], limit: int | None = None) -> list[str]:
        """Active consents with a wrap for one of ``readers`` whose report share is missing
        or older than their signed state."""
        marks = ", ".join("?" for _ in readers)
        sql = (
            "SELECT DISTINCT c.id FROM consents c JOIN consent_keys k ON k.consent_id = c.id"
            " LEFT JOIN report_shares s ON s.consent_id = c.id"
            f" WHERE c.status = 'active' AND k.reader IN ({marks})"
            " AND (s.rev IS NULL OR s.rev != coalesce(c.rev, 0)) ORDER BY c.id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with sqlite_errors(self.busy_timeout):
            return [str(i) for (i,) in self.conn.execute(sql, list(readers)).fetchall()]

    def kept_report_shares(self) -> list[tuple[str, int, bytes]]:
        """(consent id, admin version, sealed) of the shares of erased consents."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT consent_id, admin_version, sealed FROM report_shares WHERE kept = 1"
                " ORDER BY consent_id"
            ).fetchall()
        return [(str(c), int(v), s) for c, v, s in rows]

    def keep_report_share(self, consent_id: str) -> int:
        return self._exec("UPDATE report_shares SET kept = 1 WHERE consent_id = ?", [consent_id])

    def delete_report_share(self, consent_id: str) -> int:
        return self._exec("DELETE FROM report_shares WHERE consent_id = ?", [consent_id])

    def all_report_shares(self) -> list[tuple[str, int, bytes]]:
        """(consent id, admin version, sealed) of every share (a rotation reseals them)."""
        with sqlite_errors(self.busy_timeout):
            rows = self.conn.execute(
                "SELECT consent_id, admin_version, sealed FROM report_shares ORDER BY consent_id"
            ).fetchall()
        return [(str(c), int(v), s) for c, v, s in rows]

    def report_totals(self) -> tuple[int, bytes] | None:
        with sqlite_errors(self.busy_timeout):
            row = self.conn.execute(
                "SELECT admin_version, sealed FROM report_totals WHERE id = 1"
            ).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def put_report_totals(self, admin_version: int, sealed: bytes) -> None:
        self._exec(
            "INSERT OR REPLACE INTO report_totals (id, admin_version, sealed) VALUES (1, ?, ?)",
            [admin_version, sealed],
        )
