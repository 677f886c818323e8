"""The first whole path a care worker takes: init, consent, notes, read back."""

from __future__ import annotations

import json


def test_consent_and_notes_round_trip(cli_vault, vault_path):
    nok = cli_vault
    added = nok(
        "consent",
        "add",
        "--subject",
        "Kari",
        "--purpose",
        "follow-up",
        "--category",
        "conversation-notes",
        "--json",
    )
    assert added.exit_code == 0, added.stderr
    consent_id = json.loads(added.stdout)["id"]
    note = nok("note", "add", consent_id, "--text", "MARKER-one", "--json")
    assert note.exit_code == 0, note.stderr
    piped = nok("note", "add", consent_id, input="MARKER-two from stdin\n")
    assert piped.exit_code == 0, piped.stderr
    listed = json.loads(nok("note", "list", "--json").stdout)
    assert sorted(n["text"] for n in listed) == ["MARKER-one", "MARKER-two from stdin"]
    for f in vault_path.parent.iterdir():
        assert b"MARKER" not in f.read_bytes()
