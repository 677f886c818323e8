"""Vault-wide settings an admin changes: retention, note lengths, the center's name, the
time zone of the vault's calendar, and who reads new consents (need-to-know or team).

Every setting lives in the vault's signed epoch (vault.epochs), so a change is a new epoch
signed with the vault key that only admins hold: a file writer cannot lower a retention,
move the calendar or open new consents to the team. Each change is also recorded in the
audit trail.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vault import consents
from vault.dates import zone
from vault.errors import BadInput
from vault.session import MAX_RETENTION_DAYS, Unlocked, Vault, check_access_mode
from vault.store import ConsentRow


@dataclass(frozen=True)
class SettingSpec:
    key: str
    column: str
    low: int
    high: int


SETTINGS = {
    spec.key: spec
    for spec in (
        SettingSpec("retention-days", "retention_days", 1, MAX_RETENTION_DAYS),
        SettingSpec("note-guideline", "note_guideline", 50, 100_000),
        SettingSpec("note-limit", "note_limit", 100, 100_000),
        SettingSpec("review-bulk-reads", "review_bulk_reads", 2, 100_000),
        SettingSpec("review-bulk-minutes", "review_bulk_minutes", 1, 1440),
        # The center's own figures for the yearly report (vault.report).
        SettingSpec("staff-count", "staff_count", 0, 10_000),
    )
}
# The text settings: the center's name (printed on the consent form), the calendar's time
# zone, and the access setting for new consents.
CENTER_NAME = "center-name"
TIMEZONE = "timezone"
ACCESS = "access"
WORKING_HOURS = "working-hours"
STAFF_FTE = "staff-fte"
TEXT_SETTINGS = (CENTER_NAME, TIMEZONE, ACCESS, WORKING_HOURS, STAFF_FTE)
MAX_STAFF_FTE = 10_000
MAX_CENTER_NAME = 120


@dataclass(frozen=True)
class SettingChange:
    """A setting changed; for retention-days, how many deadlines moved and are now due."""

    key: str
    old: int
    new: int
    recomputed: int
    now_due: int


@dataclass(frozen=True)
class TextSettingChange:
    key: str
    old: str | None
    new: str


def parse_setting(key: str, value: str) -> tuple[SettingSpec, int]:
    """Raises BadInput for an unknown key, a non-integer or an out-of-range value."""
    spec = SETTINGS.get(key)
    if spec is None:
        raise BadInput(
            "unknown setting {key!r}; use one of: {choices}",
            key=key,
            choices=", ".join([*SETTINGS, *TEXT_SETTINGS]),
        )
    try:
        number = int(value.strip())
    except ValueError:
        raise BadInput(
            "{key} must be a whole number, not {value!r}", key=key, value=value
        ) from None
    if not spec.low <= number <= spec.high:
        raise BadInput(
            "{key} must be between {low} and {high}, not {value}",
            key=key,
            low=spec.low,
            high=spec.high,
            value=number,
        )
    return spec, number


def _following_default(vault: Vault) -> list[ConsentRow]:
    return [
        row for row in vault.store.iter_consents(include_ended=False) if row.retain_days is None
    ]


def retention_impact(vault: Vault, days: int, today: str) -> tuple[int, int]:
    """For a new default retention: (consents following the default, those it makes due)."""
    with vault.store.read():
        rows = _following_default(vault)
    due_now = sum(1 for r in rows if consents.deadline(r.given, r.last_activity, days) < today)
    return len(rows), due_now


def _check_note_sizes(current: dict[str, object], key: str, number: int) -> None:
    guideline = number if key == "note-guideline" else int(str(current["note_guideline"]))
    limit = number if key == "note-limit" else int(str(current["note_limit"]))
    if guideline > limit:
        raise BadInput(
            "the note guideline ({guideline}) cannot be above the note limit ({limit})",
            guideline=guideline,
            limit=limit,
        )


def change_setting(unlocked: Unlocked, key: str, value: str) -> SettingChange:
    """Change a numeric vault-wide setting (admins only): a new signed epoch, recorded.

    A new retention-days moves the stored deadline of every active consent that follows
    the vault default (their signed states name no period of their own, so they stay
    valid), counted from the later of the date given and the last note.

    Raises:
        NotAllowed: not an admin. BadInput: see :func:`parse_setting`, or a guideline
            above the limit.
    """
    unlocked.require_admin(f"nok settings set {key}")
    spec, number = parse_setting(key, value)
    store = unlocked.store
    today = unlocked.today()
    with store.write():
        current = dataclasses.asdict(unlocked.settings())
        current.update(
            {k: v for k, v in unlocked.chain.current.settings.items() if k not in current}
        )
        current.setdefault(spec.column, 0)
        _check_note_sizes(current, key, number)
        moved = due_now = 0
        if spec.column == "retention_days":
            for row in _following_default(unlocked.vault):
                until = consents.deadline(row.given, row.last_activity, number)
                store.update_consent_retention(
                    row.id, last_activity=row.last_activity, retain_until=until
                )
                moved += 1
                due_now += until < today
        unlocked.set_setting(spec.column, number)
        unlocked.record("settings.set", object_id=spec.column)
    return SettingChange(key, int(str(current[spec.column])), number, moved, due_now)


def check_center_name(value: str) -> str:
    """The name as stored: white space collapsed.

    Raises BadInput when it is empty, too long, or holds control characters (a line
    break would split the form's heading).
    """
    if not value.isprintable():
        raise BadInput("{key} must be one line of text", key=CENTER_NAME)
    clean = " ".join(value.split())
    if not clean:
        raise BadInput("{key} must not be empty", key=CENTER_NAME)
    if len(clean) > MAX_CENTER_NAME:
        raise BadInput(
            "{key} is {length} characters; the limit is {limit}",
            key=CENTER_NAME,
            length=len(clean),
            limit=MAX_CENTER_NAME,
        )
    return clean


def check_fte(value: str) -> str:
    """Full-time equivalents as stored: a decimal point, at most two decimals ("4.6").

    Raises BadInput for anything else (a decimal comma is read as a point).
    """
    from decimal import Decimal, InvalidOperation

    text = value.strip().replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise BadInput(
            "{key} must be a number such as 4.6, not {value!r}", key=STAFF_FTE, value=value
        ) from None
    if not number.is_finite() or not 0 <= number <= MAX_STAFF_FTE or number != round(number, 2):
        raise BadInput(
            "{key} must be between 0 and {most} with at most two decimals, not {value!r}",
            key=STAFF_FTE,
            most=MAX_STAFF_FTE,
            value=value,
        )
    return str(number.normalize()) if number else "0"


def set_text(unlocked: Unlocked, key: str, value: str) -> TextSettingChange:
    """Set the center's name, the calendar's time zone, or the access setting for new
    consents (admins only): a new signed epoch, recorded in the audit trail.

    The access setting applies to consents registered after it: a person who signed a
    form saying only her contact person reads keeps that until she signs again.

    Raises:
        NotAllowed: not an admin. BadInput: an unknown key, or a value the setting refuses.
    """
    unlocked.require_admin(f"nok settings set {key}")
    if key == CENTER_NAME:
        column, clean = "center_name", check_center_name(value)
    elif key == TIMEZONE:
        column, clean = "timezone", value.strip()
        zone(clean)
    elif key == ACCESS:
        column, clean = "access", check_access_mode(value.strip())
    elif key == WORKING_HOURS:
        from vault.review import working_hours

        first, last = working_hours(value.strip())
        column, clean = "working_hours", f"{first:02d}-{last:02d}"
    elif key == STAFF_FTE:
        column, clean = "staff_fte", check_fte(value)
    else:
        raise BadInput(
            "unknown setting {key!r}; use one of: {choices}",
            key=key,
            choices=", ".join([*SETTINGS, *TEXT_SETTINGS]),
        )
    store = unlocked.store
    with store.write():
        old = unlocked.chain.current.settings.get(column)
        unlocked.set_setting(column, clean)
        unlocked.record("settings.set", object_id=column, detail=clean if key == ACCESS else None)
    return TextSettingChange(key, None if old is None else str(old), clean)


def set_center_name(unlocked: Unlocked, value: str) -> TextSettingChange:
    """Set the center's name (see :func:`set_text`)."""
    return set_text(unlocked, CENTER_NAME, value)
