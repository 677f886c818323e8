"""``nok verify``: check everything that can be checked, and change nothing.

In one read snapshot: SQLite's own integrity and foreign-key checks, the schema version
and no object in the file that nok does not make, every staff slot header and sealed
master key (as far as that is possible without their passphrases), every wrapped vault key
and data key, every ciphertext decrypted and authenticated (notes in batches, with
progress), every active consent's retention deadline and last activity as its dates and
notes give them, every tombstone really empty, and the audit chain with its MACs. Each
problem is one whole-sentence template with ids and column names only, never personal data.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vault import audit, consents, crypto, erasure, keyring, notes, parallel, slots
from vault.errors import IntegrityError, NokError, UnsupportedVersion
from vault.session import Unlocked, check_settings
from vault.store import SCHEMA_VERSION, ConsentRow, Store

Progress = Callable[[str, int, int], None]
PROGRESS_EVERY = 1000
STAGES = ("sqlite", "settings", "staff", "keys", "consents", "notes", "tombstones", "audit")


@dataclass
class Report:
    """What verify found: problems (empty when all is intact) and what it checked."""

    problems: list[audit.Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    # Findings that do not make the vault fail (e.g. no audit anchor beside a copy).
    warnings: list[audit.Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, template: str, **params: object) -> None:
        self.problems.append(audit.Problem(kind, template, params))

    def add_error(self, kind: str, exc: NokError) -> None:
        self.problems.append(audit.Problem(kind, exc.template, dict(exc.params)))

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": [p.to_json() for p in self.problems],
            "checked": dict(self.checked),
            "warnings": [w.to_json() for w in self.warnings],
        }


def _quiet(stage: str, done: int, total: int) -> None:
    """The default progress callback: nothing to show."""


def verify(unlocked: Unlocked, progress: Progress = _quiet) -> Report:
    """Check the whole vault read-only; ``progress(stage, done, total)`` is called as it goes.

    Raises only what reading can raise (VaultBusy, StorageError, IntegrityError for a
    file that is not SQLite at all); every finding goes into the report.
    """
    report = Report()
    store = unlocked.store
    with store.read():
        _check_sqlite(store, report, progress)
        _check_settings(unlocked, report, progress)
        _check_staff(unlocked, report, progress)
        audit_key = _check_vault_keys(unlocked, report, progress)
        _check_consents(unlocked, report, progress)
        _check_notes(unlocked, report, progress)
        _check_tombstones(store, report, progress)
        _check_erasure_log(store, report)
        progress("audit", 0, 1)
        report.problems.extend(audit.verify_chain(store, audit_key, unlocked.now))
        report.warnings.extend(audit.anchor_warnings(store))
        report.checked["audit_entries"] = store.count_audit()
        progress("audit", 1, 1)
    return report


def _check_erasure_log(store: Store, report: Report) -> None:
    """An erased consent that is active again (an old copy put back, rows pasted in)."""
    try:
        records = erasure.read_erasure_log(erasure.log_path(store.path), missing_ok=True)
    except NokError as exc:
        report.add_error("erasure-log", exc)
        return
    for consent_id in sorted(store.still_active(r.consent_id for r in records)):
        report.add(
            "erased-back",
            "consent {id} is recorded as erased in the erasure log but is active in the "
            "vault: its data came back",
            id=consent_id,
        )


def _check_sqlite(store: Store, report: Report, progress: Progress) -> None:
    progress("sqlite", 0, 1)
    for line in store.integrity_problems():
        report.add("sqlite", "SQLite reports damage in the vault file: {detail}", detail=line)
    try:
        # Opening checked this already; a trigger planted since would go unseen otherwise.
        store.check_objects()
    except IntegrityError as exc:
        report.add_error("schema", exc)
    version = store.schema_version()
    if version != SCHEMA_VERSION:
        report.add(
            "schema",
            "the vault's schema is at version {found}, but this nok expects {expected}",
            found=version,
            expected=SCHEMA_VERSION,
        )
    progress("sqlite", 1, 1)


def _check_settings(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    progress("settings", 0, 1)
    try:
        check_settings(unlocked.store, unlocked.master)
    except IntegrityError as exc:
        report.add_error("settings", exc)
    progress("settings", 1, 1)


def _check_staff(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    staff = unlocked.store.list_staff()
    version = unlocked.master_version
    for done, row in enumerate(staff, start=1):
        if not isinstance(row.slot, bytes) or not isinstance(row.role_tag, bytes | None):
            report.add("staff", "the key slot of {name} is damaged", name=row.name)
            continue
        try:
            header = slots.read_header(row.slot, name=row.name)
            crypto.check_kdf(header.params, name=row.name)
            keyring.check_role(unlocked.master, row.name, row.role, row.public_key, row.role_tag)
        except (IntegrityError, UnsupportedVersion) as exc:
            report.add_error("staff", exc)
        if row.master_version != version:
            report.add(
                "staff",
                "the key slot of {name} holds master key version {found}, not the current "
                "{expected}: its owner cannot unlock",
                name=row.name,
                found=row.master_version,
                expected=version,
            )
        if not _plausible_sealed(row.sealed_master, row.name, version):
            report.add(
                "staff",
                "the sealed master key of {name} is damaged: its owner cannot unlock",
                name=row.name,
            )
        if not isinstance(row.public_key, bytes) or len(row.public_key) != crypto.KEY_BYTES:
            report.add("staff", "the public key of {name} is damaged", name=row.name)
        progress("staff", done, len(staff))
    report.checked["staff"] = len(staff)


def _plausible_sealed(sealed: object, name: str, version: int) -> bool:
    """Version byte and exact length: all that can be checked without the owner's key."""
    if not isinstance(sealed, bytes) or not sealed:
        return False
    ad = slots.master_ad(name, version)
    size = 1 + crypto.SEALED_OVERHEAD + 2 + len(ad) + crypto.KEY_BYTES
    return sealed[0] == crypto.SEALED_V1 and len(sealed) == size


def _check_vault_keys(unlocked: Unlocked, report: Report, progress: Progress) -> bytes | None:
    """Unwrap every vault-wide key; returns the audit key when it opens."""
    audit_key = None
    stored = unlocked.store.list_vault_keys()
    for done, (purpose, version, wrapped) in enumerate(stored, start=1):
        try:
            key = keyring.unwrap_vault_key(
                unlocked.master, wrapped, purpose=purpose, master_version=version
            )
        except (IntegrityError, UnsupportedVersion) as exc:
            report.add_error("key", exc)
            continue
        if purpose == audit.AUDIT_KEY:
            audit_key = key
        progress("keys", done, len(stored))
    if audit_key is None and not any(p == audit.AUDIT_KEY for p, _, _ in stored):
        report.add("key", "the audit key is missing, so the trail's MACs cannot be checked")
    report.checked["vault_keys"] = len(stored)
    return audit_key


@dataclass(frozen=True)
class _Key:
    """What the notes pass needs of an active consent whose data key opens: found again
    per consent as its notes go by (one AEAD call each), so that verify's memory does not
    grow with the number of consents."""

    key: bytes
    row: ConsentRow


def _key_of(unlocked: Unlocked, consent_id: str) -> _Key | None:
    """None for a consent that is missing, ended or has no data key that opens (the
    consents pass reported why)."""
    row = unlocked.store.get_consent(consent_id)
    if row is None or row.status != consents.ACTIVE:
        return None
    if row.data_key is None or row.master_version is None:
        return None
    try:
        key = keyring.unwrap_data_key(
            unlocked.master, row.data_key, consent_id=row.id, master_version=row.master_version
        )
    except (IntegrityError, UnsupportedVersion):
        return None
    return _Key(key, dataclasses.replace(row, record=None))


def _check_consents(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    """Unwrap each active consent's data key, check its seal and open its record."""
    store = unlocked.store
    total = store.count_consents("active")
    default_days = unlocked.vault.settings().retention_days
    done = keyed = opened = 0
    for row in store.iter_consents(include_ended=False):
        _check_deadline(row, default_days, report)
        keyed += row.data_key is not None
        key = _consent_key(unlocked, row, report)
        if key is not None:
            opened += 1
            _check_consent_record(key, row, report)
        done += 1
        if done % PROGRESS_EVERY == 0 or done == total:
            progress("consents", done, total)
    if keyed and not opened:
        report.add(
            "key",
            "the master key opens none of the consents' data keys: it was replaced in the "
            "file, or every data key was damaged",
        )
    report.checked["consents"] = done


def _check_deadline(row: ConsentRow, default_days: int, report: Report) -> None:
    """The plaintext deadline must follow from the consent's (sealed) dates and retention."""
    try:
        expected = consents.deadline(row.given, row.last_activity, row.retain_days or default_days)
    except (TypeError, ValueError):
        report.add("retention", "the dates of consent {id} are not valid dates", id=row.id)
        return
    if row.retain_until != expected:
        report.add(
            "retention",
            "the retention deadline of consent {id} is stored as {stored}, but its dates and "
            "retention period give {expected}",
            id=row.id,
            stored=row.retain_until,
            expected=expected,
        )


def _check_last_activity(row: ConsentRow, newest: str | None, report: Report) -> None:
    """Notes only ever move the last activity forward to their date, so it is the newest."""
    if row.last_activity == newest:
        return
    if newest is None:
        report.add(
            "retention",
            "consent {id} has no notes, but its last activity is stored as {stored}",
            id=row.id,
            stored=row.last_activity,
        )
    elif row.last_activity is None:
        report.add(
            "retention",
            "consent {id} has notes up to {newest}, but no last activity is stored",
            id=row.id,
            newest=newest,
        )
    else:
        report.add(
            "retention",
            "the last activity of consent {id} is stored as {stored}, but its newest "
            "note is dated {newest}",
            id=row.id,
            stored=row.last_activity,
            newest=newest,
        )


def _consent_key(unlocked: Unlocked, row: ConsentRow, report: Report) -> bytes | None:
    if row.data_key is None or row.master_version is None:
        report.add("key", "the data key of active consent {id} is missing", id=row.id)
        return None
    try:
        return keyring.unwrap_data_key(
            unlocked.master, row.data_key, consent_id=row.id, master_version=row.master_version
        )
    except (IntegrityError, UnsupportedVersion) as exc:
        report.add_error("key", exc)
        return None


def _check_consent_record(key: bytes, row: ConsentRow, report: Report) -> None:
    try:
        consents.check_retention(key, row)
    except IntegrityError as exc:
        report.add_error("retention", exc)
    try:
        # Opened directly: consents.open_record would stop at an edited date first.
        ad = keyring.consent_ad(row.id, row.key_version)
        keyring.open_record(
            key,
            row.record,
            ad,
            consents.RECORD_FIELDS,
            where=f"consent {row.id}",
            optional=consents.OPTIONAL_FIELDS,
        )
    except (IntegrityError, UnsupportedVersion) as exc:
        report.add_error("field", exc)
    report.checked["ciphertexts"] = report.checked.get("ciphertexts", 0) + 1


@dataclass
class _Group:
    """The notes of one consent seen so far in the notes pass."""

    consent_id: str
    key: _Key | None = None
    entries: list[tuple[str, int, bytes]] = field(default_factory=list)
    newest: str | None = None


def _check_notes(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    """Open every note, and check each consent's note seal and last activity.

    Notes come grouped by consent, so one consent's notes (and key) are in memory at a
    time. They are opened on every core (vault.parallel); the few that do not open are
    opened again here to report why, in the order of the notes, each consent's seal after
    its notes.
    """
    store = unlocked.store
    total = store.count_notes()
    state = {"rows": 0, "opened": 0}
    group: _Group | None = None
    # Consents whose notes have all been read, with how many notes were sent to be opened
    # before them: their seal is reported once those notes have come back.
    closed: deque[tuple[int, _Group]] = deque()

    def to_open() -> Iterator[tuple[bytes, notes.Sealed]]:
        nonlocal group
        for row in store.iter_notes_by_consent():
            if group is None or group.consent_id != row.consent_id:
                if group is not None and group.key is not None:
                    closed.append((state["opened"], group))
                group = _Group(row.consent_id, key=_key_of(unlocked, row.consent_id))
            state["rows"] += 1
            if group.key is None:
                continue  # nothing to check without its key (the consents pass said why)
            group.entries.append((row.id, row.seq, keyring.record_tag(row.record)))
            group.newest = max(group.newest or row.date, row.date)
            state["opened"] += 1
            yield group.key.key, notes.sealed(row)

    def close_until(opened: int) -> None:
        while closed and closed[0][0] <= opened:
            _close_group(closed.popleft()[1], report)

    back = 0
    for count, failures in parallel.ordered_map(notes.unopenable, parallel.batches(to_open())):
        for place, key, note in failures:
            close_until(back + place)
            _report_note(key, note, report)
        back += count
        close_until(back)
        progress("notes", state["rows"], total)
    close_until(back)
    _close_group(group, report)
    for consent_id in store.active_consents_without_notes():
        _close_group(_Group(consent_id, key=_key_of(unlocked, consent_id)), report)
    progress("notes", state["rows"], total)
    report.checked["notes"] = state["rows"]
    report.checked["ciphertexts"] = report.checked.get("ciphertexts", 0) + state["opened"]


def _close_group(group: _Group | None, report: Report) -> None:
    if group is None or group.key is None:
        # Its consent is missing, ended or has no usable key; reported there or below.
        return
    key = group.key
    _check_last_activity(key.row, group.newest, report)
    expected = consents.notes_chain(key.key, key.row).fold(group.entries)
    try:
        keyring.check_tag(expected, key.row.notes_tag, keyring.NotesChanged(id=key.row.id))
    except IntegrityError as exc:
        report.add_error("notes", exc)


def _report_note(key: bytes, note: notes.Sealed, report: Report) -> None:
    try:
        notes.open_sealed(key, note)
    except keyring.RecordChanged as exc:
        report.add_error("note-date", exc)
    except (IntegrityError, UnsupportedVersion) as exc:
        report.add_error("field", exc)


def _check_tombstones(store: Store, report: Report, progress: Progress) -> None:
    progress("tombstones", 0, 1)
    for consent_id in store.tombstones_with_data():
        report.add(
            "tombstone",
            "consent {id} ended, but personal data or notes under it are still stored",
            id=consent_id,
        )
    report.checked["tombstones"] = store.count_consents(None) - store.count_consents("active")
    progress("tombstones", 1, 1)
