"""nok upgrade: a format-2 vault a center already has becomes format 3, with a backup first,
never silently; an older format-2 copy put back after the upgrade is never upgraded again.

The format-2 vault is tests/fixtures/format2/ (made by the last format-2 nok: see
tests/fixtures/make_format2.py).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ADMIN, PASSPHRASE, run_nok
from vault import Vault, consents, endings, erasure, notes, pins, upgrade
from vault.errors import ExitCode, UnsupportedVersion

FIXTURE = Path(__file__).parent / "fixtures" / "format2"
KEPT = "C-SETA-P1E9"
GONE = "C-44A5-DT04"
WHEN = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def old_vault(tmp_path: Path) -> Path:
    directory = tmp_path / "vaultdir"
    directory.mkdir(mode=0o700)
    for item in FIXTURE.iterdir():
        shutil.copy(item, directory / item.name)
        (directory / item.name).chmod(0o600)
    return directory / "vault.db"


@pytest.fixture
def pin_store(tmp_path: Path) -> pins.PinStore:
    return pins.PinStore(tmp_path / "pins")


def _upgrade(path: Path, pin_store: pins.PinStore) -> upgrade.Upgraded:
    return upgrade.upgrade(
        path, admin=ADMIN, passphrase=PASSPHRASE.encode(), now=WHEN, pin_store=pin_store
    )


def test_an_upgrade_keeps_every_word_and_every_erasure(
    old_vault: Path, pin_store: pins.PinStore
) -> None:
    assert upgrade.needs_upgrade(old_vault)
    done = _upgrade(old_vault, pin_store)
    assert done.backup.exists()
    assert upgrade.needs_upgrade(done.backup)
    assert (done.consents, done.tombstones) == (1, 1)
    u = Vault.open(old_vault).unlock(ADMIN, PASSPHRASE.encode(), now=WHEN, pin_store=pin_store)
    assert consents.show(u, KEPT).subject == "F2-KEPT-ALIAS"
    assert [n.text for n in notes.list_notes(u, consent_id=KEPT)] == ["F2-KEPT-NOTE"]
    assert consents.show(u, GONE).status == "withdrawn"
    u.close()
    log = endings.read_log(endings.log_path(old_vault), chain=Vault.open(old_vault).chain())
    assert [r.consent_id for r in log.records] == [GONE]
    assert b"F2-GONE" not in old_vault.read_bytes()


def test_an_upgraded_vault_is_not_upgraded_again(old_vault: Path, pin_store: pins.PinStore) -> None:
    _upgrade(old_vault, pin_store)
    with pytest.raises(UnsupportedVersion):
        _upgrade(old_vault, pin_store)


@pytest.mark.parametrize("clue", ["erasure log", "pins"])
def test_a_format2_copy_put_back_after_the_upgrade_is_refused(
    old_vault: Path, pin_store: pins.PinStore, tmp_path: Path, clue: str
) -> None:
    """A file writer puts the format-2 copy (the upgrade's own backup) back in place of
    the upgraded vault, after a withdrawal in format 3. Upgrading it again would write
    the erasure log from the old tombstones only, and the withdrawal would be lost."""
    done = _upgrade(old_vault, pin_store)
    u = Vault.open(old_vault).unlock(ADMIN, PASSPHRASE.encode(), now=WHEN, pin_store=pin_store)
    erasure.withdraw(u, KEPT)
    u.close()
    log = endings.log_path(old_vault)
    before = log.read_bytes()
    for suffix in ("-wal", "-shm"):
        old_vault.with_name(old_vault.name + suffix).unlink(missing_ok=True)
    shutil.copy(done.backup, old_vault)
    others = pin_store
    if clue == "pins":
        # She removes the log's format-3 lines too; the admin's pins still know the vault.
        log.write_bytes(b"".join(x for x in before.splitlines(keepends=True) if b'"v":3' not in x))
    else:
        others = pins.PinStore(tmp_path / "another-computer")
    with pytest.raises(upgrade.AlreadyUpgraded) as caught:
        _upgrade(old_vault, others)
    assert caught.value.exit_code == ExitCode.INTEGRITY
    if clue == "erasure log":
        assert log.read_bytes() == before
    assert not list(old_vault.parent.glob("*.erasures-format2.*"))


def test_the_command_says_what_it_did_and_asks_first(
    old_vault: Path, nok_env: dict[str, str]
) -> None:
    env = {**nok_env, "NOK_VAULT": str(old_vault)}
    recovery = old_vault.parent.parent / "recovery.txt"
    unasked = run_nok("upgrade", "--recovery-file", str(recovery), env=env)
    assert unasked.returncode == ExitCode.USAGE, unasked.stderr
    assert "--yes" in unasked.stderr
    recovery.write_text("an older file")
    taken = run_nok("upgrade", "--yes", "--recovery-file", str(recovery), env=env)
    assert taken.returncode == ExitCode.USAGE, taken.stderr
    assert upgrade.needs_upgrade(old_vault)
    recovery.unlink()
    result = run_nok("upgrade", "--yes", "--json", "--recovery-file", str(recovery), env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert Path(doc["backup"]).exists()
    assert (doc["consents"], doc["tombstones"], doc["staff"]) == (1, 1, ["anne", "kari"])
    assert recovery.stat().st_mode & 0o777 == 0o600
    assert not upgrade.needs_upgrade(old_vault)
    again = run_nok("upgrade", "--yes", env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
