"""``nok stats``: the yearly figures a center reports, counted inside the vault."""

from typing import Annotated

import typer

from nokcli import context, output, reasons, vocab
from nokcli.i18n import _, render

app = typer.Typer()

# Row labels of the table, in report order; keys are those of YearFigures.to_json.
LABELS = (
    ("consents_new", _("new consents")),
    ("consents_active", _("active consents (at any time in the year)")),
    ("ended_withdrawn", _("ended by withdrawal")),
    ("ended_expired", _("ended by expiry")),
    ("registered_in_error", _("withdrawn as registered in error (not counted above)")),
    ("under_16", _("under-16 consents (of those still held)")),
    ("under_16_unknown", _("age unknown: ended, details erased")),
    ("contacts", _("contacts (notes)")),
    ("people_with_contact", _("people with at least one contact")),
)


# The consent figures' headings in Norwegian, for the Excel file and the printed report
# (which are for Bufdir and the board, whatever the user's language).
LABELS_NB = (
    ("consents_new", "nye samtykker"),
    ("consents_active", "aktive samtykker (i løpet av året)"),
    ("ended_withdrawn", "avsluttet ved tilbaketrekking"),
    ("ended_expired", "avsluttet ved utløpt oppbevaringstid"),
    ("registered_in_error", "trukket tilbake som feilregistrert (ikke talt over)"),
    ("under_16", "samtykker for personer under 16 (av dem som er igjen)"),
    ("under_16_unknown", "alder ukjent: avsluttet, opplysningene slettet"),
    ("contacts", "kontakter (notater)"),
    ("people_with_contact", "personer med minst én kontakt"),
)


@app.command()
def stats(
    ctx: typer.Context,
    year: Annotated[
        int | None,
        typer.Option(help=_("Calendar year to count, e.g. 2026. Default: this year.")),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=_("Print the figures as JSON."))] = False,
    reason: reasons.ReasonOption = None,
    csv_out: Annotated[
        bool,
        typer.Option("--csv", help=_("Print the figures as CSV (figure,value).")),
    ] = False,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact", help=_("Show counts from 1 to 4 as they are, not as <5 (admins only).")
        ),
    ] = False,
    excel_out: Annotated[
        bool,
        typer.Option(
            "--excel",
            help=_(
                "Print the report as a CSV file Norwegian Excel opens as it is (semicolons, "
                "UTF-8 with BOM, Norwegian headings)."
            ),
        ),
    ] = False,
    html_out: Annotated[
        bool,
        typer.Option(
            "--html", help=_("Print the report as a page to print on A4 (for the board).")
        ),
    ] = False,
) -> None:
    """Count the year's consents and contacts for the yearly report (e.g. to Bufdir).

    Only counts are printed, never an id or a name; counts from 1 to 4 show as <5 so
    that a small figure cannot point to a person. Contacts are counted by kind and by
    month. What was erased (withdrawn or expired consents and their notes) can no longer
    be counted in full: run the figures for a year early in the next. Recorded in the
    audit trail as a read of aggregate data (no consent ids).
    """
    from vault import report
    from vault import stats as counting
    from vault.errors import BadInput

    if sum((json_out, csv_out, excel_out, html_out)) > 1:
        raise BadInput("choose one of --json, --csv, --excel and --html")
    context.use_reason(ctx, reason)
    with context.get(ctx).unlocked() as vault:
        chosen = year if year is not None else int(vault.today()[:4])
        figures = counting.year_figures(vault, chosen, exact=exact)
        tables = report.year_report(vault, chosen)
        center = vault.settings().center_name
    shown = {**figures.to_json(exact=exact), **tables.shown(exact=exact)}
    if json_out:
        output.emit_json(shown)
    elif csv_out:
        _emit_csv(shown)
    elif excel_out:
        _emit_excel(shown)
    elif html_out:
        typer.echo(_html(shown, center), nl=False)
    else:
        _emit_table(shown)
    if not exact:
        output.info("counts from 1 to 4 are shown as <5")
        output.info(
            "in the report's tables a protected count (:) is 1 to 4, or a larger one hidden "
            "so that a small one cannot be worked out"
        )
    if not tables.full:
        output.warn(
            "only an admin's report is whole: this one counts the anonymous contacts and "
            "activities and the consents you may open"
        )


def _flat(shown: dict[str, object]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in shown.items():
        if isinstance(value, dict) and "cells" in value:
            cells = value["cells"]
            assert isinstance(cells, dict)
            rows += [(f"{key}.{sub}", n) for sub, n in cells.items()]
            rows.append((f"{key}.total", value["total"]))
        elif isinstance(value, dict):
            rows += [(f"{key}.{sub}", n) for sub, n in value.items()]
        elif key not in ("exact", "form", "scope"):
            rows.append((key, value))
    return rows


def _report_tables(shown: dict[str, object]) -> list[tuple[str, dict[str, object], object]]:
    """(table name, cells, total) of the report's tables, in report order."""
    from vault import report

    out = []
    for name, _group in report.TABLES:
        table = shown[name]
        assert isinstance(table, dict)
        cells = table["cells"]
        assert isinstance(cells, dict)
        out.append((name, cells, table["total"]))
    return out


def _nb_number(value: object) -> object:
    """A figure as Norwegian Excel reads it (a decimal comma)."""
    return value.replace(".", ",") if isinstance(value, str) and value[:1].isdigit() else value


def _emit_excel(shown: dict[str, object]) -> None:
    """Semicolons and a byte-order mark: Norwegian Excel opens it as it is, the letters
    æ, ø and å and the decimal comma intact."""
    import csv
    import io
    import sys

    from vault import report

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(("Tabell", "Kategori", "Antall"))
    for key, label in LABELS_NB:
        writer.writerow(("Samtykker", label, shown[key]))
    for name, cells, total in _report_tables(shown):
        heading = report.title(name, "nb")
        for cell, n in cells.items():
            writer.writerow((heading, report.label(name, cell, "nb"), n))
        writer.writerow((heading, "Sum", total))
    staff = shown["staff"]
    assert isinstance(staff, dict)
    writer.writerow(
        ("Ansatte", "Antall ansatte", staff["count"] if staff["count"] is not None else "")
    )
    writer.writerow(("Ansatte", "Årsverk", _nb_number(staff["fte"]) if staff["fte"] else ""))
    sys.stdout.buffer.write(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))
    sys.stdout.flush()


def _html(shown: dict[str, object], center: str | None) -> str:
    """A printable A4 report for the board, in Norwegian: the tables side by side."""
    from html import escape

    from vault import report

    parts = [
        "<!DOCTYPE html>",
        '<html lang="nb"><head><meta charset="utf-8">',
        f"<title>Årsrapport {shown['year']}</title>",
        "<style>@page{size:A4;margin:12mm}body{font:8pt sans-serif;margin:0}"
        "h1{font-size:13pt;margin:0 0 2mm}p{margin:0 0 3mm}"
        ".grid{columns:3;column-gap:5mm}"
        "table{border-collapse:collapse;width:100%;margin:0 0 3mm;break-inside:avoid}"
        "caption{text-align:left;font-weight:bold;padding:1mm 0}"
        "td{border-bottom:0.2mm solid #bbb;padding:0.3mm 1mm}td.n{text-align:right}"
        "tr.sum td{font-weight:bold}</style></head><body>",
        f"<h1>Årsrapport til Bufdir {shown['year']}{' – ' + escape(center) if center else ''}</h1>",
        "<p>Tall fra 1 til 4 vises som «:» (beskyttet), og noen større tall skjules også, "
        "slik at et lite tall ikke kan regnes ut fra de andre.</p>",
        '<div class="grid">',
    ]

    def table(caption: str, rows: list[tuple[str, object]], total: object = None) -> None:
        parts.append(f"<table><caption>{escape(caption)}</caption>")
        for label, n in rows:
            parts.append(f'<tr><td>{escape(label)}</td><td class="n">{escape(str(n))}</td></tr>')
        if total is not None:
            parts.append(
                f'<tr class="sum"><td>Sum</td><td class="n">{escape(str(total))}</td></tr>'
            )
        parts.append("</table>")

    table("Samtykker", [(label, shown[key]) for key, label in LABELS_NB])
    for name, cells, total in _report_tables(shown):
        rows = [(report.label(name, c, "nb"), n) for c, n in cells.items()]
        table(report.title(name, "nb"), rows, total)
    staff = shown["staff"]
    assert isinstance(staff, dict)
    table(
        "Ansatte",
        [
            ("Antall ansatte", staff["count"] if staff["count"] is not None else "–"),
            ("Årsverk", _nb_number(staff["fte"]) if staff["fte"] else "–"),
        ],
    )
    parts.append("</div></body></html>\n")
    return "\n".join(parts)


def _emit_csv(shown: dict[str, object]) -> None:
    import csv
    import sys

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(("figure", "value"))
    writer.writerows(_flat(shown))


def _emit_table(shown: dict[str, object]) -> None:
    typer.echo(render("Figures for {year}", year=shown["year"]))
    typer.echo("")
    output.emit_record([(label, shown[key]) for key, label in LABELS])
    for key, title, label in (
        ("contacts_by_kind", _("contacts by kind"), vocab.kind_shown),
        ("contacts_by_month", _("contacts by month"), str),
    ):
        values = shown[key]
        assert isinstance(values, dict)
        typer.echo("")
        typer.echo(title)
        output.emit_record([(f"  {label(k)}", v) for k, v in values.items()])
    from nokcli.i18n import LANGUAGE
    from vault import report

    for name, cells, total in _report_tables(shown):
        typer.echo("")
        typer.echo(report.title(name, LANGUAGE))
        rows = [(f"  {report.label(name, c, LANGUAGE)}", n) for c, n in cells.items()]
        output.emit_record([*rows, (f"  {_('total')}", total)])
    staff = shown["staff"]
    assert isinstance(staff, dict)
    typer.echo("")
    output.emit_record(
        [
            (_("staff (head count)"), staff["count"] if staff["count"] is not None else "-"),
            (_("staff (full-time equivalents)"), staff["fte"] or "-"),
            (_("erased consents whose figures were lost"), shown["erased_without_figures"]),
        ]
    )
