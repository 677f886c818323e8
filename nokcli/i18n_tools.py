"""Keep the translation catalogues true to the code (a developer tool; nokcli/locale/README.md).

    python -m nokcli.i18n_tools extract   # rewrite nok.pot; add new strings to nok.po
    python -m nokcli.i18n_tools compile   # nok.po -> nok.mo (the file the wheel ships)
    python -m nokcli.i18n_tools check     # what is untranslated or out of date; exit 1 if any

Strings are found with the AST, never by running the code. A user-facing string is:

- the first argument of ``_``, ``N_`` (a marker), ``render``, ``info``, ``warn``, ``t``
  and ``translate`` (vault/export.py's translate callable); ``declined=`` of ``confirm``;
  both texts of ``ngettext``; the text of ``pgettext`` (with its context);
- a vault error's message: the first argument of any ``NokError`` subclass, the phrases
  given to it as keyword arguments (``what="staff member"``, context ``phrase``; also the
  action named to ``require_admin``), a class's ``template`` and
  ``hint_template``; the template of a verify/audit problem (``report``, ``add`` and
  ``Problem``: the argument after the problem's kind);
- the docstring of a Typer command or callback (Typer shows it as the command's help);
- the values of ``TEMPLATE_CONSTANTS`` below (vault/export.py's sentences);
- the texts Typer marks for gettext itself ("Options", "Commands", "[required]").

A string literal passed as ``help=`` without ``_()`` is an error: it would stay English.
The .mo is written deterministically (sorted, no hash table), so ``check`` can compare the
committed file with a fresh compile byte for byte.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import string
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("nokcli", "commands", "vault")
LOCALEDIR = ROOT / "nokcli" / "locale"
POT = LOCALEDIR / "nok.pot"
LANGUAGES = ("nb",)
TOOL = "python -m nokcli.i18n_tools"
FIRST_ARG = {"_", "N_", "render", "info", "warn", "t", "translate"}
PROBLEM_CALLS = {"report", "add", "Problem"}
# Their first argument, and their keyword arguments, are phrases (vault/grants.py passes
# the action it refuses as ``what=``).
PHRASE_CALLS = {"require_admin", "_may_manage"}
# The context of the English phrases vault passes as parameters (nokcli.i18n.render_vault).
PHRASE = "phrase"
TEMPLATE_ATTRS = {"template", "hint_template"}
TEMPLATE_CONSTANTS = {
    "ACTION_SENTENCES",
    "OTHER_ACTION",
    "KEYLESS_ACTOR",
    "DELETE_SENTENCES",
    "OTHER_DELETE",
    "ACCESS_SENTENCES",
    "ACCESS_REASONS",
}
# Typer's modules that mark their texts for gettext (its vendored click does not: those
# texts are translated by template in nokcli/usage.py).
THIRD_PARTY = {"typer": ("core.py",)}
HEADER = {
    "nb": (
        "Project-Id-Version: nok\n"
        "Language: nb\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "Plural-Forms: nplurals=2; plural=(n != 1);\n"
    )
}
POT_HEADER = (
    "Project-Id-Version: nok\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "Plural-Forms: nplurals=INTEGER; plural=EXPRESSION;\n"
)


@dataclass
class Message:
    msgid: str
    plural: str | None = None
    context: str | None = None
    sources: set[str] = field(default_factory=set)
    # Translations: one string, or one per plural form.
    strings: list[str] = field(default_factory=list)
    fuzzy: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.context or "", self.msgid)


# ---------------------------------------------------------------- finding strings


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _error_classes(trees: Iterable[ast.Module]) -> set[str]:
    """NokError and every class derived from it, by name, across our sources."""
    bases: dict[str, set[str]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = set()
                for b in node.bases:
                    names.add(b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", ""))
                bases[node.name] = names
    found = {"NokError"}
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            if name not in found and parents & found:
                found.add(name)
                changed = True
    return found


def _is_command(node: ast.FunctionDef) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr in ("command", "callback"):
            return True
    return False


@dataclass
class Found:
    messages: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _visit(tree: ast.Module, where: str, errors: set[str], found: Found) -> None:
    def add(text: str | None, plural: str | None = None, context: str | None = None) -> None:
        if text and any(ch.isalpha() for ch in text):
            found.messages.append((text, plural, context))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _callee(node)
            args = node.args
            if name in FIRST_ARG and args:
                add(_literal(args[0]))
                if isinstance(args[0], ast.JoinedStr):
                    found.errors.append(f"{where}:{node.lineno}: an f-string given to {name}()")
            elif name == "ngettext" and len(args) >= 2:
                add(_literal(args[0]), _literal(args[1]))
            elif name == "pgettext" and len(args) >= 2:
                add(_literal(args[1]), context=_literal(args[0]))
            elif name in errors:
                if args:
                    add(_literal(args[0]))
                for kw in node.keywords:
                    add(_literal(kw.value), context=PHRASE)
            elif name in PHRASE_CALLS:
                if args:
                    add(_literal(args[0]), context=PHRASE)
                for kw in node.keywords:
                    add(_literal(kw.value), context=PHRASE)
            elif name in PROBLEM_CALLS and len(args) >= 2:
                add(_literal(args[1]))
            for kw in node.keywords:
                if kw.arg == "declined":
                    add(_literal(kw.value))
                if kw.arg == "help" and _literal(kw.value):
                    found.errors.append(f"{where}:{node.lineno}: help= text without _()")
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign | ast.AnnAssign):
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                    if any(getattr(t, "id", "") in TEMPLATE_ATTRS for t in targets):
                        add(_literal(stmt.value))
        elif isinstance(node, ast.FunctionDef) and _is_command(node):
            add(ast.get_docstring(node, clean=True))
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(getattr(t, "id", "") in TEMPLATE_CONSTANTS for t in targets):
                value = stmt.value
                if isinstance(value, ast.Dict):
                    for v in value.values:
                        add(_literal(v))
                else:
                    add(_literal(value))


def _third_party(found: dict[tuple[str, str], Message]) -> None:
    for package, files in THIRD_PARTY.items():
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        base = Path(spec.origin).parent
        for name in files:
            tree = ast.parse((base / name).read_text(encoding="utf-8"))
            result = Found()
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    callee = _callee(node)
                    if callee == "_" and node.args:
                        text = _literal(node.args[0])
                        if text:
                            result.messages.append((text, None, None))
                    elif callee == "ngettext" and len(node.args) >= 2:
                        one, many = _literal(node.args[0]), _literal(node.args[1])
                        if one and many:
                            result.messages.append((one, many, None))
            _merge(found, result, f"{package}/{name}")


def _merge(into: dict[tuple[str, str], Message], found: Found, where: str) -> None:
    for text, plural, context in found.messages:
        key = (context or "", text)
        message = into.setdefault(key, Message(text, plural, context))
        message.sources.add(where)


def extract(root: Path = ROOT) -> tuple[list[Message], list[str]]:
    """Every user-facing string in nok and Typer's own; and the marking mistakes found."""
    files = sorted(p for d in SOURCE_DIRS for p in (root / d).rglob("*.py"))
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in files}
    errors = _error_classes(trees.values())
    messages: dict[tuple[str, str], Message] = {}
    mistakes: list[str] = []
    for path, tree in trees.items():
        where = path.relative_to(root).as_posix()
        found = Found()
        _visit(tree, where, errors, found)
        _merge(messages, found, where)
        mistakes.extend(found.errors)
    _third_party(messages)
    return sorted(messages.values(), key=lambda m: m.key), mistakes


# ---------------------------------------------------------------- .po files


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
    )
    return f'"{escaped}"'


def _field(keyword: str, text: str) -> list[str]:
    if "\n" not in text.rstrip("\n") or not text:
        return [f"{keyword} {_quote(text)}"]
    parts = text.splitlines(keepends=True)
    return [f'{keyword} ""', *(_quote(p) for p in parts)]


def format_po(messages: Iterable[Message], header: str, *, template: bool = False) -> str:
    lines = ['msgid ""', 'msgstr ""', *(_quote(p) for p in header.splitlines(keepends=True)), ""]
    for m in messages:
        lines.extend(f"#: {s}" for s in sorted(m.sources))
        if m.fuzzy and not template:
            lines.append("#, fuzzy")
        if m.context is not None:
            lines.append(f"msgctxt {_quote(m.context)}")
        lines.extend(_field("msgid", m.msgid))
        if m.plural is not None:
            lines.extend(_field("msgid_plural", m.plural))
            forms = m.strings if (m.strings and not template) else ["", ""]
            for i, form in enumerate(forms):
                lines.extend(_field(f"msgstr[{i}]", form))
        else:
            lines.extend(_field("msgstr", "" if template or not m.strings else m.strings[0]))
        lines.append("")
    return "\n".join(lines)


_TOKEN = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")\s*$')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(token: str) -> str:
    body = token.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def parse_po(text: str) -> tuple[str, list[Message]]:
    """The header and the entries of a .po file (comments other than #: and #, ignored)."""
    entries: list[Message] = []
    header = ""
    current: dict[str, str] = {}
    sources: set[str] = set()
    fuzzy = False
    last = ""

    def flush() -> None:
        nonlocal header, current, sources, fuzzy
        if "msgid" in current:
            if current["msgid"] == "" and "msgctxt" not in current:
                header = current.get("msgstr", "")
            else:
                forms = sorted(k for k in current if k.startswith("msgstr["))
                strings = [current[k] for k in forms] if forms else [current.get("msgstr", "")]
                entries.append(
                    Message(
                        current["msgid"],
                        current.get("msgid_plural"),
                        current.get("msgctxt"),
                        sources,
                        strings,
                        fuzzy,
                    )
                )
        current, sources, fuzzy = {}, set(), False

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if "msgid" in current:
                flush()
            if line.startswith("#:"):
                sources.update(line[2:].split())
            elif line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        if line.startswith('"'):
            current[last] += _unquote(line)
            continue
        match = _TOKEN.match(line)
        if match is None:
            raise ValueError(f"cannot read this .po line: {raw!r}")
        keyword = match.group(1)
        if keyword in ("msgctxt", "msgid") and (
            "msgstr" in current or any(k.startswith("msgstr[") for k in current)
        ):
            flush()
        last = keyword
        current[keyword] = _unquote(match.group(3))
    flush()
    return header, entries


# ---------------------------------------------------------------- .mo files


def compile_mo(header: str, messages: Iterable[Message]) -> bytes:
    """GNU .mo bytes: translated, non-fuzzy entries only, sorted, no hash table."""
    pairs: dict[bytes, bytes] = {b"": header.encode("utf-8")}
    for m in messages:
        if m.fuzzy or not m.strings or not all(m.strings):
            continue
        key = m.msgid if m.context is None else f"{m.context}\x04{m.msgid}"
        if m.plural is not None:
            pairs[f"{key}\x00{m.plural}".encode()] = "\x00".join(m.strings).encode()
        else:
            pairs[key.encode()] = m.strings[0].encode()
    keys = sorted(pairs)
    count = len(keys)
    originals_at = 7 * 4
    translations_at = originals_at + count * 8
    data_at = translations_at + count * 8
    originals = b""
    translations = b""
    blob = b""
    for k in keys:
        originals += struct.pack("<2I", len(k), data_at + len(blob))
        blob += k + b"\x00"
    for k in keys:
        translations += struct.pack("<2I", len(pairs[k]), data_at + len(blob))
        blob += pairs[k] + b"\x00"
    head = struct.pack("<7I", 0x950412DE, 0, count, originals_at, translations_at, 0, data_at)
    return head + originals + translations + blob


# ---------------------------------------------------------------- the commands


def po_path(language: str) -> Path:
    return LOCALEDIR / language / "LC_MESSAGES" / "nok.po"


def mo_path(language: str) -> Path:
    return LOCALEDIR / language / "LC_MESSAGES" / "nok.mo"


def _fields(text: str) -> list[str]:
    """The ``{placeholders}`` of a template (sorted), which a translation must keep."""
    try:
        return sorted(f"{n}!{c}:{s}" for _, n, s, c in string.Formatter().parse(text) if n)
    except ValueError:
        return ["<not a valid template>"]


def problems(root: Path = ROOT) -> list[str]:
    """What is out of date or untranslated, one line each (empty: all is well)."""
    messages, found = extract(root)
    pot_text = format_po(messages, POT_HEADER, template=True)
    if not POT.exists() or POT.read_text(encoding="utf-8") != pot_text:
        found.append(f"nok.pot is out of date: run {TOOL} extract")
    wanted = {m.key: m for m in messages}
    for language in LANGUAGES:
        header, entries = parse_po(po_path(language).read_text(encoding="utf-8"))
        have = {e.key: e for e in entries}
        for key, m in wanted.items():
            e = have.get(key)
            label = f"{language}: {m.msgid!r}" + (f" (context {m.context})" if m.context else "")
            if e is None or not e.strings or not all(e.strings):
                found.append(f"{label} has no translation")
            elif e.fuzzy:
                found.append(f"{label} is marked fuzzy")
            elif any(_fields(s) != _fields(m.msgid) for s in e.strings[:1]) or (
                m.plural and any(_fields(s) != _fields(m.plural) for s in e.strings[1:])
            ):
                found.append(f"{label}: the translation's {{placeholders}} differ")
        for key in have.keys() - wanted.keys():
            found.append(f"{language}: {key[1]!r} is no longer used: run {TOOL} extract")
        mo = mo_path(language)
        if not mo.exists() or mo.read_bytes() != compile_mo(header, entries):
            found.append(f"{language}: nok.mo is out of date: run {TOOL} compile")
    return found


def run_extract(root: Path = ROOT) -> list[str]:
    messages, mistakes = extract(root)
    POT.parent.mkdir(parents=True, exist_ok=True)
    POT.write_text(format_po(messages, POT_HEADER, template=True), encoding="utf-8")
    for language in LANGUAGES:
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        old: dict[tuple[str, str], Message] = {}
        header = HEADER[language]
        if path.exists():
            header, entries = parse_po(path.read_text(encoding="utf-8"))
            old = {e.key: e for e in entries}
        merged = []
        for m in messages:
            previous = old.get(m.key)
            merged.append(
                Message(
                    m.msgid,
                    m.plural,
                    m.context,
                    m.sources,
                    previous.strings if previous else [],
                    previous.fuzzy if previous else False,
                )
            )
        path.write_text(format_po(merged, header), encoding="utf-8")
    return mistakes


def run_compile() -> None:
    for language in LANGUAGES:
        header, entries = parse_po(po_path(language).read_text(encoding="utf-8"))
        mo_path(language).write_bytes(compile_mo(header, entries))


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "extract":
        mistakes = run_extract()
        for line in mistakes:
            print(line, file=sys.stderr)
        return 1 if mistakes else 0
    if command == "compile":
        run_compile()
        return 0
    if command == "check":
        found = problems()
        for line in found:
            print(line)
        return 1 if found else 0
    print(inspect.cleandoc(__doc__ or "").split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
