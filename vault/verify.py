"""``nok verify``: check everything that can be checked, and change nothing.

In one read snapshot: SQLite's own integrity and foreign-key checks, the schema version
and no object in the file that nok does not make; the vault's signed epoch chain and the
verifier's pin of it; every staff slot against the signed staff list; every active
consent's signed state (signature, proof, deadline, freshness against the signed trail),
record and notes (opened on every core), and the wraps of its data key; every tombstone
empty and its ending signed; the erasure log; corrections the trail records that the
file no longer reflects; and the audit chain with its signatures. Each problem is one
whole-sentence template with ids and column names only, never personal data.

A staff member checks the consents she can open; an admin, every consent. A consent the
verifier holds no wrap for is counted (``checked["consents_not_opened"]``), not reported;
a wrap she holds that does not open, or opens to a planted key, is reported.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vault import (
    access,
    audit,
    consents,
    corrections,
    crypto,
    endings,
    epochs,
    keyring,
    notes,
    parallel,
    pins,
    seeds,
    slots,
    states,
)
from vault.errors import IntegrityError, NokError, UnsupportedVersion
from vault.session import Unlocked
from vault.store import SCHEMA_VERSION, ConsentRow, Store

Progress = Callable[[str, int, int], None]
PROGRESS_EVERY = 1000
STAGES = ("sqlite", "epochs", "staff", "consents", "notes", "tombstones", "audit")


@dataclass
class Report:
    """What verify found: problems (empty when all is intact) and what it checked."""

    problems: list[audit.Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    # Findings that do not make the vault fail (e.g. keyless backups in the trail).
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
        _check_epochs(unlocked, report, progress)
        _check_staff(unlocked, report, progress)
        _check_consents(unlocked, report, progress)
        _check_notes(unlocked, report, progress)
        _check_tombstones(unlocked, report, progress)
        _check_erasure_log(unlocked, report)
        _check_corrections(unlocked, report)
        progress("audit", 0, 1)
        report.problems.extend(audit.verify_chain(store, unlocked.chain, unlocked.now))
        report.checked["audit_entries"] = store.count_audit()
        progress("audit", 1, 1)
    return report


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


def _check_epochs(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    """The stored chain verifies (the unlock did), and the verifier's pin agrees."""
    progress("epochs", 0, 1)
    store = unlocked.store
    try:
        chain = epochs.verify(store.epoch_rows(), vault_id=unlocked.vault_id)
        if chain.current.hash != unlocked.chain.current.hash:
            raise IntegrityError(where="the vault's epoch statements (changed meanwhile)")
    except IntegrityError as exc:
        report.add_error("epochs", exc)
        return
    if unlocked.pin_store is not None:
        try:
            pins.check(chain, unlocked.pin_store.get(unlocked.vault_id), store.audit_hash_at)
        except IntegrityError as exc:
            report.add_error("rollback", exc)
    report.checked["epochs"] = len(chain.epochs)
    progress("epochs", 1, 1)


def _check_staff(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    store = unlocked.store
    listed = unlocked.epoch.staff
    rows = {row.name: row for row in store.list_staff()}
    for done, name in enumerate(sorted(set(rows) | set(listed)), start=1):
        row, member = rows.get(name), listed.get(name)
        if member is None:
            report.add(
                "staff",
                "the key slot of {name} is in the file, but the vault's signed staff list "
                "does not name {name}: it was put back after a removal, or planted",
                name=name,
            )
            continue
        if row is None:
            report.add("staff", "{name} is staff, but has no key slot in the file", name=name)
            continue
        try:
            header = slots.read_header(row.slot, name=row.name)
            crypto.check_kdf(header.params, name=row.name)
            if header.version != slots.SLOT_V2:
                raise UnsupportedVersion(what=f"key slot of {name}", version=header.version)
        except (IntegrityError, UnsupportedVersion) as exc:
            report.add_error("staff", exc)
        if row.role != member.role or row.public_key != member.box:
            report.add(
                "staff",
                "the role or public key of {name} in the file is not what the vault's signed "
                "staff list says ({role}): it was changed outside nok, and nok uses the signed one",
                name=name,
                role=member.role,
            )
        if store.get_sealed(name, seeds.TEAM) is None:
            report.add(
                "staff", "the team key sealed to {name} is missing: {name} cannot unlock", name=name
            )
        if member.role == "admin" and store.get_sealed(name, seeds.ADMIN) is None:
            report.add(
                "staff",
                "the admin key sealed to {name} is missing: {name} cannot unlock",
                name=name,
            )
        progress("staff", done, len(listed))
    report.checked["staff"] = len(listed)
    _check_seeds(unlocked, report)


def _check_seeds(unlocked: Unlocked, report: Report) -> None:
    """The seeds the verifier holds (and, for an admin, those sealed to the admins) open
    and are the ones the signed epoch lists; every vault-wide key opens under the team
    key. Seeds sealed to colleagues open only with their keys: that they are there is
    checked above, and each unlock checks them."""
    k = unlocked.epoch.keys
    mine = unlocked.keys.box_secret
    held = [(seeds.TEAM, unlocked.name, mine, k.team, k.team_version)]
    if unlocked.admin is not None:
        admins = unlocked.admin.box_secret
        held += [
            (seeds.ADMIN, unlocked.name, mine, k.admin, k.admin_version),
            (seeds.TEAM, seeds.HOLDER_ADMIN, admins, k.team, k.team_version),
            (seeds.JOB, seeds.HOLDER_ADMIN, admins, k.job, k.job_version),
        ]
    for purpose, holder, secret, expect, version in held:
        try:
            seeds.open_seed(
                unlocked.store,
                vault_id=unlocked.vault_id,
                purpose=purpose,
                holder=holder,
                box_secret=secret,
                expect=expect,
                version=version,
            )
        except IntegrityError as exc:
            report.add_error("key", exc)
    for purpose, version, wrapped in unlocked.store.list_vault_keys():
        try:
            keyring.unwrap_vault_key(
                unlocked.team.wrap, wrapped, purpose=purpose, master_version=version
            )
        except (IntegrityError, UnsupportedVersion) as exc:
            report.add_error("key", exc)


def _open(unlocked: Unlocked, row: ConsentRow, report: Report | None = None) -> bytes | None:
    """The data key of ``row``, or None. A consent the verifier holds no wrap for is only
    counted; a wrap she holds that does not open, or gives a key other than the one the
    signed state names, is damage or a planted key and goes into ``report``: an admin's
    verify must not pass over a consent nobody can read any more."""
    try:
        return access.open_key(unlocked, row, admin_ok=True)
    except access.NoAccess:
        return None
    except (IntegrityError, UnsupportedVersion) as exc:
        if report is not None:
            report.add_error("key", exc)
        return None


def _check_consents(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    """Each active consent: its signed state, its record, its wraps."""
    store = unlocked.store
    total = store.count_consents("active")
    default_days = unlocked.settings().retention_days
    done = opened = skipped = 0
    for row in store.iter_consents(include_ended=False):
        _check_deadline(row, default_days, report)
        digest = consents.state_digest(unlocked.vault_id, row)
        if not consents.signature_ok(unlocked, row, digest):
            report.add(
                "state",
                "the state of consent {id} is not signed by a staff member of the vault: it "
                "was written or changed outside nok",
                id=row.id,
            )
        elif not consents.is_latest(unlocked.store, unlocked.chain, row, digest):
            report.add(
                "stale",
                "consent {id} holds an older state than the audit trail records: it was put "
                "back from an older copy",
                id=row.id,
            )
        key = _open(unlocked, row, report)
        if key is None:
            skipped += 1
        else:
            opened += 1
            if not states.proof_valid(states.proof_key(key), digest, row.proof):
                report.add(
                    "state",
                    "the state of consent {id} was not made with its key (its proof fails): "
                    "it was changed outside nok",
                    id=row.id,
                )
            try:
                consents.open_record(key, row)
            except (IntegrityError, UnsupportedVersion) as exc:
                report.add_error("field", exc)
            report.checked["ciphertexts"] = report.checked.get("ciphertexts", 0) + 1
        # Also for a consent she cannot open: a wrap removed or added is plain to see.
        _check_wraps(unlocked, row, key, report)
        done += 1
        if done % PROGRESS_EVERY == 0 or done == total:
            progress("consents", done, total)
    report.checked["consents"] = done
    report.checked["consents_not_opened"] = skipped


def _check_wraps(unlocked: Unlocked, row: ConsentRow, key: bytes | None, report: Report) -> None:
    """Who the wraps are for must be who the signed state says may read; with the data
    key (``key``), the wraps the verifier holds a key for must give it."""
    readers = {r.name for r in access.readers_of(row)}
    wanted = {row.contact or "", *readers, access.ADMIN_READER, access.JOB_READER}
    if row.access == "team":
        wanted.add(access.TEAM_READER)
    stored = unlocked.store.wraps(row.id)
    present = {reader for reader, version, *_ in stored if version == row.key_version}
    for reader, version, how, wrapped in stored:
        if version != row.key_version:
            report.add(
                "wrap",
                "consent {id} has a key wrap for {reader} at key version {version}, but its "
                "signed state is at version {current}: it was put back from before a rotation",
                id=row.id,
                reader=reader,
                version=version,
                current=row.key_version,
            )
        elif key is not None and reader in access.my_readers(unlocked):
            _check_wrap_opens(unlocked, row, key, (reader, version, how, wrapped), report)
    for extra in sorted(present - wanted):
        report.add(
            "wrap",
            "consent {id} has a key wrap for {reader}, whom its signed state does not name: "
            "it was added outside nok",
            id=row.id,
            reader=extra,
        )
    for missing in sorted(wanted - present):
        report.add(
            "wrap",
            "consent {id} has no key wrap for {reader}, whom its signed state names",
            id=row.id,
            reader=missing,
        )
    job_key = None if key is None else _job_proof_key(unlocked, row)
    if job_key is not None and key is not None and not crypto.same(job_key, states.proof_key(key)):
        report.add(
            "wrap",
            "the proof key of consent {id} sealed to the job is not its own: the nightly "
            "purge would refuse it",
            id=row.id,
        )


def _check_wrap_opens(
    unlocked: Unlocked,
    row: ConsentRow,
    key: bytes,
    wrap: tuple[str, int, str, bytes],
    report: Report,
) -> None:
    """A wrap the verifier holds a key for must give the data key itself: the one she
    opened may be another of hers, and a colleague (or an admin) relies on this one."""
    reader, version, how, wrapped = wrap
    try:
        opened = access.unwrap(unlocked, row.id, reader, version, how, wrapped)
    except IntegrityError:
        opened = b""
    if not crypto.same(opened, key):
        report.add(
            "key",
            "the key wrap of consent {id} for {reader} does not give its data key: it was "
            "altered or replaced outside nok",
            id=row.id,
            reader=reader,
        )


def _job_proof_key(unlocked: Unlocked, row: ConsentRow) -> bytes | None:
    """The proof key the job would read, for an admin (who holds the job seed)."""
    if unlocked.admin is None:
        return None
    from vault import seeds

    k = unlocked.epoch.keys
    try:
        job = seeds.open_seed(
            unlocked.store,
            vault_id=unlocked.vault_id,
            purpose=seeds.JOB,
            holder=seeds.HOLDER_ADMIN,
            box_secret=unlocked.admin.box_secret,
            expect=k.job,
            version=k.job_version,
        )
    except IntegrityError:
        return None
    for _, version, _, wrapped in unlocked.store.wrap_for(row.id, [access.JOB_READER]):
        ad = access.wrap_ad(unlocked.vault_id, row.id, access.JOB_READER, version)
        try:
            return crypto.open_sealed(job.box_secret, wrapped, ad, where="proof key")
        except (IntegrityError, UnsupportedVersion):
            return b""
    return None


def _check_deadline(row: ConsentRow, default_days: int, report: Report) -> None:
    """The plaintext deadline must follow from the consent's (signed) dates and retention."""
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


@dataclass(frozen=True)
class _Key:
    key: bytes
    row: ConsentRow


@dataclass
class _Group:
    """The notes of one consent seen so far in the notes pass."""

    consent_id: str
    key: _Key | None = None
    entries: list[tuple[str, int, bytes]] = field(default_factory=list)
    newest: str | None = None
    # Pending notes too: the last activity may follow one folded in since.
    newest_any: str | None = None


def _key_of(unlocked: Unlocked, consent_id: str) -> _Key | None:
    row = unlocked.store.get_consent(consent_id)
    if row is None or row.status != consents.ACTIVE:
        return None
    key = _open(unlocked, row)
    return None if key is None else _Key(key, dataclasses.replace(row, record=None))


def _check_notes(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    """Open every note the verifier can, and check each consent's notes chain and last
    activity. Notes come grouped by consent, so one consent's notes (and key) are in
    memory at a time. They are opened on every core (vault.parallel); the few that do not
    open are opened again here to report why, in the order of the notes, each consent's
    chain after its notes."""
    store = unlocked.store
    total = store.count_notes()
    state = {"rows": 0, "opened": 0}
    group: _Group | None = None
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
                continue
            group.newest_any = max(group.newest_any or row.date, row.date)
            if row.pending:
                _check_pending(unlocked, group.key, row, report)
                continue
            group.entries.append((row.id, row.seq, states.record_tag(row.record)))
            group.newest = max(group.newest or row.date, row.date)
            state["opened"] += 1
            yield group.key.key, notes.sealed(row)

    def close_until(opened: int) -> None:
        while closed and closed[0][0] <= opened:
            _close_group(unlocked, closed.popleft()[1], report)

    back = 0
    for count, failures in parallel.ordered_map(notes.unopenable, parallel.batches(to_open())):
        for place, key, note in failures:
            close_until(back + place)
            _report_note(key, note, report)
        back += count
        close_until(back)
        progress("notes", state["rows"], total)
    close_until(back)
    _close_group(unlocked, group, report)
    for consent_id in store.active_consents_without_notes():
        _close_group(unlocked, _Group(consent_id, key=_key_of(unlocked, consent_id)), report)
    progress("notes", state["rows"], total)
    report.checked["notes"] = state["rows"]
    report.checked["ciphertexts"] = report.checked.get("ciphertexts", 0) + state["opened"]


def _check_pending(unlocked: Unlocked, key: _Key, row: object, report: Report) -> None:
    from vault.store import NoteRow

    assert isinstance(row, NoteRow)
    try:
        notes.open_pending(unlocked, key.row, key.key, row)
    except (IntegrityError, UnsupportedVersion):
        report.add(
            "note",
            "note {id} of consent {consent} is marked as written by a colleague without "
            "access, but its signature or record does not check out: it was added outside nok",
            id=row.id,
            consent=row.consent_id,
        )


def _close_group(unlocked: Unlocked, group: _Group | None, report: Report) -> None:
    if group is None or group.key is None:
        return
    row = group.key.row
    if row.last_activity != group.newest and not (
        group.newest is None and row.last_activity is None
    ):
        _last_activity(row, group.newest, group.newest_any, report)
    expected = consents.notes_hash(unlocked.vault_id, row, group.entries)
    if not isinstance(row.notes_hash, bytes) or not crypto.same(expected, row.notes_hash):
        report.add_error("notes", states.NotesChanged(id=row.id))


def _last_activity(
    row: ConsentRow, newest: str | None, newest_any: str | None, report: Report
) -> None:
    if newest_any is None:
        report.add(
            "retention",
            "consent {id} has no notes, but its last activity is stored as {stored}",
            id=row.id,
            stored=row.last_activity,
        )
    elif row.last_activity is None:
        report.add(
            "retention",
            "consent {id} has notes, the newest dated {newest}, but no last activity is "
            "stored: its deadline runs from the day it was given",
            id=row.id,
            newest=newest_any,
        )
    elif (newest is not None and row.last_activity < newest) or row.last_activity > newest_any:
        # Later than every note keeps the data longer than its notes allow; earlier,
        # shorter than the person was told.
        report.add(
            "retention",
            "the last activity of consent {id} is stored as {stored}, but its newest "
            "note is dated {newest}",
            id=row.id,
            stored=row.last_activity,
            newest=newest_any,
        )


def _report_note(key: bytes, note: notes.Sealed, report: Report) -> None:
    from vault import keyring

    try:
        notes.open_sealed(key, note)
    except keyring.RecordChanged as exc:
        report.add_error("note-date", exc)
    except (IntegrityError, UnsupportedVersion) as exc:
        report.add_error("field", exc)


def _check_tombstones(unlocked: Unlocked, report: Report, progress: Progress) -> None:
    progress("tombstones", 0, 1)
    store = unlocked.store
    for consent_id in store.tombstones_with_data():
        report.add(
            "tombstone",
            "consent {id} ended, but personal data, key wraps or notes under it are still stored",
            id=consent_id,
        )
    ended = store.ended_consents()
    for row in ended:
        signed = endings.from_row(row)
        if signed is None or not endings.signature_valid(unlocked.chain, signed):
            report.add(
                "unsigned-ending",
                "consent {id} is marked {status}, but no staff member or job signed its "
                "ending: its status was changed outside nok (nok never erases on it)",
                id=row.id,
                status=row.status,
            )
    report.checked["tombstones"] = len(ended)
    progress("tombstones", 1, 1)


def _check_erasure_log(unlocked: Unlocked, report: Report) -> None:
    """Lines that are not endings, endings not signed, erased consents active again."""
    store = unlocked.store
    try:
        log = endings.read_log(endings.log_path(store.path), missing_ok=True, chain=unlocked.chain)
    except NokError as exc:
        report.add_error("erasure-log", exc)
        return
    for number in log.bad_lines:
        report.add(
            "erasure-log",
            "line {line} of the erasure log is not a signed ending: it was added outside nok, "
            "and nok never erases on it",
            line=number,
        )
    active = store.still_active(r.consent_id for r in log.records)
    for record in log.records:
        if not endings.signature_valid(unlocked.chain, record):
            report.add(
                "erasure-log",
                "the erasure log names consent {id}, but no staff member or job signed that "
                "ending: it was added outside nok, and nok never erases on it",
                id=record.consent_id,
            )
        elif record.consent_id in active:
            report.add(
                "erased-back",
                "consent {id} is recorded as erased in the erasure log but is active in the "
                "vault: its data came back",
                id=record.consent_id,
            )


def _check_corrections(unlocked: Unlocked, report: Report) -> None:
    """Corrections the signed trail records that the file no longer reflects."""
    store = unlocked.store
    for entry in store.entries_of(("note.delete",)):
        if entry.object_id and store.get_note(entry.object_id) is not None:
            report.add(
                "correction",
                "note {id} was deleted ({seq}), but the file holds it again: it was put back "
                "from an older copy",
                id=entry.object_id,
                seq=entry.seq,
            )
    for consent_id, _ in store.stale_consents(corrections.CORRECTION_ACTIONS):
        report.add(
            "correction",
            "consent {id} holds a state from before a correction the audit trail records: "
            "the correction was rolled back (it is applied again at the next unlock by "
            "someone who can open it)",
            id=consent_id,
        )
