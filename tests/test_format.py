"""Vault format 3 against a file writer: each attack is made on the file with sqlite3, then
``nok verify`` must name it with a message of its own, and a read that meets it must refuse
(exit 7). The plaintext columns the scheduled purge works on are covered by each consent's
signed state, so a deadline moved in the file erases nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import days_ago, run_nok

from vault import access, consents, crypto, identity, importer, jobs, notes, search, seeds
from vault.session import Unlocked

NOTES_GONE = "no longer match its signed state: a note was deleted, added or put back"
FORGED = "is not signed by a staff member of the vault"
MOVED = "it was moved outside nok"
DEADLINE = "the retention deadline of consent {} is stored as {}, but its"
PLANTED = "is not the one the vault's signed epoch lists"


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
    # The newest note is still there, so the last activity agrees: only the signed notes
    # hash tells.
    assert [(p["kind"], consent_id in p["message"]) for p in found] == [("notes", True)]
    assert NOTES_GONE in found[0]["message"]
    assert NOTES_GONE in refused(nok("note", "list", "--consent", consent_id))
    assert NOTES_GONE in refused(nok("note", "search", "safety", "--consent", consent_id))
    assert NOTES_GONE in refused(nok("export", consent_id))
    # Writing another note does not sign over the gap: nok refuses to extend a chain that
    # no longer matches, so the deletion never looks intended.
    assert NOTES_GONE in refused(nok("note", "add", consent_id, "--text", "a new note"))
    assert [p["kind"] for p in problems(nok)] == ["notes"]


NOTE_COLUMNS = (
    "consent_id, date, created, key_version, seq, record, pending, signer, sig_epoch, sig"
)


def test_a_note_copied_in_from_another_row_is_found(kari, unlocked, db, nok):
    consent_id, (first, _, _) = kari
    other = consents.add(unlocked, consents.ConsentInput("Ola", "follow-up", ("notes",))).id
    db.execute(
        f"INSERT INTO notes SELECT 'N-0000-0000-0', {NOTE_COLUMNS} FROM notes WHERE id = ?",  # noqa: S608
        [first],
    )
    moved = NOTE_COLUMNS.replace("consent_id", "?")
    db.execute(
        f"INSERT INTO notes SELECT 'N-0000-0000-1', {moved} FROM notes WHERE id = ?",  # noqa: S608
        [other, first],
    )
    kinds = {(p["kind"], p["message"].split(":")[0]) for p in problems(nok)}
    expected = "the notes of consent {} no longer match its signed state"
    assert ("notes", expected.format(consent_id)) in kinds
    assert ("notes", expected.format(other)) in kinds


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
def test_retention_edited_with_a_matching_deadline_is_found(
    kari, unlocked, db, nok, vault_path, tmp_path, column, value
):
    """The attacker moves the deadline too, so that it follows from the edited fields: the
    signed state no longer matches, and the purge, with its credential, erases nothing."""
    consent_id, _ = kari
    credential = tmp_path / "job.credential"
    jobs.write(credential, jobs.issue(unlocked))
    db.execute(f"UPDATE consents SET {column} = ? WHERE id = ?", [value, consent_id])  # noqa: S608
    row = unlocked.store.get_consent(consent_id)
    days = row.retain_days or unlocked.vault.settings().retention_days
    until = consents.deadline(row.given, row.last_activity, days)
    db.execute("UPDATE consents SET retain_until = ? WHERE id = ?", [until, consent_id])
    found = problems(nok)
    assert FORGED in found[0]["message"]
    assert consent_id in found[0]["message"]
    assert FORGED in refused(nok("consent", "show", consent_id))
    # A listing decides nothing with unsigned columns: it shows the consent unopened.
    listed = nok("consent", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [(c["id"], c["subject"]) for c in json.loads(listed.stdout)] == [(consent_id, None)]
    if until < days_ago(0):
        # An earlier deadline is what a writer who wants the consent erased makes: the job
        # finds it due in the plaintext, and refuses it on the signed state.
        result = purge(vault_path, credential)
        assert result["purged"] == []
        assert [r["consent_id"] for r in result["refused"]] == [consent_id]


def purge(vault_path: Path, credential: Path) -> dict:
    """The nightly purge with its credential, when it refuses to erase: it names the
    consent and fails (exit 7), so that the timer's failure is seen."""
    result = run_nok(
        "purge",
        "--json",
        env={"NOK_VAULT": str(vault_path), "NOK_JOB_CREDENTIAL": str(credential)},
        input="",
    )
    assert result.returncode == 7, result.stderr
    assert "cannot be erased" in result.stderr
    return json.loads(result.stdout)


def test_a_deadline_moved_in_the_file_erases_nothing(kari, unlocked, db, nok, vault_path, tmp_path):
    """Format 2's keyless purge trusted the plaintext deadline (an erasure on a file
    writer's word). The job checks the signed state and recomputes the deadline from it:
    an earlier retain_until is refused, and verify and every keyed read report it."""
    consent_id, _ = kari
    credential = tmp_path / "job.credential"
    jobs.write(credential, jobs.issue(unlocked))
    db.execute("UPDATE consents SET retain_until = ? WHERE id = ?", [days_ago(1), consent_id])
    assert DEADLINE.format(consent_id, days_ago(1)) in problems(nok)[0]["message"]
    assert MOVED in refused(nok("consent", "show", consent_id))
    result = purge(vault_path, credential)
    assert result["purged"] == []
    assert [r["consent_id"] for r in result["refused"]] == [consent_id]
    assert db.execute("SELECT status FROM consents WHERE id = ?", [consent_id]).fetchone() == (
        "active",
    )


# -- vault settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("retention_days", 1), ("note_limit", 100000), ("kdf_min", "interactive"), ("group", "x")],
)
def test_a_setting_edited_in_the_signed_epoch_is_refused_at_unlock(cli_vault, db, key, value):
    """The settings that decide what happens to data live in the signed epoch: one edited
    there breaks its signature, and every command refuses the vault."""
    if key == "kdf_min":
        assert cli_vault("key", "kdf", "moderate").exit_code == 0
    number, body = db.execute("SELECT number, body FROM epochs ORDER BY number DESC").fetchone()
    doc = json.loads(body)
    assert doc["settings"][key] != value
    doc["settings"][key] = value
    edited = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    db.execute("UPDATE epochs SET body = ? WHERE number = ?", [edited.encode(), number])
    assert "not signed" in refused(cli_vault("consent", "list"))
    assert "not signed" in refused(cli_vault("verify"))


@pytest.mark.parametrize(
    ("key", "value"),
    [("retention_days", "1"), ("note_limit", "100000"), ("kdf_min", "interactive")],
)
def test_a_setting_planted_in_the_settings_table_changes_nothing(cli_vault, db, key, value):
    """Format 2 kept these in the settings table under a seal; format 3 reads them from
    the signed epoch only, so a value planted in the table is never used."""
    before = json.loads(cli_vault("settings", "show", "--json").stdout)
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    after = cli_vault("settings", "show", "--json")
    assert after.exit_code == 0, after.stderr
    assert json.loads(after.stdout) == before


def test_a_group_planted_in_the_settings_table_is_refused(cli_vault, db, vault_path):
    """The group is read before any key (which permissions an open accepts, which group
    the erasure log is written for): a value planted there is refused before it is used
    for anything but opening the file, and nothing is written."""
    db.execute("INSERT INTO settings (key, value) VALUES ('group', 'x')")
    before = vault_path.read_bytes()
    message = refused(cli_vault("consent", "list"))
    assert "the vault's group is x in the file, but its signed settings say (none)" in message
    assert "group is x" in refused(cli_vault("verify"))
    assert "group is x" in refused(cli_vault("purge"))
    assert vault_path.read_bytes() == before


def test_settings_changed_by_nok_stay_signed(cli_vault):
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


# -- keys planted in the file ----------------------------------------------------------------


def test_a_team_seed_planted_in_every_sealed_box_is_refused(kari, unlocked, db, nok):
    """What a file writer can do without any passphrase: a team seed of her own, sealed to
    every holder's public key. Its public key is not the one the signed epoch lists, so
    nothing is written under it."""
    planted = identity.KeySet.new()
    epoch = unlocked.epoch
    holders = db.execute(
        "SELECT holder, version FROM sealed_keys WHERE purpose = 'team'"
    ).fetchall()
    assert {h for h, _ in holders} == {"anne", seeds.HOLDER_ADMIN}
    for holder, version in holders:
        to = epoch.keys.admin if holder == seeds.HOLDER_ADMIN else epoch.staff[holder].box
        sealed = crypto.seal_to(
            to, planted.seed, seeds.ad(unlocked.vault_id, "team", version, holder)
        )
        db.execute(
            "UPDATE sealed_keys SET sealed = ? WHERE holder = ? AND purpose = 'team'",
            [sealed, holder],
        )
    before = db.execute("SELECT count(*) FROM consents").fetchone()
    assert PLANTED in refused(
        nok("consent", "add", "--subject", "Per", "--purpose", "p", "--category", "notes")
    )
    assert PLANTED in refused(nok("verify"))
    assert db.execute("SELECT count(*) FROM consents").fetchone() == before


def test_a_data_key_planted_for_a_consent_is_refused(kari, unlocked, db, nok):
    """A data key of the attacker's, sealed to the admin's box key in place of every wrap
    of a consent: the consent's signed state names the public key of its real data key,
    so the planted one is refused before a note is written under it."""
    consent_id, _ = kari
    planted = crypto.new_key()
    me = unlocked.epoch.staff["anne"].box
    rows = db.execute(
        "SELECT reader, key_version FROM consent_keys WHERE consent_id = ?", [consent_id]
    ).fetchall()
    for reader, version in rows:
        ad = access.wrap_ad(unlocked.vault_id, consent_id, reader, version)
        db.execute(
            "UPDATE consent_keys SET how = 'box', wrapped = ? WHERE consent_id = ? AND reader = ?",
            [crypto.seal_to(me, planted, ad), consent_id, reader],
        )
    before = db.execute("SELECT count(*) FROM notes").fetchone()
    message = refused(nok("note", "add", consent_id, "--text", "for the attacker"))
    assert consent_id in message
    assert db.execute("SELECT count(*) FROM notes").fetchone() == before
    assert consent_id in " ".join(p["message"] for p in problems(nok))


def test_one_damaged_data_key_does_not_hide_the_rest_from_verify(kari, unlocked, db, nok):
    consent_id, _ = kari
    other = consents.add(unlocked, consents.ConsentInput("Ola", "follow-up", ("notes",))).id
    db.execute(
        "UPDATE consent_keys SET wrapped = zeroblob(length(wrapped)) WHERE consent_id = ?",
        [consent_id],
    )
    found = problems(nok)
    assert [p["kind"] for p in found] == ["key"]
    assert consent_id in found[0]["message"]
    assert other not in found[0]["message"]
    assert nok("consent", "show", other).exit_code == 0
    assert consent_id in refused(nok("consent", "show", consent_id))


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
    # Per consent: its record, one record per note and its data key wrapped for its contact
    # person and for the admins (both under a wrap key, as the importing admin holds both;
    # the job's proof key is a sealed box, not an AEAD call); once: the vault key that
    # fingerprints imported files, made by the first import.
    assert aead_calls["seal"] == 2 * (1 + 3 + 2) + 1
