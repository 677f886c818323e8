"""The vault as a Python library: what a script can rely on without the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ADMIN, NOW, PASSPHRASE

from vault import Vault, consents, crypto, notes, slots
from vault.errors import (
    BadInput,
    ExitCode,
    InactiveConsent,
    IntegrityError,
    NoSuchStaff,
    NotFound,
    UnsafePermissions,
    VaultExists,
    WrongPassphrase,
)
from vault.session import DEFAULT_NOTE_GUIDELINE, DEFAULT_NOTE_LIMIT, Unlocked


def consent_input(**overrides: object) -> consents.ConsentInput:
    values: dict[str, object] = {
        "subject": "Kari",
        "purpose": "follow-up after conversations",
        "categories": ("conversation-notes", "safety"),
    }
    values.update(overrides)
    return consents.ConsentInput(**values)  # type: ignore[arg-type]


def counts(u: Unlocked) -> tuple[int, int]:
    status = u.vault.status()
    return status.active_consents + status.ended_consents, status.notes


def test_create_open_unlock(unlocked: Unlocked, vault_path: Path) -> None:
    unlocked.close()
    with Vault.open(vault_path) as v:
        me = v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
        assert (me.name, me.role, me.master_version) == (ADMIN, "admin", 1)
        with pytest.raises(WrongPassphrase) as info:
            v.unlock(ADMIN, b"a wrong passphrase", now=NOW)
        assert info.value.exit_code == ExitCode.WRONG_PASSPHRASE
        with pytest.raises(NoSuchStaff):
            v.unlock("nobody", PASSPHRASE.encode(), now=NOW)


def test_default_kdf_profile_is_at_least_moderate(tmp_path: Path) -> None:
    path = tmp_path / "v" / "vault.db"
    Vault.create(path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=NOW).close()
    with Vault.open(path) as v:
        row = v.store.get_staff(ADMIN)
        assert row is not None
        header = slots.read_header(bytes(row.slot), name=ADMIN)
    assert header.params >= crypto.KDF_PROFILES["moderate"]


def test_create_never_overwrites(unlocked: Unlocked, vault_path: Path) -> None:
    before = vault_path.read_bytes()
    with pytest.raises(VaultExists) as info:
        Vault.create(vault_path, admin="eve", passphrase=b"whatever pass", now=NOW)
    assert info.value.exit_code == ExitCode.CONFLICT
    assert vault_path.read_bytes() == before


def test_create_over_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "vault.db"
    link.symlink_to(tmp_path / "target.db")
    with pytest.raises(VaultExists):
        Vault.create(link, admin=ADMIN, passphrase=b"whatever pass", now=NOW, kdf="interactive")
    assert not (tmp_path / "target.db").exists()


def test_create_in_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafePermissions):
        Vault.create(
            shared / "vault.db", admin=ADMIN, passphrase=b"pass word", now=NOW, kdf="interactive"
        )
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"admin": "two words"}, {"admin": ""}, {"kdf": "fast"}, {"retention_days": 0}],
)
def test_create_with_bad_input_creates_nothing(tmp_path: Path, kwargs: dict[str, object]) -> None:
    path = tmp_path / "v" / "vault.db"
    args: dict[str, object] = {"admin": ADMIN, "kdf": "interactive", **kwargs}
    with pytest.raises(BadInput):
        Vault.create(path, passphrase=b"pass word", now=NOW, **args)  # type: ignore[arg-type]
    assert not path.parent.exists()


def test_consent_round_trip(unlocked: Unlocked) -> None:
    added = consents.add(
        unlocked,
        consent_input(under_16=True, guardian="Mor", form_ref="binder 3", retain_days=90),
    )
    shown = consents.show(unlocked, added.id.lower())
    assert shown == added
    assert shown.subject == "Kari"
    assert shown.categories == ("conversation-notes", "safety")
    assert shown.under_16 is True
    assert shown.guardian == "Mor"
    assert shown.form_ref == "binder 3"
    assert shown.recorded_by == ADMIN
    assert shown.given == "2026-11-23"
    assert shown.retain_until == "2027-02-21"
    assert [c.id for c in consents.list_all(unlocked)] == [added.id]


@pytest.mark.parametrize(
    "overrides",
    [
        {"categories": ()},
        {"categories": ("  ",)},
        {"purpose": " "},
        {"subject": ""},
        {"under_16": True},
        {"under_16": True, "guardian": "  "},
        {"given": "2026-11-24"},
        {"given": "23.11.2026"},
        {"retain_days": 0},
        {"retain_days": 36501},
        {"subject": "x" * 201},
    ],
)
def test_bad_consents_are_refused_and_nothing_is_written(
    unlocked: Unlocked, overrides: dict[str, object]
) -> None:
    before = counts(unlocked)
    with pytest.raises(BadInput) as info:
        consents.add(unlocked, consent_input(**overrides))
    assert info.value.exit_code == ExitCode.USAGE
    assert counts(unlocked) == before


def test_notes_round_trip_and_filters(unlocked: Unlocked) -> None:
    a = consents.add(unlocked, consent_input(given="2026-01-01")).id
    b = consents.add(unlocked, consent_input(subject="Ola", given="2026-01-01")).id
    n1 = notes.add(unlocked, a, "  first  ", date="2026-03-01")
    n2 = notes.add(unlocked, b, "second", kind="Phone", date="2026-05-01")
    n3 = notes.add(unlocked, a, "third", kind="group")
    assert n1.text == "first"
    assert n2.kind == "phone"
    assert n3.date == "2026-11-23"
    assert notes.show(unlocked, n2.id) == n2
    assert [n.id for n in notes.list_notes(unlocked)] == [n1.id, n2.id, n3.id]
    assert [n.id for n in notes.list_notes(unlocked, consent_id=a)] == [n1.id, n3.id]
    assert [n.id for n in notes.list_notes(unlocked, since="2026-04-01")] == [n2.id, n3.id]
    assert all(n.author == ADMIN for n in notes.list_notes(unlocked))


def test_every_kind_is_accepted(unlocked: Unlocked) -> None:
    consent = consents.add(unlocked, consent_input()).id
    required = {"one-to-one", "phone", "group", "next-of-kin", "open-house", "outreach", "other"}
    assert required <= set(notes.KINDS)
    for kind in notes.KINDS:
        assert notes.add(unlocked, consent, "x", kind=kind).kind == kind


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"kind": "therapy"}, "x"),
        ({"date": "2026-11-24"}, "x"),
        ({"date": "2025-12-31"}, "x"),
        ({"date": "yesterday"}, "x"),
        ({}, "   \n "),
        ({}, "x" * (DEFAULT_NOTE_LIMIT + 1)),
    ],
)
def test_bad_notes_are_refused_and_nothing_is_written(
    unlocked: Unlocked, kwargs: dict[str, str], text: str
) -> None:
    consent = consents.add(unlocked, consent_input(given="2026-01-01"))
    before = counts(unlocked)
    with pytest.raises(BadInput):
        notes.add(unlocked, consent.id, text, **kwargs)  # type: ignore[arg-type]
    assert counts(unlocked) == before
    assert consents.show(unlocked, consent.id).retain_until == consent.retain_until


def test_length_guideline_and_limit(unlocked: Unlocked) -> None:
    assert notes.check_length(unlocked, "x" * DEFAULT_NOTE_GUIDELINE) is notes.Length.OK
    assert notes.check_length(unlocked, "x" * (DEFAULT_NOTE_GUIDELINE + 1)) is notes.Length.LONG
    assert notes.check_length(unlocked, "x" * DEFAULT_NOTE_LIMIT) is notes.Length.LONG
    with pytest.raises(BadInput):
        notes.check_length(unlocked, "x" * (DEFAULT_NOTE_LIMIT + 1))


def test_notes_need_an_active_consent(unlocked: Unlocked) -> None:
    consent = consents.add(unlocked, consent_input()).id
    with pytest.raises(NotFound) as info:
        notes.add(unlocked, "C-0000-0000", "x")
    assert info.value.exit_code == ExitCode.NOT_FOUND
    with unlocked.store.write():
        unlocked.store.tombstone_consent(
            consent, status="withdrawn", ended="2026-11-23", reason="withdrawn", ended_by=ADMIN
        )
    before = counts(unlocked)
    with pytest.raises(InactiveConsent) as conflict:
        notes.add(unlocked, consent, "x")
    assert conflict.value.exit_code == ExitCode.CONFLICT
    assert counts(unlocked) == before


def test_unknown_ids(unlocked: Unlocked) -> None:
    with pytest.raises(NotFound):
        consents.show(unlocked, "C-0000-0000")
    with pytest.raises(NotFound):
        notes.show(unlocked, "N-0000-0000-0")
    with pytest.raises(NotFound):
        list(notes.list_notes(unlocked, consent_id="C-0000-0000"))
    with pytest.raises(BadInput):
        notes.show(unlocked, "not-an-id")


def test_status_needs_no_key(unlocked: Unlocked, vault_path: Path) -> None:
    consent = consents.add(unlocked, consent_input(retain_days=10)).id
    notes.add(unlocked, consent, "x")
    with Vault.open(vault_path) as v:
        st = v.status()
    assert (st.active_consents, st.ended_consents, st.notes, st.staff) == (1, 0, 1, 1)
    assert st.master_version == 1
    assert st.next_deadline == "2026-12-03"
    assert len(st.vault_id) == 16


def test_the_library_prints_nothing(vault_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    me = Vault.create(
        vault_path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=NOW, kdf="interactive"
    )
    consent = consents.add(me, consent_input()).id
    notes.add(me, consent, "x")
    list(notes.list_notes(me))
    with pytest.raises(NotFound):
        notes.show(me, "N-0000-0000-0")
    me.close()
    out = capfd.readouterr()
    assert (out.out, out.err) == ("", "")


def test_the_file_does_not_tell_which_consents_are_for_a_child(unlocked: Unlocked) -> None:
    child = consents.add(unlocked, consent_input(under_16=True, guardian="Mor", form_ref="A1"))
    adult = consents.add(unlocked, consent_input())
    rows = [unlocked.store.get_consent(c.id) for c in (child, adult)]
    assert len(rows[0].record) == len(rows[1].record)
    shown = consents.show(unlocked, adult.id)
    assert (shown.under_16, shown.guardian, shown.form_ref) == (False, None, None)
    shown = consents.show(unlocked, child.id)
    assert (shown.under_16, shown.guardian, shown.form_ref) == (True, "Mor", "A1")


def test_the_file_does_not_tell_which_categories_a_consent_covers(unlocked: Unlocked) -> None:
    """Unpadded, 27 of the 63 sets of the six suggested categories had a length of their own."""
    suggested = consents.SUGGESTED_CATEGORIES
    sets = [
        tuple(c for bit, c in enumerate(suggested) if mask >> bit & 1)
        for mask in range(1, 2 ** len(suggested))
    ]
    assert len(sets) == 63
    lengths = set()
    for categories in sets:
        added = consents.add(unlocked, consent_input(categories=categories))
        lengths.add(len(unlocked.store.get_consent(added.id).record))
        assert consents.show(unlocked, added.id).categories == categories
    assert len(lengths) == 1


def test_note_lengths_show_only_their_256_byte_bucket(unlocked: Unlocked) -> None:
    consent = consents.add(unlocked, consent_input())
    short = [notes.add(unlocked, consent.id, "x" * size) for size in (1, 50, 150)]
    lengths = {len(unlocked.store.get_note(n.id).record) for n in short}
    assert lengths == {crypto.BLOB_OVERHEAD + 256}
    longer = notes.add(unlocked, consent.id, "y" * 300)
    assert len(unlocked.store.get_note(longer.id).record) == crypto.BLOB_OVERHEAD + 512
    assert notes.show(unlocked, longer.id).text == "y" * 300


def test_the_file_does_not_tell_a_note_kind_by_its_length(unlocked: Unlocked) -> None:
    consent = consents.add(unlocked, consent_input())
    added = [notes.add(unlocked, consent.id, "x", kind=kind) for kind in notes.KINDS]
    lengths = {len(unlocked.store.get_note(n.id).record) for n in added}
    assert len(lengths) == 1
    assert [notes.show(unlocked, n.id).kind for n in added] == list(notes.KINDS)


FORGED = "not signed by a staff member of the vault, or its proof does not match"


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("record", FORGED),
        ("consent_box", FORGED),
        ("notes_hash", FORGED),
        ("proof", FORGED),
        ("state_sig", FORGED),
        ("retain_days", FORGED),
    ],
)
def test_a_sealed_column_blanked_in_the_file_is_tampering(
    unlocked: Unlocked, column: str, message: str
) -> None:
    """NULL instead of a record, a key or a seal must not read as 'no guardian', 'not a
    child', an erased consent or the vault's default retention."""
    consent = consents.add(unlocked, consent_input(under_16=True, guardian="Mor", retain_days=90))
    notes.add(unlocked, consent.id, "x")
    with unlocked.store.write():
        unlocked.store.conn.execute(
            f"UPDATE consents SET {column} = NULL WHERE id = ?",  # noqa: S608 (constant names)
            [consent.id],
        )
    unlocked.forget_data_key(consent.id)
    with pytest.raises(IntegrityError, match=message):
        consents.show(unlocked, consent.id)


def test_the_key_cache_stays_bounded_however_many_consents_are_read() -> None:
    from vault.session import remember

    cache: dict[int, int] = {}
    for i in range(10):
        remember(cache, i, i * i, limit=3)
    assert cache == {7: 49, 8: 64, 9: 81}
