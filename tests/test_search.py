"""Search in note bodies: case-insensitive (Norwegian letters too), filtered by consent and
date, audited without the search text, and blind to erased consents."""

from __future__ import annotations

import json
import sqlite3
import unicodedata

import pytest

from vault import consents, erasure, notes, search
from vault.consents import ConsentInput
from vault.errors import BadInput, NotFound


@pytest.fixture
def notes_vault(unlocked):
    """Two consents with a few notes each; returns (unlocked, kari_id, ola_id)."""
    kari = consents.add(
        unlocked, ConsentInput("Kari", "follow-up", ("conversation-notes",), given="2025-01-10")
    ).id
    ola = consents.add(
        unlocked, ConsentInput("Ola", "follow-up", ("conversation-notes",), given="2025-01-10")
    ).id
    for consent_id, date, text in [
        (kari, "2025-02-01", "Snakket om SØVN og skole"),
        (kari, "2025-05-01", "Trygghetsplan laget; bedre søvn"),
        (kari, "2025-06-01", "Familiesamtale om ære og skam"),
        (ola, "2025-03-01", "Søvnproblemer,\n  mye   uro"),
        (ola, "2025-04-01", "Ingen treff her"),
    ]:
        notes.add(unlocked, consent_id, text, date=date, kind="phone")
    return unlocked, kari, ola


def found(unlocked, text, **kwargs):
    return [(n.date, n.text) for n in search.search(unlocked, text, **kwargs)]


def test_search_ignores_case_and_keeps_date_order(notes_vault):
    unlocked, _, _ = notes_vault
    assert [d for d, _ in found(unlocked, "søvn")] == ["2025-02-01", "2025-03-01", "2025-05-01"]
    assert found(unlocked, "SØVN") == found(unlocked, "søvn")
    assert found(unlocked, "ÆRE") == [("2025-06-01", "Familiesamtale om ære og skam")]


def test_decomposed_letters_match_composed_ones(notes_vault):
    unlocked, kari, _ = notes_vault
    composed, decomposed = "På båttur", unicodedata.normalize("NFD", "På båttur")
    assert composed != decomposed
    notes.add(unlocked, kari, composed, date="2025-07-01")
    notes.add(unlocked, kari, decomposed, date="2025-07-02")
    for query in ("BÅTTUR", unicodedata.normalize("NFD", "BÅTTUR")):
        assert [d for d, _ in found(unlocked, query)] == ["2025-07-01", "2025-07-02"]


def test_white_space_runs_count_as_one_space(notes_vault):
    unlocked, _, _ = notes_vault
    assert [d for d, _ in found(unlocked, "mye uro")] == ["2025-03-01"]
    assert [d for d, _ in found(unlocked, "  søvnproblemer, mye  ")] == ["2025-03-01"]


def test_consent_and_since_filters(notes_vault):
    unlocked, kari, ola = notes_vault
    assert [d for d, _ in found(unlocked, "søvn", consent_id=ola)] == ["2025-03-01"]
    assert [d for d, _ in found(unlocked, "søvn", since="2025-03-01")] == [
        "2025-03-01",
        "2025-05-01",
    ]
    assert found(unlocked, "søvn", consent_id=kari, since="2025-06-01") == []


def test_results_carry_the_whole_note(notes_vault):
    unlocked, kari, _ = notes_vault
    (note,) = search.search(unlocked, "trygghetsplan")
    assert note == notes.show(unlocked, note.id)
    assert (note.consent_id, note.kind, note.author) == (kari, "phone", "anne")


def test_bad_arguments_fail_before_anything_is_read(notes_vault):
    unlocked, _, _ = notes_vault
    with pytest.raises(BadInput):
        search.search(unlocked, "   ")
    with pytest.raises(BadInput):
        search.search(unlocked, "x" * (search.MAX_QUERY + 1))
    with pytest.raises(BadInput):
        search.search(unlocked, "søvn", since="2025-13-01")
    with pytest.raises(NotFound):
        search.search(unlocked, "søvn", consent_id="C-0000-0000")


def test_erased_consents_are_never_found(notes_vault):
    unlocked, kari, _ = notes_vault
    erasure.withdraw(unlocked, kari)
    assert [d for d, _ in found(unlocked, "søvn")] == ["2025-03-01"]
    assert found(unlocked, "ære") == []


def test_search_is_audited_without_its_text(notes_vault, vault_path):
    unlocked, _, ola = notes_vault
    list(search.search(unlocked, "Trygghetsplan", consent_id=ola))
    with sqlite3.connect(f"file:{vault_path}?mode=ro", uri=True) as db:
        last = db.execute(
            "SELECT actor, action, consent_id, object_id FROM audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    assert last == ("anne", "note.search", ola, None)
    for f in vault_path.parent.iterdir():
        assert b"trygghetsplan" not in f.read_bytes().lower()


def test_cli_search(cli_vault):
    nok = cli_vault
    consent_id = json.loads(
        nok(
            "consent", "add", "--subject", "Kari", "--purpose", "p", "--category", "c", "--json"
        ).stdout
    )["id"]
    for text in ("Første samtale om ÅNGST", "Annen samtale", "Tredje: ångst igjen"):
        assert nok("note", "add", consent_id, "--text", text).exit_code == 0

    result = nok("note", "search", "ångst", "--json")
    assert result.exit_code == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [h["text"] for h in hits] == ["Første samtale om ÅNGST", "Tredje: ångst igjen"]
    assert {h["consent_id"] for h in hits} == {consent_id}

    table = nok("note", "search", "ANNEN", "--consent", consent_id)
    assert table.exit_code == 0
    assert "Annen samtale" in table.stdout

    piped = nok("note", "search", "-", "--json", input="tredje\n")
    assert [h["text"] for h in json.loads(piped.stdout)] == ["Tredje: ångst igjen"]

    none = nok("note", "search", "finnes ikke", "--json")
    assert (none.exit_code, json.loads(none.stdout)) == (0, [])
    empty = nok("note", "search", "finnes ikke")
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "no notes found" in empty.stderr

    bad = nok("note", "search", "x", "--since", "last week")
    assert bad.exit_code == 2
    assert bad.stdout == ""
