"""The printable consent declaration (samtykkeerklæring), in Norwegian or English.

The guidelines the centers follow ask for a *written* consent that names its purpose and
the data it covers, and for telling every user about the staff's duty of confidentiality
and its exceptions: the duty to inform child welfare (opplysningsplikt) and the duty to
avert serious crimes (avvergeplikt, straffeloven § 196). This module words all of that in
plain language and renders it as Markdown or as a self-contained HTML page made for
printing. It only builds text: writing it anywhere is the caller's choice.

A blank form leaves the purpose, the consent id and every category box empty; a form for a
registered consent fills in its id, purpose and categories, so the paper the person signs
and the vault say the same. Every value that does not come from this module (the center's
name, the purpose, categories) is escaped for the output format.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from vault.consents import SUGGESTED_CATEGORIES, Consent
from vault.errors import BadInput
from vault.session import Settings

LANGUAGES = ("nb", "en")
FORMATS = ("markdown", "html")


@dataclass(frozen=True)
class FormFields:
    """What varies between forms; None leaves a line to fill in by hand."""

    center_name: str | None
    retention_days: int
    under_16: bool = False
    consent_id: str | None = None
    purpose: str | None = None
    # None: a blank form, every suggested category with an empty box to tick.
    categories: tuple[str, ...] | None = None


def blank(settings: Settings, *, under_16: bool = False) -> FormFields:
    """A form to print before anything is registered."""
    return FormFields(settings.center_name, settings.retention_days, under_16=under_16)


def for_consent(settings: Settings, consent: Consent) -> FormFields:
    """The form of a registered consent: its id, purpose, categories and retention."""
    return FormFields(
        center_name=settings.center_name,
        retention_days=consent.retain_days or settings.retention_days,
        under_16=bool(consent.under_16),
        consent_id=consent.id,
        purpose=consent.purpose,
        categories=consent.categories,
    )


# -- the document, independent of the output format ----------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Lines:
    """Text kept line by line (the purpose as typed); empty: blank lines to write on."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[str, str], ...]  # (lead-in, text)


@dataclass(frozen=True)
class Boxes:
    items: tuple[tuple[bool, str], ...]  # (ticked, label)
    other: str | None = None  # label of a last, empty box with a line to write on


@dataclass(frozen=True)
class Fields:
    """Labelled lines to sign or fill in; a value is printed on its line."""

    items: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Keep:
    """Blocks printed on one page: a signature with the statement it signs, never the
    signature lines alone at the top of a page."""

    blocks: tuple[Heading | Para | Lines | Bullets | Boxes | Fields, ...]


Block = Heading | Para | Lines | Bullets | Boxes | Fields | Keep

# Category descriptions for the suggested categories (consents.SUGGESTED_CATEGORIES);
# any other category is printed as the staff typed it.
CATEGORY_TEXT: dict[str, dict[str, str]] = {
    "nb": {
        "contact": "Kontaktopplysninger (hvordan vi når deg)",
        "conversation-notes": "Korte notater fra samtalene",
        "safety": "Det vi trenger å vite for din sikkerhet",
        "health": "Opplysninger om helse som du selv forteller",
        "follow-up-plan": "Oppfølgingsplanen vi lager sammen",
        "next-of-kin": "Opplysninger om pårørende",
    },
    "en": {
        "contact": "Contact details (how we reach you)",
        "conversation-notes": "Short notes from our conversations",
        "safety": "What we need to know for your safety",
        "health": "Health information you tell us yourself",
        "follow-up-plan": "The follow-up plan we make together",
        "next-of-kin": "Information about next of kin",
    },
}

TEXT: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Samtykkeerklæring",
        "center": "Senter",
        "consent_id": "Samtykke-ID",
        "consent_id_blank": "Samtykke-ID (fylles ut av senteret)",
        "intro": (
            "Senteret vil gjerne skrive korte notater om kontakten med deg, slik at vi kan "
            "følge deg opp godt. Vi skriver bare ned det som trengs, og bare med ditt "
            "skriftlige samtykke. Det er frivillig å samtykke: du får den samme hjelpen om "
            "du sier nei. Grunnlaget for å lagre opplysningene er samtykket ditt "
            "(personvernforordningen artikkel 6 nr. 1 bokstav a og artikkel 9 nr. 2 "
            "bokstav a)."
        ),
        "purpose_h": "1. Hva opplysningene skal brukes til",
        "purpose": "Opplysningene brukes bare til dette:",
        "data_h": "2. Hvilke opplysninger vi skriver ned",
        "data_blank": "Kryss av for det du samtykker til at vi skriver ned:",
        "data_filled": (
            "Du samtykker til at vi skriver ned det som er krysset av, og ikke noe annet:"
        ),
        "other": "Annet",
        "keep_h": "3. Hvor lenge vi tar vare på dem",
        "keep": (
            "Notatene lagres kryptert. Bare kontaktpersonen din, ansatte som får tilgang "
            "fordi arbeidet med deg krever det (for eksempel når de er vikar for "
            "kontaktpersonen din), og senterets administratorer kan lese dem. De slettes for "
            "godt {period} etter siste kontakt med deg (eller etter at du skrev "
            "under, om vi ikke har hatt kontakt siden), eller straks du trekker samtykket "
            "tilbake."
        ),
        "days": "{days} dager",
        "year": "{days} dager ({years} år)",
        "years": "{days} dager ({years} år)",
        "withdraw_h": "4. Du kan trekke samtykket tilbake",
        "withdraw": (
            "Du kan når som helst trekke samtykket tilbake, uten å si hvorfor: si det til "
            "kontaktpersonen din, eller ring eller skriv til senteret. Det skal være like "
            "enkelt som å gi det. Da sletter vi for godt alt vi har skrevet ned om deg. Igjen "
            "blir bare en opplysning uten navn og innhold om at det fantes et samtykke, og "
            "når det ble trukket tilbake."
        ),
        "copy_h": "5. Du har rett til innsyn og kopi",
        "copy": (
            "Du har rett til å se alt vi har lagret om deg og til å få en kopi av det "
            "(personvernforordningen artikkel 15 og 20). Spør kontaktpersonen din; du får "
            "kopien så snart vi kan, og senest innen en måned. Mener du at vi behandler "
            "opplysningene dine feil, kan du klage til Datatilsynet."
        ),
        "duty_h": "6. Taushetsplikt, og når vi må si fra",
        "duty": (
            "Alle som arbeider ved senteret har taushetsplikt og har skrevet under på en "
            "taushetserklæring. Det du forteller oss, gir vi ikke videre uten at du "
            "samtykker. Loven gir likevel to unntak der vi må si fra, også uten ditt "
            "samtykke:"
        ),
        "duty_child_lead": "Opplysningsplikt til barnevernet",
        "duty_child": (
            "Er det grunn til å tro at et barn blir eller vil bli mishandlet, for eksempel "
            "utsatt for seksuelle overgrep, eller utsatt for alvorlig omsorgssvikt, må vi "
            "melde fra til barnevernstjenesten uten hinder av taushetsplikten "
            "(barnevernsloven § 13-2). Det gjelder barn du forteller om, også dine egne, og "
            "deg selv om du er under 18 år."
        ),
        "duty_avert_lead": "Avvergeplikt",
        "duty_avert": (
            "Får vi vite at et alvorlig lovbrudd, for eksempel seksuelle overgrep eller "
            "alvorlig vold, pågår eller vil skje, må vi prøve å hindre det eller følgene av "
            "det, ved å varsle politiet eller på annen måte, uten hinder av taushetsplikten "
            "(straffeloven § 196). Plikten gjelder så lenge det fortsatt er mulig å hindre."
        ),
        "duty_after": (
            "Så langt det er mulig snakker vi med deg først og forteller deg hva vi gjør. "
            "Spør gjerne om noe er uklart: den som tar imot samtykket, forklarer hva dette "
            "betyr for deg."
        ),
        "duty_told": (
            "Jeg har fått vite om taushetsplikten og unntakene fra den (opplysningsplikten "
            "til barnevernet og avvergeplikten)."
        ),
        "stats_h": "7. Statistikk til Bufdir (frivillig)",
        "stats": (
            "Hvert år sender senteret tall til Bufdir om dem som bruker sentrene. Vi vil "
            "gjerne ta med svarene dine på noen spørsmål, for eksempel alder, kjønn og hvem "
            "overgriperen var. Svarene blir lagt sammen med alle andres, og tallene kan "
            "ikke knyttes til deg. Du kan la være å svare på hvert enkelt spørsmål, og du "
            "kan trekke dette samtykket tilbake når du vil, uten at det får noe å si for "
            "hjelpen du får. Trekker du samtykket tilbake, sletter vi svarene dine; bare "
            "summene i årsstatistikken står igjen."
        ),
        "stats_yes": "Ja, svarene mine kan brukes i senterets statistikk til Bufdir.",
        "child_h": "8. Barn under 16 år",
        "child": (
            "Er barnet under 16 år, skal senteret som hovedregel informere foreldrene eller "
            "andre med foreldreansvar, og samtykket gis eller skrives under av en av dem "
            "sammen med barnet. Unntak: Vi informerer dem ikke når barnet er mellom 12 og 16 "
            "år og av grunner som bør respekteres ikke vil det, og heller ikke når "
            "tungtveiende hensyn til barnet taler mot det, for eksempel når den som har "
            "foreldreansvar kan være den som har utsatt barnet for overgrep "
            "(pasient- og brukerrettighetsloven § 3-4 andre og tredje ledd). Senteret er "
            "ikke en helsetjeneste, og det er ikke avklart at denne loven gjelder for oss; "
            "vi følger likevel hovedregelen og unntakene. Gjelder et av unntakene, gir barnet "
            "selv samtykket, og vi skriver ned her hvem som ga det og hvorfor foresatte ikke "
            "ble informert. Er "
            "barnet utsatt for overgrep, melder vi fra til barnevernstjenesten "
            "(barnevernsloven § 13-2)."
        ),
        "given_by_child": (
            "Barnet ga samtykket uten foresatte, og foresatte er ikke informert (unntaket over)"
        ),
        "not_informed_why": "Hvorfor foresatte ikke er informert",
        "guardian_name": "Foresattes navn",
        "guardian_relation": "Forhold til barnet",
        "guardian_sign": "Foresattes underskrift",
        "sign_h": "Underskrift",
        "sign": (
            "Jeg samtykker til at senteret skriver ned opplysningene som er krysset av over, "
            "til det formålet som står over."
        ),
        "place_date": "Sted og dato",
        "signature": "Underskrift",
        "print_name": "Navn med blokkbokstaver",
        "staff_h": "For senteret",
        "staff_name": "Ansatt som tok imot samtykket",
        "staff_sign": "Underskrift",
        "keep_note": (
            "Senteret oppbevarer det underskrevne skjemaet innelåst. Du kan få en kopi av det."
        ),
    },
    "en": {
        "title": "Consent declaration",
        "center": "Center",
        "consent_id": "Consent id",
        "consent_id_blank": "Consent id (filled in by the center)",
        "intro": (
            "The center would like to keep short notes about its contact with you, so that "
            "we can follow you up well. We write down only what is needed, and only with "
            "your written consent. Consent is voluntary: you get the same help if you say "
            "no. The legal basis for keeping the notes is your consent (GDPR Article 6(1)(a) "
            "and Article 9(2)(a))."
        ),
        "purpose_h": "1. What the notes are for",
        "purpose": "The notes are used for this only:",
        "data_h": "2. What we write down",
        "data_blank": "Tick what you consent to us writing down:",
        "data_filled": "You consent to us writing down what is ticked, and nothing else:",
        "other": "Other",
        "keep_h": "3. How long we keep them",
        "keep": (
            "The notes are stored encrypted. Only your contact person, staff given access "
            "because their work with you needs it (when covering for your contact person, "
            "for example), and the center's administrators can read them. They are erased "
            "for good {period} after our last contact with you (or after you signed, if we "
            "have had no contact since), or as soon as you withdraw your consent."
        ),
        "days": "{days} days",
        "year": "{days} days ({years} year)",
        "years": "{days} days ({years} years)",
        "withdraw_h": "4. You can withdraw your consent",
        "withdraw": (
            "You can withdraw your consent at any time, without saying why: tell your "
            "contact person, or call or write to the center. It is meant to be as easy as "
            "giving it. We then erase for good everything we have written about you. Only a "
            "record without your name or any content stays, saying that a consent existed "
            "and when it was withdrawn."
        ),
        "copy_h": "5. You have the right to see your data and get a copy",
        "copy": (
            "You have the right to see everything we keep about you and to get a copy of it "
            "(GDPR Articles 15 and 20). Ask your contact person; you get the copy as soon as "
            "we can make it, and within one month at the latest. If you think we handle your "
            "data wrongly, you can complain to the Norwegian Data Protection Authority "
            "(Datatilsynet)."
        ),
        "duty_h": "6. Confidentiality, and when we must tell someone",
        "duty": (
            "Everyone who works at the center has a duty of confidentiality and has signed "
            "a declaration of it. What you tell us, we do not pass on without your consent. "
            "The law still makes two exceptions where we must tell someone, even without "
            "your consent:"
        ),
        "duty_child_lead": "Duty to inform child welfare",
        "duty_child": (
            "If there is reason to believe that a child is being or will be abused, sexually "
            "abused for example, or seriously neglected, we must inform the child welfare "
            "service, whatever our duty of confidentiality (Child Welfare Act section 13-2). "
            "This applies to children you tell us about, your own among them, and to you if "
            "you are under 18."
        ),
        "duty_avert_lead": "Duty to avert serious crimes",
        "duty_avert": (
            "If we learn that a serious crime, such as sexual abuse or serious violence, is "
            "going on or will happen, we must try to prevent it or its consequences, by "
            "alerting the police or in another way, whatever our duty of confidentiality "
            "(Penal Code section 196). The duty applies as long as it is still possible to "
            "prevent it."
        ),
        "duty_after": (
            "As far as we can, we talk with you first and tell you what we do. Do ask if "
            "anything is unclear: the person who takes your consent explains what this "
            "means for you."
        ),
        "duty_told": (
            "I have been told about the duty of confidentiality and its exceptions (the duty "
            "to inform child welfare and the duty to avert serious crimes)."
        ),
        "stats_h": "7. Statistics for Bufdir (voluntary)",
        "stats": (
            "Each year the center sends Bufdir figures on who uses the centers. We would "
            "like to include your answers to a few questions, such as your age, gender and "
            "who the abuser was. Your answers are added together with everyone else's, and "
            "the figures cannot be linked to you. You may leave out any question, and you "
            "can withdraw this consent whenever you like, without it making any difference "
            "to the help you get. If you withdraw it, we erase your answers; only the sums "
            "in the yearly statistics remain."
        ),
        "stats_yes": "Yes, my answers may be used in the center's statistics for Bufdir.",
        "child_h": "8. Children under 16",
        "child": (
            "When the child is under 16, the center must as a rule inform the parents or "
            "others with parental responsibility, and the consent is given or signed by one "
            "of them together with the child. Exceptions: we do not inform them when the "
            "child is between 12 and 16 and, for reasons that should be respected, does not "
            "want it, nor when weighty concerns for the child speak against it, for example "
            "when the one with parental responsibility may be the one who abused the child "
            "(Patients' and Users' Rights Act section 3-4, second and third paragraphs). The "
            "center is not a health service, and whether that act applies to us is not "
            "settled; we follow its main rule and exceptions all the same. Where an exception "
            "applies, the child gives the consent, and we record here who gave it and why no "
            "guardian was informed. If the child is abused, we inform the child welfare "
            "service (Child Welfare Act section 13-2)."
        ),
        "given_by_child": (
            "The child gave the consent without a guardian, and no guardian was informed "
            "(the exception above)"
        ),
        "not_informed_why": "Why no guardian was informed",
        "guardian_name": "Guardian's name",
        "guardian_relation": "Relation to the child",
        "guardian_sign": "Guardian's signature",
        "sign_h": "Signature",
        "sign": (
            "I consent to the center writing down the data ticked above, for the purpose "
            "stated above."
        ),
        "place_date": "Place and date",
        "signature": "Signature",
        "print_name": "Name in capitals",
        "staff_h": "For the center",
        "staff_name": "Staff member who took the consent",
        "staff_sign": "Signature",
        "keep_note": "The center keeps the signed form locked away. You can have a copy of it.",
    },
}


def _period(days: int, t: dict[str, str]) -> str:
    if days % 365 == 0:
        years = days // 365
        return t["year" if years == 1 else "years"].format(days=days, years=years)
    return t["days"].format(days=days)


def _category_boxes(fields: FormFields, lang: str) -> Iterator[tuple[bool, str]]:
    names = CATEGORY_TEXT[lang]
    chosen = fields.categories or ()
    for code in SUGGESTED_CATEGORIES:
        yield code in chosen, f"{names[code]} ({code})"
    for code in chosen:
        if code not in names:
            yield True, code


def _consent_id_field(fields: FormFields, t: dict[str, str]) -> tuple[str, str | None]:
    if fields.consent_id:
        return (t["consent_id"], fields.consent_id)
    return (t["consent_id_blank"], None)


def document(fields: FormFields, lang: str) -> list[Block]:
    """The form as blocks of plain text (nothing escaped yet).

    Raises BadInput for a language not in LANGUAGES.
    """
    if lang not in LANGUAGES:
        raise BadInput(
            "unknown language {lang!r}; use one of: {choices}",
            lang=lang,
            choices=", ".join(LANGUAGES),
        )
    t = TEXT[lang]
    blocks: list[Block] = [
        Fields(((t["center"], fields.center_name),)),
        Fields((_consent_id_field(fields, t),)),
        Para(t["intro"]),
        Heading(t["purpose_h"]),
        Para(t["purpose"]),
        Lines(tuple(ln.strip() for ln in (fields.purpose or "").splitlines() if ln.strip())),
        Heading(t["data_h"]),
        Para(t["data_blank"] if fields.categories is None else t["data_filled"]),
        Boxes(
            tuple(_category_boxes(fields, lang)),
            other=t["other"] if fields.categories is None else None,
        ),
        Heading(t["keep_h"]),
        Para(t["keep"].format(period=_period(fields.retention_days, t))),
        Heading(t["withdraw_h"]),
        Para(t["withdraw"]),
        Heading(t["copy_h"]),
        Para(t["copy"]),
        Heading(t["duty_h"]),
        Para(t["duty"]),
        Bullets(((t["duty_child_lead"], t["duty_child"]), (t["duty_avert_lead"], t["duty_avert"]))),
        Para(t["duty_after"]),
        Boxes(((False, t["duty_told"]),)),
        # A consent of its own (vault.report's profile): ticked or not, it changes nothing
        # else on the form.
        Heading(t["stats_h"]),
        Para(t["stats"]),
        Boxes(((False, t["stats_yes"]),)),
    ]
    if fields.under_16:
        blocks += [
            Keep(
                (
                    Heading(t["child_h"]),
                    Para(t["child"]),
                    Fields(
                        (
                            (t["guardian_name"], None),
                            (t["guardian_relation"], None),
                            (t["guardian_sign"], None),
                        )
                    ),
                    # The exception recorded where it applies: who gave consent, and why
                    # no one with parental responsibility was told.
                    Boxes(((False, t["given_by_child"]),)),
                    Fields(((t["not_informed_why"], None),)),
                )
            )
        ]
    blocks += [
        Keep(
            (
                Heading(t["sign_h"]),
                Para(t["sign"], strong=True),
                # The page that is signed names the consent it signs.
                Fields((_consent_id_field(fields, t),)),
                Fields(((t["place_date"], None), (t["signature"], None), (t["print_name"], None))),
                Heading(t["staff_h"]),
                Fields(((t["staff_name"], None), (t["staff_sign"], None))),
            )
        ),
        Para(t["keep_note"]),
    ]
    return blocks


def render(fields: FormFields, *, lang: str = "nb", fmt: str = "markdown") -> str:
    """The form as Markdown or as a printable HTML page.

    Raises BadInput for an unknown language or format.
    """
    if fmt not in FORMATS:
        raise BadInput(
            "unknown format {fmt!r}; use one of: {choices}", fmt=fmt, choices=", ".join(FORMATS)
        )
    blocks = document(fields, lang)
    title = TEXT[lang]["title"]
    if fmt == "html":
        field = _consent_id_field(fields, TEXT[lang])
        return to_html(blocks, title=title, lang=lang, page_id=f"{field[0]}: {field[1] or ''}")
    return to_markdown(blocks, title=title)


# -- Markdown ------------------------------------------------------------------------------

BLANK_LINE = "_" * 40
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&!])")
_MD_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")


def md_escape(text: str) -> str:
    """Text that Markdown shows as typed inside a line: no emphasis, link or HTML from it."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_escape_line(text: str) -> str:
    """A whole line shown as typed: neither a heading, a list item nor a rule from it."""
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), md_escape(text))


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Keep):
        lines: list[str] = []
        for inner in block.blocks:
            lines += [*([""] if lines else []), *_md_block(inner)]
        return lines
    if isinstance(block, Heading):
        return ["#" * block.level + " " + md_escape(block.text)]
    if isinstance(block, Para):
        text = md_escape(block.text)
        return [f"**{text}**" if block.strong else text]
    if isinstance(block, Lines):
        if not block.lines:
            return [BLANK_LINE, "", BLANK_LINE, "", BLANK_LINE]
        # Two trailing spaces: a line break inside one paragraph.
        return ["  \n".join(md_escape_line(line) for line in block.lines)]
    if isinstance(block, Bullets):
        return [f"- **{md_escape(lead)}:** {md_escape(text)}" for lead, text in block.items]
    if isinstance(block, Boxes):
        lines = [f"- [{'x' if t else ' '}] {md_escape(label)}" for t, label in block.items]
        if block.other is not None:
            lines.append(f"- [ ] {md_escape(block.other)}: {BLANK_LINE}")
        return lines
    return _md_fields(block.items)


def _md_fields(items: Sequence[tuple[str, str | None]]) -> list[str]:
    out: list[str] = []
    for label, value in items:
        shown = f"**{md_escape(value)}**" if value else BLANK_LINE
        out += [f"{md_escape(label)}: {shown}", ""]
    return out[:-1]


def to_markdown(blocks: Sequence[Block], *, title: str) -> str:
    parts = [f"# {md_escape(title)}"]
    for block in blocks:
        parts += ["", *_md_block(block)]
    return "\n".join(parts) + "\n"


# -- HTML ----------------------------------------------------------------------------------

# Self-contained and inert: no script, no external resource (the CSP forbids both), so a
# value that slipped past escaping still could not run or call home. @page and
# break-inside keep it readable when printed or saved as PDF from a browser.
_CSS = """
@page { size: A4; margin: 18mm 20mm; }
body { font-family: "Source Sans 3", "Helvetica Neue", Arial, sans-serif; font-size: 11pt;
       line-height: 1.45; color: #000; max-width: 42em; margin: 2em auto; }
h1 { font-size: 18pt; margin: 0 0 0.6em; }
h2 { font-size: 12.5pt; margin: 1.3em 0 0.4em; break-after: avoid; }
p, ul, .field, .lines { break-inside: avoid; }
.keep { break-inside: avoid; }
.pageid { text-align: right; font-size: 9pt; }
@media print { .pageid { position: fixed; top: 0; right: 0; } }
ul.boxes { list-style: none; padding-left: 0; }
ul.boxes li { margin: 0.25em 0; }
.box { display: inline-block; width: 1.3em; font-size: 13pt; }
.field { display: flex; align-items: flex-end; gap: 0.6em; margin: 1.6em 0 0; }
.field .label { white-space: nowrap; }
.field .line { flex: 1; border-bottom: 1px solid #000; min-height: 1.3em; }
.lines .line { border-bottom: 1px solid #000; height: 1.9em; }
@media print { body { margin: 0; max-width: none; } }
""".strip()


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_block(block: Block) -> str:
    if isinstance(block, Keep):
        return '<div class="keep">' + "\n".join(_html_block(b) for b in block.blocks) + "</div>"
    if isinstance(block, Heading):
        return f"<h{block.level}>{_h(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        text = f"<strong>{_h(block.text)}</strong>" if block.strong else _h(block.text)
        return f"<p>{text}</p>"
    if isinstance(block, Lines):
        if not block.lines:
            return '<div class="lines">' + '<div class="line"></div>' * 3 + "</div>"
        return "<p>" + "<br>".join(_h(line) for line in block.lines) + "</p>"
    if isinstance(block, Bullets):
        items = "".join(
            f"<li><strong>{_h(lead)}:</strong> {_h(text)}</li>" for lead, text in block.items
        )
        return f"<ul>{items}</ul>"
    if isinstance(block, Boxes):
        items = "".join(
            f'<li><span class="box">{"☒" if ticked else "☐"}</span>{_h(label)}</li>'
            for ticked, label in block.items
        )
        if block.other is not None:
            items += (
                f'<li class="field"><span class="box">☐</span>'
                f'<span class="label">{_h(block.other)}:</span><span class="line"></span></li>'
            )
        return f'<ul class="boxes">{items}</ul>'
    return "".join(
        f'<div class="field"><span class="label">{_h(label)}:</span>'
        f'<span class="line">{_h(value) if value else ""}</span></div>'
        for label, value in block.items
    )


def to_html(blocks: Sequence[Block], *, title: str, lang: str, page_id: str = "") -> str:
    """``page_id`` (the consent's id) is repeated at the top of every printed page: a page
    that comes loose still says which consent it belongs to."""
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_h(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f"<title>{_h(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f'<div class="pageid">{_h(page_id)}</div>\n'
        f"<h1>{_h(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
