"""Correcting the record (GDPR Art. 16 and 17): an amended note, a deleted note and an
amended consent leave no byte of the old content in the vault's files; the note keeps its
id and says it was amended; a deleted note leaves a tombstone without content; the
person's export shows both; and nok verify still finds the vault intact."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, days_ago
from test_erasure import BIG, WINDOW, on_terminal, remains

from vault import Vault, consents, corrections, erasure, export, grants, notes, staff, verify
from vault.errors import (
    BadInput,
    Conflict,
    InactiveConsent,
    IntegrityError,
    NotAllowed,
    NotFound,
)
from vault.session import Unlocked

BOB, BOB_PASS = "bob", "bob's own passphrase"


def note_secrets(u: Unlocked, note_id: str) -> list[bytes]:
    """A note's ciphertexts exactly as they are on disk."""
    row = u.store.get_note(note_id)
    assert row is not None
    return [bytes(row.record)]


def consent_field(vault_path: Path, consent_id: str, column: str) -> bytes:
    """A column of a consent as it is on disk (the API's view of the row)."""
    with Vault.open(vault_path) as v:
        row = v.store.get_consent(consent_id)
    assert row is not None
    return bytes(getattr(row, column))


def add_consent(u: Unlocked, subject: str, **kw: object) -> str:
    data = consents.ConsentInput(subject=subject, purpose="follow-up", categories=("notes",), **kw)
    return consents.add(u, data).id


@pytest.fixture
def person(unlocked: Unlocked) -> tuple[str, list[str]]:
    """A consent with a big note (overflow pages), a short one and one to keep."""
    cid = add_consent(unlocked, "OLD-ALIAS-MARKER", form_ref="OLD-FORM-MARKER", given=days_ago(30))
    ids = [
        notes.add(unlocked, cid, "OLD-BIG-MARKER " + "x" * BIG, date=days_ago(3)).id,
        notes.add(unlocked, cid, "OLD-SHORT-MARKER", date=days_ago(2)).id,
        notes.add(unlocked, cid, "KEPT-NOTE " + "k" * BIG, date=days_ago(1)).id,
    ]
    return cid, ids


def assert_intact(u: Unlocked) -> None:
    report = verify.verify(u)
    assert report.ok, [p.message for p in report.problems]


# -- the old content leaves the files ----------------------------------------------------


@pytest.mark.parametrize("which", [0, 1])
def test_amend_leaves_no_byte_of_the_old_text(unlocked, vault_path, person, which):
    _, ids = person
    target = ids[which]
    old = note_secrets(unlocked, target)
    kept = note_secrets(unlocked, ids[2])
    assert remains(vault_path, old)  # the search finds them while they are there

    result = corrections.amend_note(unlocked, target, text="NEW-TEXT", kind="phone")

    assert result.wal_clean
    assert remains(vault_path, old) == []
    assert remains(vault_path, kept)  # the other notes are untouched
    assert vault_path.with_name(vault_path.name + "-wal").stat().st_size == 0
    shown = notes.show(unlocked, target)
    assert (shown.id, shown.text, shown.kind) == (target, "NEW-TEXT", "phone")
    assert shown.amended is not None
    assert shown.amended_by == ADMIN
    assert shown.author == ADMIN
    assert_intact(unlocked)


def test_without_the_checkpoint_the_old_text_would_stay_in_the_wal(
    unlocked, vault_path, person, monkeypatch
):
    """Why amend checkpoints as a withdrawal does: secure_delete alone leaves -wal images."""
    _, ids = person
    old = note_secrets(unlocked, ids[0])
    monkeypatch.setattr(erasure, "checkpoint", lambda store: True)
    corrections.amend_note(unlocked, ids[0], text="NEW-TEXT")
    assert "vault.db-wal" in remains(vault_path, old)


def test_delete_leaves_a_tombstone_and_no_byte_of_the_note(unlocked, vault_path, person):
    cid, ids = person
    old = note_secrets(unlocked, ids[0]) + note_secrets(unlocked, ids[1])

    first = corrections.delete_note(unlocked, ids[0], reason="wrong-person")
    second = corrections.delete_note(unlocked, ids[1], reason="person-asked")

    assert first.wal_clean
    assert second.wal_clean
    assert remains(vault_path, old) == []
    assert unlocked.store.count_notes(cid) == 1
    stones = corrections.note_tombstones(unlocked.store, cid)
    assert sorted((t.id, t.reason, t.deleted_by) for t in stones) == sorted(
        [(ids[0], "wrong-person", ADMIN), (ids[1], "person-asked", ADMIN)]
    )
    with pytest.raises(NotFound, match="was deleted on"):
        notes.show(unlocked, ids[0])
    # The id is never given to another note.
    assert unlocked.store.note_id_exists(ids[0])
    assert_intact(unlocked)


def test_consent_amend_erases_the_old_alias_and_form(unlocked, vault_path, person):
    cid, _ = person
    old = [consent_field(vault_path, cid, "record")]
    assert remains(vault_path, old)

    result = corrections.amend_consent(unlocked, cid, subject="NEW-ALIAS", form_ref="")

    assert result.changed == ("subject", "form_ref")
    assert result.wal_clean
    assert remains(vault_path, old) == []
    shown = consents.show(unlocked, cid)
    assert (shown.subject, shown.form_ref, shown.purpose) == ("NEW-ALIAS", None, "follow-up")
    # The record is padded: its length does not tell that the form reference went.
    assert len(consent_field(vault_path, cid, "record")) == len(old[0])
    assert_intact(unlocked)


# -- retention and verify follow the notes as they now are ---------------------------------


def test_deleting_the_newest_note_moves_retention_back_and_verify_agrees(unlocked, person):
    cid, ids = person
    before = consents.get_row(unlocked.store, cid)
    assert before.last_activity == days_ago(1)
    result = corrections.delete_note(unlocked, ids[2], reason="mistake")
    after = consents.get_row(unlocked.store, cid)
    assert after.last_activity == days_ago(2)
    assert result.retain_until == after.retain_until < before.retain_until
    corrections.amend_note(unlocked, ids[1], date=days_ago(5))
    assert consents.get_row(unlocked.store, cid).last_activity == days_ago(3)
    assert_intact(unlocked)


def test_a_correction_does_not_hide_a_note_deleted_outside_nok(unlocked, vault_path, person):
    """The note seal is checked before a correction seals the notes again."""
    _, ids = person
    with sqlite3.connect(vault_path) as db:
        db.execute("DELETE FROM notes WHERE id = ?", [ids[0]])
    db.close()
    with pytest.raises(IntegrityError):
        corrections.delete_note(unlocked, ids[1], reason="mistake")
    with pytest.raises(IntegrityError):
        corrections.amend_note(unlocked, ids[2], text="NEW-TEXT")
    assert unlocked.store.get_note(ids[1]) is not None
    assert [p.kind for p in verify.verify(unlocked).problems]


def test_withdrawal_takes_the_note_tombstones_too(unlocked, vault_path, person):
    cid, ids = person
    corrections.delete_note(unlocked, ids[0], reason="mistake")
    erasure.withdraw(unlocked, cid)
    assert unlocked.store.note_tombstones(cid) == []
    assert_intact(unlocked)


def test_a_planted_note_tombstone_under_an_ended_consent_is_reported(unlocked, vault_path):
    cid = add_consent(unlocked, "K")
    erasure.withdraw(unlocked, cid)
    with sqlite3.connect(vault_path) as db:
        db.execute(
            "INSERT INTO note_tombstones (id, consent_id, deleted, reason, deleted_by)"
            " VALUES ('N-0000-0000-0', ?, 'x', 'mistake', 'anne')",
            [cid],
        )
    db.close()
    report = verify.verify(unlocked)
    assert [p.kind for p in report.problems] == ["tombstone"]


# -- refusals --------------------------------------------------------------------------


def test_refusals_change_nothing(unlocked, vault_path, person):
    cid, ids = person
    secrets = note_secrets(unlocked, ids[1])
    with pytest.raises(BadInput, match="would not change"):
        corrections.amend_note(unlocked, ids[1], text=" OLD-SHORT-MARKER ")
    with pytest.raises(BadInput, match="empty"):
        corrections.amend_note(unlocked, ids[1], text="   ")
    with pytest.raises(BadInput, match="future"):
        corrections.amend_note(unlocked, ids[1], date="2999-01-01")
    with pytest.raises(BadInput, match="unknown reason"):
        corrections.delete_note(unlocked, ids[1], reason="they said so")
    with pytest.raises(NotFound):
        corrections.delete_note(unlocked, "N-0000-0000-0", reason="mistake")
    with pytest.raises(corrections.NeedsNewConsent, match="purpose"):
        corrections.amend_consent(unlocked, cid, purpose="something else")
    with pytest.raises(corrections.NeedsNewConsent, match="categories"):
        corrections.amend_consent(unlocked, cid, subject="X", categories=("health",))
    with pytest.raises(BadInput, match="would not change"):
        corrections.amend_consent(unlocked, cid, subject="OLD-ALIAS-MARKER")
    assert note_secrets(unlocked, ids[1]) == secrets
    assert notes.show(unlocked, ids[1]).amended is None


def test_a_guardian_cannot_be_removed_from_a_consent_for_a_child(unlocked):
    cid = add_consent(unlocked, "K", under_16=True, guardian="G")
    with pytest.raises(BadInput, match="guardian"):
        corrections.amend_consent(unlocked, cid, guardian="")
    assert corrections.amend_consent(unlocked, cid, guardian="Other G").changed == ("guardian",)


def test_an_ended_consent_cannot_be_amended(unlocked):
    cid = add_consent(unlocked, "K")
    erasure.withdraw(unlocked, cid)
    with pytest.raises(Conflict, match="withdrawn"):
        corrections.amend_consent(unlocked, cid, subject="X")


def test_only_the_author_or_an_admin_changes_a_note(unlocked, vault_path):
    staff.add(unlocked, BOB, passphrase=BOB_PASS.encode())
    staff.add(unlocked, "cara", passphrase=b"cara's own passphrase")
    cid = add_consent(unlocked, "K")
    # Both may read and write under it (need to know): what they may change is the point.
    for name in (BOB, "cara"):
        grants.grant(unlocked, cid, name, reason="shared-follow-up")
    annes = notes.add(unlocked, cid, "ANNE-NOTE").id
    with Vault.open(vault_path) as v:
        bob = v.unlock(BOB, BOB_PASS.encode(), now=NOW)
        bobs = notes.add(bob, cid, "BOB-NOTE").id
        with pytest.raises(NotAllowed):
            corrections.amend_note(bob, annes, text="changed by bob")
        with pytest.raises(NotAllowed):
            corrections.delete_note(bob, annes, reason="mistake")
        assert corrections.amend_note(bob, bobs, text="BOB-NOTE fixed").note.amended_by == BOB
    with Vault.open(vault_path) as v:
        cara = v.unlock("cara", b"cara's own passphrase", now=NOW)
        with pytest.raises(NotAllowed):
            corrections.delete_note(cara, bobs, reason="mistake")
    # An admin may correct anyone's note; its author stays who wrote it.
    amended = corrections.amend_note(unlocked, bobs, text="fixed by anne").note
    assert (amended.author, amended.amended_by) == (BOB, ADMIN)
    assert notes.show(unlocked, annes).text == "ANNE-NOTE"


def test_a_note_under_an_ended_consent_is_gone(unlocked, person):
    cid, ids = person
    erasure.withdraw(unlocked, cid)
    with pytest.raises(NotFound):
        corrections.amend_note(unlocked, ids[0], text="x")
    with pytest.raises((NotFound, InactiveConsent)):
        corrections.delete_note(unlocked, ids[0], reason="mistake")


# -- the person's export -----------------------------------------------------------------


def test_export_shows_amended_and_deleted_notes(unlocked, person):
    cid, ids = person
    corrections.amend_note(unlocked, ids[1], text="NEW-TEXT")
    corrections.delete_note(unlocked, ids[0], reason="wrong-person")
    doc = export.to_json(export.export_consent(unlocked, cid))
    held = {n["id"]: n for n in doc["notes"]}
    assert set(held) == {ids[1], ids[2]}
    assert held[ids[1]]["text"] == "NEW-TEXT"
    assert held[ids[1]]["amended_by"] == ADMIN
    assert held[ids[1]]["amended"].startswith(NOW.date().isoformat())
    assert held[ids[2]]["amended"] is None
    assert [(d["id"], d["reason"]) for d in doc["deleted_notes"]] == [(ids[0], "wrong-person")]
    assert "OLD-BIG-MARKER" not in json.dumps(doc)
    text = export.to_markdown(export.export_consent(unlocked, cid))
    assert f"Note {ids[0]} was deleted on" in text
    assert "filed under the wrong person" in text
    assert "corrected this note on" in text
    assert f"corrected note {ids[1]}; the old text was erased." in text
    assert f"deleted note {ids[0]}" in text
    assert "OLD-SHORT-MARKER" not in text


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def cli_note(cli_vault) -> tuple[str, str]:
    nok = cli_vault
    cid = nok(
        "consent", "add", "--subject", "CLI-ALIAS", "--purpose", "p", "--category", "c"
    ).stdout.strip()
    nid = nok("note", "add", cid, input="CLI-OLD-TEXT " + "o" * BIG).stdout.strip()
    return cid, nid


def _note_row(vault_path: Path, note_id: str) -> tuple[object, ...] | None:
    with sqlite3.connect(vault_path) as db:
        row = db.execute("SELECT * FROM notes WHERE id = ?", [note_id]).fetchone()
    db.close()
    return row


def _secrets_of(vault_path: Path, note_id: str) -> list[bytes]:
    row = _note_row(vault_path, note_id)
    assert row is not None
    return [bytes(b) for b in row[5:] if isinstance(b, bytes) and len(b) >= WINDOW]


def test_cli_amend_from_standard_input(cli_vault, cli_note, vault_path):
    nok = cli_vault
    cid, nid = cli_note
    old = _secrets_of(vault_path, nid)

    out = nok("note", "amend", nid, "--kind", "phone", "--yes", "--json", input="CLI-NEW-TEXT\n")

    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["id"], doc["kind"], doc["amended_by"], doc["wal_clean"]) == (
        nid,
        "phone",
        ADMIN,
        True,
    )
    assert remains(vault_path, old) == []
    shown = json.loads(nok("note", "show", nid, "--json").stdout)
    assert (shown["text"], shown["amended"]) == ("CLI-NEW-TEXT", doc["amended"])
    listed = json.loads(nok("note", "list", "--json").stdout)
    assert [(n["id"], n["amended"]) for n in listed] == [(nid, doc["amended"])]
    table = nok("note", "list").stdout
    assert "amended" in table.splitlines()[0]
    assert doc["amended"][:10] in table
    text = nok("note", "show", nid).stdout
    assert "amended by" in text
    # Only the kind: empty standard input keeps the text.
    again = nok("note", "amend", nid, "--kind", "group", "--yes", input="")
    assert again.exit_code == 0, again.stderr
    shown = json.loads(nok("note", "show", nid, "--json").stdout)
    assert (shown["text"], shown["kind"]) == ("CLI-NEW-TEXT", "group")
    assert "note.amend" in nok("audit", "list", "--consent", cid).stdout
    assert nok("verify").exit_code == 0


def test_cli_amend_in_a_script_needs_yes(cli_vault, cli_note, vault_path):
    nok = cli_vault
    _, nid = cli_note
    before = _note_row(vault_path, nid)
    out = nok("note", "amend", nid, input="other text")
    assert out.exit_code == 2
    assert "--yes" in out.stderr
    assert _note_row(vault_path, nid) == before


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["note", "amend", "N-0000-0000-0", "--yes"], 6),
        (["note", "amend", "not-an-id", "--yes"], 2),
        (["note", "delete", "N-0000-0000-0", "--reason", "mistake", "--yes"], 6),
        (["note", "delete", "{nid}", "--reason", "because", "--yes"], 2),
        (["note", "delete", "{nid}", "--yes"], 2),
        (["note", "amend", "{nid}", "--kind", "letter", "--yes"], 2),
        (["note", "amend", "{nid}", "--date", "2999-01-01", "--yes"], 2),
        (["consent", "amend", "C-0000-0000", "--subject", "x", "--yes"], 6),
        (["consent", "amend", "{cid}", "--yes"], 2),
    ],
)
def test_cli_refusals(cli_vault, cli_note, vault_path, args, code):
    cid, nid = cli_note
    before = _note_row(vault_path, nid)
    out = cli_vault(*(a.format(cid=cid, nid=nid) for a in args), input="new text")
    assert out.exit_code == code, out.stderr
    assert "error: " in out.stderr.lower()  # nok's own line, or the usage error of Click
    assert "Traceback" not in out.stderr
    assert _note_row(vault_path, nid) == before


def test_cli_delete_and_the_tombstone(cli_vault, cli_note, vault_path):
    nok = cli_vault
    cid, nid = cli_note
    old = _secrets_of(vault_path, nid)
    out = nok("note", "delete", nid, "--reason", "person-asked", "--yes", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["id"], doc["consent_id"], doc["reason"], doc["wal_clean"]) == (
        nid,
        cid,
        "person-asked",
        True,
    )
    assert remains(vault_path, [*old, b"CLI-OLD-TEXT"]) == []
    shown = nok("note", "show", nid)
    assert shown.exit_code == 6
    assert "deleted on" in shown.stderr
    again = nok("note", "delete", nid, "--reason", "mistake", "--yes")
    assert again.exit_code == 6
    exported = json.loads(nok("export", cid, "--format", "json").stdout)
    assert exported["notes"] == []
    assert [d["id"] for d in exported["deleted_notes"]] == [nid]
    assert "note.delete" in nok("audit", "list", "--consent", cid).stdout
    assert nok("verify").exit_code == 0


def test_cli_consent_amend(cli_vault, cli_note, vault_path):
    nok = cli_vault
    cid, _ = cli_note
    old = consent_field(vault_path, cid, "record")
    out = nok("consent", "amend", cid, "--subject", "CLI-NEW-ALIAS", "--yes", "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["subject"], doc["changed"], doc["wal_clean"]) == (
        "CLI-NEW-ALIAS",
        ["subject"],
        True,
    )
    assert remains(vault_path, [old]) == []
    assert "consent.amend" in nok("audit", "list", "--consent", cid).stdout
    assert nok("verify").exit_code == 0


@pytest.mark.parametrize("option", [["--purpose", "other"], ["--category", "health"]])
def test_cli_consent_amend_of_what_was_signed_says_register_a_new_consent(
    cli_vault, cli_note, vault_path, option
):
    cid, _ = cli_note
    before = consent_field(vault_path, cid, "record")
    out = cli_vault("consent", "amend", cid, *option, "--yes")
    assert out.exit_code == 2
    lines = out.stderr.splitlines()
    assert lines[0].startswith("nok: error: ")
    assert "signed" in lines[0]
    assert lines[1].startswith("nok: hint: ")
    assert "nok consent add" in lines[1]
    assert consent_field(vault_path, cid, "record") == before


def test_cli_consent_amend_of_a_withdrawn_consent_is_exit_9(cli_vault, cli_note):
    cid, _ = cli_note
    assert cli_vault("consent", "withdraw", cid, "--yes").exit_code == 0
    out = cli_vault("consent", "amend", cid, "--subject", "x", "--yes")
    assert out.exit_code == 9
    assert "withdrawn" in out.stderr


def test_cli_staff_member_cannot_change_a_colleagues_note(
    cli_vault, cli_note, vault_path, monkeypatch
):
    _, nid = cli_note
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", BOB_PASS)
    assert cli_vault("staff", "add", BOB).exit_code == 0
    monkeypatch.delenv("NOK_NEW_PASSPHRASE")
    monkeypatch.setenv("NOK_USER", BOB)
    monkeypatch.setenv("NOK_PASSPHRASE", BOB_PASS)
    before = _note_row(vault_path, nid)
    amend = cli_vault("note", "amend", nid, "--yes", input="bob's version")
    delete = cli_vault("note", "delete", nid, "--reason", "mistake", "--yes")
    assert (amend.exit_code, delete.exit_code) == (11, 11)
    assert _note_row(vault_path, nid) == before


# -- at a terminal: it asks, and the editor opens on the current text ----------------------


def test_terminal_delete_asks_first(unlocked, vault_path, person):
    _, ids = person
    unlocked.close()
    env = {"NOK_VAULT": str(vault_path), "NOK_USER": ADMIN, "NOK_PASSPHRASE": PASSPHRASE}
    args = ["note", "delete", ids[1], "--reason", "mistake"]
    code, err = on_terminal(args, "n", env)
    assert code == 130, err
    assert f"Delete note {ids[1]}" in err
    assert "OLD-SHORT-MARKER" in err  # the preview shows which note goes
    with Vault.open(vault_path) as v:
        assert v.store.get_note(ids[1]) is not None
    code, err = on_terminal(args, "y", env)
    assert code == 0, err
    with Vault.open(vault_path) as v:
        assert v.store.get_note(ids[1]) is None


def test_terminal_amend_opens_the_editor_on_the_current_text(
    unlocked, vault_path, person, tmp_path
):
    _, ids = person
    unlocked.close()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "XDG_RUNTIME_DIR": str(runtime),
        # An "editor" that can only produce the new text from the old one in the file.
        "EDITOR": "sed -i s/OLD-SHORT-MARKER/EDITED-TEXT/",
    }
    code, err = on_terminal(["note", "amend", ids[1]], "n", env)
    assert code == 130, err
    assert f"Replace note {ids[1]}" in err
    code, err = on_terminal(["note", "amend", ids[1]], "y", env)
    assert code == 0, err
    with Vault.open(vault_path) as v:
        me = v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
        assert notes.show(me, ids[1]).text == "EDITED-TEXT"
    # The editor's file was wiped: nothing of the note is left in nok's private directory.
    assert not editor_files_holding([b"EDITED-TEXT", b"OLD-SHORT-MARKER"], runtime)


def editor_files_holding(needles: list[bytes], runtime: Path) -> list[Path]:
    found = []
    for base in (Path("/dev/shm"), runtime):  # where nokcli.editor writes
        for path in base.glob(f"nok-{os.getuid()}/**/*"):
            try:
                data = path.read_bytes()
            except OSError:  # another test's file, gone meanwhile
                continue
            if any(n in data for n in needles):
                found.append(path)
    return found


def test_terminal_amend_refuses_a_note_whose_lines_the_editor_would_drop(
    unlocked, vault_path, tmp_path
):
    cid = add_consent(unlocked, "K")
    nid = notes.add(unlocked, cid, "Plan:\n# 1 call back\n# 2 group").id
    unlocked.close()
    env = {
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "EDITOR": "sed -i s/Plan/Changed/",
    }
    code, err = on_terminal(["note", "amend", nid], "y", env)
    assert code == 2, err
    assert "standard input" in err
    with Vault.open(vault_path) as v:
        me = v.unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
        assert notes.show(me, nid).text == "Plan:\n# 1 call back\n# 2 group"
