"""``nok consent``: register, list and show written consent declarations."""

import dataclasses
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nokcli import context, dates, output, reach, reasons, records, vocab
from nokcli.i18n import _, ngettext, notes_counted, render

if TYPE_CHECKING:
    from vault import erasure
    from vault.consents import ConsentInput
    from vault.form import FormFields
    from vault.session import Unlocked

app = typer.Typer(
    help=_("Written consent declarations: every note hangs off one."), no_args_is_help=True
)

JSON_HELP = _("Print the result as JSON.")
FIELD_NAMES = {"subject": _("subject"), "form_ref": _("form reference"), "guardian": _("guardian")}


class FormFormat(StrEnum):
    markdown = "markdown"
    html = "html"


class FormLang(StrEnum):
    nb = "nb"
    en = "en"


DUTIES_HELP = _(
    "The person was told of the duty of confidentiality and its exceptions (the duty to "
    "inform child welfare, the duty to avert serious crimes) when the form was signed: "
    "recorded with the date given. Without it nok asks on a terminal."
)
FORMAT_HELP = _("markdown, or html: a page to print or save as PDF from a browser.")
LANG_HELP = _("Language of the form: nb (Norwegian bokmål, the default) or en (English).")


def _asked(value: str | None, option: str, question: str) -> str:
    """``value``, else typed at the terminal (not in the process list or shell history)."""
    import sys

    from vault.errors import BadInput

    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise BadInput(
            "{option} is missing and there is no terminal to ask on; give it, or use "
            "'nok import FILE' in scripts (other users can see command-line arguments)",
            option=option,
        )
    answer: str = typer.prompt(question, err=True)
    return answer


def _confirm_past_deadline(given: str, until: str) -> None:
    """A consent registered already past its deadline is erased by the next purge."""
    import sys

    from vault.errors import BadInput

    if not sys.stdin.isatty():
        raise BadInput(
            "with --given {given} the retention deadline {until} has already passed, so the "
            "next purge would erase this consent; check --given and --retain-days, or pass "
            "--yes to register it anyway",
            given=given,
            until=until,
        )
    output.warn(
        "with --given {given} the retention deadline {until} has already passed; "
        "the next purge erases this consent and everything under it",
        given=given,
        until=until,
    )
    output.confirm(_("Register it anyway?"), declined="nothing was registered")


@app.command("add")
def add(
    ctx: typer.Context,
    category: Annotated[
        list[str],
        typer.Option(
            metavar="CATEGORY",
            help=_(
                "A data category the consent covers; repeat for each (e.g. conversation-notes)."
            ),
        ),
    ],
    subject: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help=_(
                "Alias of the person (as little as identifies them to you). Default: asked "
                "at the terminal. Given here, other users see it in the process list and it "
                "stays in your shell history."
            ),
            show_default=False,
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help=_(
                "What the notes are for, as in the signed form. Default: asked at the "
                "terminal. Given here, other users see it in the process list and it stays "
                "in your shell history."
            ),
            show_default=False,
        ),
    ] = None,
    under_16: Annotated[
        bool, typer.Option("--under-16", help=_("The person is under 16 (needs --guardian)."))
    ] = False,
    guardian: Annotated[
        str | None, typer.Option(help=_("Guardian who gave or co-signed the consent."))
    ] = None,
    form_ref: Annotated[
        str | None, typer.Option(help=_("Where the signed form is (binder, scan reference)."))
    ] = None,
    retain_days: Annotated[
        int | None,
        typer.Option(help=_("Retention in days for this consent instead of the vault default.")),
    ] = None,
    given: Annotated[
        str | None,
        typer.Option(
            help=_(
                "Date the form was signed: YYYY-MM-DD, today, yesterday or a weekday. "
                "Default: today."
            )
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help=_(
                "Register it even if --given puts its retention deadline in the past, or "
                "with a category close to a known one kept as the center's own."
            ),
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    print_form: Annotated[
        bool,
        typer.Option(
            "--print-form",
            help=_(
                "Print the consent form with this consent's id, purpose and categories filled "
                "in (instead of the bare id), so the signed paper and the vault match."
            ),
        ),
    ] = False,
    form_output: Annotated[
        Path | None,
        typer.Option(
            "--form-output",
            metavar="FILE",
            help=_("With --print-form: write the form to this new file (0600) instead."),
        ),
    ] = None,
    form_format: Annotated[
        FormFormat, typer.Option("--form-format", help=FORMAT_HELP)
    ] = FormFormat.markdown,
    form_lang: Annotated[FormLang, typer.Option("--form-lang", help=LANG_HELP)] = FormLang.nb,
    duties_told: Annotated[bool, typer.Option("--duties-told", help=DUTIES_HELP)] = False,
    contact: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help=_(
                "The contact person (a staff name), who with the admins may read it. Default: you."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Register a signed consent declaration; prints its id (or, with --print-form, its form).

    On a terminal nok asks whether the person was told of the duty of confidentiality and
    its exceptions, and records the answer with the date the form was signed; scripts
    pass --duties-told.
    """
    from vault import consents
    from vault.errors import BadInput

    print_form = print_form or form_output is not None
    if print_form and json_out and form_output is None:
        raise BadInput(
            "--print-form and --json both print to standard output; "
            "add --form-output FILE to write the form to a file"
        )
    _refuse_existing(form_output)

    output.exposed_option("--subject", subject)
    output.exposed_option("--purpose", purpose)
    state = context.get(ctx)
    data = consents.ConsentInput(
        subject=_asked(subject, "--subject", _("Alias of the person")),
        purpose=_asked(purpose, "--purpose", _("Purpose, as in the signed form")),
        categories=tuple(_category(c, yes=yes) for c in category),
        under_16=under_16,
        guardian=guardian,
        form_ref=form_ref,
        retain_days=retain_days,
        given=dates.resolve(given, state.now(), field="--given"),
        contact=contact,
    )
    data = dataclasses.replace(data, duties_told=_duties_told(duties_told, data, state))
    with state.unlocked() as vault:
        until = consents.first_deadline(vault, data)
        if not yes and until < vault.today():
            _confirm_past_deadline(data.given or "", until)
        consent = consents.add(vault, data)
        settings = vault.settings()
    if json_out:
        output.emit_json(
            {
                "id": consent.id,
                "retain_until": consent.retain_until,
                "duties_told": consent.duties_told,
            }
        )
    elif not print_form or form_output is not None:
        typer.echo(consent.id)
    output.info(
        "registered consent {id}; data kept until {until} unless renewed by new notes",
        id=consent.id,
        until=consent.retain_until,
    )
    if consent.duties_told is None:
        output.warn(
            "consent {id} does not record that the person was told of the duty of "
            "confidentiality and its exceptions; tell them at the next contact",
            id=consent.id,
        )
    if print_form:
        from vault import form as consent_form

        fields = consent_form.for_consent(settings, consent)
        _emit_form(fields, fmt=form_format, lang=form_lang, out=form_output)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[
        bool, typer.Option("--all", help=_("Include withdrawn and expired consents (tombstones)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    reason: reasons.ReasonOption = None,
) -> None:
    """List active consents (with --all, also the tombstones of ended ones).

    Those you may not open show their id, status and contact person only.
    """
    from vault import consents

    context.use_reason(ctx, reason)
    with context.get(ctx).unlocked() as vault:
        items = consents.list_all(vault, include_ended=all_)
        if json_out:
            output.emit_json_array(c.to_json() for c in items)
            return
        shown = output.emit_table((records.consent_row(c) for c in items), records.CONSENT_HEADERS)
    if not shown:
        output.info("no consents yet; register one with 'nok consent add'")


@app.command("show")
def show(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
    ],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    reason: reasons.ReasonOption = None,
) -> None:
    """Show one consent declaration (or its tombstone; only its id, status and contact
    person when you may not open it)."""
    from vault import consents

    context.use_reason(ctx, reason)
    state = context.get(ctx)
    with state.unlocked() as vault:
        consent = reasons.retry(state, vault, lambda: consents.show(vault, consent_id))
    if json_out:
        output.emit_json(consent.to_json())
        return
    output.emit_record(records.consent_pairs(consent))


def _category(typed: str, *, yes: bool) -> str:
    """The stored category for a typed one. A word a letter or two from a known category
    (samtalenotatr) is asked about at a terminal and refused in a script without --yes:
    a typo kept as a center's own category would not match the form the person signed.

    Raises BadInput: a near miss in a script."""
    import sys

    from vault.errors import BadInput

    value = vocab.category_value(typed)
    near = vocab.near_category(typed)
    if near is None or yes:
        return value
    known = vocab.category_shown(near)
    if not sys.stdin.isatty():
        raise BadInput(
            "the category {typed!r} is close to {known!r}: write --category {known}, or pass "
            "--yes to keep {typed!r} as a category of the center's own",
            typed=typed,
            known=known,
        )
    question = render(
        "Did you mean {known}? (no: {typed!r} is kept as a category of the center's own)",
        known=known,
        typed=typed,
    )
    return near if output.ask(question, default=True) else value


def _withdraw_question(vault: "Unlocked", preview: "erasure.Preview") -> str:
    """The question before a withdrawal, naming the person by her alias when this member
    may open the consent: the counselor confirms whom she erases, not an id."""
    from vault import consents
    from vault.errors import NokError

    try:
        alias = consents.show(vault, preview.consent_id).subject
    except NokError:
        alias = None
    if alias:
        template = ngettext(
            "Withdraw consent {id} for {alias} (given {given})? This erases its {notes} "
            "note, the personal details of the declaration and its key, for good. Only a "
            "tombstone without personal data stays.",
            "Withdraw consent {id} for {alias} (given {given})? This erases its {notes} "
            "notes, the personal details of the declaration and its key, for good. Only a "
            "tombstone without personal data stays.",
            preview.notes,
        )
    else:
        template = ngettext(
            "Withdraw consent {id} (given {given})? This erases its {notes} note, the "
            "personal details of the declaration and its key, for good. Only a tombstone "
            "without personal data stays.",
            "Withdraw consent {id} (given {given})? This erases its {notes} notes, the "
            "personal details of the declaration and its key, for good. Only a tombstone "
            "without personal data stays.",
            preview.notes,
        )
    return template.format(
        id=preview.consent_id,
        alias=output.safe(alias),
        given=preview.given,
        notes=preview.notes,
    )


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
    ],
    reason: Annotated[
        str,
        typer.Option(
            help=_(
                "Why: withdrawn (by the person; default), withdrawn-by-guardian, or "
                "registered-in-error. A fixed word only: the tombstone keeps no free text."
            )
        ),
    ] = "withdrawn",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Withdraw a consent: erase its notes, personal fields and data key for good.

    Only a tombstone stays (id, dates, reason, who recorded it) as proof that consent
    existed and was withdrawn. Asks first on a terminal; scripts pass --yes.
    """
    import sys

    from vault import erasure
    from vault.errors import BadInput, VaultBusy

    with context.get(ctx).unlocked() as vault:
        preview = erasure.preview(vault.vault, consent_id)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput(
                    "withdrawing consent {id} erases {notes} for good; pass --yes to confirm",
                    id=preview.consent_id,
                    notes=notes_counted(preview.notes),
                )
            output.confirm(_withdraw_question(vault, preview))
        result = erasure.withdraw(vault, preview.consent_id, reason=reason)
    e = result.erasure
    if json_out:
        output.emit_json(
            {
                "id": e.consent_id,
                "status": e.status,
                "ended": e.ended,
                "notes_erased": e.notes,
                "wal_clean": result.wal_clean,
                **result.copies.to_json(),
            }
        )
    else:
        output.info(
            "consent {id} withdrawn: {notes} and its personal data erased; a tombstone remains",
            id=e.consent_id,
            notes=notes_counted(e.notes),
        )
    reach.copies(result.copies)
    if not result.wal_clean:
        raise VaultBusy(
            "consent {id} is erased, but another process kept an old snapshot open, so erased "
            "pages may remain in the vault's -wal file until the next 'nok purge'",
            id=e.consent_id,
        )


@app.command("extend")
def extend(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
    ],
    days: Annotated[
        int,
        typer.Option(
            help=_(
                "Keep the data this many days longer (1-36500). The consent's retention "
                "period grows by N days: its deadline moves N days later now, and later "
                "notes keep counting the longer period."
            )
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Move a consent's retention deadline N days later (recorded in the audit trail).

    The deadline counts from the later of the date given and the last note. Extending
    adds N days to this consent's own retention period, so it no longer follows the
    vault-wide default ('nok settings set retention-days').
    """
    from vault import erasure

    with context.get(ctx).unlocked() as vault:
        ext = erasure.extend(vault, consent_id, days)
        today = vault.today()
    if json_out:
        output.emit_json(
            {
                "id": ext.consent_id,
                "retain_days": ext.retain_days,
                "old_retain_until": ext.old_until,
                "retain_until": ext.new_until,
            }
        )
    else:
        output.info(
            "consent {id}: data kept until {until} (was {old}); retention is now {days} days",
            id=ext.consent_id,
            until=ext.new_until,
            old=ext.old_until,
            days=ext.retain_days,
        )
    if ext.new_until < today:
        output.warn(
            "consent {id} is still past its deadline; the next 'nok purge' erases it",
            id=ext.consent_id,
        )


# -- the printable consent form (nok consent form; nok consent add --print-form) ---------

OUTPUT_HELP = _(
    "Write the form to this new file (created 0600; never replaces a file) instead of "
    "standard output."
)


@app.command("form")
def form(
    ctx: typer.Context,
    under_16: Annotated[
        bool,
        typer.Option("--under-16", help=_("Add the guardian's part, for a child under 16.")),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help=OUTPUT_HELP)
    ] = None,
    fmt: Annotated[FormFormat, typer.Option("--format", help=FORMAT_HELP)] = FormFormat.markdown,
    lang: Annotated[FormLang, typer.Option("--lang", help=LANG_HELP)] = FormLang.nb,
) -> None:
    """Print a blank consent declaration to fill in and sign (no passphrase needed).

    It names the center (setting center-name), the purpose and the data categories to
    tick, the retention period (setting retention-days), the right to withdraw and to a
    copy, and the duty of confidentiality with its exceptions (the duty to inform child
    welfare, the duty to avert serious crimes). After 'nok consent add', use --print-form
    there for a form with the consent's id, purpose and categories filled in.
    """
    from vault import form as consent_form

    with context.get(ctx).open() as vault:
        settings = vault.settings()
    fields = consent_form.blank(settings, under_16=under_16)
    _emit_form(fields, fmt=fmt, lang=lang, out=out)


def _refuse_existing(out: Path | None) -> None:
    from vault.errors import Conflict

    if out is not None and (out.exists() or out.is_symlink()):
        raise Conflict("{path} already exists; nothing was written", path=str(out))


def _emit_form(fields: "FormFields", *, fmt: FormFormat, lang: FormLang, out: Path | None) -> None:
    from vault import export
    from vault import form as consent_form

    text = consent_form.render(fields, lang=lang.value, fmt=fmt.value)
    if fields.center_name is None:
        output.warn(
            "the form has a blank line for the center's name; an admin sets it with "
            "'nok settings set center-name TEXT'"
        )
    if out is None:
        typer.echo(text, nl=False)
        return
    _refuse_existing(out)
    export.write_file(out, text, force=False)
    output.info("wrote the consent form to {path}", path=str(out))


@app.command("amend")
def amend(
    ctx: typer.Context,
    consent_id: Annotated[
        str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
    ],
    subject: Annotated[
        str | None, typer.Option(help=_("The corrected alias of the person."))
    ] = None,
    form_ref: Annotated[
        str | None,
        typer.Option(help=_("The corrected place of the signed form; an empty value removes it.")),
    ] = None,
    guardian: Annotated[
        str | None,
        typer.Option(help=_("The corrected guardian who gave or co-signed the consent.")),
    ] = None,
    contact: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help=_(
                "A new contact person (a staff name; its contact person or an admin). The "
                "former one keeps no access unless granted it."
            ),
            show_default=False,
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            help=_("Refused: a new purpose needs a new signed consent ('nok consent add').")
        ),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(
            help=_("Refused: other data categories need a new signed consent ('nok consent add').")
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Correct a consent's alias, form reference or guardian; the old values are erased.

    The purpose and data categories are what the person signed: a change there needs a new
    consent, and nok refuses it. Asks first at a terminal; scripts pass --yes.
    """
    import sys

    from vault import consents, corrections
    from vault.errors import BadInput, VaultBusy

    changes = {"subject": subject, "form_ref": form_ref, "guardian": guardian}
    categories = tuple(category) if category else None
    if contact is not None and not any(v is not None for v in changes.values()):
        _amend_contact(ctx, consent_id, contact, json_out=json_out)
        return
    corrections.check_consent_changes(**changes, purpose=purpose, categories=categories)
    output.exposed_option("--subject", subject)
    with context.get(ctx).unlocked() as vault:
        current = consents.show(vault, consent_id)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput(
                    "amending consent {id} erases the old values for good; pass --yes to confirm",
                    id=current.id,
                )
            output.confirm(
                render(
                    "Correct consent {id} ({fields})? The old values are erased for good.",
                    id=current.id,
                    fields=", ".join(FIELD_NAMES[k] for k, v in changes.items() if v is not None),
                )
            )
        result = corrections.amend_consent(
            vault,
            current.id,
            **changes,
            purpose=purpose,
            categories=categories,
        )
    if json_out:
        output.emit_json(
            {
                **result.consent.to_json(),
                "changed": list(result.changed),
                "wal_clean": result.wal_clean,
            }
        )
    else:
        output.info(
            "consent {id} corrected ({fields}); the old values are erased",
            id=result.consent.id,
            fields=", ".join(FIELD_NAMES[k] for k in result.changed),
        )
    if contact is not None:
        _amend_contact(ctx, result.consent.id, contact, json_out=False)
    if not result.wal_clean:
        raise VaultBusy(
            "consent {id} is corrected, but another process kept an old snapshot open, so the "
            "old values may remain in the vault's -wal file until the next 'nok purge'",
            id=result.consent.id,
        )


def _amend_contact(ctx: typer.Context, consent_id: str, name: str, *, json_out: bool) -> None:
    from vault import grants

    with context.get(ctx).unlocked() as vault:
        row = grants.set_contact(vault, consent_id, name)
    if json_out:
        output.emit_json({"id": row.id, "contact": row.contact})
        return
    output.info("consent {id}: {name} is its contact person now", id=row.id, name=name)


# -- the duties told (confidentiality and its exceptions), asked at consent add ----------


def _duties_told(flag: bool, data: "ConsentInput", state: context.Context) -> str | None:
    """The day the person was told of the duties: the day the form was signed, when the
    flag says so or the staff member answers yes on a terminal; else None."""
    import sys

    from vault.dates import DEFAULT_TIMEZONE, day

    told_on = data.given or day(state.now(), DEFAULT_TIMEZONE)
    if flag:
        return told_on
    if not sys.stdin.isatty():
        return None
    question = render(
        "Was the person told of the duty of confidentiality and its exceptions (the duty to "
        "inform child welfare, the duty to avert serious crimes)?"
    )
    return told_on if output.ask(question) else None


def _form() -> dict:  # type: ignore[type-arg]
    """The year's form as data (vault/forms/), read without loading the vault layers, so
    that ``--help`` can list the fields and their values."""
    import json
    from importlib import resources

    from vault.report_form import FORM_FILE

    loaded: dict = json.loads(  # type: ignore[type-arg]
        resources.files("vault").joinpath("forms", FORM_FILE).read_text("utf-8")
    )
    return loaded


def _profile(
    ctx: typer.Context,
    consent_id: str,
    agreed: str | None,
    remove: bool,
    json_out: bool,
    answers: dict[str, str | None],
) -> None:
    import sys

    from vault import report
    from vault.errors import BadInput

    given = {f: v for f, v in answers.items() if v is not None}
    if remove and given:
        raise BadInput("choose either --remove or the fields of the profile")
    if not remove and not given:
        if not sys.stdin.isatty():
            raise BadInput(
                "give the profile's fields as options (see nok consent profile --help), "
                "or run it at a terminal to be asked field by field"
            )
        given = _ask_profile()
    state = context.get(ctx)
    day = dates.resolve(agreed, state.now(), field="--agreed")
    with state.unlocked() as vault:
        profile = report.set_profile(vault, consent_id, None if remove else given, agreed=day)
    if json_out:
        output.emit_json(profile.to_json() if profile else None)
        return
    if profile is None:
        output.info("the statistics profile of {id} is removed", id=consent_id)
    else:
        output.info(
            "statistics profile of {id} recorded (consent to statistics given {date})",
            id=consent_id,
            date=profile.agreed,
        )


def _ask_profile() -> dict[str, str]:
    from nokcli.i18n import LANGUAGE

    form = _form()
    answers = {}
    for name, spec in form["profile"].items():
        values = [*spec["values"], "not-asked", "declined"]
        shown = ", ".join(values)
        answers[name] = typer.prompt(f"{spec[LANGUAGE]} ({shown})", default="not-asked", err=True)
    return answers


def _profile_command() -> None:
    """Registers ``nok consent profile`` with one option per field of the form."""
    import inspect

    from nokcli.i18n import LANGUAGE

    form = _form()
    fields = list(form["profile"])

    def profile(**kwargs: object) -> None:
        answers = {f: kwargs.pop(f.replace("-", "_")) for f in fields}
        _profile(
            kwargs["ctx"],  # type: ignore[arg-type]
            str(kwargs["consent_id"]),
            kwargs["agreed"],  # type: ignore[arg-type]
            bool(kwargs["remove"]),
            bool(kwargs["json_out"]),
            answers,  # type: ignore[arg-type]
        )

    P = inspect.Parameter
    params = [
        P("ctx", P.KEYWORD_ONLY, annotation=typer.Context),
        P(
            "consent_id",
            P.KEYWORD_ONLY,
            annotation=Annotated[
                str, typer.Argument(metavar="ID", help=_("Consent id, e.g. C-7K2M-9Q4F."))
            ],
        ),
    ]
    for name in fields:
        spec = form["profile"][name]
        values = ", ".join([*spec["values"], "not-asked", "declined"])
        params.append(
            P(
                name.replace("-", "_"),
                P.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    str | None,
                    typer.Option(
                        f"--{name}",
                        metavar="VALUE",
                        help=f"{spec[LANGUAGE]}: {values}",
                        show_default=False,
                    ),
                ],
            )
        )
    params += [
        P(
            "agreed",
            P.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    metavar="DATE",
                    help=_("The day the person agreed to statistics (YYYY-MM-DD). Default: today."),
                    show_default=False,
                ),
            ],
        ),
        P(
            "remove",
            P.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--remove",
                    help=_("The person withdrew her consent to statistics: remove the profile."),
                ),
            ],
        ),
        P(
            "json_out",
            P.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[bool, typer.Option("--json", help=JSON_HELP)],
        ),
    ]
    profile.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    # Built here, not a docstring in the source: _() makes it the command's help in the
    # user's language (the extractor finds the literal).
    profile.__doc__ = _(
        "Record the person's statistics profile for the yearly user form (Bufdir's form "
        "C), only with her separate consent to statistics (for a person under 16, given "
        "as the consent itself was). Asked field by field at a terminal; every field may "
        "be not-asked or declined (does not want to answer). Sealed with the consent and "
        "erased with it; its counts stay in the figures without her."
    )
    app.command("profile")(profile)


_profile_command()
