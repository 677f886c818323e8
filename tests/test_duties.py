"""The consent records that the person was told of the duty of confidentiality and its
exceptions (the duty to inform child welfare, the duty to avert serious crimes), and when:
asked on a terminal, ``--duties-told`` in scripts, inside the consent's sealed record."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import ADMIN, TODAY, days_ago
from test_crypto import _spec_bind, _spec_record, _spec_seal
from test_erasure import on_terminal

from vault import consents, export, keyring, verify
from vault.errors import BadInput, IntegrityError
from vault.session import Unlocked

ADD = ["consent", "add", "--subject", "S", "--purpose", "P", "--category", "safety"]


def test_the_flag_records_the_day_the_form_was_signed(cli_vault):
    nok = cli_vault
    added = nok(*ADD, "--duties-told", "--given", days_ago(3), "--json")
    assert added.exit_code == 0, added.stderr
    doc = json.loads(added.stdout)
    assert doc["duties_told"] == days_ago(3)
    assert "tell them" not in added.stderr
    shown = nok("consent", "show", doc["id"], "--json")
    assert json.loads(shown.stdout)["duties_told"] == days_ago(3)
    text = nok("consent", "show", doc["id"])
    assert "told of the duties" in text.stdout
    assert days_ago(3) in text.stdout


def test_a_script_without_the_flag_records_null_and_is_warned(cli_vault):
    nok = cli_vault
    added = nok(*ADD, "--json")
    assert added.exit_code == 0, added.stderr
    doc = json.loads(added.stdout)
    assert doc["duties_told"] is None
    assert "confidentiality" in added.stderr
    assert json.loads(nok("consent", "show", doc["id"], "--json").stdout)["duties_told"] is None


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "recorded"), [("y", TODAY.isoformat()), ("n", None)])
def test_a_terminal_asks(cli_vault, nok_env, answer, recorded):
    code, err = on_terminal([*ADD, "--json"], answer, nok_env)
    assert code == 0, err
    assert "duty of confidentiality" in err
    listed = json.loads(cli_vault("consent", "list", "--json").stdout)
    assert [c["duties_told"] for c in listed] == [recorded]


def test_a_future_date_is_refused(unlocked: Unlocked):
    data = consents.ConsentInput("S", "P", ("c",), duties_told=days_ago(-1))
    with pytest.raises(BadInput):
        consents.add(unlocked, data)


def test_export_tells_the_person(unlocked: Unlocked):
    c = consents.add(unlocked, consents.ConsentInput("S", "P", ("c",), duties_told=days_ago(0)))
    text = export.to_markdown(export.export_consent(unlocked, c.id))
    assert f"On {days_ago(0)} you were told about the staff's duty of confidentiality" in text
    assert export.to_json(export.export_consent(unlocked, c.id))["consent"]["duties_told"] == (
        days_ago(0)
    )


def test_verify_accepts_records_with_and_without_it(unlocked: Unlocked):
    consents.add(unlocked, consents.ConsentInput("S", "P", ("c",), duties_told=days_ago(0)))
    consents.add(unlocked, consents.ConsentInput("S", "P", ("c",)))
    report = verify.verify(unlocked)
    assert report.ok, [p.message for p in report.problems]


# -- the sealed record ---------------------------------------------------------------------


def _record(unlocked: Unlocked, consent_id: str) -> bytes:
    row = unlocked.store.get_consent(consent_id)
    assert row is not None
    return bytes(row.record)


def test_a_file_writer_cannot_mark_a_consent_as_told(unlocked: Unlocked, vault_path: Path):
    """Copy the record of a consent that says 'told' over one that does not."""
    told = consents.add(unlocked, consents.ConsentInput("S", "P", ("c",), duties_told=days_ago(0)))
    untold = consents.add(unlocked, consents.ConsentInput("S", "P", ("c",)))
    db = sqlite3.connect(vault_path)
    with db:
        db.execute(
            "UPDATE consents SET record = ? WHERE id = ?", [_record(unlocked, told.id), untold.id]
        )
    db.close()
    unlocked.forget_data_key(untold.id)
    with pytest.raises(IntegrityError):
        consents.show(unlocked, untold.id)


def test_a_record_written_before_the_field_reads_as_not_recorded(unlocked: Unlocked):
    """A format-2 record has seven fields; the eighth is optional and trailing."""
    c = consents.add(unlocked, consents.ConsentInput("S", "P", ("c",)))
    row = unlocked.store.get_consent(c.id)
    assert row is not None
    key = unlocked.data_key(row)
    fields = ["S", "P", '["c"]', "false", "", "", ADMIN]
    nonce = bytes(24)
    ad = _spec_bind("consent", c.id, row.key_version)
    seven = _spec_seal(key, nonce, _spec_record(fields), ad)
    eight = _spec_seal(key, nonce, _spec_record([*fields, "2026-01-02"]), ad)
    assert consents.open_record(key, dataclasses.replace(row, record=seven)).duties_told is None
    assert consents.open_record(key, dataclasses.replace(row, record=eight)).duties_told == (
        "2026-01-02"
    )
    # Without the field, nok writes a record a format-2 reader (seven fields) still reads.
    plain_seven = keyring.open_record(key, row.record, ad, consents.RECORD_FIELDS, where="t")
    assert plain_seven == fields


def test_bytes_after_the_last_field_must_still_be_a_field(unlocked: Unlocked):
    c = consents.add(unlocked, consents.ConsentInput("S", "P", ("c",)))
    row = unlocked.store.get_consent(c.id)
    assert row is not None
    key = unlocked.data_key(row)
    fields = ["S", "P", '["c"]', "false", "", "", ADMIN, "2026-01-02"]
    plain = bytearray(_spec_record(fields))
    plain[-1] = 1  # a stray byte in the padding
    ad = _spec_bind("consent", c.id, row.key_version)
    bad = _spec_seal(key, bytes(24), bytes(plain), ad)
    with pytest.raises(IntegrityError):
        consents.open_record(key, dataclasses.replace(row, record=bad))
