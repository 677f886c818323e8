"""Vault format 2 against a file writer: each attack is made on the file with sqlite3, then
``nok verify`` must name it with a message of its own, and a read that meets it must refuse
(exit 7). The keyless purge trusts the plaintext deadline; what that allows is shown too."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import days_ago, run_nok

from vault import consents, crypto, importer, keyring, notes, search, slots
from vault.session import Unlocked

NOTES_GONE = "no longer match its seal: a note was deleted, added or put back"
RETENTION = "dates or retention period of consent"
SETTINGS = "the vault settings (retention, note limits, key-slot cost) no longer match"
PLANTED = "does not open the vault's existing keys"


@pytest.fixture
def kari(unlocked: Unlocked) -> tuple[str, list[str]]:
    """A consent given 10 days ago with three notes, one a day, oldest first."""
    data = consents.ConsentInput("Kari", "follow-up", ("notes",), given=days_ago(10))
    consent = consents.add(unlocked, data)
    made = [
        notes.add(unlocked, consent.id, f"note {n} about safety", date=days_ago(3 - n)).id
        for n in range(3)
    ]
    return consent.id, made


@pytest.fixture
def db(vault_path: Path) -> Iterator[sqlite3.Connection]:
    """The vault file opened as an attacker would: plain SQLite, no nok."""
    conn = sqlite3.connect(vault_path, isolation_level=None)
    yield conn
    conn.close()


def problems(nok) -> list[dict[str, str]]:
    result = nok("verify", "--json")
    assert result.exit_code == 13, result.stderr
    return json.loads(result.stdout)["problems"]


def refused(result) -> str:
    assert result.exit_code == 7, (result.stdout, result.stderr)
    return result.stderr


# -- a note deleted, or its date moved ------------------------------------------------------


def test_a_note_deleted_from_the_middle_of_a_consent_is_found(kari, db, nok):
    consent_id, (_, middle, _) = kari
    assert nok("verify").exit_code == 0
    db.execute("DELETE FROM notes WHERE id = ?", [middle])
    found = problems(nok)
    # The newest note is still there, so the last activity agrees: only the seal tells.
    assert [(p["kind"], consent_id in p["message"]) for p in found] == [("notes", True)]
    assert NOTES_GONE in found[0]["message"]
    assert NOTES_GONE in refused(nok("note", "list", "--consent", consent_id))
    assert NOTES_GONE in refused(nok("note", "search", "safety", "--consent", consent_id))
    assert NOTES_GONE in refused(nok("export", consent_id))
    # A note written afterwards extends the seal (one MAC, whatever the consent holds), and
    # the seal is a chain that still covers the deleted note: the gap never looks intended.
    assert nok("note", "add", consent_id, "--text", "a new note").exit_code == 0
    assert [p["kind"] for p in problems(nok)] == ["notes"]


def test_a_note_copied_in_from_another_row_is_found(kari, unlocked, db, nok):
    consent_id, (first, _, _) = kari
    other = consents.add(unlocked, consents.ConsentInput("Ola", "follow-up", ("notes",))).id
    db.execute(
        "INSERT INTO notes SELECT 'N-0000-0000-0', consent_id, date, created, key_version,"
        " seq, record FROM notes WHERE id = ?",
        [first],
    )
    db.execute(
        "INSERT INTO notes SELECT 'N-0000-0000-1', ?, date, created, key_version, seq, record"
        " FROM notes WHERE id = ?",
        [other, first],
    )
    kinds = {(p["kind"], p["message"].split(":")[0]) for p in problems(nok)}
    assert ("notes", f"the notes of consent {consent_id} no longer match its seal") in kinds
    assert ("notes", f"the notes of consent {other} no longer match its seal") in kinds


@pytest.mark.parametrize("column", ["date", "created"])
def test_a_note_date_edited_in_the_file_is_found(kari, db, nok, column):
    _, (first, _, _) = kari
    db.execute(f"UPDATE notes SET {column} = '2020-01-01' WHERE id = ?", [first])  # noqa: S608
    found = problems(nok)
    assert [p["kind"] for p in found] == ["note-date"]
    assert f"the {column} of note {first} is 2020-01-01 in the file" in found[0]["message"]
    assert "sealed record says" in refused(nok("note", "show", first))
    assert "sealed record says" in refused(nok("note", "list"))


# -- a consent's dates and retention -------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("retain_days", 1), ("retain_days", 36500), ("given", days_ago(400)), ("last_activity", None)],
)
def test_retention_edited_with_a_matching_deadline_is_found(kari, unlocked, db, nok, column, value):
    """The attacker moves the deadline too, so that it follows from the edited fields."""
    consent_id, _ = kari
    db.execute(f"UPDATE consents SET {column} = ? WHERE id = ?", [value, consent_id])  # noqa: S608
    row = unlocked.store.get_consent(consent_id)
    days = row.retain_days or unlocked.vault.settings().retention_days
    until = consents.deadline(row.given, row.last_activity, days)
    db.execute("UPDATE consents SET retain_until = ? WHERE id = ?", [until, consent_id])
    found = problems(nok)
    assert RETENTION in found[0]["message"]
    assert {p["kind"] for p in found} == {"retention"}
    assert RETENTION in refused(nok("consent", "show", consent_id))
    assert RETENTION in refused(nok("consent", "list"))


def test_the_keyless_purge_trusts_the_plaintext_deadline(kari, db, nok, vault_path):
    """What docs/security.md says: a writer can make a consent expire early (an erasure);
    verify reports the moved deadline until the purge has run."""
    consent_id, _ = kari
    db.execute("UPDATE consents SET retain_until = ? WHERE id = ?", [days_ago(1), consent_id])
    assert "retention deadline of consent" in problems(nok)[0]["message"]
    assert "it was moved outside nok" in refused(nok("consent", "show", consent_id))
    result = run_nok("purge", "--json", env={"NOK_VAULT": str(vault_path)}, input="")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["purged"] == [consent_id]


# -- vault settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("retention_days", "1"), ("note_limit", "100000"), ("kdf_min", "interactive"), ("group", "x")],
)
def test_a_setting_edited_in_the_file_is_refused_at_unlock(cli_vault, db, key, value):
    if key == "kdf_min":
        assert cli_vault("key", "kdf", "moderate").exit_code == 0
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    found = problems(cli_vault)
    assert [p["kind"] for p in found] == ["settings"]
    assert SETTINGS in found[0]["message"]
    assert SETTINGS in refused(cli_vault("consent", "list"))


def test_settings_changed_by_nok_stay_sealed(cli_vault):
    for args in (("settings", "set", "retention-days", "400"), ("key", "kdf", "moderate")):
        assert cli_vault(*args).exit_code == 0
    assert cli_vault("key", "rotate", "--yes").exit_code == 0
    assert cli_vault("verify").exit_code == 0


def test_a_vault_in_another_format_is_refused_untouched(cli_vault, db, vault_path):
    db.execute("DELETE FROM settings WHERE key = 'format'")
    before = vault_path.read_bytes()
    result = cli_vault("status")
    assert result.exit_code == 8
    assert "format version 1" in result.stderr
    assert vault_path.read_bytes() == before


# -- a master key planted in every sealed box ------------------------------------------------


def plant_master(db: sqlite3.Connection, *, rewrap_audit_key: bool) -> bytes:
    """What a file writer can do without any passphrase: a master key of their own, sealed
    to every staff public key, with every role tag made under it."""
    planted = crypto.new_key()
    version = int(
        db.execute("SELECT value FROM settings WHERE key = 'master_version'").fetchone()[0]
    )
    for name, role, public in db.execute("SELECT name, role, public_key FROM staff").fetchall():
        db.execute(
            "UPDATE staff SET sealed_master = ?, role_tag = ? WHERE name = ?",
            [
                slots.seal_master(planted, public_key=public, name=name, master_version=version),
                keyring.role_tag(planted, name, role, public),
                name,
            ],
        )
    if rewrap_audit_key:
        wrapped = keyring.wrap_vault_key(
            planted, crypto.new_key(), purpose="audit", master_version=version
        )
        db.execute("UPDATE vault_keys SET wrapped = ? WHERE purpose = 'audit'", [wrapped])
    return planted


def test_a_planted_master_key_is_refused(kari, db, nok, vault_path):
    plant_master(db, rewrap_audit_key=False)
    before = db.execute("SELECT count(*) FROM consents").fetchone()
    assert PLANTED in refused(
        nok("consent", "add", "--subject", "Per", "--purpose", "p", "--category", "notes")
    )
    assert PLANTED in refused(nok("verify"))
    assert db.execute("SELECT count(*) FROM consents").fetchone() == before


def test_a_planted_master_key_with_its_own_audit_key_is_refused(kari, db, nok):
    consent_id, _ = kari
    plant_master(db, rewrap_audit_key=True)
    before = db.execute("SELECT count(*) FROM consents").fetchone()
    assert PLANTED in refused(
        nok("consent", "add", "--subject", "Per", "--purpose", "p", "--category", "notes")
    )
    assert PLANTED in refused(nok("note", "add", consent_id, "--text", "for the attacker"))
    assert db.execute("SELECT count(*) FROM consents").fetchone() == before
    # verify goes on and names what the key does not open.
    messages = [p["message"] for p in problems(nok)]
    assert any("opens none of the consents' data keys" in m for m in messages)


def test_one_damaged_data_key_does_not_hide_the_rest_from_verify(kari, unlocked, db, nok):
    consent_id, _ = kari
    consents.add(unlocked, consents.ConsentInput("Ola", "follow-up", ("notes",)))
    db.execute(
        "UPDATE consents SET data_key = zeroblob(length(data_key)) WHERE id = ?", [consent_id]
    )
    found = problems(nok)
    assert [p["kind"] for p in found] == ["key"]
    assert consent_id in found[0]["message"]
    assert PLANTED in refused(nok("consent", "list"))


def test_the_owner_of_a_key_slot_still_unlocks_after_a_rotation(kari, nok):
    assert nok("key", "rotate", "--deep", "--yes").exit_code == 0
    assert nok("verify").exit_code == 0
    assert nok("note", "list", "--consent", kari[0]).exit_code == 0


# -- one AEAD call per record ----------------------------------------------------------------


@pytest.fixture
def aead_calls(monkeypatch) -> dict[str, int]:
    """How often the AEAD is called to seal and to open, from here on."""
    calls = {"seal": 0, "unseal": 0}
    seal, unseal = crypto.seal, crypto.unseal

    def counted_seal(*args, **kwargs):
        calls["seal"] += 1
        return seal(*args, **kwargs)

    def counted_unseal(*args, **kwargs):
        calls["unseal"] += 1
        return unseal(*args, **kwargs)

    monkeypatch.setattr(crypto, "seal", counted_seal)
    monkeypatch.setattr(crypto, "unseal", counted_unseal)
    return calls


def test_one_aead_call_per_note_to_write_and_to_read(kari, unlocked, aead_calls):
    consent_id, _ = kari
    notes.add(unlocked, consent_id, "one more note")
    assert aead_calls == {"seal": 1, "unseal": 0}  # the data key was unwrapped before
    assert len(list(notes.list_notes(unlocked, consent_id=consent_id))) == 4
    assert len(list(search.search(unlocked, "note"))) == 4
    assert aead_calls == {"seal": 1, "unseal": 8}


def test_an_import_seals_each_consent_and_note_once(unlocked, aead_calls):
    line = {
        "subject": "Kari",
        "purpose": "follow-up",
        "categories": ["notes"],
        "given": days_ago(5),
        "notes": [{"date": days_ago(n), "text": f"note {n}"} for n in range(3)],
    }
    importer.write(unlocked, [json.dumps(line).encode()] * 2)
    # Per consent: its wrapped data key, its record, and one record per note; once: the
    # vault key that fingerprints imported files, made by the first import.
    assert aead_calls["seal"] == 2 * (1 + 1 + 3) + 1
