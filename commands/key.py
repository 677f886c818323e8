"""``nok key``: rotate the vault keys (and data keys), and set the key-slot cost."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nokcli import context, output
from nokcli.i18n import _, consents_counted, notes_counted, render

if TYPE_CHECKING:
    from vault.rotation import RotationResult
    from vault.session import Unlocked

app = typer.Typer(
    help=_("Keys: rotate the vault keys and data keys; set the key-slot cost (admins)."),
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
    """Make new vault keys (admins only): the admins', the team's and the job's.

    Every consent's admins', team and job wraps are rewrapped and the new keys sealed to
    each holder in one transaction; staff keep their passphrases. With --deep, every
    personal field is also re-encrypted under new data keys. A rotation that was
    interrupted leaves a readable vault; finish it with --resume.
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
            "Rotate the vault keys and every data key, re-encrypting every consent and note? "
            "This can take a while; staff can keep working and keep their passphrases."
        )
    else:
        question = _(
            "Rotate the vault keys? Every consent key is rewrapped and the new keys are "
            "sealed to each staff member at once; staff keep their passphrases."
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
            "vault keys now version {version}; {consents} and {notes} re-encrypted under new "
            "data keys; the old keys decrypt nothing current",
            version=result.master_version,
            consents=consents_counted(result.consents),
            notes=notes_counted(result.notes),
        )
        return
    output.info(
        "vault keys now version {version}; {consents} consent key(s) rewrapped and the new "
        "keys sealed to {staff} staff member(s); the old vault keys decrypt nothing current",
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
    """Show the vault keys' version and age, and the rotations so far (no passphrase)."""
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
            (_("vault key version"), info.master_version),
            (_("vault keys made"), info.master_created),
            (_("vault key age (days)"), info.age_days),
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


# -- trust: pins, the job's credential, the recovery key -----------------------------------

RECOVERY_FILE_HELP = _(
    "Read the recovery key from this file (0600) instead of asking for it at the terminal."
)


@app.command("accept")
def accept(
    ctx: typer.Context,
    recovery_file: Annotated[
        Path | None,
        typer.Option(
            "--recovery-file",
            metavar="FILE",
            help=_(
                "Accept the vault for everyone with the recovery key (after a real loss "
                "restored an older backup): a new epoch it signs, which every colleague's nok "
                "then accepts. Without it, only your own record is changed."
            ),
            show_default=False,
        ),
    ] = None,
    recovery: Annotated[
        bool, typer.Option("--recovery", help=_("As --recovery-file, but ask for the key."))
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=_("Do not ask for confirmation (for scripts)."))
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Accept the vault as it is now: after a restore or a vault made anew that nok refused
    because it is older than (or other than) the one you last used.

    Shows the vault's fingerprint and key version and asks first: compare the fingerprint
    with what an admin reads in 'nok status'. Your record of the vault is in your own
    state directory ($XDG_STATE_HOME/nok, else ~/.local/state/nok).
    """
    from vault import identity
    from vault import recovery as rec
    from vault.errors import BadInput
    from vault.session import Vault

    state = context.get(ctx)
    with Vault.open(state.vault_path, busy_timeout=state.busy_timeout, report=False) as vault:
        chain = vault.chain()
        fingerprint = identity.show_fingerprint(chain.root)
        if not yes:
            if not sys.stdin.isatty():
                raise BadInput("accepting a vault needs confirmation; pass --yes in scripts")
            output.info(
                "vault {id}: fingerprint {fingerprint}, key version {version}",
                id=chain.current.vault_id,
                fingerprint=fingerprint,
                version=chain.current.number,
            )
            output.confirm(_("Is this the fingerprint an admin gave you? Accept this vault?"))
        if recovery_file is not None or recovery:
            seed = read_recovery(recovery_file)
            epoch = rec.accept(vault, seed, now=state.now())
            version = epoch.number
        else:
            pin = rec.accept_here(vault)
            version = pin.epoch
    if json_out:
        output.emit_json({"fingerprint": fingerprint, "key_version": version})
        return
    output.info(
        "accepted: nok now takes key version {version} of this vault (fingerprint "
        "{fingerprint}) as the newest you know",
        version=version,
        fingerprint=fingerprint,
    )


def read_recovery(path: Path | None) -> bytes:
    """The recovery key from a private file, or typed at a hidden prompt."""
    import getpass

    from nokcli import passphrase
    from vault import identity
    from vault.errors import BadInput

    if path is not None:
        text = passphrase.read_file(path).decode("utf-8")
    else:
        if not sys.stdin.isatty():
            raise BadInput(
                "the recovery key is asked at a terminal; in scripts use --recovery-file"
            )
        text = getpass.getpass(_("Recovery key: "))
    return identity.read_recovery(text)


def check_recovery_out(out: Path | None) -> None:
    """Before a new recovery key is made: refuse where it could be neither shown nor
    written (as nok upgrade does). ``nok key recovery`` revokes the old key as it makes the
    new one, so a new key not delivered would leave the vault with one nobody holds."""
    from vault.errors import BadInput

    if out is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise BadInput(
                "a recovery key is shown only at a terminal; in scripts use --recovery-file"
            )
        return
    if out.exists() or out.is_symlink() or not out.parent.is_dir():
        raise BadInput(
            "{path} exists or its directory does not; give a new file for the recovery key",
            path=str(out),
        )


def show_recovery(seed: bytes, out: Path | None) -> None:
    """Show a new recovery key once and clear the screen, or write it to a new 0600 file."""
    from vault import identity
    from vault.errors import BadInput

    text = identity.show_recovery(seed)
    if out is not None:
        from vault import export

        export.write_file(out, text + "\n", force=False)
        output.info(
            "wrote the recovery key to {path} (0600): print it for the center's safe, then "
            "delete the file",
            path=str(out),
        )
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise BadInput("a recovery key is shown only at a terminal; in scripts use --recovery-file")
    sys.stderr.write(
        render(
            "The recovery key of this vault (write it down for the center's safe; it is "
            "shown once and nok keeps no copy):"
        )
        + "\n\n    "
        + text
        + "\n\n"
    )
    sys.stderr.flush()
    typer.prompt(_("Press Enter once it is written down"), default="", show_default=False, err=True)
    # Clear the screen and the scrollback, so the key is not left on screen.
    sys.stderr.write("\x1b[2J\x1b[3J\x1b[H")
    sys.stderr.flush()


@app.command("recovery")
def recovery(
    ctx: typer.Context,
    recovery_file: Annotated[
        Path | None,
        typer.Option(
            "--recovery-file",
            metavar="FILE",
            help=_("Write the new recovery key to this new file (0600) instead of the screen."),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Make a new recovery key and revoke the old one (admins only).

    The admin key, which the old recovery key could open, is replaced too. Store the new
    key in the center's safe and destroy the old one.
    """
    from vault import recovery as rec

    check_recovery_out(recovery_file)
    with context.get(ctx).unlocked() as vault:
        vault.require_admin("making a new recovery key")
        seed = rec.renew(vault)
    show_recovery(seed, recovery_file)
    if json_out:
        # The key itself never goes to standard output: only where it was written.
        output.emit_json(
            {"recovery_file": str(recovery_file) if recovery_file is not None else None}
        )
        return
    output.info("the old recovery key opens nothing current any more")


@app.command("recover")
def recover(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help=_("Who gets an admin slot (new or existing)."))
    ],
    recovery_file: Annotated[
        Path | None, typer.Option("--recovery-file", metavar="FILE", help=RECOVERY_FILE_HELP)
    ] = None,
    new_passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--new-passphrase-file",
            help=_("File with NAME's new passphrase (else asked twice at the terminal)."),
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """With the recovery key, give NAME an admin key slot: for when no admin is left (all
    left, or every admin passphrase is lost). Recorded in the audit trail."""
    from commands.passwd import ENV_NEW
    from nokcli import passphrase
    from vault import recovery as rec
    from vault.session import Vault

    state = context.get(ctx)
    seed = read_recovery(recovery_file)
    secret = passphrase.new(new_passphrase_file, who=name, env=ENV_NEW)
    with Vault.open(state.vault_path, busy_timeout=state.busy_timeout, report=False) as vault:
        unlocked = rec.readmit(vault, seed, name=name, passphrase=secret, now=state.now())
        role = unlocked.role
    if json_out:
        output.emit_json({"name": name, "role": role})
        return
    output.info(
        "{name} is an admin now and unlocks with her own passphrase; rotate the keys "
        "('nok key rotate') if the others may have kept theirs",
        name=name,
    )


@app.command("job-credential")
def job_credential(
    ctx: typer.Context,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help=_(
                "Write the credential to this new file (0600); give it to the job's user "
                "(chown) and keep it readable by that user only."
            ),
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help=_("The job's name in the audit trail."))
    ] = "purge",
    revoke: Annotated[
        bool,
        typer.Option("--revoke", help=_("Revoke the job NAME's credential instead of making one.")),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Make (or revoke) the credential the nightly purge runs with (admins only).

    With it, 'nok purge' and 'nok backup' erase what is due without a staff passphrase:
    the job checks each consent's signed state and signs its own entries. It opens no
    note and no consent, and it cannot sign as a staff member.
    """
    from vault import jobs
    from vault.errors import BadInput

    with context.get(ctx).unlocked() as vault:
        if revoke:
            jobs.revoke(vault, name)
            if json_out:
                output.emit_json({"name": name, "revoked": True})
            else:
                output.info("revoked the credential of the job {name}", name=name)
            return
        if output_file is None:
            raise BadInput("give --output FILE: a credential is a secret and never printed")
        if output_file.exists() or output_file.is_symlink():
            raise BadInput(
                "{path} exists already; nok never replaces a file", path=str(output_file)
            )
        credential = jobs.issue(vault, name)
    jobs.write(output_file, credential)
    if json_out:
        output.emit_json({"name": credential.name, "path": str(output_file)})
        return
    output.info(
        "wrote the credential of the job {name} to {path} (0600); examples/ shows how the "
        "nightly purge uses it",
        name=credential.name,
        path=str(output_file),
    )
