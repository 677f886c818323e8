"""Bulk import: a whole file is checked first, bad lines are named, and a bad file imports
nothing at all; a good one lands encrypted with its retention counted from the last note."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ADMIN, PASSPHRASE, TODAY, run_nok
from vault import consents, importer
from vault.dates import add_days

KARI = {
    "subject": "Kari",
    "purpose": "follow-up after conversations",
    "categories": ["conversation-notes", "safety"],
    "given": "2024-03-01",
    "form_ref": "binder 2024/17",
    "notes": [
        {"date": "2024-03-04", "kind": "one-to-one", "text": "MARKER-first talk"},
        {"date": "2024-06-10", "kind": "phone", "text": "MARKER-Søvn og ÆRE"},
    ],
}
OLA = {
    "subject": "Ola",
    "purpose": "group follow-up",
    "categories": ["conversation-notes"],
    "under_16": True,
    "guardian": "mother",
    "given": "2025-01-15",
    "retain_days": 400,
    "notes": [{"date": "2025-02-01", "kind": "group", "text": "MARKER-group evening"}],
}


def jsonl(*records: object) -> str:
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records
    )


def write(tmp_path: Path, text: str, name: str = "import.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(vault_path: Path) -> tuple[int, int, int]:
    """(consents, notes, audit entries): what an import would have to change."""
    with sqlite3.connect(f"file:{vault_path}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM notes),"
            " (SELECT count(*) FROM audit)"
        ).fetchone()


def test_import_writes_consents_and_notes(cli_vault, vault_path, tmp_path):
    path = write(tmp_path, jsonl(KARI, OLA))
    result = cli_vault("import", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"consents": 2, "notes": 3, "dry_run": False}

    listed = json.loads(cli_vault("consent", "list", "--json").stdout)
    by_subject = {c["subject"]: c for c in listed}
    assert set(by_subject) == {"Kari", "Ola"}
    assert by_subject["Ola"]["guardian"] == "mother"
    assert by_subject["Ola"]["under_16"] is True
    assert by_subject["Kari"]["categories"] == ["conversation-notes", "safety"]
    assert by_subject["Kari"]["recorded_by"] == ADMIN
    # Retention runs from the last note, with the consent's own days or the vault default.
    assert by_subject["Ola"]["retain_until"] == add_days("2025-02-01", 400)
    assert by_subject["Kari"]["retain_until"] == add_days("2024-06-10", 730)

    kari_notes = json.loads(
        cli_vault("note", "list", "--consent", by_subject["Kari"]["id"], "--json").stdout
    )
    assert [(n["date"], n["kind"], n["text"]) for n in kari_notes] == [
        ("2024-03-04", "one-to-one", "MARKER-first talk"),
        ("2024-06-10", "phone", "MARKER-Søvn og ÆRE"),
    ]
    for f in vault_path.parent.iterdir():
        assert b"MARKER" not in f.read_bytes()


def test_import_is_audited_with_ids_only(cli_vault, vault_path, tmp_path):
    path = write(tmp_path, jsonl(KARI, OLA))
    assert cli_vault("import", str(path)).exit_code == 0
    ids = {c["id"] for c in json.loads(cli_vault("consent", "list", "--json").stdout)}
    with sqlite3.connect(f"file:{vault_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT actor, consent_id FROM audit WHERE action = 'consent.import'"
        ).fetchall()
    assert sorted(rows) == sorted((ADMIN, i) for i in ids)


def test_given_defaults_to_today(cli_vault, tmp_path):
    record = {k: v for k, v in OLA.items() if k not in ("given", "notes")}
    path = write(tmp_path, jsonl(record))
    assert cli_vault("import", str(path)).exit_code == 0, "import failed"
    (consent,) = json.loads(cli_vault("consent", "list", "--json").stdout)
    assert consent["given"] == TODAY.isoformat()


BAD_LINES = [
    pytest.param('{"subject": "Kari", "purpose": ', "not valid JSON", id="broken-json"),
    pytest.param(
        {k: v for k, v in KARI.items() if k != "purpose"}, "'purpose' is missing", id="missing"
    ),
    pytest.param(
        {**OLA, "guardian": None}, "must name the guardian", id="under-16-without-guardian"
    ),
    pytest.param({**KARI, "given": "2024-02-30"}, "is not a date", id="wrong-date"),
    pytest.param(
        {**KARI, "notes": [{"date": "2024-03-04", "kind": "visit", "text": "x"}]},
        "unknown note kind",
        id="unknown-kind",
    ),
    pytest.param(
        {**KARI, "notes": [{"date": "2024-01-04", "text": "x"}]},
        "before the consent was given",
        id="note-before-consent",
    ),
    pytest.param({**KARI, "given": "2999-01-01"}, "in the future", id="future-consent"),
    pytest.param({**KARI, "under_16": "no"}, "'under_16' must be true or false", id="type"),
    pytest.param({**KARI, "guardain": "x"}, "unknown field 'guardain'", id="unknown-field"),
    pytest.param({**KARI, "categories": []}, "at least one data category", id="no-category"),
    pytest.param(
        '{"subject": "a", "subject": "b", "purpose": "p", "categories": ["c"]}',
        "'subject' appears twice",
        id="duplicate-key",
    ),
    pytest.param(
        {**KARI, "notes": [{"date": "2024-03-04", "text": "   "}]}, "empty", id="empty-note"
    ),
]


@pytest.mark.parametrize(("bad", "expected"), BAD_LINES)
def test_a_bad_line_imports_nothing(cli_vault, vault_path, tmp_path, bad, expected):
    path = write(tmp_path, jsonl(KARI, bad, OLA))
    before = snapshot(vault_path)
    result = cli_vault("import", str(path), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    (first, *_) = result.stderr.splitlines()
    assert first.startswith(("line 2: ", "line 2, note 1: "))
    assert expected in first
    assert "nok: error: 1 line(s) of the import are not valid; nothing was imported" in (
        result.stderr
    )
    assert snapshot(vault_path) == before
    assert json.loads(cli_vault("consent", "list", "--json").stdout) == []


def test_every_bad_line_is_reported_with_its_number(cli_vault, vault_path, tmp_path):
    bad_note = {**OLA, "notes": [OLA["notes"][0], {"date": "2025-02-30", "text": "x"}]}
    path = write(tmp_path, jsonl(KARI, "not json", OLA, "", bad_note))
    before = snapshot(vault_path)
    result = cli_vault("import", str(path))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("line 2: not valid JSON")
    assert lines[1].startswith("line 5, note 2: ")
    assert "2 line(s) of the import are not valid" in result.stderr
    assert snapshot(vault_path) == before


def test_errors_do_not_echo_note_text(cli_vault, tmp_path):
    secret = "MARKER-private words"
    path = write(tmp_path, jsonl({**KARI, "notes": [{"date": "2024-01-01", "text": secret}]}))
    result = cli_vault("import", str(path))
    assert result.exit_code == 2
    assert "MARKER" not in result.stderr


def test_dry_run_imports_nothing(cli_vault, vault_path, tmp_path):
    path = write(tmp_path, jsonl(KARI, OLA))
    before = snapshot(vault_path)
    result = cli_vault("import", str(path), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"consents": 2, "notes": 3, "dry_run": True}
    assert snapshot(vault_path) == before


def test_missing_file_is_a_usage_error(cli_vault, tmp_path):
    result = cli_vault("import", str(tmp_path / "nowhere.jsonl"))
    assert result.exit_code == 2
    assert "cannot read the import file" in result.stderr


@pytest.mark.slow
def test_stdin_pipe_imports_and_rolls_back(cli_vault, vault_path):
    env = {"NOK_VAULT": str(vault_path), "NOK_USER": ADMIN, "NOK_PASSPHRASE": PASSPHRASE}
    before = snapshot(vault_path)
    bad = run_nok("import", "-", "--json", env=env, input=jsonl(KARI, OLA, {**KARI, "x": 1}))
    assert bad.returncode == 2
    assert "line 3: unknown field 'x'" in bad.stderr
    assert snapshot(vault_path) == before

    good = run_nok("import", "-", "--json", env=env, input=jsonl(KARI, OLA))
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"consents": 2, "notes": 3, "dry_run": False}
    assert snapshot(vault_path)[:2] == (2, 3)


def test_library_collects_problems_and_reports_progress(unlocked):
    lines = [jsonl(KARI).encode(), b"[]\n", jsonl(OLA).encode(), b"{}\n"]
    with pytest.raises(importer.ImportRejected) as caught:
        importer.check(unlocked, lines)
    assert [(p.line, p.note) for p in caught.value.problems] == [(2, None), (4, None)]
    with pytest.raises(importer.ImportRejected):
        importer.write(unlocked, lines)
    assert list(consents.list_all(unlocked)) == []

    seen: list[importer.Progress] = []
    summary = importer.write(unlocked, [lines[0], lines[2]] * 3, progress=seen.append)
    assert (summary.consents, summary.notes) == (6, 9)
    assert seen[-1] == importer.Progress(consents=6, notes=9)
    assert len(list(consents.list_all(unlocked))) == 6


def test_batches_split_large_imports(unlocked, monkeypatch):
    monkeypatch.setattr(importer, "BATCH_NOTES", 4)
    seen: list[importer.Progress] = []
    importer.write(unlocked, [jsonl(KARI).encode()] * 5, progress=seen.append)
    assert [p.notes for p in seen] == [4, 8, 10]
    assert unlocked.store.count_notes() == 10


def test_past_retention_is_warned(cli_vault, tmp_path):
    old = {**KARI, "given": "2015-01-01", "notes": [], "retain_days": 30}
    result = cli_vault("import", str(write(tmp_path, jsonl(old))))
    assert result.exit_code == 0, result.stderr
    assert "1 consent is past its retention deadline" in result.stderr
