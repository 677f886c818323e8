"""A file writer without a staff secret (on a shared vault: every colleague, and malware in
any of their accounts) cannot make what decides an erasure or which key nok trusts.

Each test attacks the file as that adversary would (issue 16's list, and the property
behind each): the attack is refused or reported with its own message and exit code, and
never leads to an erasure or a trusted key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ADMIN, CLOCK_ENV, NOW, PASSPHRASE, keys_that_open, run_nok
from vault import (
    Vault,
    audit,
    consents,
    crypto,
    endings,
    erasure,
    identity,
    jobs,
    notes,
    pins,
    seeds,
)
from vault.errors import NokError
from vault.session import Unlocked

KARI_PASS = "kari horse battery staple"


def raw(path: Path) -> sqlite3.Connection:
    """The vault file as a file writer opens it: plain SQLite, no nok."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    return conn


def register(u: Unlocked, subject: str = "K.H.", *, notes_text: str | None = "first note") -> str:
    c = consents.add(
        u, consents.ConsentInput(subject=subject, purpose="follow-up", categories=("safety",))
    )
    if notes_text is not None:
        notes.add(u, c.id, notes_text)
    return c.id


def reopen(path: Path, name: str = ADMIN, secret: str = PASSPHRASE) -> Unlocked:
    return Vault.open(path).unlock(name, secret.encode(), now=NOW + dt.timedelta(minutes=5))


def status(env: dict[str, str]) -> dict[str, object]:
    result = run_nok("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    doc: dict[str, object] = json.loads(result.stdout)
    return doc


@pytest.fixture
def env(nok_env: dict[str, str]) -> dict[str, str]:
    return {**nok_env, **CLOCK_ENV}


@pytest.fixture
def job(unlocked: Unlocked, tmp_path: Path) -> Path:
    """The job's credential, as an admin makes it (nok key job-credential)."""
    path = tmp_path / "purge.credential"
    jobs.write(path, jobs.issue(unlocked))
    return path


# -- 1. a planted master key -------------------------------------------------------------


@pytest.mark.parametrize("empty", [False, True], ids=["with consents", "emptied of consents"])
def test_a_planted_admin_seed_is_refused_whatever_the_statuses_say(
    unlocked: Unlocked, vault_path: Path, empty: bool
) -> None:
    """The format-2 attack: statuses set to something not active (or every consent
    deleted), keys of the attacker's choosing sealed in every box. The seed's public keys
    are not the ones the signed epoch lists: refused before anything is written."""
    cid = register(unlocked)
    me = unlocked.epoch.staff[ADMIN]
    vault_id = unlocked.vault_id
    unlocked.close()
    planted = identity.KeySet.new()
    db = raw(vault_path)
    if empty:
        db.execute("DELETE FROM notes")
        db.execute("DELETE FROM consent_keys")
        db.execute("DELETE FROM consents")
    else:
        db.execute("UPDATE consents SET status = 'paused' WHERE id = ?", [cid])
    for purpose in ("admin", "team"):
        (version,) = db.execute(
            "SELECT version FROM sealed_keys WHERE holder = ? AND purpose = ?", [ADMIN, purpose]
        ).fetchone()
        ad = seeds.ad(vault_id, purpose, version, ADMIN)
        db.execute(
            "UPDATE sealed_keys SET sealed = ? WHERE holder = ? AND purpose = ?",
            [crypto.seal_to(me.box, planted.seed, ad), ADMIN, purpose],
        )
    db.close()
    with pytest.raises(seeds.KeyReplaced):
        reopen(vault_path)


def test_a_forged_epoch_that_would_list_a_new_key_is_refused(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str]
) -> None:
    """An epoch added by someone without the vault key (her own key listed as admin):
    the chain breaks, and every command says so (exit 7)."""
    forger = identity.KeySet.new()
    current = unlocked.epoch
    body = json.loads(current.body)
    body["epoch"] = current.number + 1
    body["prev"] = current.hash.hex()
    body["keys"]["vault"] = forger.sign_public.hex()
    body["staff"]["eve"] = {
        "role": "admin",
        "box": forger.box_public.hex(),
        "sign": forger.sign_public.hex(),
    }
    raw_body = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    from vault import epochs

    sig = epochs.sign(
        raw_body, vault_id=unlocked.vault_id, number=current.number + 1, signer=forger
    )
    unlocked.close()
    db = raw(vault_path)
    db.execute("INSERT INTO epochs VALUES (?, ?, ?)", [current.number + 1, raw_body, sig])
    db.close()
    result = run_nok("consent", "list", env=env)
    assert result.returncode == 7
    assert "not signed by the keys of the epoch before it" in result.stderr


def test_a_role_edited_in_the_file_gives_no_admin_rights(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str]
) -> None:
    from vault import staff

    staff.add(unlocked, "kari", passphrase=KARI_PASS.encode())
    unlocked.close()
    db = raw(vault_path)
    db.execute("UPDATE staff SET role = 'admin' WHERE name = 'kari'")
    db.close()
    kari = {**env, "NOK_USER": "kari", "NOK_PASSPHRASE": KARI_PASS}
    result = run_nok("settings", "set", "retention-days", "30", "--yes", env=kari)
    assert result.returncode == 11, result.stderr
    listing = run_nok("staff", "list", env=env)
    assert listing.returncode == 0
    assert "does not match the vault's signed staff list" in listing.stderr


# -- 2. erasures on a file writer's word ----------------------------------------------------


def test_a_planted_erasure_log_line_erases_nothing_and_is_reported(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], tmp_path: Path, job: Path
) -> None:
    cid = register(unlocked, notes_text="KEEP-ME")
    backup_dir = tmp_path / "bk"
    from vault import backup

    taken = backup.backup(unlocked, backup_dir, now=NOW, actor=ADMIN, into_directory=True)
    unlocked.close()
    log = endings.log_path(vault_path)
    lines = [
        {"consent_id": cid, "ended": "2026-11-23T10:00:00.000000Z", "reason": "withdrawn"},
        {
            "v": 3,
            "consent_id": cid,
            "status": "withdrawn",
            "given": "x",
            "created": "y",
            "ended": "2026-11-23T10:00:00.000000Z",
            "reason": "withdrawn",
            "ended_by": ADMIN,
            "signer": ADMIN,
            "epoch": 1,
            "sig": "00" * 64,
        },
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.chmod(log, 0o600)
    doc = status(env)
    assert doc["unauthenticated_log_lines"] == [1]
    # The purge, with its credential, and a staff member's unlock: nothing is erased.
    purge = run_nok("purge", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert purge.returncode == 0, purge.stderr
    again = reopen(vault_path)
    assert consents.show(again, cid).subject == "K.H."
    again.close()
    assert backup.inspect(taken.path).consent_ids == {cid}
    verify = run_nok("verify", env=env)
    assert verify.returncode == 13
    assert "not a signed ending" in verify.stdout


def test_a_forged_keyless_withdrawal_entry_erases_nothing(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str]
) -> None:
    """A chained, unsigned consent.withdraw entry marked keyless: never acted on at unlock,
    never sealed later, and verify fails."""
    cid = register(unlocked)
    with unlocked.store.write():
        audit.append(
            unlocked.store,
            now=NOW,
            signer=None,
            actor="purge",
            action="consent.withdraw",
            consent_id=cid,
        )
    unlocked.close()
    again = reopen(vault_path)
    assert consents.show(again, cid).subject == "K.H."
    again.close()
    verify = run_nok("verify", "--json", env=env)
    assert verify.returncode == 13
    kinds = {p["kind"] for p in json.loads(verify.stdout)["problems"]}
    assert "unsigned-erasure" in kinds
    # Still unsigned after another staff command.
    rows = (
        raw(vault_path)
        .execute("SELECT sig FROM audit WHERE action = 'consent.withdraw'")
        .fetchall()
    )
    assert rows == [(None,)]


# -- 3. a status flipped to withdrawn in the live file --------------------------------------


def test_a_flipped_status_never_erases_in_backups(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], tmp_path: Path, job: Path
) -> None:
    victim = register(unlocked, "VICTIM", notes_text="VICTIM-NOTE")
    other = register(unlocked, "OTHER")
    from vault import backup

    taken = backup.backup(unlocked, tmp_path / "bk", now=NOW, actor=ADMIN, into_directory=True)
    unlocked.close()
    db = raw(vault_path)
    db.execute(
        "UPDATE consents SET status = 'withdrawn', ended = ?, ended_by = ? WHERE id = ?",
        ["2026-11-23T10:00:00.000000Z", ADMIN, victim],
    )
    db.close()
    # Every path that brings backups up to date: a withdrawal, the purge with its credential.
    withdraw = run_nok("consent", "withdraw", other, "--yes", env=env)
    assert withdraw.returncode == 0, withdraw.stderr
    purge = run_nok("purge", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert purge.returncode == 0, purge.stderr
    info = backup.inspect(taken.path)
    assert victim in info.consent_ids
    assert other in info.ended_ids
    assert victim in status(env)["unauthenticated_erasures"]
    verify = run_nok("verify", env=env)
    assert verify.returncode == 13
    assert f"consent {victim} is marked withdrawn, but no staff member" in verify.stdout


# -- 4. corrections rolled back -------------------------------------------------------------


def test_rolled_back_corrections_are_applied_again_at_unlock(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], tmp_path: Path
) -> None:
    from vault import corrections

    cid = register(unlocked, "OLD-ALIAS", notes_text="OLD-TEXT-TO-AMEND")
    doomed = notes.add(unlocked, cid, "WRONG-PERSON-TEXT")
    amended = next(
        n for n in notes.list_notes(unlocked, consent_id=cid) if n.text.startswith("OLD")
    )
    unlocked.close()
    copy = tmp_path / "before.db"
    shutil.copy(vault_path, copy)
    u = reopen(vault_path)
    corrections.amend_note(u, amended.id, text="NEW-TEXT")
    corrections.delete_note(u, doomed.id, reason="wrong-person")
    corrections.amend_consent(u, cid, subject="NEW-ALIAS")
    u.close()
    # Put the consent's rows back from the copy, and drop the marks.
    db = raw(vault_path)
    db.execute("ATTACH ? AS old", [str(copy)])
    db.execute("DELETE FROM note_amendments")
    db.execute("DELETE FROM note_tombstones")
    db.execute("DELETE FROM notes WHERE consent_id = ?", [cid])
    db.execute("INSERT INTO notes SELECT * FROM old.notes WHERE consent_id = ?", [cid])
    db.execute("DELETE FROM consent_keys WHERE consent_id = ?", [cid])
    db.execute("DELETE FROM consents WHERE id = ?", [cid])
    db.execute("INSERT INTO consents SELECT * FROM old.consents WHERE id = ?", [cid])
    db.execute(
        "INSERT INTO consent_keys SELECT * FROM old.consent_keys WHERE consent_id = ?", [cid]
    )
    db.close()
    verify = run_nok("verify", "--json", env=env)
    assert verify.returncode == 13
    assert "correction" in {p["kind"] for p in json.loads(verify.stdout)["problems"]}
    # verify's own unlock applied them again, signed by the one who ran it.
    trail = (
        raw(vault_path)
        .execute(
            "SELECT actor FROM audit WHERE action = 'consent.corrections-again' AND consent_id = ?",
            [cid],
        )
        .fetchall()
    )
    assert trail == [(ADMIN,)]
    again = reopen(vault_path)
    texts = [n.text for n in notes.list_notes(again, consent_id=cid)]
    assert not any("OLD-TEXT" in t or "WRONG-PERSON" in t for t in texts)
    assert consents.show(again, cid).subject != "OLD-ALIAS"
    again.close()
    for path in [vault_path, *vault_path.parent.glob(vault_path.name + "-wal")]:
        assert b"OLD-ALIAS" not in path.read_bytes()


# -- 5. a demoted admin restores an old backup -----------------------------------------------


def test_a_restore_that_takes_the_keys_back_is_refused_by_colleagues(
    unlocked: Unlocked,
    vault_path: Path,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vault import backup, staff

    staff.add(unlocked, "kari", passphrase=KARI_PASS.encode(), role="admin")
    old = backup.backup(unlocked, tmp_path / "bk", now=NOW, actor=ADMIN, into_directory=True)
    # Kari's own state directory: she has seen the vault as it is now.
    kari_state = tmp_path / "kari-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(kari_state))
    reopen(vault_path, "kari", KARI_PASS).close()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    staff.set_role(unlocked, "kari", "staff")
    register(unlocked, "AFTER")
    unlocked.close()
    monkeypatch.setenv("XDG_STATE_HOME", str(kari_state))
    reopen(vault_path, "kari", KARI_PASS).close()  # she sees the demotion
    # Kari, demoted, moves the vault aside, leaves an empty erasure log, and restores the
    # old backup with her old slot (the backup calls her admin).
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in list(vault_path.parent.glob(vault_path.name + "*")):
        shutil.move(path, aside / path.name)
    log = endings.log_path(vault_path)
    log.touch(mode=0o600)
    backup.restore(
        old.path,
        vault_path,
        erasures_file=None,
        now=NOW,
        actor="kari",
        passphrase=KARI_PASS.encode(),
        pin_store=None,
    )
    # Anne's unlock (she saw the newer vault) refuses the older one.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with pytest.raises(pins.VaultRolledBack):
        reopen(vault_path)
    result = run_nok("consent", "list", env={**env, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert result.returncode == 7
    assert "nok key accept" in result.stderr


# -- 6. the purge's "today" ----------------------------------------------------------------


def test_the_purge_counts_days_in_the_vaults_calendar_not_tz(
    unlocked: Unlocked, env: dict[str, str], job: Path
) -> None:
    """10:00 UTC is the same day in Oslo; under TZ=Etc/GMT-14 it is already tomorrow. A
    consent whose deadline is today (Oslo) is not due."""
    today = unlocked.today()
    yesterday = (dt.date.fromisoformat(today) - dt.timedelta(days=1)).isoformat()
    c = consents.add(
        unlocked,
        consents.ConsentInput(
            subject="TODAY", purpose="p", categories=("safety",), given=yesterday, retain_days=1
        ),
    )
    assert c.retain_until == today
    unlocked.close()
    result = run_nok(
        "purge", "--json", env={**env, "TZ": "Etc/GMT-14", "NOK_JOB_CREDENTIAL": str(job)}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["purged"] == []


# -- 7. a keyless entry dated ahead ----------------------------------------------------------


def test_a_keyless_entry_dated_ahead_does_not_stall_the_purge(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], job: Path
) -> None:
    with unlocked.store.write():
        audit.append(
            unlocked.store,
            now=NOW + dt.timedelta(hours=23),
            signer=None,
            actor="purge",
            action="vault.backup",
        )
    unlocked.close()
    result = run_nok("purge", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert result.returncode == 0, result.stderr
    reopen(vault_path).close()
    rows = raw(vault_path).execute("SELECT sig FROM audit WHERE action = 'vault.backup'").fetchall()
    assert rows == [(None,)]


# -- 8. the file a restore set aside ---------------------------------------------------------


def test_the_file_a_restore_sets_aside_is_reached_by_later_erasures(
    unlocked: Unlocked, vault_path: Path, tmp_path: Path
) -> None:
    from vault import backup

    cid = register(unlocked, "LATER-WITHDRAWN", notes_text="SECRET-OF-THE-SET-ASIDE")
    taken = backup.backup(unlocked, tmp_path / "bk", now=NOW, actor=ADMIN, into_directory=True)
    unlocked.close()
    result = backup.restore(
        taken.path,
        vault_path,
        erasures_file=None,
        now=NOW,
        actor=ADMIN,
        passphrase=PASSPHRASE.encode(),
    )
    assert result.replaced is not None
    u = reopen(vault_path)
    erasure.withdraw(u, cid)
    u.close()
    assert b"SECRET" not in result.replaced.read_bytes()
    info = backup.inspect(result.replaced)
    assert cid in info.ended_ids


# -- 9. the library keeps its own promises ---------------------------------------------------


def test_the_library_erases_again_what_an_older_copy_brings_back(
    unlocked: Unlocked, vault_path: Path, tmp_path: Path
) -> None:
    cid = register(unlocked, "GONE", notes_text="MUST-NOT-COME-BACK")
    unlocked.close()
    copy = tmp_path / "copy.db"
    shutil.copy(vault_path, copy)
    u = reopen(vault_path)
    erasure.withdraw(u, cid)
    u.close()
    # Only the consent's rows come back (the trail stays), through the documented API.
    db = raw(vault_path)
    db.execute("ATTACH ? AS old", [str(copy)])
    db.execute("DELETE FROM consents WHERE id = ?", [cid])
    db.execute("INSERT INTO consents SELECT * FROM old.consents WHERE id = ?", [cid])
    db.execute("INSERT INTO notes SELECT * FROM old.notes WHERE consent_id = ?", [cid])
    db.execute(
        "INSERT INTO consent_keys SELECT * FROM old.consent_keys WHERE consent_id = ?", [cid]
    )
    db.close()
    u = Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW)
    assert [r.erased_again for r in u.reconciled] == [(cid,)]
    assert consents.show(u, cid).subject is None
    assert list(notes.list_notes(u)) == []
    u.close()


# -- the job and its credential -------------------------------------------------------------


def test_without_a_credential_the_purge_erases_nothing_and_says_why(
    unlocked: Unlocked, env: dict[str, str]
) -> None:
    c = consents.add(
        unlocked,
        consents.ConsentInput(
            subject="DUE", purpose="p", categories=("safety",), given="2020-01-01", retain_days=1
        ),
    )
    unlocked.close()
    result = run_nok("purge", env=env)
    assert result.returncode == 4
    assert "holds no job credential" in result.stderr
    assert status(env)["active_consents"] == 1
    del c


def test_the_job_can_check_states_but_holds_no_key_that_opens_a_consent(
    unlocked: Unlocked, vault_path: Path, job: Path
) -> None:
    cid = register(unlocked, "PRIVATE", notes_text="PRIVATE-TEXT")
    row = unlocked.store.get_consent(cid)
    assert row is not None
    unlocked.close()
    credential = jobs.read(job)
    with Vault.open(vault_path) as vault:
        holder = jobs.unlock(vault, credential, now=NOW, pin_store=None)
        proof_key = holder.proof_key(vault.store, row)
        assert proof_key is not None
        # Every wrap in the file, tried with every secret the job holds: the proof key
        # only, which opens no record.
        found = keys_that_open(
            [holder.keys, holder.job_box], holder.vault_id, cid, vault.store.wraps(cid)
        )
        assert [reader for reader, _ in found] == ["#job"]
        assert found[0][1] == proof_key
        with pytest.raises(NokError):
            consents.open_record(found[0][1], row)
        # A job's signature counts for nothing a staff member would have to sign.
        assert holder.name not in holder.chain.current.staff


def test_a_revoked_credential_erases_nothing(
    unlocked: Unlocked, env: dict[str, str], job: Path
) -> None:
    jobs.revoke(unlocked, "purge")
    unlocked.close()
    result = run_nok("purge", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert result.returncode == 4
    assert "is not one this vault lists" in result.stderr


def test_a_credential_file_others_can_read_is_refused(
    unlocked: Unlocked, env: dict[str, str], job: Path
) -> None:
    unlocked.close()
    os.chmod(job, 0o644)
    result = run_nok("purge", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    assert result.returncode == 10


# -- key continuity does not rest on plaintext ------------------------------------------------


def test_a_vault_replaced_whole_by_a_consistent_forgery_is_refused(
    unlocked: Unlocked, vault_path: Path
) -> None:
    """A forger rewrites the chain from epoch 1 with keys of her own (the vault id and
    the victim's real slot and public keys kept, so it all verifies): the slot is bound to
    the real root fingerprint and does not open, and a user who has a pin is told the
    root key is not the one she knows."""
    from vault import epochs

    first = unlocked.chain.first
    unlocked.close()
    forger = identity.KeySet.new()
    body = json.loads(first.body)
    for key in ("vault", "admin", "team", "job", "recovery_sign", "recovery_box"):
        body["keys"][key] = (
            forger.sign_public if key in ("vault", "recovery_sign") else forger.box_public
        ).hex()
    raw_body = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    sig = epochs.sign(raw_body, vault_id=first.vault_id, number=1, signer=forger)
    db = raw(vault_path)
    db.execute("DELETE FROM epochs")
    db.execute("INSERT INTO epochs VALUES (1, ?, ?)", [raw_body, sig])
    db.close()
    with pytest.raises(pins.VaultKeysReplaced):
        reopen(vault_path)
    from vault.errors import WrongPassphrase

    with pytest.raises(WrongPassphrase):
        Vault.open(vault_path).unlock(ADMIN, PASSPHRASE.encode(), now=NOW, pin_store=None)


def test_an_older_copy_put_back_by_hand_is_refused_until_accepted(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], tmp_path: Path
) -> None:
    register(unlocked)
    unlocked.close()
    copy = tmp_path / "older.db"
    shutil.copy(vault_path, copy)
    u = reopen(vault_path)
    register(u, "NEWER")
    u.close()
    shutil.copy(copy, vault_path)
    for side in vault_path.parent.glob(vault_path.name + "-*"):
        side.unlink()
    refused = run_nok("note", "list", env=env)
    assert refused.returncode == 7
    assert "older than the one you last used" in refused.stderr
    accept = run_nok("key", "accept", "--yes", env=env)
    assert accept.returncode == 0, accept.stderr
    assert run_nok("note", "list", env=env).returncode == 0


def test_the_recovery_key_readmits_an_admin_and_accepts_a_restore(
    unlocked: Unlocked, vault_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault import recovery

    seed = unlocked.recovery_seed
    assert seed is not None
    register(unlocked)
    unlocked.close()
    copy = tmp_path / "older.db"
    shutil.copy(vault_path, copy)
    u = reopen(vault_path)
    register(u, "NEWER")
    u.close()
    shutil.copy(copy, vault_path)
    for side in vault_path.parent.glob(vault_path.name + "-*"):
        side.unlink()
    with Vault.open(vault_path) as vault:
        with pytest.raises(recovery.NotTheRecoveryKey):
            recovery.accept(vault, identity.KeySet.new().seed, now=NOW, pin_store=None)
        recovery.accept(vault, seed, now=NOW + dt.timedelta(hours=1), pin_store=None)
    # Anne's pin (newer epoch) accepts the vault the recovery key signed for.
    reopen(vault_path).close()
    with Vault.open(vault_path) as vault:
        back = recovery.readmit(
            vault, seed, name="ola", passphrase=b"ola new passphrase", now=NOW, pin_store=None
        )
        assert back.role == "admin"
        back.close()


def test_a_status_edited_to_withdrawn_is_not_shown_as_a_withdrawal(
    unlocked: Unlocked, vault_path: Path
) -> None:
    """The counselor must not be told that a person withdrew when only the plaintext
    status says so: the consent is refused as altered, and every unlock names it."""
    cid = register(unlocked, notes_text="STILL-HERE")
    unlocked.close()
    db = raw(vault_path)
    db.execute("UPDATE consents SET status = 'withdrawn' WHERE id = ?", [cid])
    db.close()
    u = reopen(vault_path)
    with pytest.raises(NokError) as caught:
        consents.show(u, cid)
    assert "not signed by a staff member" in str(caught.value)
    assert any(cid in found.forged for found in u.reconciled)
    u.close()


def test_a_state_signed_with_the_job_credential_erases_nothing(
    unlocked: Unlocked, vault_path: Path, env: dict[str, str], job: Path
) -> None:
    """A thief of the job credential holds every consent's proof key and the job's signing
    key: she writes a state in which the consent was given years ago with one day's
    retention, proof and signature hers, and an entry in the trail naming it. A consent's
    state is a staff member's to sign, so the purge refuses it and erases nothing."""
    from vault import states

    cid = register(unlocked, "NOT-DUE", notes_text="MUST-STAY")
    unlocked.close()
    credential = jobs.read(job)
    with Vault.open(vault_path) as vault:
        thief = jobs.unlock(vault, credential, now=NOW, pin_store=None)
        row = vault.store.get_consent(cid)
        assert row is not None
        proof_key = thief.proof_key(vault.store, row)
        assert proof_key is not None
        forged = dataclasses.replace(
            row,
            given="2020-01-01",
            last_activity="2020-01-01",
            retain_days=1,
            retain_until="2020-01-02",
            rev=(row.rev or 0) + 1,
            state_signer=thief.name,
            state_epoch=thief.epoch.number,
        )
        digest = consents.state_digest(thief.vault_id, forged)
        signed = states.sign(
            digest,
            signer=thief.name,
            keys=thief.keys,
            epoch=thief.epoch.number,
            proof_key_=proof_key,
        )
        with vault.store.write():
            vault.store.conn.execute(
                "UPDATE consents SET given = ?, last_activity = ?, retain_days = ?,"
                " retain_until = ?, rev = ?, state_signer = ?, state_epoch = ?,"
                " state_sig = ?, proof = ? WHERE id = ?",
                [
                    forged.given,
                    forged.last_activity,
                    forged.retain_days,
                    forged.retain_until,
                    forged.rev,
                    signed.signer,
                    signed.epoch,
                    signed.sig,
                    signed.proof,
                    cid,
                ],
            )
            audit.append(
                vault.store,
                now=NOW,
                signer=thief.signer(),
                action="consent.extend",
                consent_id=cid,
                rev=forged.rev,
                state=digest,
            )
    result = run_nok("purge", "--json", env={**env, "NOK_JOB_CREDENTIAL": str(job)})
    # Kept past what its file says is its deadline, for an admin to look at (exit 7).
    assert result.returncode == 7, result.stderr
    report = json.loads(result.stdout)
    assert report["purged"] == []
    assert report["refused"] == [{"consent_id": cid, "why": "state-forged"}]
    assert status(env)["active_consents"] == 1


def test_a_state_forged_with_a_proof_key_is_not_signed_over_by_the_next_note(
    unlocked: Unlocked, vault_path: Path, job: Path
) -> None:
    """The thief of the job credential shortens a consent's retention to one day, with a
    proof made with the proof key the job holds (she cannot sign as staff). If the next
    note by a colleague took the state on its proof alone, it would sign it over, and the
    purge erase the consent the day after. The note is refused; the retention stays."""
    from vault import states

    cid = register(unlocked, "KEEP", notes_text="MUST-STAY")
    row = unlocked.store.get_consent(cid)
    assert row is not None
    with Vault.open(vault_path) as vault:
        thief = jobs.unlock(vault, jobs.read(job), now=NOW, pin_store=None)
        proof_key = thief.proof_key(vault.store, row)
    assert proof_key is not None
    forged = dataclasses.replace(
        row, retain_days=1, retain_until=consents.deadline(row.given, row.last_activity, 1)
    )
    proof = states.proof(proof_key, consents.state_digest(unlocked.vault_id, forged))
    db = raw(vault_path)
    db.execute(
        "UPDATE consents SET retain_days = 1, retain_until = ?, proof = ? WHERE id = ?",
        [forged.retain_until, proof, cid],
    )
    db.close()
    with pytest.raises(states.StateForged):
        notes.add(unlocked, cid, "the next call")
    stored = unlocked.store.get_consent(cid)
    assert stored is not None
    assert stored.retain_days == 1  # as she left it, never signed by anyone
    assert stored.state_sig == row.state_sig


def test_a_note_planted_with_the_job_credential_is_not_taken_into_the_journal(
    unlocked: Unlocked, vault_path: Path, job: Path
) -> None:
    """Anyone can seal a note to a consent's public key; the thief of the job credential
    also signs it with the job's key, as if a colleague without access had written it. A
    pending note is a staff member's to sign: the next note does not fold it into the
    journal, and nobody reads it as written by anyone."""
    from vault import keyring, states
    from vault.store import NoteRow

    cid = register(unlocked, "JOURNAL", notes_text="the real first note")
    row = unlocked.store.get_consent(cid)
    assert row is not None
    assert row.consent_box is not None
    with Vault.open(vault_path) as vault:
        thief = jobs.unlock(vault, jobs.read(job), now=NOW, pin_store=None)
        note_id = notes.new_note_id(vault.store)
        created = "2026-11-23T09:00:00.000000Z"
        record = crypto.seal_to(
            row.consent_box,
            keyring.encode_record((unlocked.today(), created, "phone", "ola", "PLANTED")),
            notes.pending_ad(note_id, cid, row.key_version),
        )
        digest = states.pending_digest(
            thief.vault_id,
            note_id=note_id,
            consent_id=cid,
            date=unlocked.today(),
            created=created,
            tag=states.record_tag(record),
        )
        sig = thief.keys.sign(states.signed_message(digest, thief.name, thief.epoch.number))
        with vault.store.write():
            vault.store.insert_note(
                NoteRow(
                    id=note_id,
                    consent_id=cid,
                    date=unlocked.today(),
                    created=created,
                    key_version=row.key_version,
                    seq=0,
                    record=record,
                    pending=1,
                    signer=thief.name,
                    sig_epoch=thief.epoch.number,
                    sig=sig,
                )
            )
    with pytest.raises(states.StateForged):
        notes.add(unlocked, cid, "the next call")
    with pytest.raises(states.StateForged):
        list(notes.list_notes(unlocked, consent_id=cid))
    planted = unlocked.store.get_note(note_id)
    assert planted is not None
    assert planted.pending
