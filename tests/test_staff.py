"""Staff key slots: who can open the vault, with which role, and what a passphrase change,
a removal or a raised slot cost does to the other slots."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import struct

import pytest

from tests.conftest import ADMIN, NOW, PASSPHRASE
from vault import Vault, consents, crypto, grants, notes, rotation, slots, staff
from vault.errors import (
    BadInput,
    Conflict,
    IntegrityError,
    KeysRotated,
    NoSuchStaff,
    NotAllowed,
    NotFound,
    WrongPassphrase,
)

BOB, BOB_PASS = "bob", "bob's own passphrase"
CARA, CARA_PASS = "cara", "cara's own passphrase"


def _snapshot(vault_path):
    """Every staff row except last_used (an unlock updates that)."""
    with sqlite3.connect(vault_path) as conn:
        return conn.execute(
            "SELECT name, role, role_tag, created, master_version, slot, public_key,"
            " sealed_master FROM staff ORDER BY name"
        ).fetchall()


def _actions(vault_path):
    with sqlite3.connect(vault_path) as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq")]


def _open_as(vault_path, name, passphrase):
    v = Vault.open(vault_path)
    try:
        return v.unlock(name, passphrase.encode(), now=NOW)
    except BaseException:
        v.close()
        raise


def _consent_bob_reads(unlocked):
    """A consent anne registers, with a note, that bob was granted access to."""
    c = consents.add(
        unlocked, consents.ConsentInput(subject="K", purpose="p", categories=("notes",))
    )
    notes.add(unlocked, c.id, "MARKER note")
    grants.grant(unlocked, c.id, BOB, reason="covering")
    return c.id


@pytest.fixture
def team(unlocked):
    """anne (admin) plus bob (staff) and cara (staff); one consent with a note, which bob
    was granted access to."""
    staff.add(unlocked, BOB, passphrase=BOB_PASS.encode())
    staff.add(unlocked, CARA, passphrase=CARA_PASS.encode())
    _consent_bob_reads(unlocked)
    return unlocked


@pytest.fixture
def cli_team(cli_vault, monkeypatch):
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", BOB_PASS)
    assert cli_vault("staff", "add", BOB).exit_code == 0
    monkeypatch.delenv("NOK_NEW_PASSPHRASE")
    return cli_vault


def _as(monkeypatch, name, passphrase):
    monkeypatch.setenv("NOK_USER", name)
    monkeypatch.setenv("NOK_PASSPHRASE", passphrase)


def test_added_member_opens_the_vault_with_their_own_passphrase(team, vault_path):
    bob = _open_as(vault_path, BOB, BOB_PASS)
    try:
        assert bob.role == "staff"
        assert [n.text for n in notes.list_notes(bob)] == ["MARKER note"]
    finally:
        bob.close()
    with pytest.raises(WrongPassphrase):
        _open_as(vault_path, BOB, PASSPHRASE)
    assert "staff.add" in _actions(vault_path)


def test_removed_member_can_no_longer_open_the_vault(team, vault_path):
    removal = staff.remove(team, BOB)
    assert removal.name == BOB
    # The removal replaced the vault keys bob held; the data key of the consent he was
    # granted only a deep rotation replaces.
    assert {g.what: (g.closed_by, g.closed) for g in removal.gaps} == {
        staff.GAP_OLD_COPY: (None, False),
        staff.GAP_MASTER_KEY: (staff.CLOSE_ROTATE, True),
        staff.GAP_DATA_KEYS: (staff.CLOSE_ROTATE_DEEP, False),
    }
    assert removal.consents == 1
    assert removal.notes == 1
    with pytest.raises(NoSuchStaff):
        _open_as(vault_path, BOB, BOB_PASS)
    _open_as(vault_path, CARA, CARA_PASS).close()
    assert _actions(vault_path)[-1] == "staff.remove"


def test_cli_remove_reports_what_the_leaver_can_still_read(cli_team, vault_path, monkeypatch):
    result = cli_team("staff", "remove", BOB, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["removed"] == BOB
    # bob could open no consent: no data key to have kept, so only an old copy is open.
    assert report["consents"] == 0
    assert {g["what"]: (g["closed_by"], g["closed"]) for g in report["gaps"]} == {
        "old-copy": (None, False),
        "master-key": ("nok key rotate", True),
        "data-keys": ("nok key rotate --deep", True),
    }
    assert report["rotated"] is None
    _as(monkeypatch, BOB, BOB_PASS)
    denied = cli_team("staff", "list")
    assert denied.exit_code == 4
    assert denied.stderr.startswith("nok: error: no key slot for bob")


def test_cli_remove_can_rotate_right_away(cli_team, vault_path):
    result = cli_team("staff", "remove", BOB, "--yes", "--rotate", "master", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rotated"] == "master"
    status = json.loads(cli_team("status", "--json").stdout)
    # The removal replaced the vault keys once (version 2), the rotation again.
    assert status["master_key_version"] == 3


def test_remove_in_a_script_needs_yes(cli_team, vault_path):
    before = _snapshot(vault_path)
    result = cli_team("staff", "remove", BOB)
    assert result.exit_code == 2
    assert result.stderr.startswith("nok: error: removing bob needs confirmation")
    assert _snapshot(vault_path) == before


def test_the_last_admin_cannot_be_removed_or_demoted(team, vault_path):
    before = _snapshot(vault_path)
    with pytest.raises(Conflict, match="last admin"):
        staff.remove(team, ADMIN)
    with pytest.raises(Conflict, match="last admin"):
        staff.set_role(team, ADMIN, "staff")
    assert _snapshot(vault_path) == before
    staff.set_role(team, BOB, "admin")
    staff.remove(team, ADMIN)
    bob = _open_as(vault_path, BOB, BOB_PASS)
    try:
        assert bob.role == "admin"
        with pytest.raises(Conflict, match="last admin"):
            staff.remove(bob, BOB)
    finally:
        bob.close()


def test_cli_last_admin_removal_is_refused(cli_team, vault_path):
    before = _snapshot(vault_path)
    result = cli_team("staff", "remove", ADMIN, "--yes")
    assert result.exit_code == 9
    assert result.stderr.splitlines()[0] == (
        "nok: error: anne is the last admin; make someone else admin first"
    )
    assert _snapshot(vault_path) == before


def test_a_forged_admin_role_does_not_count_as_another_admin(team, vault_path):
    with sqlite3.connect(vault_path) as conn:
        conn.execute("UPDATE staff SET role = 'admin' WHERE name = ?", [BOB])
    with pytest.raises(Conflict, match="last admin"):
        staff.remove(team, ADMIN)


def test_the_only_staff_member_cannot_be_removed(unlocked, vault_path):
    with pytest.raises(Conflict):
        staff.remove(unlocked, ADMIN)
    _open_as(vault_path, ADMIN, PASSPHRASE).close()


@pytest.mark.parametrize(
    "args",
    [
        ("staff", "add", "dora"),
        ("staff", "remove", ADMIN, "--yes"),
        ("staff", "role", "bob", "admin"),
        ("staff", "reset", ADMIN),
        ("key", "rotate", "--yes"),
        ("key", "rotate", "--deep", "--yes"),
        ("key", "kdf", "sensitive"),
    ],
)
def test_staff_role_cannot_run_admin_commands(cli_team, vault_path, monkeypatch, args):
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", "a fine new passphrase")
    _as(monkeypatch, BOB, BOB_PASS)
    with sqlite3.connect(vault_path) as conn:
        settings_before = conn.execute("SELECT * FROM settings ORDER BY key").fetchall()
    before = _snapshot(vault_path)
    result = cli_team(*args)
    assert result.exit_code == 11
    assert result.stderr.startswith("nok: error: bob has role staff;")
    assert "needs the role admin" in result.stderr
    assert _snapshot(vault_path) == before
    with sqlite3.connect(vault_path) as conn:
        assert conn.execute("SELECT * FROM settings ORDER BY key").fetchall() == settings_before


def test_staff_role_can_list_staff_and_change_own_passphrase(cli_team, monkeypatch):
    _as(monkeypatch, BOB, BOB_PASS)
    listed = cli_team("staff", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    people = {m["name"]: m for m in json.loads(listed.stdout)}
    assert people[ADMIN]["role"] == "admin"
    assert people[BOB]["role"] == "staff"
    assert people[BOB]["last_used"] is not None
    assert set(people[BOB]) >= {"name", "role", "created", "last_used"}
    monkeypatch.setenv("NOK_NEW_PASSPHRASE", "bob's newer passphrase")
    assert cli_team("passwd").exit_code == 0


def test_passwd_changes_only_ones_own_slot(team, vault_path):
    before = {row[0]: row for row in _snapshot(vault_path)}
    staff.passwd(team, b"anne's brand new passphrase")
    after = {row[0]: row for row in _snapshot(vault_path)}
    assert after[BOB] == before[BOB]
    assert after[CARA] == before[CARA]
    assert after[ADMIN][5:] != before[ADMIN][5:]
    with pytest.raises(WrongPassphrase):
        _open_as(vault_path, ADMIN, PASSPHRASE)
    anne = _open_as(vault_path, ADMIN, "anne's brand new passphrase")
    try:
        assert [n.text for n in notes.list_notes(anne)] == ["MARKER note"]
    finally:
        anne.close()
    _open_as(vault_path, BOB, BOB_PASS).close()
    _open_as(vault_path, CARA, CARA_PASS).close()
    assert "staff.passwd" in _actions(vault_path)


def test_cli_passwd_reads_the_new_passphrase_from_a_file(cli_team, tmp_path, monkeypatch):
    secret = tmp_path / "new-pass"
    secret.write_text("a new passphrase for anne\n")
    secret.chmod(0o600)
    result = cli_team("passwd", "--new-passphrase-file", str(secret))
    assert result.exit_code == 0, result.stderr
    assert cli_team("staff", "list").exit_code == 4
    monkeypatch.setenv("NOK_PASSPHRASE", "a new passphrase for anne")
    assert cli_team("staff", "list").exit_code == 0
    _as(monkeypatch, BOB, BOB_PASS)
    assert cli_team("staff", "list").exit_code == 0


def test_cli_passwd_without_a_new_passphrase_changes_nothing(cli_team, vault_path):
    before = _snapshot(vault_path)
    result = cli_team("passwd")
    assert result.exit_code == 4
    assert "no new passphrase given" in result.stderr
    assert _snapshot(vault_path) == before


def test_admin_resets_a_forgotten_passphrase(team, vault_path):
    staff.reset(team, BOB, b"bob's reset passphrase")
    with pytest.raises(WrongPassphrase):
        _open_as(vault_path, BOB, BOB_PASS)
    _open_as(vault_path, BOB, "bob's reset passphrase").close()
    _open_as(vault_path, CARA, CARA_PASS).close()


def test_add_refuses_a_taken_name_and_bad_input(team, vault_path):
    before = _snapshot(vault_path)
    with pytest.raises(Conflict):
        staff.add(team, BOB, passphrase=b"whatever passphrase")
    with pytest.raises(BadInput):
        staff.add(team, "two words", passphrase=b"whatever passphrase")
    with pytest.raises(BadInput):
        staff.add(team, "dora", passphrase=b"whatever passphrase", role="owner")
    with pytest.raises(NotFound):
        staff.remove(team, "nobody")
    assert _snapshot(vault_path) == before


def test_cli_add_needs_the_new_members_passphrase(cli_vault, vault_path):
    before = _snapshot(vault_path)
    result = cli_vault("staff", "add", BOB)
    assert result.exit_code == 4
    assert _snapshot(vault_path) == before


def test_a_role_edited_in_the_file_gives_no_admin_rights_and_is_reported(
    cli_team, vault_path, monkeypatch
):
    """bob, a file writer, makes himself admin in the staff table: the signed staff list
    still says staff, so he may not remove anne, and anne's listing reports the row."""
    with sqlite3.connect(vault_path) as conn:
        conn.execute("UPDATE staff SET role = 'admin' WHERE name = ?", [BOB])
    before = _snapshot(vault_path)
    _as(monkeypatch, BOB, BOB_PASS)
    result = cli_team("staff", "remove", ADMIN, "--yes")
    assert result.exit_code == 11
    assert result.stderr.startswith("nok: error: bob has role staff;")
    assert _snapshot(vault_path) == before
    _as(monkeypatch, ADMIN, PASSPHRASE)
    listing = cli_team("staff", "list")
    assert listing.exit_code == 0
    assert "does not match the vault's signed staff list" in listing.stderr


def test_raised_slot_cost_takes_effect_at_next_unlock(team, vault_path):
    def cost(name):
        with sqlite3.connect(vault_path) as conn:
            (slot,) = conn.execute("SELECT slot FROM staff WHERE name = ?", [name]).fetchone()
        return staff.profile_name(slots.read_header(slot, name=name).params)

    assert cost(BOB) == "interactive"
    staff.set_kdf_min(team, "moderate")
    assert cost(BOB) == "interactive"
    bob = _open_as(vault_path, BOB, BOB_PASS)
    bob.close()
    assert cost(BOB) == "moderate"
    assert cost(CARA) == "interactive"
    _open_as(vault_path, BOB, BOB_PASS).close()
    assert _actions(vault_path).count("key.kdf") == 1


def test_raising_a_slot_cost_at_unlock_never_undoes_a_reset_made_meanwhile(
    team, vault_path, monkeypatch
):
    """bob unlocks (his slot is rewrapped stronger) while an admin resets his passphrase:
    the reset wins; bob's unlock must not write his old secret over the new key pair."""
    staff.set_kdf_min(team, "moderate")
    original = Vault._stronger_slot

    def reset_meanwhile(self, row, passphrase, seed, root):
        stronger = original(self, row, passphrase, seed, root)
        staff.reset(team, BOB, b"a brand new passphrase")
        return stronger

    monkeypatch.setattr(Vault, "_stronger_slot", reset_meanwhile)
    _open_as(vault_path, BOB, BOB_PASS).close()
    monkeypatch.undo()
    _open_as(vault_path, BOB, "a brand new passphrase").close()
    with pytest.raises(WrongPassphrase):
        _open_as(vault_path, BOB, BOB_PASS)


def test_unknown_kdf_profile_is_refused(cli_vault, vault_path):
    result = cli_vault("key", "kdf", "extreme")
    assert result.exit_code == 2
    assert result.stderr.startswith("nok: error: unknown KDF profile 'extreme'")


def test_staff_role_is_refused_in_the_library_too(team, vault_path):
    bob = _open_as(vault_path, BOB, BOB_PASS)
    try:
        with pytest.raises(NotAllowed):
            staff.add(bob, "dora", passphrase=b"dora's passphrase")
        with pytest.raises(NotAllowed):
            staff.remove(bob, CARA)
    finally:
        bob.close()


def test_list_shows_every_member_and_checks_roles(team, vault_path):
    members = staff.list_members(team)
    assert [(m.name, m.role) for m in members] == [
        (ADMIN, "admin"),
        (BOB, "staff"),
        (CARA, "staff"),
    ]
    with sqlite3.connect(vault_path) as conn:
        conn.execute("UPDATE staff SET role = 'admin' WHERE name = ?", [CARA])
    # The signed staff list decides the role; the edited row is reported, not trusted.
    listed = staff.listing(team)
    assert [(m.name, m.role) for m in listed.members] == [
        (ADMIN, "admin"),
        (BOB, "staff"),
        (CARA, "staff"),
    ]
    assert listed.problems == [CARA]


RESET_PASS = "bob's reset passphrase"


@pytest.mark.parametrize(
    ("command", "meanwhile"),
    [("passwd", "role"), ("passwd", "reset"), ("reset", "role")],
)
def test_a_slot_change_racing_another_change_is_refused_and_locks_nobody_out(
    team, vault_path, monkeypatch, command, meanwhile
):
    """The new slot is made outside the transaction: another admin's role change or reset
    lands between the Argon2id work and the write, deterministically."""
    other_admin = _open_as(vault_path, ADMIN, PASSPHRASE)
    actor = _open_as(vault_path, BOB, BOB_PASS) if command == "passwd" else team
    real = staff._prove_opens

    def change_in_between(row, passphrase, keys, root):
        real(row, passphrase, keys, root)
        monkeypatch.setattr(staff, "_prove_opens", real)
        if meanwhile == "role":
            staff.set_role(other_admin, BOB, "admin")
        else:
            staff.reset(other_admin, BOB, RESET_PASS.encode())

    def run():
        if command == "passwd":
            return staff.passwd(actor, b"bob's racing passphrase")
        return staff.reset(actor, BOB, b"bob's racing passphrase")

    monkeypatch.setattr(staff, "_prove_opens", change_in_between)
    try:
        with pytest.raises(Conflict, match=r"changed .*while this command ran"):
            run()
    finally:
        other_admin.close()
        if actor is not team:
            actor.close()
    bob_pass = RESET_PASS if meanwhile == "reset" else BOB_PASS
    bob = _open_as(vault_path, BOB, bob_pass)
    try:
        assert bob.role == ("admin" if meanwhile == "role" else "staff")
    finally:
        bob.close()
    assert [m.name for m in staff.list_members(team)] == [ADMIN, BOB, CARA]
    rotation.rotate(team)
    bob = _open_as(vault_path, BOB, bob_pass)
    try:
        assert [n.text for n in notes.list_notes(bob)] == ["MARKER note"]
        staff.passwd(bob, b"bob's next passphrase")
    finally:
        bob.close()
    _open_as(vault_path, BOB, "bob's next passphrase").close()


def _slot_params(vault_path, name):
    with sqlite3.connect(vault_path) as conn:
        (slot,) = conn.execute("SELECT slot FROM staff WHERE name = ?", [name]).fetchone()
    return slots.read_header(slot, name=name).params


def _weaken_header(vault_path, name, params):
    """What anyone with write access can do: new cost in the header, checksum recomputed."""
    with sqlite3.connect(vault_path) as conn:
        (slot,) = conn.execute("SELECT slot FROM staff WHERE name = ?", [name]).fetchone()
        body = bytes(slot[:2]) + struct.pack(">IQ", params.opslimit, params.memlimit)
        body += bytes(slot[14:-16])
        forged = body + crypto.digest(body, 16)
        conn.execute("UPDATE staff SET slot = ? WHERE name = ?", [forged, name])


def test_reset_does_not_take_its_cost_from_a_lowered_slot_header(team, vault_path):
    moderate = crypto.KDF_PROFILES["moderate"]
    staff.set_kdf_min(team, "moderate")
    _open_as(vault_path, ADMIN, PASSPHRASE).close()
    staff.set_kdf_min(team, "interactive")
    assert _slot_params(vault_path, ADMIN) == moderate
    weak = crypto.KDF_MIN
    _weaken_header(vault_path, BOB, weak)
    assert _slot_params(vault_path, BOB) == weak
    with pytest.raises(WrongPassphrase):
        _open_as(vault_path, BOB, BOB_PASS)
    staff.reset(team, BOB, RESET_PASS.encode())
    assert _slot_params(vault_path, BOB) == moderate
    _open_as(vault_path, BOB, RESET_PASS).close()


def test_reset_never_lowers_a_members_slot_cost(team, vault_path):
    staff.set_kdf_min(team, "moderate")
    _open_as(vault_path, BOB, BOB_PASS).close()
    moderate = crypto.KDF_PROFILES["moderate"]
    assert _slot_params(vault_path, BOB) == moderate
    staff.set_kdf_min(team, "interactive")
    assert _slot_params(vault_path, ADMIN) == crypto.KDF_PROFILES["interactive"]
    staff.reset(team, BOB, RESET_PASS.encode())
    assert _slot_params(vault_path, BOB) == moderate


def test_reset_mends_a_damaged_slot(team, vault_path):
    with sqlite3.connect(vault_path) as conn:
        conn.execute("UPDATE staff SET slot = zeroblob(119) WHERE name = ?", [BOB])
    staff.reset(team, BOB, RESET_PASS.encode())
    assert _slot_params(vault_path, BOB) == _slot_params(vault_path, ADMIN)
    _open_as(vault_path, BOB, RESET_PASS).close()


def test_a_passphrase_change_spanning_a_rotation_is_run_again_not_tampering(team, vault_path):
    """bob types his new passphrase twice while an admin rotates the key."""
    bob = _open_as(vault_path, BOB, BOB_PASS)
    try:
        rotation.rotate(team)
        with pytest.raises(KeysRotated):
            staff.passwd(bob, b"bob's brand new passphrase")
        stale = _stale_admin(vault_path, team)
        with pytest.raises(KeysRotated):
            staff.reset(stale, CARA, b"cara's new passphrase")
        stale.close()
    finally:
        bob.close()
    _open_as(vault_path, BOB, BOB_PASS).close()
    _open_as(vault_path, CARA, CARA_PASS).close()


def _stale_admin(vault_path, team):
    """An admin session unlocked before the next rotation."""
    stale = _open_as(vault_path, ADMIN, PASSPHRASE)
    rotation.rotate(team)
    return stale


def test_ctrl_d_at_the_rotation_offer_is_not_reported_as_nothing_changed(
    cli_team, nok_env, vault_path
):
    """The removal is committed before the offer: declining it must not exit 130."""
    import os
    import pty
    import subprocess
    import sys

    anne = _open_as(vault_path, ADMIN, PASSPHRASE)
    try:
        _consent_bob_reads(anne)  # so that there are data keys he may have kept
    finally:
        anne.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("NOK_")}
    env.update(nok_env)
    leader, follower = pty.openpty()
    try:
        os.write(leader, b"y\n\x04")
        done = subprocess.run(
            [sys.executable, "-m", "nokcli", "staff", "remove", BOB],
            stdin=follower,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0, done.stderr
    assert "no deep rotation was run" in done.stderr
    names = [m["name"] for m in json.loads(cli_team("staff", "list", "--json").stdout)]
    assert BOB not in names


def test_a_reset_does_not_hand_on_a_key_planted_in_the_admins_wrap(team, vault_path):
    """A file writer seals a key of her own to the admin public key as the admins' wrap of
    the consent bob reads, with a public key and proof to match. bob's reset wraps the data
    key again for his new keys from that wrap: it is refused, and bob keeps the real key."""
    from vault import access, states

    (cid,) = team.store.consents_of_reader(BOB)
    row = team.store.get_consent(cid)
    planted = crypto.new_key()
    forged = dataclasses.replace(row, consent_box=states.consent_box(planted)[1])
    proof = states.proof(states.proof_key(planted), consents.state_digest(team.vault_id, forged))
    wrap = crypto.seal_to(
        team.epoch.keys.admin,
        planted,
        access.wrap_ad(team.vault_id, cid, access.ADMIN_READER, row.key_version),
    )
    with sqlite3.connect(vault_path) as conn:
        conn.execute(
            "UPDATE consents SET consent_box = ?, proof = ? WHERE id = ?",
            [forged.consent_box, proof, cid],
        )
        conn.execute(
            "UPDATE consent_keys SET how = 'box', wrapped = ? WHERE consent_id = ? AND reader = ?",
            [wrap, cid, access.ADMIN_READER],
        )
    team.forget_data_key(cid)
    bobs_wrap = team.store.wrap_for(cid, [BOB])
    with pytest.raises(IntegrityError):
        staff.reset(team, BOB, RESET_PASS.encode())
    assert team.store.wrap_for(cid, [BOB]) == bobs_wrap
    _open_as(vault_path, BOB, BOB_PASS).close()
