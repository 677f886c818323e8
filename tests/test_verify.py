"""``nok verify``: every key and ciphertext authenticated, tombstones empty, read-only."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault import consents, erasure, notes, verify
from vault import settings as vault_settings
from vault.session import Unlocked


class People(tuple):
    """(unlocked vault, [consent ids]); a repr without keys for failure reports."""

    def __repr__(self) -> str:
        return "People(...)"


@pytest.fixture
def people(unlocked: Unlocked) -> People:
    ids = []
    for subject in ("Kari", "Ola", "Per"):
        c = consents.add(unlocked, consents.ConsentInput(subject, "follow-up", ("notes",)))
        ids.append(c.id)
        for i in range(3):
            notes.add(unlocked, c.id, f"note {i} about {subject}, long enough to matter")
    return People((unlocked, ids))


def raw(u: Unlocked) -> sqlite3.Connection:
    return sqlite3.connect(u.store.path, isolation_level=None)


def note_ids(u: Unlocked) -> list[str]:
    return [r[0] for r in u.store.conn.execute("SELECT id FROM notes ORDER BY id")]


def test_an_intact_vault_passes(people, nok):
    result = nok("verify")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "intact" in result.stderr
    report = json.loads(nok("verify", "--json").stdout)
    assert report["ok"] is True
    assert report["checked"]["notes"] == 9
    assert report["checked"]["consents"] == 3
    # One sealed record per note and per consent.
    assert report["checked"]["ciphertexts"] == 9 + 3


def test_swapped_note_records_are_found(people, nok):
    u, _ = people
    a, b = note_ids(u)[:2]
    with raw(u) as db:
        record_a = db.execute("SELECT record FROM notes WHERE id = ?", [a]).fetchone()[0]
        record_b = db.execute("SELECT record FROM notes WHERE id = ?", [b]).fetchone()[0]
        db.execute("UPDATE notes SET record = ? WHERE id = ?", [record_b, a])
        db.execute("UPDATE notes SET record = ? WHERE id = ?", [record_a, b])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    problems = json.loads(result.stdout)["problems"]
    fields = [p["message"] for p in problems if p["kind"] == "field"]
    assert len(fields) == 2
    assert any(a in line for line in fields)
    assert any(b in line for line in fields)
    # The records' tags moved too, so their consents' note seals no longer hold.
    assert {p["kind"] for p in problems} == {"field", "notes"}


def test_swapped_consent_records_are_found(people, nok):
    u, (kari, ola, _) = people
    with raw(u) as db:
        x = db.execute("SELECT record FROM consents WHERE id = ?", [kari]).fetchone()[0]
        y = db.execute("SELECT record FROM consents WHERE id = ?", [ola]).fetchone()[0]
        db.execute("UPDATE consents SET record = ? WHERE id = ?", [y, kari])
        db.execute("UPDATE consents SET record = ? WHERE id = ?", [x, ola])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    problems = json.loads(result.stdout)["problems"]
    # The record's tag is in the signed state, and the record is bound to its consent.
    assert {p["kind"] for p in problems} == {"state", "field"}
    for kind in ("state", "field"):
        named = " ".join(p["message"] for p in problems if p["kind"] == kind)
        assert kari in named
        assert ola in named


def test_swapped_data_key_wraps_are_found(people, nok):
    u, (kari, ola, _) = people
    with raw(u) as db:
        db.execute("UPDATE consent_keys SET consent_id = 'swap' WHERE consent_id = ?", [kari])
        db.execute("UPDATE consent_keys SET consent_id = ? WHERE consent_id = ?", [kari, ola])
        db.execute("UPDATE consent_keys SET consent_id = ? WHERE consent_id = 'swap'", [ola])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    problems = json.loads(result.stdout)["problems"]
    assert {p["kind"] for p in problems} == {"key"}
    assert {kari, ola} <= {p["where"].split()[-1] for p in problems}


def flip(u: Unlocked, table: str, column: str, where: str, params: list, position: int) -> None:
    select = f"SELECT {column} FROM {table} WHERE {where}"  # noqa: S608 (fixed names)
    blob = bytearray(u.store.conn.execute(select, params).fetchone()[0])
    blob[position % len(blob)] ^= 0x01
    u.store.conn.execute(
        f"UPDATE {table} SET {column} = ? WHERE {where}",  # noqa: S608
        [bytes(blob), *params],
    )


def verify_with(u: Unlocked, change) -> verify.Report:
    """Run verify on a changed vault inside a transaction that is then rolled back."""
    u.store.conn.execute("BEGIN")
    try:
        change()
        return verify.verify(u)
    finally:
        u.store.conn.execute("ROLLBACK")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(min_value=0, max_value=8),
    position=st.integers(min_value=0, max_value=10_000),
)
def test_a_flipped_byte_anywhere_in_a_note_is_found(people, which, position):
    u, _ = people
    note_id = note_ids(u)[which]
    report = verify_with(u, lambda: flip(u, "notes", "record", "id = ?", [note_id], position))
    assert report.problems[0].kind == "field"
    assert note_id in report.problems[0].message
    # A flip in the record's tag also changes what its consent's note seal covers.
    assert {p.kind for p in report.problems[1:]} <= {"notes"}
    assert verify.verify(u).ok


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(min_value=0, max_value=2),
    column=st.sampled_from(
        (
            ("consents", "record", None),
            ("consents", "consent_box", None),
            ("consents", "notes_hash", None),
            ("consents", "proof", None),
            ("consents", "state_sig", None),
            ("consent_keys", "wrapped", "anne"),
            ("consent_keys", "wrapped", "#admin"),
            ("consent_keys", "wrapped", "#job"),
        )
    ),
    position=st.integers(min_value=0, max_value=10_000),
)
def test_a_flipped_byte_in_a_consent_or_its_key_is_found(people, which, column, position):
    u, ids = people
    table, name, reader = column
    if reader is None:
        where, params = "id = ?", [ids[which]]
    else:
        where, params = "consent_id = ? AND reader = ?", [ids[which], reader]
    report = verify_with(u, lambda: flip(u, table, name, where, params, position))
    assert report.problems
    assert ids[which] in report.problems[0].message


def test_damaged_slots_seeds_and_vault_keys_are_found(people):
    u, _ = people
    u.vault_key("import")  # made by the first import
    report = verify_with(
        u,
        lambda: u.store.conn.execute("UPDATE staff SET slot = substr(slot, 1, 50)"),
    )
    assert [p.kind for p in report.problems] == ["staff"]
    for holder, purpose in (("anne", "team"), ("anne", "admin"), ("#admin", "job")):
        report = verify_with(
            u,
            lambda h=holder, p=purpose: u.store.conn.execute(
                "UPDATE sealed_keys SET sealed = substr(sealed, 1, 40)"
                " WHERE holder = ? AND purpose = ?",
                [h, p],
            ),
        )
        assert [p.kind for p in report.problems] == ["key"], (holder, purpose)
        assert holder in report.problems[0].message
    report = verify_with(
        u,
        lambda: u.store.conn.execute("UPDATE vault_keys SET wrapped = zeroblob(length(wrapped))"),
    )
    assert [p.kind for p in report.problems] == ["key"]


def test_a_wrap_left_from_before_a_rotation_is_found(people):
    """A file writer puts back an older wrap next to the current ones (say, of a reader
    whose access ended): its key version names it."""
    u, (kari, _, _) = people
    report = verify_with(
        u,
        lambda: u.store.conn.execute(
            "INSERT INTO consent_keys (consent_id, reader, key_version, how, wrapped)"
            " SELECT consent_id, 'bob', key_version - 1, how, wrapped FROM consent_keys"
            " WHERE consent_id = ? AND reader = 'anne'",
            [kari],
        ),
    )
    assert [p.kind for p in report.problems] == ["wrap"]
    assert kari in report.problems[0].message
    assert "from before a rotation" in report.problems[0].message


def test_wraps_deleted_from_a_consent_are_found(people, nok):
    """A file writer deletes every wrap of a consent's key: nobody can open it any more,
    and the signed state still names who should."""
    u, (kari, _, _) = people
    with raw(u) as db:
        db.execute("DELETE FROM consent_keys WHERE consent_id = ?", [kari])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    problems = json.loads(result.stdout)["problems"]
    assert {p["kind"] for p in problems} == {"wrap"}
    assert {p["reader"] for p in problems} == {"anne", "#admin", "#job"}
    assert all(p["id"] == kari for p in problems)


def test_a_tombstone_that_still_holds_data_is_found(people):
    u, (kari, ola, _) = people
    erasure.withdraw(u, kari)
    assert verify.verify(u).ok

    def refill() -> None:
        u.store.conn.execute(
            "UPDATE consents SET record = (SELECT record FROM consents WHERE id = ?) WHERE id = ?",
            [ola, kari],
        )

    report = verify_with(u, refill)
    assert [p.kind for p in report.problems] == ["tombstone"]
    assert kari in report.problems[0].message


def test_verify_changes_nothing(people):
    u, _ = people
    before = u.store.conn.total_changes
    calls: list[tuple[str, int, int]] = []
    report = verify.verify(u, progress=lambda *a: calls.append(a))
    assert report.ok
    assert u.store.conn.total_changes == before
    assert ("notes", 9, 9) in calls
    assert {stage for stage, _, _ in calls} == set(verify.STAGES)


def test_verify_json_lists_each_problem(people, nok):
    u, _ = people
    a = note_ids(u)[0]
    with raw(u) as db:
        db.execute("UPDATE notes SET record = x'01' WHERE id = ?", [a])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert [p["kind"] for p in doc["problems"]] == ["field", "notes"]
    assert "problem(s) found" in result.stderr


# -- retention deadlines -------------------------------------------------------------------


def test_deadlines_kept_by_nok_pass(people):
    u, (_, ola, _) = people
    c = consents.add(u, consents.ConsentInput("Liv", "follow-up", ("notes",), given="2026-01-01"))
    notes.add(u, c.id, "a note from June, long enough to matter", date="2026-06-01")
    notes.add(u, c.id, "a note written late about March, long enough", date="2026-03-01")
    erasure.extend(u, ola, 30)
    vault_settings.change_setting(u, "retention-days", "400")
    assert verify.verify(u).ok


def test_a_moved_deadline_is_found(people, nok):
    u, (kari, ola, _) = people
    with raw(u) as db:
        db.execute("UPDATE consents SET retain_until = '2099-01-01' WHERE id = ?", [kari])
        db.execute("UPDATE consents SET retain_until = '2026-11-24' WHERE id = ?", [ola])
    result = nok("verify", "--json")
    assert result.exit_code == 13
    problems = json.loads(result.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["retention", "retention"]
    messages = " ".join(p["message"] for p in problems)
    assert kari in messages
    assert ola in messages
    assert "stored as 2099-01-01" in messages


def test_a_last_activity_beyond_the_newest_note_is_found(people):
    u, (kari, _, per) = people
    row = u.store.get_consent(kari)
    days = row.retain_days or u.vault.settings().retention_days
    later = consents.deadline("2030-01-01", None, days)

    def move_both() -> None:
        # Moved together, as an attacker keeping data longer would: the deadline agrees.
        u.store.conn.execute(
            "UPDATE consents SET last_activity = '2030-01-01', retain_until = ? WHERE id = ?",
            [later, kari],
        )

    report = verify_with(u, move_both)
    assert {p.kind for p in report.problems} == {"retention", "state"}
    messages = [p.message for p in report.problems]
    assert all(kari in m for m in messages)
    assert any("newest note is dated" in m for m in messages)
    # The last activity is in the signed state too: the edit shows without the notes.
    assert any("is not signed by a staff member" in m for m in messages)

    report = verify_with(
        u,
        lambda: u.store.conn.execute(
            "UPDATE consents SET last_activity = NULL WHERE id = ?", [per]
        ),
    )
    assert {p.kind for p in report.problems} == {"retention", "state"}
    assert any("no last activity is stored" in p.message for p in report.problems)


def test_a_deadline_that_is_not_a_date_is_found(people):
    u, (kari, _, _) = people
    report = verify_with(
        u,
        lambda: u.store.conn.execute(
            "UPDATE consents SET retain_days = 'forever' WHERE id = ?", [kari]
        ),
    )
    # Its retention period is in the signed state too.
    assert {p.kind for p in report.problems} == {"retention", "state"}
    assert any("not valid dates" in p.message for p in report.problems)
    assert kari in report.problems[0].message


def test_a_trigger_planted_after_opening_is_reported(people):
    u, _ = people
    with raw(u) as db:
        db.execute("CREATE TRIGGER keep BEFORE DELETE ON notes BEGIN SELECT RAISE(IGNORE); END")
    report = verify.verify(u)
    assert [p.kind for p in report.problems] == ["schema"]
    assert "trigger named keep" in report.problems[0].message


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("record", "(missing)"),
        ("proof", "its proof fails"),
        ("state_sig", "is not signed by a staff member"),
        ("notes_hash", "a note was deleted, added or put back"),
    ],
)
def test_a_blanked_record_or_seal_is_found(people, nok, column, message):
    u, (kari, _, _) = people
    with raw(u) as db:
        db.execute(f"UPDATE consents SET {column} = NULL WHERE id = ?", [kari])  # noqa: S608
    result = nok("verify")
    assert result.exit_code == 13
    assert message in result.stdout
    assert kari in result.stdout
