"""Norwegian first: the catalogue is complete and true to the code, the language follows the
locale (and NOK_LANG, and the configuration file), and a counselor's day in Norwegian shows
no English from nok's own catalogue. Norwegian runs are real subprocesses: the language is
chosen once per process, and the suite itself runs in English (tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import gettext
import io
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import ADMIN, CLOCK_ENV, PASSPHRASE, TODAY, days_ago, init_args, run_nok
from test_erasure import on_terminal

from nokcli import i18n, i18n_tools, usage, vocab

NB = {"LANG": "nb_NO.UTF-8"}
EN = {"LANG": "C"}


# ---------------------------------------------------------------- the catalogue


def test_every_user_facing_string_has_a_norwegian_translation() -> None:
    problems = i18n_tools.problems()
    assert problems == [], (
        "the Norwegian catalogue is not complete or not up to date (nokcli/locale/README.md):\n"
        + "\n".join(problems)
    )


def test_the_extractor_finds_what_a_developer_adds(tmp_path: Path) -> None:
    """The completeness test fails for each way a new user-facing string can be written."""
    for package in i18n_tools.SOURCE_DIRS:
        (tmp_path / package).mkdir()
    (tmp_path / "vault" / "errors.py").write_text(
        "class NokError(Exception):\n    template = 'base {detail}'\n"
        "class Gone(NokError):\n    template = 'the thing {id} is gone'\n"
        "    hint_template = 'look elsewhere'\n"
    )
    (tmp_path / "vault" / "things.py").write_text(
        "from vault.errors import Gone\n"
        "def f():\n    raise Gone('no thing under {id}', what='staff member', id=1)\n"
        "def g(report):\n    report.add('kind', 'the {column} is odd', column='x')\n"
    )
    (tmp_path / "commands" / "thing.py").write_text(
        "import typer\nfrom nokcli import output\nfrom nokcli.i18n import _, render\n"
        "app = typer.Typer()\n"
        "@app.command('do')\ndef do(x: str = typer.Option(help='Plain help')) -> None:\n"
        "    '''Do the thing.'''\n"
        "    output.info('did {n} thing(s)', n=1)\n    print(render('a {b} c', b=2))\n"
        "    _(f'{x} not allowed')\n"
    )
    messages, mistakes = i18n_tools.extract(tmp_path)
    found = {(m.context, m.msgid) for m in messages}
    for expected in [
        (None, "base {detail}"),
        (None, "the thing {id} is gone"),
        (None, "look elsewhere"),
        (None, "no thing under {id}"),
        ("phrase", "staff member"),
        (None, "the {column} is odd"),
        (None, "Do the thing."),
        (None, "did {n} thing(s)"),
        (None, "a {b} c"),
    ]:
        assert expected in found
    assert (None, "kind") not in found
    assert any("help= text without _()" in m for m in mistakes)
    assert any("f-string" in m for m in mistakes)


def test_a_translation_must_keep_the_placeholders() -> None:
    assert i18n_tools._fields("no {what} with id {id}") == i18n_tools._fields(
        "fant ikke {what} med id {id}"
    )
    assert i18n_tools._fields("no {what} with id {id}") != i18n_tools._fields(
        "fant ikke {hva} med id {id}"
    )


def test_the_compiled_catalogue_is_what_gettext_reads() -> None:
    entries = [
        i18n_tools.Message("Options", strings=["Valg"]),
        i18n_tools.Message("phone", context="note kind", strings=["telefon"]),
        i18n_tools.Message("one {n} file", plural="{n} files", strings=["én fil", "{n} filer"]),
        i18n_tools.Message("not yet", strings=[""]),
        i18n_tools.Message("unsure", strings=["usikker"], fuzzy=True),
    ]
    data = i18n_tools.compile_mo(i18n_tools.HEADER["nb"], entries)
    catalog = gettext.GNUTranslations(io.BytesIO(data))
    assert catalog.gettext("Options") == "Valg"
    assert catalog.pgettext("note kind", "phone") == "telefon"
    assert catalog.ngettext("one {n} file", "{n} files", 1) == "én fil"
    assert catalog.ngettext("one {n} file", "{n} files", 3) == "{n} filer"
    assert catalog.gettext("not yet") == "not yet"  # untranslated: English, never empty
    assert catalog.gettext("unsure") == "unsure"  # fuzzy entries are not shipped
    header, parsed = i18n_tools.parse_po(i18n_tools.format_po(entries, i18n_tools.HEADER["nb"]))
    assert i18n_tools.compile_mo(header, parsed) == data


def test_the_wheel_ships_the_compiled_catalogue() -> None:
    import tomllib

    config = tomllib.loads((i18n_tools.ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["setuptools"]["package-data"]["nokcli"]
    mo = i18n_tools.mo_path("nb").relative_to(i18n_tools.ROOT / "nokcli")
    assert any(mo.match(pattern) for pattern in shipped)


def test_every_kind_and_category_is_shown_by_its_first_norwegian_word() -> None:
    _, entries = i18n_tools.parse_po(i18n_tools.po_path("nb").read_text())
    shown = {(e.context, e.msgid): e.strings[0] for e in entries}
    for value, words in vocab.KIND_WORDS.items():
        assert shown[("note kind", value)] == words[0]
    for value, words in vocab.CATEGORY_WORDS.items():
        assert shown[("data category", value)] == words[0]


# ---------------------------------------------------------------- choosing the language


@pytest.mark.parametrize(
    ("env", "configured", "expected"),
    [
        ({"LANG": "nb_NO.UTF-8"}, None, "nb"),
        ({"LANG": "nn_NO.UTF-8"}, None, "nb"),
        ({"LANG": "no_NO"}, None, "nb"),
        ({"LANG": "C"}, None, "en"),
        ({"LANG": "C.UTF-8"}, None, "en"),
        ({"LANG": "en_GB.UTF-8"}, None, "en"),
        ({"LANG": "de_DE.UTF-8"}, None, "en"),
        ({}, None, "en"),
        ({"LANG": "nb_NO.UTF-8", "LC_ALL": "C"}, None, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "nb_NO.UTF-8"}, None, "nb"),
        ({"LANG": "nb_NO.UTF-8", "NOK_LANG": "en"}, None, "en"),
        ({"LANG": "C"}, "nb", "nb"),
        ({"LANG": "nb_NO.UTF-8"}, "en", "en"),
        ({"LANG": "C", "NOK_LANG": "en"}, "nb", "en"),
    ],
)
def test_the_language_comes_from_nok_lang_then_the_config_then_the_locale(
    env: dict[str, str], configured: str | None, expected: str
) -> None:
    assert i18n.choose(env, configured) == expected


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    directory = tmp_path / "xdg"
    (directory / "nok").mkdir(parents=True)
    (directory / "nok" / "config.toml").write_text(text)
    return {"XDG_CONFIG_HOME": str(directory)}


def test_the_config_file_can_choose_norwegian(tmp_path: Path) -> None:
    result = run_nok("--help", env={**EN, **_config(tmp_path, 'language = "nb"\n')})
    assert result.returncode == 0
    assert "Bruk: nok" in result.stdout
    assert "Vis denne hjelpen og avslutt." in result.stdout
    english = run_nok("--help", env={**EN, **_config(tmp_path / "b", "")})
    assert "Usage: nok" in english.stdout
    assert "Show this message and exit." in english.stdout


def test_an_unknown_language_in_the_config_is_refused(tmp_path: Path) -> None:
    env = {**EN, **_config(tmp_path, 'language = "klingon"\n'), "NOK_VAULT": str(tmp_path)}
    result = run_nok("status", env=env)
    assert result.returncode == 2
    assert "language in" in result.stderr


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("english", "norwegian"),
    [
        ("No such option: --sincex", "Ukjent valg: --sincex"),
        (
            "No such option: --sincex (Possible options: --since)",
            "Ukjent valg: --sincex (mulige valg: --since)",
        ),
        (
            "Invalid value for '--busy-timeout': Input should be greater than or equal to 0",
            "Ugyldig verdi for '--busy-timeout': Verdien må være minst 0",
        ),
        ("Missing option '--purpose'.", "Mangler valget '--purpose'."),
        ("Something typer never said", "Something typer never said"),
    ],
)
def test_typer_messages_are_translated_by_template(
    monkeypatch: pytest.MonkeyPatch, english: str, norwegian: str
) -> None:
    catalog = gettext.translation(
        i18n.DOMAIN, localedir=str(i18n.LOCALEDIR), languages=["nb"], fallback=False
    )
    monkeypatch.setattr(i18n, "_catalog", catalog)
    assert usage.translate(english) == norwegian


def test_a_usage_error_is_one_nok_error_line_in_either_language(tmp_path: Path) -> None:
    for env, error, hint in (
        (EN, "nok: error: No such option: --sincex", "nok: hint: see 'nok note list --help'"),
        (NB, "nok: feil: Ukjent valg: --sincex", "nok: tips: se 'nok note list --help'"),
    ):
        result = run_nok("note", "list", "--sincex", "2", env={**env, **CLOCK_ENV})
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert lines[0].startswith(error)
        assert lines[1] == hint


# ---------------------------------------------------------------- the Norwegian words


def test_kinds_and_categories_take_norwegian_words_and_store_neutral_values(cli_vault) -> None:
    nok = cli_vault
    added = nok(
        "consent", "add", "--subject", "K.H.", "--purpose", "Oppfølging",
        "--category", "samtalenotater", "--category", "Sikkerhet", "--category", "egen",
        "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    cid = json.loads(added.stdout)["id"]
    shown = json.loads(nok("consent", "show", cid, "--json").stdout)
    assert shown["categories"] == ["conversation-notes", "safety", "egen"]
    for typed, stored in [
        ("telefon", "phone"),
        ("åpent hus", "open-house"),
        ("Åpent-hus", "open-house"),
        ("pårørende", "next-of-kin"),
        ("outreach", "outreach"),
        ("oppfølgingsplan", "follow-up-plan"),
    ]:
        note = nok("note", "add", cid, "--kind", typed, "--text", "Kort.", "--json")
        assert note.exit_code == 0, note.stderr
        nid = json.loads(note.stdout)["id"]
        assert json.loads(nok("note", "show", nid, "--json").stdout)["kind"] == stored
    assert nok("note", "add", cid, "--kind", "kaffeprat", "--text", "x").exit_code == 2
    listed = nok("note", "list", "--consent", cid)
    assert "open-house" in listed.stdout  # shown in the user's language: here English


def _weekday_back(name_index: int) -> str:
    return (TODAY - dt.timedelta(days=(TODAY.weekday() - name_index) % 7)).isoformat()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("today", days_ago(0)),
        ("i dag", days_ago(0)),
        ("yesterday", days_ago(1)),
        ("I går", days_ago(1)),
        ("igår", days_ago(1)),
        ("mandag", _weekday_back(0)),
        ("friday", _weekday_back(4)),
        ("søndag", _weekday_back(6)),
        (days_ago(3), days_ago(3)),
    ],
)
def test_a_date_can_be_a_word(cli_vault, typed: str, expected: str) -> None:
    nok = cli_vault
    given = days_ago(10)
    added = nok(
        "consent", "add", "--subject", "A", "--purpose", "P", "--category", "c",
        "--given", given, "--json",
    )  # fmt: skip
    cid = json.loads(added.stdout)["id"]
    note = nok("note", "add", cid, "--text", "t", "--date", typed, "--json")
    assert note.exit_code == 0, note.stderr
    nid = json.loads(note.stdout)["id"]
    assert json.loads(nok("note", "show", nid, "--json").stdout)["date"] == expected
    since = json.loads(nok("note", "list", "--since", typed, "--json").stdout)
    assert [n["id"] for n in since] == [nid]


def test_a_word_for_the_consent_date(cli_vault) -> None:
    added = cli_vault(
        "consent", "add", "--subject", "A", "--purpose", "P", "--category", "c",
        "--given", "i går", "--json",
    )  # fmt: skip
    cid = json.loads(added.stdout)["id"]
    assert json.loads(cli_vault("consent", "show", cid, "--json").stdout)["given"] == days_ago(1)
    assert cli_vault("note", "list", "--since", "forrige uke").exit_code == 2


@pytest.fixture
def nb_vault(tmp_path: Path) -> dict[str, str]:
    """A vault made by a real nok, and the environment of a Norwegian counselor using it."""
    env = {
        **NB,
        **CLOCK_ENV,
        "NOK_VAULT": str(tmp_path / "vaultdir" / "vault.db"),
        "NOK_USER": ADMIN,
        "NOK_PASSPHRASE": PASSPHRASE,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_RUNTIME_DIR": str(tmp_path / "runtime"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    made = run_nok(*init_args(tmp_path), env=env)
    assert made.returncode == 0, made.stderr
    return env


def _consent(env: dict[str, str]) -> str:
    added = run_nok(
        "consent", "add", "--subject", "K.H.", "--purpose", "Samtaler", "--category",
        "samtalenotater", "--given", days_ago(7), env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "code"), [("j", 0), ("ja", 0), ("JA", 0), ("n", 130), ("nei", 130), ("", 130)]
)
def test_questions_take_norwegian_answers(nb_vault, answer: str, code: int) -> None:
    cid = _consent(nb_vault)
    returncode, err = on_terminal(["consent", "withdraw", cid], answer, nb_vault)
    assert returncode == code, err
    assert "[j/N]" in err
    if code == 130:
        assert "ingenting ble endret" in err


@pytest.mark.slow
def test_english_questions_do_not_take_norwegian_answers(nb_vault) -> None:
    env = {**nb_vault, "LANG": "C"}
    cid = _consent(env)
    returncode, err = on_terminal(["consent", "withdraw", cid], "ja\n\n", env)
    assert returncode == 130
    assert "please answer y or n" in err
    returncode, err = on_terminal(["consent", "withdraw", cid], "yes", env)
    assert returncode == 0, err


# ---------------------------------------------------------------- done when


def _syntax_words() -> set[str]:
    """Command and option names: typed as they are in every language."""
    import typer.main

    from nokcli.app import app

    words: set[str] = set()

    def walk(command: object) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            words.update(re.findall(r"[a-z]+", name))
            walk(sub)

    walk(typer.main.get_command(app))
    return words


def _english_only_words() -> set[str]:
    """Words of nok's English messages that no Norwegian translation uses (and that are not
    command names)."""
    _, entries = i18n_tools.parse_po(i18n_tools.po_path("nb").read_text())
    english: set[str] = set()
    norwegian: set[str] = set()
    for e in entries:
        english.update(_words(e.msgid + " " + (e.plural or "")))
        norwegian.update(_words(" ".join(e.strings)))
    return english - norwegian - _syntax_words()


def _words(text: str) -> set[str]:
    """Prose words: command-line syntax (options, paths, <types>, METAVARS and ENV_VARS,
    'quoted commands') is the same in every language and is left out."""
    text = re.sub(r"'[^'\n]*'|<[^>\n]*>|\{[^}\n]*\}", " ", text)
    words = set()
    for token in text.split():
        if token.startswith("-") or "/" in token or "=" in token:
            continue
        for word in re.findall(r"[^\W\d_]{3,}", token):
            if not word.isupper():
                words.add(word.lower())
    return words


def _english_in(text: str, english: set[str]) -> set[str]:
    return _words(text) & english


def _quick_start() -> list[tuple[list[str], str | None]]:
    """The nok commands of the README's quick start, each with what ``echo`` pipes into it."""
    from test_routines import BLOCK

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section: quickstart -->")[1].split("<!-- /section")[0]
    runs = []
    for line in "\n".join(BLOCK.findall(section)).replace("\\\n", " ").splitlines():
        stdin = None
        if "|" in line.split("#")[0]:
            source, line = line.split("|", 1)
            said = shlex.split(source)
            stdin = said[1] if said[0] == "echo" else "Snakket om gruppetilbudet."
        words = shlex.split(line, comments=True)
        if words[:3] == ["nok", "consent", "add"] and "--subject" not in words:
            # What the README shows typed at the prompts (there is no terminal here).
            words += ["--subject", "K.H.", "--purpose", "Oppfølgingssamtaler"]
        if words and words[0] == "nok":
            runs.append((words[1:], stdin))
    assert len(runs) >= 5
    return runs


@pytest.mark.slow
def test_a_counselors_day_in_norwegian_shows_no_english(nb_vault) -> None:
    """The README's quick start and the daily commands, with LANG=nb_NO.UTF-8."""
    env = nb_vault
    english = _english_only_words()
    assert {"passphrase", "vault", "erased", "notes", "kind"} <= english  # the check can fail
    seen: list[tuple[str, str]] = []
    typed: set[str] = set()

    def nok(*args: str, input: str | None = None, code: int = 0, extra: dict | None = None):
        result = run_nok(*args, env={**env, **(extra or {})}, input=input)
        assert result.returncode == code, (args, result.stderr)
        # What the counselor wrote (a note, an alias) is theirs, in any language.
        free = ("--text", "--subject", "--purpose", "--form-ref")
        typed.update(v.strip() for o, v in itertools.pairwise(args) if o in free)
        typed.add((input or "").strip())
        seen.append((" ".join(args), result.stdout + result.stderr))
        return result

    # The README's quick start as written (its example ids replaced by the real ones).
    cid = nid = ""
    for args, stdin in _quick_start():
        args = [a.replace("C-7K2M-9Q4F", cid).replace("N-3XH8-P2DW-5", nid) for a in args]
        done = nok(*args, input=stdin if stdin is not None else "Skrevet i editoren.")
        if args[:2] == ["consent", "add"]:
            cid = done.stdout.strip()
        elif args[:2] == ["note", "add"]:
            nid = done.stdout.strip()
    assert cid
    assert nid
    cid = _consent(env)
    nok("note", "add", cid, "--kind", "telefon", "--text", "Ringte; vil ha en samtale.")
    nok("note", "add", cid, input="Snakket om gruppetilbudet.")
    nid = nok("note", "add", cid, "--date", "i går", "--kind", "åpent hus", "--text", "Kom innom.")
    nid = nid.stdout.strip()
    nok("note", "list", "--consent", cid)
    nok("note", "show", nid)
    nok("note", "search", "gruppetilbudet")
    nok("consent", "list")
    nok("consent", "show", cid)
    nok("consent", "extend", cid, "--days", "30")
    nok("status")
    nok("export", cid)
    nok("--help")
    for group in ("consent", "note"):
        nok(group, "--help")
    for command in (("consent", "add"), ("consent", "withdraw"), ("note", "add"), ("note", "list")):
        nok(*command, "--help")
    # What goes wrong on an ordinary day.
    nok("note", "add", cid, "--kind", "kaffeprat", "--text", "x", code=2)
    nok("note", "add", cid, "--date", "2026-13-45", "--text", "x", code=2)
    nok("note", "list", "--sincex", "i dag", code=2)
    nok("consent", "add", "--subject", "X", code=2)
    nok("note", "show", "N-AAAA-AAAA-A", code=6)
    nok("consent", "withdraw", cid, code=2)  # no terminal and no --yes
    nok("note", "list", code=4, extra={"NOK_PASSPHRASE": "not the passphrase"})
    nok("consent", "withdraw", cid, "--yes")
    nok("consent", "list", "--all")
    nok("note", "add", cid, "--text", "for sent", code=9)
    nok("purge", "--dry-run")

    for text in typed - {""}:
        seen = [(cmd, out.replace(text, "")) for cmd, out in seen]
    leaks = {cmd: sorted(_english_in(out, english)) for cmd, out in seen}
    leaks = {cmd: words for cmd, words in leaks.items() if words}
    assert leaks == {}, leaks
    joined = "\n".join(out for _, out in seen)
    for norwegian in ("samtykke", "notat", "telefon", "åpent hus", "Bruk:", "nok: feil:"):
        assert norwegian in joined


@pytest.mark.slow
def test_with_lang_c_the_same_day_is_english(nb_vault) -> None:
    env = {**nb_vault, "LANG": "C"}
    cid = _consent(env)
    added = run_nok("note", "add", cid, "--kind", "telefon", "--text", "Ringte.", env=env)
    assert added.returncode == 0, added.stderr
    listed = run_nok("note", "list", "--consent", cid, env=env)
    assert "phone" in listed.stdout
    assert "telefon" not in listed.stdout
    shown = run_nok("consent", "show", cid, env=env)
    assert "conversation-notes" in shown.stdout
    assert "purpose" in shown.stdout
    wrong = run_nok("note", "list", env={**env, "NOK_PASSPHRASE": "nope nope"})
    assert wrong.stderr.startswith("nok: error: wrong passphrase for anne")
    assert "Usage: nok" in run_nok("--help", env=env).stdout


GUIDE = Path(__file__).parent.parent / "docs" / "nb" / "veiledning.md"


@pytest.mark.slow
def test_every_command_in_the_norwegian_staff_guide_runs(nb_vault, tmp_path: Path) -> None:
    """docs/nb/veiledning.md stays true: its commands run, in Norwegian, as written (the
    example ids replaced by real ones; the editor line and the question answered on a
    terminal)."""
    from test_routines import BLOCK

    text = "\n".join(BLOCK.findall(GUIDE.read_text(encoding="utf-8"))).replace("\\\n", " ")
    lines = [shlex.split(line, comments=True) for line in text.splitlines()]
    lines = [line for line in lines if line]
    assert ["nok", "consent", "add"] in [line[:3] for line in lines]
    consent_id = note_id = ""
    for line in lines:
        assert line[0] == "nok", line
        args = line[1:]
        args = [
            a.replace("C-7K2M-9Q4F", consent_id).replace("N-3XH8-P2DW-5", note_id) for a in args
        ]
        # Files the guide writes go to this test's directory, not the one pytest runs in.
        args = [str(tmp_path / a) if a.endswith(".md") else a for a in args]
        if args[:2] == ["consent", "withdraw"]:
            code, err = on_terminal(args, "j", nb_vault)
            assert code == 0, (line, err)
            continue
        if args[:2] == ["note", "add"] and "--text" not in args:
            done = run_nok(*args, env={**nb_vault, "EDITOR": "true"}, input="Notat fra stdin.")
        else:
            done = run_nok(*args, env=nb_vault)
        assert done.returncode == 0, (line, done.stderr)
        if args[:2] == ["consent", "add"]:
            consent_id = done.stdout.strip()
        if args[:2] == ["note", "add"]:
            note_id = done.stdout.strip()
