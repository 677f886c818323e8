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
) -> None:
    """Count the year's consents and contacts for the yearly report (e.g. to Bufdir).

    Only counts are printed, never an id or a name; counts from 1 to 4 show as <5 so
    that a small figure cannot point to a person. Contacts are counted by kind and by
    month. What was erased (withdrawn or expired consents and their notes) can no longer
    be counted in full: run the figures for a year early in the next. Recorded in the
    audit trail as a read of aggregate data (no consent ids).
    """
    from vault import stats as counting
    from vault.errors import BadInput

    if json_out and csv_out:
        raise BadInput("choose one of --json and --csv")
    context.use_reason(ctx, reason)
    with context.get(ctx).unlocked() as vault:
        figures = counting.year_figures(
            vault, year if year is not None else int(vault.today()[:4]), exact=exact
        )
    shown = figures.to_json(exact=exact)
    if json_out:
        output.emit_json(shown)
    elif csv_out:
        _emit_csv(shown)
    else:
        _emit_table(shown)
    if not exact:
        output.info("counts from 1 to 4 are shown as <5")


def _flat(shown: dict[str, object]) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in shown.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{sub}", n) for sub, n in value.items()]
        elif key != "exact":
            rows.append((key, value))
    return rows


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
