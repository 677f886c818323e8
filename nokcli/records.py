"""How consents and notes look on screen and in JSON (one place for every command)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nokcli import vocab
from nokcli.i18n import _

if TYPE_CHECKING:
    from vault.consents import Consent
    from vault.notes import Note
    from vault.staff import StaffMember


CONSENT_HEADERS = (
    _("id"),
    _("status"),
    _("subject"),
    _("given"),
    _("retain until"),
    _("categories"),
    _("contact person"),
)


def _hidden(c: Consent) -> str:
    """What stands for the personal fields of a consent the reader may not open."""
    return _("(no access)") if c.active and not c.access else _("(erased)")


def consent_row(c: Consent) -> tuple[Any, ...]:
    subject = c.subject if c.subject is not None else _hidden(c)
    return (
        c.id,
        vocab.state_shown(c.status),
        subject,
        c.given,
        c.retain_until,
        vocab.categories_shown(c.categories),
        c.contact or "",
    )


def consent_pairs(c: Consent) -> list[tuple[str, Any]]:
    if c.active and not c.access:
        return [
            (_("id"), c.id),
            (_("status"), vocab.state_shown(c.status)),
            (_("given"), c.given),
            (_("contact person"), c.contact),
            (_("retain until"), c.retain_until),
            (_("personal data"), _("(no access)")),
        ]
    if c.subject is None:
        return [
            (_("id"), c.id),
            (_("status"), vocab.state_shown(c.status)),
            (_("given"), c.given),
            (_("ended"), c.ended),
            (_("reason"), vocab.state_shown(c.end_reason)),
            (_("recorded by"), c.ended_by),
            (_("personal data"), _("erased")),
        ]
    return [
        (_("id"), c.id),
        (_("status"), vocab.state_shown(c.status)),
        (_("subject"), c.subject),
        (_("purpose"), c.purpose),
        (_("categories"), vocab.categories_shown(c.categories)),
        (_("given"), c.given),
        (_("under 16"), _("yes") if c.under_16 else _("no")),
        (_("guardian"), c.guardian),
        (_("form"), c.form_ref),
        (_("told of the duties"), c.duties_told),
        (_("recorded by"), c.recorded_by),
        (_("contact person"), c.contact),
        (_("access"), _access_line(c)),
        (_("retain until"), c.retain_until),
    ]


def _access_line(c: Consent) -> str:
    """Who may read it, in one line: the contact person, the whole team or those granted."""
    if c.access_mode == "team":
        return _("the whole team")
    granted = [f"{r.name} ({_('until')} {r.until})" if r.until else r.name for r in c.readers]
    return ", ".join([c.contact or "", *granted])


NOTE_HEADERS = (_("id"), _("consent"), _("date"), _("kind"), _("amended"), _("text"))
PREVIEW = 60


def preview(text: str) -> str:
    """The start of a note on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


def note_row(n: Note) -> tuple[Any, ...]:
    amended = n.amended[:10] if n.amended else ""
    if not n.access:
        return (n.id, n.consent_id, n.date, "", amended, _("(no access)"))
    text = preview(n.text)
    if n.pending and n.author:
        text = f"[{n.author}] {text}"
    return (n.id, n.consent_id, n.date, vocab.kind_shown(n.kind), amended, text)


def member_json(m: StaffMember) -> dict[str, Any]:
    """A staff member's key slot as JSON (staff add/list/role/reset, passwd)."""
    return {
        "name": m.name,
        "role": m.role,
        "created": m.created,
        "last_used": m.last_used,
        "kdf": m.kdf,
        "opslimit": m.opslimit,
        "memlimit": m.memlimit,
        "contact_for": m.contact_for,
        "granted": m.granted,
    }
