"""The person's own copy (GDPR Art. 15 and 20): everything held under one consent.

An export holds the consent declaration, every note under it, and the audit entries
about it (who read or changed their data, and when). It comes as a dict for JSON, or as
markdown a person can read. Making one is recorded in the trail (``export.consent``).

Markdown sentences are templates with named placeholders passed through ``translate``,
so the command line can hand in its gettext catalogue; the library stays English. The
stored words for note kinds, data categories and a consent's status go through it too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vault import access, audit, consents, corrections, notes
from vault.consents import Consent
from vault.corrections import NoteTombstone
from vault.dates import timestamp
from vault.errors import Conflict, StorageError, SymlinkRefused
from vault.notes import Note
from vault.session import Unlocked

FORMAT = "nok-export"
FORMAT_VERSION = 1
Translate = Callable[[str], str]

# What each action means, told to the person whose data it touched.
ACTION_SENTENCES: dict[str, str] = {
    "consent.add": "{actor} registered your consent declaration.",
    "consent.show": "{actor} read your consent declaration.",
    "consent.extend": "{actor} changed how long your data is kept.",
    "consent.withdraw": "{actor} recorded your withdrawal of consent; your data was erased.",
    "consent.expire": "Your data was erased because its retention period had run out.",
    "consent.amend": "{actor} corrected your consent declaration; the old details were erased.",
    "note.add": "{actor} wrote note {object}.",
    "note.amend": "{actor} corrected note {object}; the old text was erased.",
    "note.delete": "{actor} deleted note {object}; its text was erased.",
    "note.show": "{actor} read note {object}.",
    "note.list": "{actor} read the notes under your consent.",
    "note.search": "{actor} searched the notes under your consent.",
    "export.consent": "{actor} made a copy of your data for you.",
    "audit.list": "{actor} looked at the record of who used your data.",
}
OTHER_ACTION = "{actor} did something recorded as {action}."
KEYLESS_ACTOR = "A scheduled job of the center (run without a passphrase)"
# Why a note was deleted, told to the person (the reasons of vault.corrections).
DELETE_SENTENCES: dict[str, str] = {
    "wrong-person": "Note {id} was deleted on {when}: it was filed under the wrong person.",
    "person-asked": "Note {id} was deleted on {when} because you asked for it.",
    "mistake": "Note {id} was deleted on {when}: it was written by mistake.",
}
OTHER_DELETE = "Note {id} was deleted on {when} ({reason})."


@dataclass(frozen=True)
class Export:
    """What the vault holds about one person, decrypted."""

    exported: str
    exported_by: str
    consent: Consent
    notes: list[Note]
    entries: list[audit.Entry]
    deleted: list[NoteTombstone]
    # Who could read it and since when (GDPR Art. 15(1)(c)): (time, action, staff name,
    # reason code) of its registration, grants, revocations and changes of contact.
    access: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)


ACCESS_ACTIONS = frozenset(
    {
        "consent.add",
        "consent.import",
        "access.grant",
        "access.revoke",
        "access.expire",
        "consent.contact",
        "vault.upgrade",
    }
)


def export_consent(unlocked: Unlocked, consent_id: str) -> Export:
    """Collect and decrypt everything under ``consent_id``; records ``export.consent``.

    An ended consent exports as its tombstone and the trail: nothing else is left.

    Raises:
        BadInput: a malformed id. NotFound: no such consent.
        IntegrityError: a ciphertext was altered (nothing is exported).
    """
    store = unlocked.store
    row = consents.get_row(store, consent_id)
    if not consents.may_open(unlocked, row):
        raise access.NoAccess(name=unlocked.name, id=row.id, contact=row.contact or "?")
    with store.write():
        row = consents.get_row(store, consent_id)
        unlocked.record(
            "export.consent", consent_id=row.id, detail=consents.out_of_assignment(unlocked, row)
        )
        consent = consents.decrypt(unlocked, row, signature=True)
        if row.status == consents.ACTIVE:
            key = access.open_key(unlocked, row, admin_ok=True)
            consents.check_notes(unlocked, row, key)
        held = [notes.decrypt(unlocked, n, row) for n in store.iter_notes(consent_id=row.id)]
        held = corrections.with_amendments(store, row.id, held)
        deleted = corrections.note_tombstones(store, row.id)
        entries = list(audit.list_entries(store, consent_id=row.id, chain=unlocked.chain))
    history = [
        (e.ts, e.action, e.object_id, e.detail) for e in entries if e.action in ACCESS_ACTIONS
    ]
    return Export(timestamp(unlocked.now), unlocked.name, consent, held, entries, deleted, history)


def to_json(export: Export) -> dict[str, object]:
    """The export as one JSON-ready document (format ``nok-export``, version 1)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported": export.exported,
        "exported_by": export.exported_by,
        "consent": export.consent.to_json(),
        "notes": [n.to_json() for n in export.notes],
        "deleted_notes": [t.to_json() for t in export.deleted],
        "audit": [e.to_json() for e in export.entries],
        "access": {
            "mode": export.consent.access_mode,
            "contact": export.consent.contact,
            "history": [
                {"ts": ts, "action": action, "staff": name, "reason": reason}
                for ts, action, name, reason in export.access
            ],
        },
    }


def _same(text: str) -> str:
    return text


def _when(ts: str) -> str:
    """``2026-11-23T10:00:00.000000Z`` -> ``2026-11-23 10:00 UTC``."""
    return f"{ts[:10]} {ts[11:16]} UTC" if len(ts) >= 16 else ts


def _inline(text: str) -> str:
    """Text on one markdown line: no line breaks, and markup characters escaped."""
    flat = " ".join(text.split())
    for ch in "\\`*_[]<>#|":
        flat = flat.replace(ch, "\\" + ch)
    return flat


def _block(text: str) -> list[str]:
    """A note's text as a quoted block, line breaks kept, markup inert."""
    return ["> " + _inline(line) if line.strip() else ">" for line in text.splitlines()]


def _consent_lines(c: Consent, t: Translate) -> list[str]:
    lines = [
        t("## Your consent declaration"),
        "",
        t("Consent {id} was given on {given}.").format(id=c.id, given=c.given),
    ]
    if c.subject is None:
        lines.append(
            t(
                "It ended on {ended} ({reason}). Everything personal under it has been "
                "erased; only this record that it existed is kept."
            ).format(ended=_when(c.ended or ""), reason=t(c.end_reason or c.status))
        )
        return lines
    lines += [
        t("You are registered under the name {subject}.").format(subject=_inline(c.subject)),
        t("The purpose you agreed to is “{purpose}”.").format(purpose=_inline(c.purpose or "")),
        t("It covers these kinds of data: {categories}.").format(
            categories=", ".join(_inline(t(x)) for x in c.categories or ())
        ),
    ]
    if c.under_16:
        lines.append(
            t("You were under 16, and {guardian} gave or co-signed the consent.").format(
                guardian=_inline(c.guardian or "")
            )
        )
    if c.form_ref:
        lines.append(t("The signed form is kept at {form}.").format(form=_inline(c.form_ref)))
    if c.duties_told:
        lines.append(
            t(
                "On {date} you were told about the staff's duty of confidentiality and its "
                "exceptions (the duty to inform child welfare, the duty to avert serious crimes)."
            ).format(date=c.duties_told)
        )
    lines.append(
        t("It was recorded by {staff}. Your data is kept until {until} at the latest.").format(
            staff=_inline(c.recorded_by or ""), until=c.retain_until
        )
    )
    return lines


def _note_lines(held: list[Note], deleted: list[NoteTombstone], t: Translate) -> list[str]:
    lines = [t("## Notes"), ""]
    if not held:
        lines.append(t("No notes are kept under this consent."))
    else:
        lines.append(t("There are {count} note(s) under this consent.").format(count=len(held)))
    for n in held:
        lines += [
            "",
            t("### Note {id}").format(id=n.id),
            "",
            t("On {date} ({kind}), {author} wrote:").format(
                date=n.date, kind=t(n.kind), author=_inline(n.author or "")
            ),
        ]
        if n.amended is not None:
            lines.append(
                t("{staff} corrected this note on {when}; the earlier text was erased.").format(
                    staff=_inline(n.amended_by or ""), when=_when(n.amended)
                )
            )
        lines += ["", *_block(n.text)]
    if deleted:
        lines += ["", t("### Deleted notes"), ""]
        lines.append(t("Only that these notes existed is kept; their text was erased."))
        lines.append("")
        lines += [
            "- "
            + t(DELETE_SENTENCES.get(d.reason, OTHER_DELETE)).format(
                id=d.id, when=_when(d.deleted), reason=d.reason
            )
            for d in deleted
        ]
    return lines


def _entry_sentence(e: audit.Entry, t: Translate) -> str:
    template = ACTION_SENTENCES.get(e.action, OTHER_ACTION)
    # A keyless entry names whoever the job claimed to run as; it vouches for no one.
    actor = t(KEYLESS_ACTOR) if e.keyless else e.actor
    return t(template).format(actor=actor, object=e.object_id or "", action=e.action)


ACCESS_SENTENCES = {
    "consent.add": "{staff} registered it and became your contact person.",
    "consent.import": "It was imported, with {staff} as your contact person.",
    "consent.contact": "{staff} became your contact person.",
    "access.grant": "{staff} was given access ({reason}).",
    "access.revoke": "{staff} no longer has access.",
    "access.expire": "Access given to {staff} ran out.",
    "vault.upgrade": "The journal was upgraded; from then on only those named here could read it.",
}
# Why a colleague was given access (the codes of nokcli.vocab), as the person reads it.
ACCESS_REASONS = {
    "covering": "covering for a colleague",
    "shared-follow-up": "shared follow-up",
    "person-asked": "you asked for it",
    "emergency": "an emergency",
    "other": "another reason",
}


def _access_lines(export: Export, t: Translate) -> list[str]:
    c = export.consent
    lines = [t("## Who can read your data"), ""]
    if c.access_mode == "team":
        lines.append(
            t("Every member of the center's staff can read what is kept under your consent.")
        )
    else:
        lines.append(
            t(
                "Only your contact person, the colleagues named below while they have access, "
                "and the center's administrators can read what is kept under your consent."
            )
        )
    lines.append("")
    for ts, action, name, reason in export.access:
        sentence = t(ACCESS_SENTENCES[action]).format(
            staff=_inline(name or ""), reason=t(ACCESS_REASONS.get(reason or "", reason or ""))
        )
        lines.append(t("- {when}: {sentence}").format(when=_when(ts), sentence=sentence))
    return lines


def _audit_lines(entries: list[audit.Entry], t: Translate) -> list[str]:
    lines = [
        t("## Who has used your data"),
        "",
        t("The vault records every time someone reads or changes data under your consent."),
        "",
    ]
    for e in entries:
        lines.append(
            t("- {when}: {sentence}").format(when=_when(e.ts), sentence=_entry_sentence(e, t))
        )
    return lines


def to_markdown(export: Export, translate: Translate = _same) -> str:
    """The export as markdown a person can read, in whole sentences."""
    t = translate
    c = export.consent
    lines = [
        t("# Your data under consent {id}").format(id=c.id),
        "",
        t(
            "This copy was made on {when} by {staff}. It holds everything the center's "
            "journal keeps under your consent: the declaration, every note, and the record "
            "of who has read or changed them."
        ).format(when=_when(export.exported), staff=export.exported_by),
        "",
        *_consent_lines(c, t),
        "",
        *_note_lines(export.notes, export.deleted, t),
        "",
        *_access_lines(export, t),
        "",
        *_audit_lines(export.entries, t),
    ]
    return "\n".join(lines) + "\n"


def write_file(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to a new file created 0600; with ``force``, replace an existing one.

    The text goes to a private temporary file first, so an existing file is replaced
    whole (and by a 0600 one) or not at all.

    Raises:
        Conflict: ``path`` exists and ``force`` is not set.
        SymlinkRefused: ``path`` is a symbolic link.
        StorageError: the file cannot be written.
    """
    if path.is_symlink():
        raise SymlinkRefused(path=str(path))
    if path.exists() and not force:
        raise Conflict(
            "{path} already exists; nothing was written (use --force to replace it)",
            path=str(path),
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise Conflict(
            "{path} already exists; nothing was written (use --force to replace it)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise StorageError(
            "could not write {path}: {reason}",
            path=str(path),
            reason=exc.strerror or type(exc).__name__,
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
