"""``nok export``: the person's own copy holds all of theirs and nothing of anyone else."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from vault import audit, consents, erasure, export, notes
from vault.session import Unlocked


@pytest.fixture
def two(unlocked: Unlocked) -> tuple[str, str]:
    kari = consents.add(
        unlocked,
        consents.ConsentInput(
            "Kari-ALIAS", "follow-up KARI-PURPOSE", ("conversation-notes", "safety")
        ),
    ).id
    ola = consents.add(
        unlocked, consents.ConsentInput("Ola-ALIAS", "OLA-PURPOSE", ("conversation-notes",))
    ).id
    for i in range(3):
        notes.add(unlocked, kari, f"KARI-NOTE-{i}\nsecond line with *stars* and [a](link)")
        notes.add(unlocked, ola, f"OLA-NOTE-{i}")
    return kari, ola


def test_export_json_holds_every_note_and_nothing_else(two, nok, unlocked):
    kari, ola = two
    result = nok("export", kari, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "nok-export"
    assert doc["consent"]["id"] == kari
    assert doc["consent"]["subject"] == "Kari-ALIAS"
    assert doc["consent"]["categories"] == ["conversation-notes", "safety"]
    texts = sorted(n["text"] for n in doc["notes"])
    stored = sorted(n.text for n in notes.list_notes(unlocked, consent_id=kari))
    assert texts == stored
    assert len(texts) == 3
    assert {e["consent_id"] for e in doc["audit"]} == {kari}
    assert {"consent.add", "note.add", "export.consent"} <= {e["action"] for e in doc["audit"]}
    for foreign in ("OLA", "Ola", ola):
        assert foreign not in result.stdout


def test_export_markdown_is_readable_and_complete(two, nok):
    kari, ola = two
    result = nok("export", kari)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"# Your data under consent {kari}")
    for i in range(3):
        assert f"KARI-NOTE-{i}" in text
    assert "Kari-ALIAS" in text
    assert "KARI-PURPOSE" in text
    # The note's own markup stays inert: no link, no emphasis made by the person's words.
    assert "[a](link)" not in text
    assert "*stars*" not in text
    assert "made a copy of your data for you." in text
    assert "OLA" not in text
    assert ola not in text


def test_export_to_a_file_is_private_and_never_clobbers(two, nok, tmp_path: Path):
    kari, _ = two
    target = tmp_path / "out" / "kari.json"
    target.parent.mkdir()
    result = nok("export", kari, "--format", "json", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    first = target.read_bytes()
    assert json.loads(first)["consent"]["id"] == kari

    again = nok("export", kari, "--output", str(target))
    assert again.exit_code == 9
    assert again.stderr.startswith("nok: error:")
    assert target.read_bytes() == first

    target.chmod(0o644)
    forced = nok("export", kari, "--output", str(target), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert target.read_text().startswith("# Your data")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["kari.json"]


def test_export_is_recorded(two, unlocked):
    kari, _ = two
    data = export.export_consent(unlocked, kari)
    assert data.entries[-1].action == "export.consent"
    assert data.entries[-1].actor == unlocked.name
    last = list(audit.list_entries(unlocked.store, consent_id=kari, chain=unlocked.chain))[-1]
    assert last.action == "export.consent"


def test_export_of_a_withdrawn_consent_holds_only_the_tombstone(two, nok, unlocked):
    kari, _ = two
    erasure.withdraw(unlocked, kari)
    doc = json.loads(nok("export", kari, "--format", "json").stdout)
    assert doc["consent"]["status"] == "withdrawn"
    assert doc["consent"]["subject"] is None
    assert doc["notes"] == []
    assert "consent.withdraw" in {e["action"] for e in doc["audit"]}
    text = nok("export", kari).stdout
    assert "erased" in text
    assert "KARI" not in text


def test_export_refusals(two, nok, tmp_path: Path, unlocked):
    before = unlocked.store.count_audit()
    target = tmp_path / "none.md"
    for args, code in (
        (("export", "C-0000-0000", "--output", str(target)), 6),
        (("export", "not-an-id"), 2),
        (("export", two[0], "--format", "pdf"), 2),
    ):
        result = nok(*args)
        assert result.exit_code == code, result.stderr
        assert result.stdout == ""
    assert not target.exists()
    assert unlocked.store.count_audit() == before
