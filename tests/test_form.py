"""``nok consent form`` and ``consent add --print-form``: the printable consent declaration
holds every part the guidelines ask for, in both languages, matches the registered consent,
escapes what it did not write itself, and reaches the disk only when asked (0600, no
clobbering)."""

from __future__ import annotations

import html
import json
import re
import sqlite3
import stat

import pytest
from conftest import ADMIN, PASSPHRASE

from vault import Vault, consents, form, staff
from vault.dates import utcnow
from vault.errors import ExitCode
from vault.session import Settings

# Words each required part is recognised by, per language.
REQUIRED = {
    "nb": {
        "title": "Samtykkeerklæring",
        "purpose": "Hva opplysningene skal brukes til",
        "categories": "Kryss av for det du samtykker til",
        "retention": "365 dager (1 år)",
        "withdraw": "Du kan når som helst trekke samtykket tilbake",
        "copy": "få en kopi",
        "confidentiality": "taushetsplikt",
        "child welfare": "Opplysningsplikt til barnevernet",
        "avert": "straffeloven § 196",
        "told": "Jeg har fått vite om taushetsplikten",
        "signature": "Underskrift",
    },
    "en": {
        "title": "Consent declaration",
        "purpose": "What the notes are for",
        "categories": "Tick what you consent to",
        "retention": "365 days (1 year)",
        "withdraw": "You can withdraw your consent at any time",
        "copy": "get a copy",
        "confidentiality": "duty of confidentiality",
        "child welfare": "Duty to inform child welfare",
        "avert": "Penal Code section 196",
        "told": "I have been told about the duty of confidentiality",
        "signature": "Signature",
    },
}
GUARDIAN = {"nb": "Foresattes underskrift", "en": "Guardian's signature"}


@pytest.fixture
def center(cli_vault):
    nok = cli_vault
    assert nok("settings", "set", "center-name", "SMISO Testby").exit_code == 0
    assert nok("settings", "set", "retention-days", "365", "--yes").exit_code == 0
    return nok


def visible(page: str) -> str:
    """An HTML page's text as a reader sees it."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("lang", ["nb", "en"])
@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_form_has_every_required_part(center, lang, fmt):
    result = center("consent", "form", "--lang", lang, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    text = visible(result.stdout) if fmt == "html" else result.stdout.replace("\\", "")
    for part, words in REQUIRED[lang].items():
        assert words in text, part
    assert "SMISO Testby" in text
    for code in consents.SUGGESTED_CATEGORIES:
        assert f"({code})" in text
    assert GUARDIAN[lang] not in text
    child = center("consent", "form", "--lang", lang, "--format", fmt, "--under-16")
    assert GUARDIAN[lang] in (visible(child.stdout) if fmt == "html" else child.stdout)


def test_html_form_is_a_printable_page_without_scripts(center):
    page = center("consent", "form", "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="nb">' in page
    assert "@page" in page
    assert "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert "http" not in page.replace('http-equiv="Content-Security-Policy"', "")


def test_print_form_matches_the_registered_consent(center):
    result = center(
        "consent", "add", "--subject", "K.H.", "--purpose", "Oppfølging etter samtaler",
        "--category", "safety", "--category", "own-category", "--print-form",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    consent_id = re.search(r"C-[0-9A-Z]{4}-[0-9A-Z]{4}", result.stderr).group(0)
    page = result.stdout.replace("\\", "")
    assert f"Samtykke-ID: **{consent_id}**" in page
    assert "Oppfølging etter samtaler" in page
    assert "- [x] Det vi trenger å vite for din sikkerhet (safety)" in page
    assert "- [x] own-category" in page
    assert "- [ ] Korte notater fra samtalene (conversation-notes)" in page
    assert "K.H." not in page  # the alias is the center's, not the form's
    shown = json.loads(center("consent", "show", consent_id, "--json").stdout)
    assert shown["purpose"] == "Oppfølging etter samtaler"
    assert shown["categories"] == ["safety", "own-category"]


def test_print_form_for_a_child_has_the_guardian_part(center):
    result = center(
        "consent", "add", "--subject", "B", "--purpose", "P", "--category", "safety",
        "--under-16", "--guardian", "Mor", "--print-form", "--form-lang", "en",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert GUARDIAN["en"] in result.stdout


def test_nothing_reaches_the_disk_unless_asked(center, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    center("consent", "form", "--format", "html")
    center("consent", "add", "--subject", "S", "--purpose", "P", "--category", "c", "--print-form")
    assert list(work.iterdir()) == []


def test_output_file_is_private_and_never_replaced(center, tmp_path):
    out = tmp_path / "form.html"
    result = center("consent", "form", "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "SMISO Testby" in out.read_text()
    out.write_text("the signed scan's notes")
    again = center("consent", "form", "--output", str(out))
    assert again.exit_code == 9
    assert out.read_text() == "the signed scan's notes"


def test_print_form_to_an_existing_file_registers_nothing(center, tmp_path):
    out = tmp_path / "taken.md"
    out.write_text("x")
    result = center(
        "consent", "add", "--subject", "S", "--purpose", "P", "--category", "c",
        "--form-output", str(out),
    )  # fmt: skip
    assert result.exit_code == 9
    assert json.loads(center("consent", "list", "--json").stdout) == []
    assert out.read_text() == "x"


def test_print_form_with_json_needs_a_file(center, tmp_path):
    both = center(
        "consent", "add", "--subject", "S", "--purpose", "P", "--category", "c",
        "--print-form", "--json",
    )  # fmt: skip
    assert both.exit_code == 2
    assert json.loads(center("consent", "list", "--json").stdout) == []
    out = tmp_path / "f.md"
    ok = center(
        "consent", "add", "--subject", "S", "--purpose", "P", "--category", "c",
        "--json", "--form-output", str(out),
    )  # fmt: skip
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["id"] in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


HOSTILE = '<script>alert(1)</script><img src=x onerror="x()">*bold* [l](http://e) # h'


def test_html_escapes_purpose_and_categories(center):
    result = center(
        "consent", "add", "--subject", "S", "--purpose", HOSTILE, "--category", HOSTILE,
        "--print-form", "--form-format", "html",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "<script" not in result.stdout
    assert "<img" not in result.stdout
    assert html.escape(HOSTILE, quote=True) in result.stdout


def test_markdown_shows_purpose_as_typed():
    fields = form.FormFields("C & <b>", 730, purpose=HOSTILE + "\n# not a heading\n- not a list")
    text = form.render(fields)
    assert not re.search(r"(?<!\\)[<>]", text)  # every angle bracket escaped
    assert "\\<script\\>" in text
    assert "\n# not a heading" not in text
    assert "\n- not a list" not in text
    assert "\\*bold\\*" in text
    assert "C \\& \\<b\\>" in text


MARKUP = '</span><script src="http://evil/x.js"></script> forged'


def test_file_writer_markup_in_the_center_name_does_not_reach_the_form(center, vault_path):
    """A file writer (no passphrase) plants markup as the center's name, in the plaintext
    settings table (where format 2 kept it) and in the newest epoch: the first is not
    read, the second breaks the admins' signature, and no markup reaches a page."""
    db = sqlite3.connect(vault_path)
    with db:
        db.execute("INSERT OR REPLACE INTO settings VALUES ('center_name', ?)", [MARKUP])
    page = center("consent", "form", "--format", "html")
    assert page.exit_code == 0, page.stderr
    assert "SMISO Testby" in page.stdout
    assert "evil" not in page.stdout
    with db:
        number, body = db.execute(
            "SELECT number, body FROM epochs ORDER BY number DESC LIMIT 1"
        ).fetchone()
        forged = bytes(body).replace(b"SMISO Testby", json.dumps(MARKUP)[1:-1].encode())
        assert forged != bytes(body)
        db.execute("UPDATE epochs SET body = ? WHERE number = ?", [forged, number])
    db.close()
    page = center("consent", "form", "--format", "html")
    assert page.exit_code == ExitCode.INTEGRITY, page.stderr
    assert "changed outside nok" in page.stderr
    assert "evil" not in page.stdout + page.stderr


def test_markup_in_the_center_name_an_admin_set_is_escaped(center):
    """An admin's name with markup (pasted from a web page) prints as text, never runs."""
    assert center("settings", "set", "center-name", MARKUP).exit_code == 0
    page = center("consent", "form", "--format", "html")
    assert page.exit_code == 0, page.stderr
    assert "<script" not in page.stdout
    assert "&lt;script src=&quot;http://evil/x.js&quot;&gt;" in page.stdout


def test_form_without_a_center_name_warns_and_leaves_a_line(cli_vault):
    result = cli_vault("consent", "form")
    assert result.exit_code == 0, result.stderr
    assert "Senter: ____" in result.stdout
    assert "nok settings set center-name" in result.stderr


def test_unknown_language_is_bad_usage(cli_vault):
    result = cli_vault("consent", "form", "--lang", "se")
    assert result.exit_code == 2


# -- the center-name setting -------------------------------------------------------------


def test_center_name_is_shown_and_set_by_admins_only(center, as_staff, vault_path):
    shown = json.loads(center("settings", "show", "--json").stdout)
    assert shown["center-name"] == "SMISO Testby"
    refused = center("--as", as_staff, "settings", "set", "center-name", "Other")
    assert refused.exit_code == 11
    assert json.loads(center("settings", "show", "--json").stdout)["center-name"] == "SMISO Testby"
    vault = Vault.open(vault_path)
    try:
        changes = [
            e.object_id
            for e in vault.store.audit_entries(actor=ADMIN)
            if e.action == "settings.set"
        ]
    finally:
        vault.close()
    assert changes == ["center_name", "retention_days"]


@pytest.fixture
def as_staff(center, vault_path, monkeypatch):
    vault = Vault.open(vault_path)
    admin = vault.unlock(ADMIN, PASSPHRASE.encode(), now=utcnow())
    try:
        staff.add(admin, "kari", passphrase=b"kari's own passphrase", role="staff")
    finally:
        admin.close()
    monkeypatch.setenv("NOK_PASSPHRASE", "kari's own passphrase")
    return "kari"


@pytest.mark.parametrize("value", ["", "   ", "two\nlines", "tab\there", "x" * 121])
def test_bad_center_names_are_refused(center, value):
    result = center("settings", "set", "center-name", value)
    assert result.exit_code == 2
    assert result.stderr.startswith("nok: error:")
    assert json.loads(center("settings", "show", "--json").stdout)["center-name"] == "SMISO Testby"


def test_blank_form_follows_the_settings():
    fields = form.blank(Settings(retention_days=400, center_name="X"), under_16=True)
    text = form.render(fields, lang="en")
    assert "400 days" in text
    assert "Center: **X**" in text
    assert GUARDIAN["en"] in text
