"""``nok key``: rotate the master key (and data keys), and set the key-slot cost."""

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nokcli import context, output
from nokcli.i18n import _, render

if TYPE_CHECKING:
    from vault.rotation import RotationResult
    from vault.session import Unlocked

app = typer.Typer(
    help=_("Keys: rotate the master key and data keys; set the key-slot cost (admins)."),
    no_args_is_help=True,
)

JSON_HELP = _("Print the result as JSON.")
DEFAULT_BATCH = 5000


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help=_(
                "Also give every consent a new data key and re-encrypt every consent and "
                "note (after a leak, or when someone left on bad terms). Runs in batches and "
                "can be resumed."
            ),
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help=_("Finish an unfinished rotation (after a crash).")),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    batch_notes: Annotated[
        int,
        typer.Option(
            "--batch-notes",
            min=1,
            help=_("Deep rotation: about this many notes per transaction."),
        ),
    ] = DEFAULT_BATCH,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Make a new master key (admins only); the old one is gone when this finishes.

    Every consent's data key and every staff slot is rewrapped in one transaction; staff
    keep their passphrases. With --deep, every personal field is also re-encrypted under
    new data keys. A rotation that was interrupted leaves a readable vault; finish it
    with --resume.
    """
    from vault.errors import BadInput

    if resume and deep:
        raise BadInput("use either --deep or --resume, not both")
    with context.get(ctx).unlocked() as vault:
        vault.require_admin("key rotation")
        if not resume and not yes:
            _confirm(deep)
        result = run_rotation(vault, deep=deep, resume=resume, batch_notes=batch_notes)
    report(result, json_out=json_out)


def _confirm(deep: bool) -> None:
    from vault.errors import BadInput

    if not sys.stdin.isatty():
        raise BadInput("rotating keys needs confirmation; pass --yes in scripts")
    if deep:
        question = _(
            "Rotate the master key and every data key, re-encrypting every consent and note? "
            "This can take a while; staff can keep working and keep their passphrases."
        )
    else:
        question = _(
            "Rotate the master key? Every consent key and staff slot is rewrapped at once; "
            "staff keep their passphrases."
        )
    output.confirm(question)


def run_rotation(
    vault: "Unlocked", *, deep: bool, resume: bool = False, batch_notes: int = DEFAULT_BATCH
) -> "RotationResult":
    """Rotate with a progress bar on a terminal; warns how to resume if interrupted."""
    from vault import rotation

    bar = _ProgressBar(show=sys.stderr.isatty())
    try:
        if resume:
            return rotation.resume(vault, progress=bar.update, batch_notes=batch_notes)
        return rotation.rotate(vault, deep=deep, progress=bar.update, batch_notes=batch_notes)
    except BaseException:
        # Only when this run got as far as re-encrypting: a refusal says why on its own.
        if bar.started and rotation.pending(vault.store) is not None:
            output.warn(
                "the deep rotation is unfinished; the vault stays readable. "
                "Finish it with 'nok key rotate --resume'"
            )
        raise
    finally:
        bar.close()


class _ProgressBar:
    """Feeds the library's ``progress(done, total)`` callback into a bar on stderr."""

    def __init__(self, *, show: bool) -> None:
        self.show = show
        self.started = False
        self.bar: Any = None
        self.shown = 0

    def update(self, done: int, total: int) -> None:
        self.started = True
        if not self.show:
            return
        if self.bar is None:
            self.bar = typer.progressbar(
                length=max(total, 1), label=_("re-encrypting"), file=sys.stderr
            )
            self.bar.__enter__()
        step = done - self.shown
        if step > 0:
            self.bar.update(step)
            self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def report(result: "RotationResult", *, json_out: bool) -> None:
    if json_out:
        output.emit_json(
            {
                "kind": result.kind,
                "master_key_version": result.master_version,
                "consents": result.consents,
                "notes": result.notes,
                "staff": result.staff,
                "resumed": result.resumed,
            }
        )
        return
    if result.kind == "deep":
        output.info(
            "master key now version {version}; {consents} consent(s) and {notes} note(s) "
            "re-encrypted under new data keys; the old keys decrypt nothing current",
            version=result.master_version,
            consents=result.consents,
            notes=result.notes,
        )
        return
    output.info(
        "master key now version {version}; {consents} consent key(s) and {staff} staff "
        "slot(s) rewrapped; the old master key decrypts nothing current",
        version=result.master_version,
        consents=result.consents,
        staff=result.staff,
    )


@app.command("kdf")
def kdf(
    ctx: typer.Context,
    profile: Annotated[
        str,
        typer.Argument(
            metavar="PROFILE",
            help=_("interactive, moderate or sensitive (Argon2id cost of each key slot)."),
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Set the minimum Argon2id cost of key slots (admins only).

    A slot below it is rewrapped with the new cost the next time its owner unlocks;
    slots are never lowered.
    """
    from vault import staff

    with context.get(ctx).unlocked() as vault:
        profile = staff.set_kdf_min(vault, profile)
    if json_out:
        output.emit_json({"kdf_min": profile})
        return
    output.info(
        "key slots below the {profile} profile are raised at their owner's next unlock; "
        "'nok staff list' shows each slot's cost",
        profile=profile,
    )


@app.command("status")
def status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the master key's version and age, and the rotations so far (no passphrase)."""
    from vault import rotation

    state = context.get(ctx)
    with state.open() as vault:
        info = rotation.key_info(vault, state.now())
    if json_out:
        output.emit_json(
            {
                "master_key_version": info.master_version,
                "master_key_created": info.master_created,
                "master_key_age_days": info.age_days,
                "data_keys_rotated": info.data_keys_rotated,
                "kdf_min": info.kdf_min,
                "rotation_pending": info.pending,
                "rotations": [_rotation_json(r) for r in info.rotations],
            }
        )
        return
    output.emit_record(
        [
            (_("master key version"), info.master_version),
            (_("master key created"), info.master_created),
            (_("master key age (days)"), info.age_days),
            (_("data keys last rotated"), info.data_keys_rotated or _("never")),
            (_("minimum slot cost"), info.kdf_min),
            (_("rotation pending"), info.pending or _("no")),
        ]
    )
    if info.rotations:
        typer.echo("")
        output.emit_table(
            [_rotation_row(r) for r in info.rotations],
            (_("version"), _("kind"), _("started"), _("finished"), _("by")),
        )
    if info.pending:
        output.warn("a key rotation is unfinished; finish it with 'nok key rotate --resume'")


def _rotation_json(r: Any) -> dict[str, Any]:
    return {
        "master_key_version": r.target_version,
        "kind": r.kind,
        "started": r.started,
        "finished": r.finished,
        "by": r.actor,
    }


def _rotation_row(r: Any) -> tuple[Any, ...]:
    finished = r.finished or render("unfinished ({done} records done)", done=r.done or 0)
    return (r.target_version, r.kind, r.started, finished, r.actor or "")
