"""Key rotation: after a plain rotation the old vault keys (the admin, team and job seeds)
open nothing current; after a deep one the old data keys open nothing either; and a deep
rotation killed with SIGKILL at any point leaves a readable vault that a rerun finishes."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import ADMIN, CLOCK_ENV, NOW, PASSPHRASE, keys_that_open, run_nok
from vault import (
    Vault,
    access,
    consents,
    crypto,
    epochs,
    identity,
    importer,
    keyring,
    notes,
    rotation,
    seeds,
    staff,
    states,
)
from vault.errors import Conflict, IntegrityError, KeysRotated, NokError


def _fill(unlocked, n_consents, notes_each):
    """Consents and notes as the admin registers them; returns what they say."""
    texts, subjects = {}, {}
    for i in range(n_consents):
        c = consents.add(
            unlocked,
            consents.ConsentInput(
                subject=f"subject {i}",
                purpose="follow-up",
                categories=("notes",),
                given="2026-11-01",
            ),
        )
        subjects[c.id] = f"subject {i}"
        for j in range(notes_each):
            n = notes.add(unlocked, c.id, f"note {j} of {c.id}")
            texts[n.id] = f"note {j} of {c.id}"
    return texts, subjects


def _open(vault_path, name=ADMIN, passphrase=PASSPHRASE):
    v = Vault.open(vault_path)
    try:
        return v.unlock(name, passphrase.encode(), now=NOW)
    except BaseException:
        v.close()
        raise


def _read_everything(vault_path):
    """Decrypt every note and consent with a fresh unlock, as a user would."""
    u = _open(vault_path)
    try:
        texts = {n.id: n.text for n in notes.list_notes(u)}
        subjects = {c.id: c.subject for c in consents.list_all(u)}
    finally:
        u.close()
    return texts, subjects


def _rows(vault_path, sql):
    with contextlib.closing(sqlite3.connect(vault_path)) as conn:
        return conn.execute(sql).fetchall()


def _key_version(vault_path, consent_id):
    with contextlib.closing(sqlite3.connect(vault_path)) as conn:
        (version,) = conn.execute(
            "SELECT key_version FROM consents WHERE id = ?", [consent_id]
        ).fetchone()
    return version


def _assert_no_old_key_opens_anything(vault_path, old_keys):
    """No captured data key decrypts any current consent or note record."""
    for cid, version, blob in _rows(vault_path, "SELECT id, key_version, record FROM consents"):
        for key in old_keys:
            for kv in {version, version - 1}:
                with pytest.raises(IntegrityError):
                    keyring.open_record(
                        key, blob, keyring.consent_ad(cid, kv), consents.RECORD_FIELDS, where=cid
                    )
    for nid, cid, version, blob in _rows(
        vault_path, "SELECT id, consent_id, key_version, record FROM notes"
    ):
        for key in old_keys:
            for kv in {version, version - 1}:
                with pytest.raises(IntegrityError):
                    keyring.open_record(key, blob, keyring.note_ad(nid, cid, kv), 5, where=nid)


def _old_seeds(unlocked):
    """The admin, team and job seeds this admin holds now (what a leaver may have kept)."""
    k = unlocked.epoch.keys
    job = seeds.open_seed(
        unlocked.store,
        vault_id=unlocked.vault_id,
        purpose=seeds.JOB,
        holder=seeds.HOLDER_ADMIN,
        box_secret=unlocked.admin.box_secret,
        expect=k.job,
        version=k.job_version,
    )
    return [unlocked.admin, unlocked.team, job]


def test_plain_rotation_leaves_the_old_vault_keys_useless(unlocked, vault_path):
    texts, subjects = _fill(unlocked, 4, 3)
    staff.add(unlocked, "bob", passphrase=b"bob's own passphrase")
    unlocked.vault_key(importer.FINGERPRINT_KEY)  # a vault-wide key, under the team seed
    notes_before = _rows(vault_path, "SELECT * FROM notes ORDER BY id")
    old = _old_seeds(unlocked)
    old_version, old_epoch = unlocked.master_version, unlocked.epoch

    result = rotation.rotate(unlocked)

    assert result.master_version == old_version + 1 == unlocked.master_version
    assert (result.consents, result.staff) == (4, 2)
    assert {s.seed for s in _old_seeds(unlocked)}.isdisjoint(s.seed for s in old)
    # Notes are not touched: the cost is per consent and staff member.
    assert _rows(vault_path, "SELECT * FROM notes ORDER BY id") == notes_before
    assert {n.id: n.text for n in notes.list_notes(unlocked)} == texts
    assert _read_everything(vault_path) == (texts, subjects)
    bob = _open(vault_path, "bob", "bob's own passphrase")
    bob.close()
    vault_id = unlocked.vault_id
    # Every wrap of every consent, tried with every old seed: none opens.
    for cid in subjects:
        assert keys_that_open(old, vault_id, cid, unlocked.store.wraps(cid)) == []
    sealed = _rows(vault_path, "SELECT holder, purpose, version, sealed FROM sealed_keys")
    assert len(sealed) >= 6
    for holder, purpose, version, box in sealed:
        for seed in old:
            with pytest.raises(NokError):
                crypto.open_sealed(
                    seed.box_secret, box, seeds.ad(vault_id, purpose, version, holder), where="x"
                )
    wrapped_keys = _rows(vault_path, "SELECT purpose, master_version, wrapped FROM vault_keys")
    assert wrapped_keys
    for purpose, version, wrapped in wrapped_keys:
        for v in (old_version, version):
            with pytest.raises(IntegrityError):
                keyring.unwrap_vault_key(old[1].wrap, wrapped, purpose=purpose, master_version=v)
    # The old vault key signs no epoch the vault accepts: a leaver cannot list herself again.
    current = unlocked.epoch
    body = epochs.body_of(
        vault_id=vault_id,
        number=current.number + 1,
        prev=current.hash,
        made=current.made,
        by=ADMIN,
        event="staff.add",
        keys=old_epoch.keys,
        staff=list(old_epoch.staff.values()),
        jobs=list(current.jobs.values()),
        settings=current.settings,
    )
    sig = epochs.sign(body, vault_id=vault_id, number=current.number + 1, signer=old[0])
    unlocked.store.checkpoint()
    for f in vault_path.parent.iterdir():
        for seed in old:
            assert seed.seed not in f.read_bytes()
    unlocked.close()
    with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as conn:
        conn.execute("INSERT INTO epochs VALUES (?, ?, ?)", [current.number + 1, body, sig])
    with pytest.raises(epochs.ChainBroken):
        _open(vault_path)


def test_a_public_key_swapped_in_the_file_never_receives_the_next_vault_keys(unlocked, vault_path):
    """Someone with write access but no passphrase plants their own public key on bob's
    row, hoping the next rotation seals the new seeds to it."""
    _fill(unlocked, 2, 1)
    staff.add(unlocked, "bob", passphrase=b"bob's own passphrase")
    attacker = identity.KeySet.new()
    with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as conn:
        conn.execute("UPDATE staff SET public_key = ? WHERE name = 'bob'", [attacker.box_public])

    rotation.rotate(unlocked)

    vault_id = unlocked.vault_id
    for holder, purpose, version, box in _rows(
        vault_path, "SELECT holder, purpose, version, sealed FROM sealed_keys"
    ):
        with pytest.raises(NokError):
            crypto.open_sealed(
                attacker.box_secret, box, seeds.ad(vault_id, purpose, version, holder), where="x"
            )
    # bob's seeds went to the keys the signed staff list names: he opens the vault.
    bob = _open(vault_path, "bob", "bob's own passphrase")
    assert bob.team.seed == unlocked.team.seed
    bob.close()
    assert staff.listing(unlocked).problems == ["bob"]


def test_a_key_planted_in_the_admins_wrap_is_not_spread_by_a_rotation(unlocked, vault_path):
    """A file writer seals a key of her own to the admin public key as a consent's admin
    wrap, with a consent public key and proof to match. Rotated under the new admin wrap
    key, it would be trusted without a check, and the next notes written under it."""
    _, subjects = _fill(unlocked, 2, 1)
    target = sorted(subjects)[0]
    row = unlocked.store.get_consent(target)
    planted = crypto.new_key()
    vault_id = unlocked.vault_id
    forged = dataclasses.replace(row, consent_box=states.consent_box(planted)[1])
    proof = states.proof(states.proof_key(planted), consents.state_digest(vault_id, forged))
    wrap = crypto.seal_to(
        unlocked.epoch.keys.admin,
        planted,
        access.wrap_ad(vault_id, target, access.ADMIN_READER, row.key_version),
    )
    wraps_before = unlocked.store.wraps(target)
    with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as conn:
        conn.execute(
            "UPDATE consents SET consent_box = ?, proof = ? WHERE id = ?",
            [forged.consent_box, proof, target],
        )
        conn.execute(
            "UPDATE consent_keys SET how = 'box', wrapped = ? WHERE consent_id = ? AND reader = ?",
            [wrap, target, access.ADMIN_READER],
        )
    unlocked.forget_data_key(target)

    with pytest.raises(IntegrityError, match=target):
        rotation.rotate(unlocked)

    assert unlocked.master_version == 1
    other = [w for w in unlocked.store.wraps(target) if w[0] != access.ADMIN_READER]
    assert other == [w for w in wraps_before if w[0] != access.ADMIN_READER]
    # The planted key is where she put it and nowhere else.
    opened = keys_that_open([unlocked.admin], vault_id, target, unlocked.store.wraps(target))
    assert [reader for reader, key in opened if key == planted] == [access.ADMIN_READER]


def test_rotation_is_recorded_with_versions_and_dates(unlocked, vault_path, nok):
    later = NOW + dt.timedelta(days=3)
    unlocked.now = later
    rotation.rotate(unlocked)
    info = rotation.key_info(unlocked.vault, later + dt.timedelta(days=10))
    assert info.master_version == 2
    assert info.age_days == 10
    assert [(r.kind, r.target_version, r.state) for r in info.rotations] == [("master", 2, "done")]
    actions = [r[0] for r in _rows(vault_path, "SELECT action FROM audit")]
    assert "key.rotate.master" in actions
    status = json.loads(nok("status", "--json").stdout)
    assert status["master_key_version"] == 2
    assert isinstance(status["master_key_age_days"], int)
    assert status["master_key_created"].startswith(later.strftime("%Y-%m-%d"))


def test_deep_rotation_leaves_the_old_data_keys_useless(unlocked, vault_path):
    texts, subjects = _fill(unlocked, 5, 4)
    rows = list(unlocked.store.iter_consents(include_ended=False))
    old_keys = [unlocked.data_key(row) for row in rows]
    calls = []

    result = rotation.rotate(
        unlocked, deep=True, batch_notes=6, progress=lambda d, t: calls.append((d, t))
    )

    assert (result.kind, result.consents, result.notes) == ("deep", 5, 20)
    total = 25
    assert calls[0] == (0, total)
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) > 3
    assert {v for (v,) in _rows(vault_path, "SELECT key_version FROM consents")} == {2}
    assert {v for (v,) in _rows(vault_path, "SELECT key_version FROM notes")} == {2}
    assert _read_everything(vault_path) == (texts, subjects)
    _assert_no_old_key_opens_anything(vault_path, old_keys)
    assert unlocked.vault.status().rotation_pending is None
    assert unlocked.store.get_setting("data_keys_rotated")


def test_rotation_refuses_while_another_is_unfinished(unlocked, vault_path, nok):
    texts, subjects = _fill(unlocked, 4, 2)

    def stop_after_first_batch(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotation.rotate(unlocked, deep=True, batch_notes=1, progress=stop_after_first_batch)
    assert _read_everything(vault_path) == (texts, subjects)
    with pytest.raises(rotation.RotationPending):
        rotation.rotate(unlocked)

    status = json.loads(nok("status", "--json").stdout)
    assert status["rotation_pending"] == "deep"
    for args in (("key", "rotate", "--yes"), ("key", "rotate", "--deep", "--yes")):
        refused = nok(*args)
        assert refused.exit_code == 9
        lines = refused.stderr.splitlines()
        assert lines[0].startswith("nok: error: a deep key rotation started")
        assert lines[1] == "nok: hint: finish it first with 'nok key rotate --resume'"
    assert json.loads(nok("status", "--json").stdout)["master_key_version"] == 2

    resumed = nok("key", "rotate", "--resume", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"] is True
    assert json.loads(nok("status", "--json").stdout)["rotation_pending"] is None
    assert {v for (v,) in _rows(vault_path, "SELECT key_version FROM notes")} == {2}
    assert _read_everything(vault_path) == (texts, subjects)
    again = nok("key", "rotate", "--resume")
    assert again.exit_code == 9
    assert again.stderr.startswith("nok: error: there is no unfinished key rotation")


def test_rotate_in_a_script_needs_yes(cli_vault):
    result = cli_vault("key", "rotate")
    assert result.exit_code == 2
    assert json.loads(cli_vault("status", "--json").stdout)["master_key_version"] == 1


def test_a_process_unlocked_before_rotation_cannot_write_with_the_old_key(unlocked, vault_path):
    _fill(unlocked, 1, 1)
    other = _open(vault_path)
    try:
        rotation.rotate(unlocked)
        with pytest.raises(Conflict, match="changed by another process"):
            consents.add(other, consents.ConsentInput(subject="x", purpose="p", categories=("c",)))
    finally:
        other.close()
    assert len(_rows(vault_path, "SELECT id FROM consents")) == 1


def test_a_stale_unlock_reading_after_a_rotation_is_told_to_rerun_not_tampering(
    unlocked, vault_path
):
    texts, _ = _fill(unlocked, 1, 2)
    other = _open(vault_path)
    try:
        rotation.rotate(unlocked)
        cid = next(iter(texts.values())).split(" of ")[1]
        with pytest.raises(KeysRotated):
            notes.add(other, cid, "written in an editor during the rotation")
        with pytest.raises(KeysRotated):
            list(notes.list_notes(other))
    finally:
        other.close()
    assert len(_rows(vault_path, "SELECT id FROM notes")) == 2


def test_a_note_written_while_an_admin_rotates_is_saved_after_a_second_unlock(
    unlocked, vault_path, nok, monkeypatch
):
    from commands import note as note_command

    texts, _ = _fill(unlocked, 1, 1)
    cid = next(iter(texts.values())).split(" of ")[1]

    def compose_while_rotating(text):
        rotation.rotate(unlocked)
        return "ten minutes of careful writing"

    monkeypatch.setattr(note_command, "_read_text", compose_while_rotating)
    result = nok("note", "add", cid, "--json")
    assert result.exit_code == 0, result.stderr
    assert "unlock again" in result.stderr
    added = json.loads(result.stdout)["id"]
    got, _ = _read_everything(vault_path)
    assert got[added] == "ten minutes of careful writing"
    assert unlocked.vault.master_version() == 2


def test_a_data_key_cached_before_a_deep_rotation_is_not_used_to_write(unlocked, vault_path):
    texts, _ = _fill(unlocked, 3, 2)
    reader = []

    def open_reader_once(done, total):
        # After the master-key step, before any data key changes: this process caches
        # every old data key, then writes after the rotation finished.
        if not reader:
            reader.append(_open(vault_path))
            list(notes.list_notes(reader[0]))

    rotation.rotate(unlocked, deep=True, batch_notes=2, progress=open_reader_once)
    cid = next(iter(texts.values())).split(" of ")[1]
    try:
        added = notes.add(reader[0], cid, "written after the rotation")
    finally:
        reader[0].close()
    got, _ = _read_everything(vault_path)
    assert got[added.id] == "written after the rotation"


def test_deep_rotation_refuses_a_table_it_cannot_re_encrypt(unlocked, vault_path):
    _fill(unlocked, 1, 1)
    with contextlib.closing(sqlite3.connect(vault_path)) as conn:
        conn.execute("CREATE TABLE extra (id TEXT, key_version INTEGER, blob BLOB)")
        conn.commit()
    with pytest.raises(NokError, match="table extra"):
        rotation.rotate(unlocked, deep=True)
    assert unlocked.vault.master_version() == 1


# -- kill -9 ------------------------------------------------------------------------------

CHILD = r"""
import datetime as dt, os, signal, sys
from pathlib import Path
os.umask(0o077)
from vault import Vault, dates, rotation
path, kill_at = Path(sys.argv[1]), int(sys.argv[2])
calls = 0
def progress(done, total):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
v = Vault.open(path)
u = v.unlock(os.environ["NOK_USER"], os.environ["NOK_PASSPHRASE"].encode(),
             now=dates.utcnow())
rotation.rotate(u, deep=True, progress=progress, batch_notes=4)
"""


@pytest.fixture
def filled(unlocked, vault_path, tmp_path):
    texts, subjects = _fill(unlocked, 8, 3)
    old_keys = [unlocked.data_key(r) for r in unlocked.store.iter_consents(include_ended=False)]
    unlocked.close()
    env = {
        "NOK_VAULT": str(vault_path),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "XDG_RUNTIME_DIR": str(tmp_path),
        **CLOCK_ENV,
    }
    return texts, subjects, old_keys, env


def _rerun_and_check(vault_path, env, texts, subjects, old_keys):
    # Right after the kill, before anything else: the vault opens and every note reads.
    assert _read_everything(vault_path) == (texts, subjects)
    status = json.loads(run_nok("status", "--json", env=env).stdout)
    if status["rotation_pending"]:
        rerun = run_nok("key", "rotate", "--resume", env=env)
    else:
        rerun = run_nok("key", "rotate", "--deep", "--yes", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert _read_everything(vault_path) == (texts, subjects)
    assert json.loads(run_nok("status", "--json", env=env).stdout)["rotation_pending"] is None
    versions = _rows(
        vault_path, "SELECT key_version FROM consents UNION SELECT key_version FROM notes"
    )
    assert versions == [(2,)]
    _assert_no_old_key_opens_anything(vault_path, old_keys)
    assert _rows(vault_path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        1,  # right after the master-key transaction committed
        3,  # after two batches
        9,  # after the last batch, before the rotation is marked finished
    ],
)
def test_kill_9_after_a_batch_then_rerun_completes(filled, vault_path, kill_at):
    texts, subjects, old_keys, env = filled
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(vault_path), str(kill_at)],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads(run_nok("status", "--json", env=env).stdout)["rotation_pending"] == "deep"
    _rerun_and_check(vault_path, env, texts, subjects, old_keys)


def _done_so_far(vault_path):
    uri = f"file:{vault_path}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.05)) as conn:
            row = conn.execute("SELECT max(done) FROM rotation WHERE state = 'running'").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else row[0]


@pytest.mark.slow
@pytest.mark.parametrize("records_done", [0, 8, 20])
def test_kill_9_of_the_cli_mid_rotation_then_rerun_completes(filled, vault_path, records_done):
    """SIGKILL the real command at whatever it is doing once the cursor passed a point."""
    texts, subjects, old_keys, env = filled
    proc = subprocess.Popen(
        [sys.executable, "-m", "nokcli", "key", "rotate", "--deep", "--yes", "--batch-notes", "1"],
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        done = _done_so_far(vault_path)
        if done is not None and done >= records_done:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the rotation finished before the kill"
    _rerun_and_check(vault_path, env, texts, subjects, old_keys)


def test_a_deep_rotation_does_not_pass_by_a_consent_whose_public_key_was_blanked(
    unlocked, vault_path
):
    """A file writer blanks an active consent's public key, hoping the deep rotation takes
    it for erased and leaves it under the data key a leaver kept: refused before it starts,
    and when blanked while a deep rotation is unfinished, refused when it resumes."""
    _, subjects = _fill(unlocked, 3, 1)
    first, second, _ = sorted(subjects)

    def blank(consent_id):
        with contextlib.closing(sqlite3.connect(vault_path, isolation_level=None)) as conn:
            conn.execute("UPDATE consents SET consent_box = NULL WHERE id = ?", [consent_id])

    def stop_after_first_batch(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotation.rotate(unlocked, deep=True, batch_notes=1, progress=stop_after_first_batch)
    assert _key_version(vault_path, first) == 2
    blank(second)
    with pytest.raises(IntegrityError, match=rf"data key of {second} \(missing\)"):
        rotation.resume(unlocked)
    assert unlocked.vault.status().rotation_pending == "deep"
    assert _key_version(vault_path, second) == 1


# -- a new recovery key ---------------------------------------------------------------------


def test_a_new_recovery_key_is_not_made_where_it_could_not_be_delivered(cli_vault, tmp_path):
    """Renewing revokes the old recovery key: a new one written nowhere would leave the
    center's safe holding a key that opens nothing, and no key that does."""

    def epoch():
        return json.loads(cli_vault("status", "--json").stdout)["key_epoch"]

    before = epoch()
    taken = tmp_path / "taken.txt"
    taken.write_text("someone else's file\n")
    result = cli_vault("key", "recovery", "--recovery-file", str(taken))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"nok: error: {taken} exists or its directory does not")
    assert taken.read_text() == "someone else's file\n"
    no_terminal = cli_vault("key", "recovery")
    assert no_terminal.exit_code == 2
    assert "shown only at a terminal" in no_terminal.stderr
    assert epoch() == before
    fresh = tmp_path / "new-recovery.txt"
    assert cli_vault("key", "recovery", "--recovery-file", str(fresh)).exit_code == 0
    assert fresh.read_text().startswith("NOKR-")
    assert epoch() > before
