"""Bulk import of consents and their notes from JSON Lines (docs: README, import-search).

One line is one consent declaration with its notes::

    {"subject": "Kari", "purpose": "follow-up", "categories": ["conversation-notes"],
     "given": "2024-03-01", "notes": [{"date": "2024-03-04", "kind": "phone", "text": "..."}]}

Nothing is imported unless every line is valid. :func:`check` validates a source in one
streaming pass (a file can be checked before it is written, and ``--dry-run`` stops there).
:func:`write` parses and validates again while it encrypts, and writes everything in ONE
write transaction, ``executemany`` one batch at a time: memory stays flat however long the
file is, standard input (which cannot be read twice) needs no temporary copy, and an
invalid line, a full disk, Ctrl-C or a crash rolls the whole import back. The price is that
the vault is write-locked while the import runs (readers are not blocked).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vault import audit, consents, crypto, ids, notes, parallel
from vault.consents import ConsentInput
from vault.dates import timestamp
from vault.errors import BadInput, Conflict, NokError
from vault.session import Settings, Unlocked
from vault.store import ConsentRow, NoteRow

MAX_PROBLEMS = 20
MAX_LINE_BYTES = 16 * 1024 * 1024
BATCH_NOTES = 2000
BATCH_CONSENTS = 500
# Consents per signature in the trail. Every keyed read of a consent checks that its
# newest state entry is signed, which walks that entry's signed batch: one signature per
# few consents keeps the walk short, so a colleague who reads 100 of 20,000 imported
# consents does not hash the entries of the 19,900 others (issue 17). One Ed25519
# signature costs about what hashing a few dozen entries does.
SIGNED_EVERY = 8
AUDIT_ACTION = "consent.import"
# Each imported file leaves a setting ``import:<MAC of its bytes>``: keyed with a vault key,
# so the file cannot be recognised, nor its contents guessed, without a passphrase.
FINGERPRINT_KEY = "import"
FINGERPRINT_PREFIX = "import:"

_CONSENT_FIELDS = frozenset(
    {
        "subject",
        "purpose",
        "categories",
        "given",
        "guardian",
        "under_16",
        "form_ref",
        "retain_days",
        "notes",
        "contact",
    }
)
_NOTE_FIELDS = frozenset({"date", "kind", "text"})


@dataclass(frozen=True)
class NoteInput:
    date: str
    kind: str
    text: str


@dataclass(frozen=True)
class Entry:
    """One valid line: a normalised consent and its notes."""

    line: int
    consent: ConsentInput
    notes: tuple[NoteInput, ...]

    @property
    def last_activity(self) -> str | None:
        return max((n.date for n in self.notes), default=None)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line (``note`` is the 1-based note number, if it is one)."""

    line: int
    note: int | None
    error: NokError


@dataclass(frozen=True)
class Summary:
    consents: int
    notes: int
    long_notes: int
    past_retention: int
    # When this very file was imported before (UTC timestamp), if it was.
    imported_before: str | None = None


@dataclass(frozen=True)
class Progress:
    consents: int
    notes: int


class ImportRejected(BadInput):
    """Some lines are invalid; ``problems`` holds the first :data:`MAX_PROBLEMS` of them."""

    template = "{bad} line(s) of the import are not valid; nothing was imported"
    hint_template = "fix the lines listed above and run the import again"

    def __init__(self, problems: Sequence[Problem], bad: int) -> None:
        super().__init__(bad=bad)
        self.problems = list(problems)


class _NoteProblem(Exception):
    def __init__(self, number: int, error: NokError) -> None:
        super().__init__(number)
        self.number = number
        self.error = error


class _Counter:
    """Counts consents, notes and problems as lines go by."""

    def __init__(self, settings: Settings, today: str, staff: frozenset[str] | None = None) -> None:
        self.settings = settings
        self.today = today
        self.staff = staff
        self.problems: list[Problem] = []
        self.bad_lines = 0
        self.consents = 0
        self.notes = 0
        self.long_notes = 0
        self.past_retention = 0

    def add_problem(self, problem: Problem) -> None:
        self.bad_lines += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def count(self, entry: Entry) -> None:
        self.consents += 1
        self.notes += len(entry.notes)
        guideline = self.settings.note_guideline
        self.long_notes += sum(1 for n in entry.notes if len(n.text) > guideline)
        if retain_until(entry, self.settings) < self.today:
            self.past_retention += 1

    def raise_if_bad(self) -> None:
        if self.bad_lines:
            raise ImportRejected(self.problems, self.bad_lines)

    def summary(self) -> Summary:
        return Summary(self.consents, self.notes, self.long_notes, self.past_retention)


def retain_until(entry: Entry, settings: Settings) -> str:
    """The deadline the consent gets: from the later of its date and its last note."""
    given = entry.consent.given or ""
    days = entry.consent.retain_days or settings.retention_days
    return consents.deadline(given, entry.last_activity, days)


def _expect(obj: dict[str, Any], name: str, kinds: tuple[type, ...], *, required: bool) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise BadInput("the field {field!r} is missing", field=name)
        return None
    # JSON true/false arrive as bool, which Python counts as an int.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadInput(
            "the field {field!r} must be {expected}",
            field=name,
            expected=" or ".join(_TYPE_NAMES[k] for k in kinds),
        )
    return value


_TYPE_NAMES = {str: "text", int: "a whole number", bool: "true or false", list: "a list"}


def _object(raw: Any, *, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadInput("{what} must be a JSON object {{...}}", what=what)
    return raw


def _unknown(obj: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise BadInput(
            "unknown field {field!r}; the fields are: {known}",
            field=unknown[0],
            known=", ".join(sorted(known)),
        )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadInput("the field {field!r} appears twice", field=key)
        obj[key] = value
    return obj


def _decode(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the line is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise BadInput(
            "not valid JSON: {reason} at column {column}", reason=exc.msg, column=exc.colno
        ) from None
    except RecursionError:
        raise BadInput("not valid JSON: nested too deeply") from None


def _consent(obj: dict[str, Any], today: str, staff: frozenset[str] | None) -> ConsentInput:
    _unknown(obj, _CONSENT_FIELDS)
    subject = _expect(obj, "subject", (str,), required=True)
    purpose = _expect(obj, "purpose", (str,), required=True)
    categories = _expect(obj, "categories", (list,), required=True)
    if not all(isinstance(c, str) for c in categories):
        raise BadInput("the field {field!r} must be a list of text", field="categories")
    data = ConsentInput(
        subject=subject,
        purpose=purpose,
        categories=tuple(categories),
        under_16=bool(_expect(obj, "under_16", (bool,), required=False)),
        guardian=_expect(obj, "guardian", (str,), required=False),
        form_ref=_expect(obj, "form_ref", (str,), required=False),
        retain_days=_expect(obj, "retain_days", (int,), required=False),
        given=_expect(obj, "given", (str,), required=False),
        contact=_expect(obj, "contact", (str,), required=False),
    )
    if data.contact is not None and staff is not None and data.contact.strip() not in staff:
        raise BadInput("the contact person {name!r} is not staff of this vault", name=data.contact)
    return consents.validate(data, today)


def _note(raw: Any, *, given: str, today: str, limit: int) -> NoteInput:
    obj = _object(raw, what="a note")
    _unknown(obj, _NOTE_FIELDS)
    text = _expect(obj, "text", (str,), required=True).strip()
    if not text:
        raise BadInput("the note is empty")
    if len(text) > limit:
        raise BadInput(
            "the note is {size} characters; the limit is {limit}", size=len(text), limit=limit
        )
    kind = notes.check_kind(_expect(obj, "kind", (str,), required=False) or notes.DEFAULT_KIND)
    date = _expect(obj, "date", (str,), required=True)
    return NoteInput(date=notes.check_date(date, given=given, today=today), kind=kind, text=text)


def parse_line(
    raw: bytes,
    line: int,
    *,
    settings: Settings,
    today: str,
    staff: frozenset[str] | None = None,
) -> Entry:
    """Parse and validate one line.

    Raises:
        BadInput: the line itself is wrong (JSON, a field, the consent).
        _NoteProblem: one of its notes is wrong (carries the note's number).
    """
    if len(raw) > MAX_LINE_BYTES:
        raise BadInput("the line is longer than {limit} bytes", limit=MAX_LINE_BYTES)
    obj = _object(_decode(raw), what="each line")
    consent = _consent(obj, today, staff)
    given = consent.given or today
    raw_notes = _expect(obj, "notes", (list,), required=False) or []
    parsed = []
    for number, raw_note in enumerate(raw_notes, start=1):
        try:
            parsed.append(_note(raw_note, given=given, today=today, limit=settings.note_limit))
        except BadInput as exc:
            raise _NoteProblem(number, exc) from None
    return Entry(line=line, consent=consent, notes=tuple(parsed))


def _entries(lines: Iterable[bytes], counter: _Counter) -> Iterator[Entry]:
    """Valid entries in order; problems go to ``counter`` (blank lines are skipped)."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = parse_line(
                raw, number, settings=counter.settings, today=counter.today, staff=counter.staff
            )
        except _NoteProblem as exc:
            counter.add_problem(Problem(number, exc.number, exc.error))
            continue
        except BadInput as exc:
            counter.add_problem(Problem(number, None, exc))
            continue
        counter.count(entry)
        yield entry


class AlreadyImported(Conflict):
    template = "this file was imported before, on {when}; nothing was imported"
    hint_template = (
        "importing it again would register every consent and note twice; "
        "pass --force if that is really meant"
    )


def _fingerprinted(lines: Iterable[bytes], state: crypto.StreamMac) -> Iterator[bytes]:
    for line in lines:
        state.update(line)
        yield line


def _imported_before(vault: Unlocked, fingerprint: str) -> str | None:
    raw = vault.store.get_setting(FINGERPRINT_PREFIX + fingerprint)
    return None if raw is None else str(json.loads(raw)["imported"])


def imported_before(vault: Unlocked, lines: Iterable[bytes]) -> str | None:
    """When these exact bytes were imported before (a UTC timestamp), or None.

    Only the keyed fingerprint is computed: nothing is parsed, so this costs a fraction
    of :func:`check` and lets a repeat be refused before anything is encrypted.
    """
    state = crypto.StreamMac(vault.vault_key(FINGERPRINT_KEY))
    for line in lines:
        state.update(line)
    return _imported_before(vault, state.digest().hex())


def check(vault: Unlocked, lines: Iterable[bytes]) -> Summary:
    """Validate every line without writing anything (memory stays flat); the summary
    says whether the same bytes were imported before.

    Raises:
        ImportRejected: at least one line is invalid; ``problems`` says where and why.
    """
    counter = _Counter(vault.settings(), vault.today(), frozenset(vault.epoch.staff))
    state = crypto.StreamMac(vault.vault_key(FINGERPRINT_KEY))
    for _ in _entries(_fingerprinted(lines, state), counter):
        pass
    counter.raise_if_bad()
    before = _imported_before(vault, state.digest().hex())
    return dataclasses.replace(counter.summary(), imported_before=before)


def write(
    vault: Unlocked,
    lines: Iterable[bytes],
    *,
    progress: Callable[[Progress], None] | None = None,
    force: bool = False,
    processes: int | None = None,
) -> Summary:
    """Validate, encrypt and write every line in one transaction: all of it or nothing.

    The lines are read and written here; the encryption runs on ``processes`` cores
    (default: all; vault.parallel), in the order of the file. The file's keyed
    fingerprint is recorded, so the same bytes imported again are refused unless
    ``force``.

    Raises:
        ImportRejected: a line is invalid; nothing was imported.
        AlreadyImported: the same file was imported before (without ``force``).
        VaultBusy, StorageError: nothing was imported.
    """
    store = vault.store
    counter = _Counter(vault.settings(), vault.today(), frozenset(vault.epoch.staff))
    state = crypto.StreamMac(vault.vault_key(FINGERPRINT_KEY))
    team = vault.settings().access == "team"
    build = functools.partial(
        _build, vault, timestamp(vault.now), counter.settings.retention_days, team
    )
    with store.write():
        batches = _batches(_entries(_fingerprinted(lines, state), counter))
        # After a bad line the rest is still read, to report every bad line, but no
        # longer encrypted.
        # Ids handed to batches not yet written: a fresh id must not be one of them either.
        handed: set[str] = set()
        tasks = (_task(vault, batch, handed) for batch in batches if not counter.bad_lines)
        written = Progress(0, 0)
        for built in parallel.ordered_map(build, tasks, processes=processes):
            _insert(vault, built)
            handed.difference_update(_ids(built))
            written = Progress(
                written.consents + len(built), written.notes + sum(len(n) for _, n, _, _ in built)
            )
            if progress is not None:
                progress(written)
        counter.raise_if_bad()
        fingerprint = state.digest().hex()
        before = _imported_before(vault, fingerprint)
        if before is not None and not force:
            raise AlreadyImported(when=before)
        record = {"imported": timestamp(vault.now), "consents": counter.consents}
        store.set_setting(FINGERPRINT_PREFIX + fingerprint, json.dumps(record))
    store.checkpoint()
    return dataclasses.replace(counter.summary(), imported_before=before)


def _batches(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    size = 0
    for entry in entries:
        batch.append(entry)
        size += len(entry.notes)
        if size >= BATCH_NOTES or len(batch) >= BATCH_CONSENTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


# What crosses to a child for one consent: its id, data key, what was typed, and its
# notes' (id, date, kind, text); and what comes back: the consent's row, its notes' rows,
# the wraps of its data key and its state's digest, as plain tuples (vault.parallel sends
# built-in values only).
_Task = tuple[str, bytes, tuple[object, ...], list[tuple[str, str, str, str]]]
_Built = tuple[
    tuple[object, ...], list[tuple[object, ...]], list[tuple[str, int, str, bytes]], bytes
]
_CONSENT_ROW = operator.attrgetter(*(f.name for f in dataclasses.fields(ConsentRow)))
_NOTE_ROW = operator.attrgetter(*(f.name for f in dataclasses.fields(NoteRow)))
_CONSENT_INPUT = operator.attrgetter(*(f.name for f in dataclasses.fields(ConsentInput)))


def _task(vault: Unlocked, batch: list[Entry], handed: set[str]) -> list[_Task]:
    """Fresh ids and data keys for a batch: ids not in the vault nor ``handed`` to a batch
    still being encrypted (they are added to it)."""
    store = vault.store

    def taken(check: Callable[[Iterable[str]], set[str]]) -> Callable[[Iterable[str]], set[str]]:
        return lambda candidates: check(candidates) | (set(candidates) & handed)

    consent_ids = fresh_ids(ids.CONSENT_PREFIX, len(batch), taken(store.taken_consent_ids))
    note_ids = fresh_ids(
        ids.NOTE_PREFIX, sum(len(e.notes) for e in batch), taken(store.taken_note_ids)
    )
    handed.update(consent_ids, note_ids)
    next_note = iter(note_ids)
    return [
        (
            consent_id,
            crypto.new_key(),
            _CONSENT_INPUT(entry.consent),
            [(next(next_note), n.date, n.kind, n.text) for n in entry.notes],
        )
        for entry, consent_id in zip(batch, consent_ids, strict=True)
    ]


def _ids(built: list[_Built]) -> Iterator[str]:
    for consent, rows, _, _ in built:
        yield str(consent[0])
        yield from (str(row[0]) for row in rows)


def _build(
    vault: Unlocked, created: str, default_days: int, team: bool, task: list[_Task]
) -> list[_Built]:
    """Encrypt and seal a batch: no database access (this runs in forked children)."""
    built = []
    for consent_id, data_key, typed, notes_in in task:
        written = [
            notes.build_row(
                data_key,
                note_id=note_id,
                consent_id=consent_id,
                key_version=consents.FIRST_KEY_VERSION,
                seq=seq,
                date=date,
                kind=kind,
                text=text,
                author=vault.name,
                now=vault.now,
                created=created,
            )
            for seq, (note_id, date, kind, text) in enumerate(notes_in, start=1)
        ]
        row, wraps = consents.new_row(
            vault,
            ConsentInput(*typed),  # type: ignore[arg-type]
            consent_id,
            data_key,
            vault.now,
            notes=written,
            default_days=default_days,
            team=team,
        )
        digest = consents.state_digest(vault.vault_id, row)
        built.append(
            (_CONSENT_ROW(row), [_NOTE_ROW(n) for n in written], [w.row() for w in wraps], digest)
        )
    return built


def _insert(vault: Unlocked, built: list[_Built]) -> None:
    store = vault.store
    rows = [ConsentRow(*row) for row, _, _, _ in built]  # type: ignore[arg-type]
    store.insert_consents(rows)
    store.insert_notes(NoteRow(*n) for _, ns, _, _ in built for n in ns)  # type: ignore[arg-type]
    store.put_many_wraps((str(row[0]), *wrap) for row, _, wraps, _ in built for wrap in wraps)
    vault.ensure_current()
    targets = [
        audit.Target(consent_id=r.id, object_id=r.contact, rev=r.rev, state=digest)
        for r, (_, _, _, digest) in zip(rows, built, strict=True)
    ]
    signer = vault.signer()
    for start in range(0, len(targets), SIGNED_EVERY):
        audit.append_batch(
            store,
            now=vault.now,
            action=AUDIT_ACTION,
            signer=signer,
            targets=targets[start : start + SIGNED_EVERY],
        )


def fresh_ids(prefix: str, count: int, taken: Callable[[Iterable[str]], set[str]]) -> list[str]:
    """``count`` new random ids, distinct and not ``taken`` in the vault.

    Note ids have 45 random bits: a million of them collide somewhere with odds near 1.5%,
    so a bulk import must check, as :func:`vault.notes.new_note_id` does one at a time.
    """
    chosen: set[str] = set()
    while len(chosen) < count:
        candidates = {ids.new_id(prefix) for _ in range(count - len(chosen))} - chosen
        chosen |= candidates - taken(candidates)
    return list(chosen)
