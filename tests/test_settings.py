"""Vault-wide settings: shown without a key, changed by admins only, retention recomputed."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import ADMIN, NOW, PASSPHRASE, TODAY, days_ago, run_nok

from vault import Vault, consents, jobs, notes, settings, staff
from vault.errors import BadInput, NotAllowed
from vault.session import Unlocked

OLD = days_ago(540)


def add(u: Unlocked, given: str, retain_days: int | None = None) -> str:
    data = consents.ConsentInput(
        subject="S", purpose="p", categories=("c",), given=given, retain_days=retain_days
    )
    return consents.add(u, data).id


def until(u: Unlocked, consent_id: str) -> str:
    row = u.store.get_consent(consent_id)
    assert row is not None
    return row.retain_until


def test_show_needs_no_passphrase(unlocked, vault_path):
    unlocked.close()
    result = run_nok("settings", "show", "--json", env={"NOK_VAULT": str(vault_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "retention-days": 730,
        "note-guideline": 1500,
        "note-limit": 20000,
        "center-name": None,
        "timezone": "Europe/Oslo",
        "access": "need-to-know",
        "staff-count": None,
        "staff-fte": None,
    }


def test_admin_sets_and_it_is_recorded(cli_vault):
    nok = cli_vault
    out = nok("settings", "set", "note-guideline", "800")
    assert out.exit_code == 0, out.stderr
    assert json.loads(nok("settings", "show", "--json").stdout)["note-guideline"] == 800
    audit = nok("audit", "list", "--json")
    assert audit.exit_code == 0, audit.stderr
    assert "settings.set" in audit.stdout


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("retention-days", "0"),
        ("retention-days", "36501"),
        ("retention-days", "two years"),
        ("note-limit", "50"),
        ("note-guideline", "25000"),  # above the note limit of 20000
        ("colour", "blue"),
    ],
)
def test_bad_values_change_nothing(cli_vault, key, value):
    nok = cli_vault
    before = nok("settings", "show", "--json").stdout
    out = nok("settings", "set", key, value, "--yes")
    assert out.exit_code == 2
    assert out.stderr.startswith("nok: error: ")
    assert out.stderr.count("\n") == 1
    assert nok("settings", "show", "--json").stdout == before


def test_staff_cannot_change_settings(unlocked):
    staff.add(unlocked, "bob", passphrase=b"bob's long passphrase", kdf="interactive")
    with Vault.open(unlocked.vault.path) as v:
        bob = v.unlock("bob", b"bob's long passphrase", now=NOW)
        with pytest.raises(NotAllowed) as info:
            settings.change_setting(bob, "retention-days", "30")
        assert info.value.exit_code == 11
    assert unlocked.vault.settings().retention_days == 730


def test_new_retention_moves_the_deadlines_that_follow_it(unlocked):
    follows = add(unlocked, days_ago(22))
    with_note = add(unlocked, days_ago(53))
    notes.add(unlocked, with_note, "n", date=days_ago(13))
    own = add(unlocked, days_ago(22), retain_days=100)
    own_before = until(unlocked, own)

    change = settings.change_setting(unlocked, "retention-days", "400")

    assert (change.old, change.new, change.recomputed, change.now_due) == (730, 400, 2, 0)
    assert until(unlocked, follows) == (TODAY - dt.timedelta(22) + dt.timedelta(400)).isoformat()
    assert until(unlocked, with_note) == (TODAY - dt.timedelta(13) + dt.timedelta(400)).isoformat()
    assert until(unlocked, own) == own_before
    later = add(unlocked, days_ago(3))
    assert until(unlocked, later) == (TODAY - dt.timedelta(3) + dt.timedelta(400)).isoformat()
    actions = [(a.action, a.object_id) for a in unlocked.store.iter_audit()]
    assert ("settings.set", "retention_days") in actions


def test_shorter_retention_asks_and_then_the_purge_erases(unlocked, vault_path, tmp_path):
    old = add(unlocked, OLD)
    recent = add(unlocked, days_ago(3))
    credential = tmp_path / "purge.credential"
    jobs.write(credential, jobs.issue(unlocked))
    unlocked.close()
    env = {"NOK_VAULT": str(vault_path), "NOK_USER": ADMIN, "NOK_PASSPHRASE": PASSPHRASE}

    refused = run_nok("settings", "set", "retention-days", "30", env=env, input="")
    assert refused.returncode == 2
    assert "puts 1 consent past its deadline" in refused.stderr
    with Vault.open(vault_path) as v:
        assert v.settings().retention_days == 730
        assert v.store.due_consents(TODAY.isoformat()) == []

    done = run_nok("settings", "set", "retention-days", "30", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert "1 consent is now past its deadline" in done.stderr
    # The nightly job, with its credential and no passphrase.
    job = {"NOK_VAULT": str(vault_path), "NOK_JOB_CREDENTIAL": str(credential)}
    purge = run_nok("purge", "--json", env=job, input="")
    assert json.loads(purge.stdout)["purged"] == [old]
    with Vault.open(vault_path) as v:
        assert v.store.get_consent(recent).status == "active"


def test_note_limit_applies_to_new_notes(unlocked):
    consent_id = add(unlocked, days_ago(22))
    settings.change_setting(unlocked, "note-guideline", "400")
    settings.change_setting(unlocked, "note-limit", "500")
    with pytest.raises(BadInput, match="limit is 500"):
        notes.add(unlocked, consent_id, "x" * 501)
    notes.add(unlocked, consent_id, "x" * 500)
