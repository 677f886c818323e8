"""The root of the ``nok`` command line: global options, command groups, and the one place
where errors become a one-line message on stderr and a documented exit code."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from nokcli import coercion, helpfmt, output, usage
from nokcli.config import MAX_BUSY_TIMEOUT
from nokcli.context import Context
from nokcli.i18n import _, render, render_vault
from nokcli.main import quiet_stdout
from vault.errors import ExitCode, NokError
from vault.files import umask_for

# Each module defines ``app = typer.Typer()``; a name registers it as a group
# (``nok consent ...``), None merges its commands into the root (``nok init``).
COMMAND_MODULES: tuple[tuple[str, str | None], ...] = (
    ("init", None),
    ("status", None),
    ("consent", "consent"),
    ("note", "note"),
    ("purge", None),
    ("settings", "settings"),
    ("importer", None),
    ("staff", "staff"),
    ("passwd", None),
    ("key", "key"),
    ("audit", "audit"),
    ("verify", None),
    ("access", "access"),
    ("upgrade", None),
    ("export", None),
    ("backup", None),
    ("stats", None),
    ("contact", "contact"),
    ("activity", "activity"),
    ("shell", None),
    ("completion", None),
)


usage.install()
helpfmt.install()
coercion.install()


class NokGroup(TyperGroup):
    """Turns every error into ``nok: error: ...`` and an exit code; no tracebacks."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except typer.TyperException as exc:
            if not usage.is_usage_error(exc):
                raise
            raise typer.Exit(usage.report(exc)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NokError as exc:
            output.error(render_vault(exc.template, exc.params), _hint(exc))
            raise typer.Exit(exc.exit_code) from None
        except (KeyboardInterrupt, typer.Abort):
            # typer.Abort is Ctrl-C or end of input at a prompt.
            output.error(_("interrupted; the vault is unchanged by the unfinished step"))
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except BrokenPipeError:
            quiet_stdout()
            raise typer.Exit(ExitCode.BROKEN_PIPE) from None
        except typer.TyperException as exc:
            if not usage.is_usage_error(exc):
                raise
            raise typer.Exit(usage.report(exc)) from None
        except typer.Exit:
            raise
        except Exception as exc:
            _report_bug(exc)
            raise typer.Exit(ExitCode.INTERNAL) from None


def _report_bug(exc: Exception) -> None:
    if os.environ.get("NOK_DEBUG"):
        traceback.print_exception(exc)
    output.error(
        render("internal error ({kind}); this is a bug in nok", kind=type(exc).__name__),
        _("set NOK_DEBUG=1 to see where it happened (the output may show vault data)"),
    )


def _hint(exc: NokError) -> str | None:
    if exc.hint_template is None:
        return None
    return render_vault(exc.hint_template, exc.params)


app = typer.Typer(
    cls=NokGroup,
    name="nok",
    help=_("Consent-bound, encrypted journal notes for centers against incest and sexual abuse.")
    + "\n\n"
    + _(
        "The passphrase comes from a hidden prompt, --passphrase-file or NOK_PASSPHRASE, "
        "never from the command line."
    )
    + "\n\n"
    + _(
        "Configuration file: $XDG_CONFIG_HOME/nok/config.toml (else "
        "~/.config/nok/config.toml; NOK_CONFIG names another) for what a machine sets once: "
        'vault="FILE", user="NAME", busy_timeout=SECONDS. Options and environment '
        "variables win over it; passphrases never belong there."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    # Plain help and usage errors: rich's renderer costs ~70 ms per call, which would put
    # `nok --help` over its 150 ms budget (benchmarks/RESULTS.md).
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """nok's version (pyproject.toml takes it from ``vault.__version__``)."""
    from vault import __version__

    return __version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nok {version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    vault: Annotated[
        Path | None,
        typer.Option(
            "--vault",
            envvar="NOK_VAULT",
            help=_("Vault file. Default: $XDG_DATA_HOME/nok/vault.db (~/.local/share/nok)."),
            show_default=False,
        ),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="NOK_USER",
            help=_("Your staff name in the vault. Default: your login name."),
            show_default=False,
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            envvar="NOK_PASSPHRASE_FILE",
            help=_("Read the passphrase from the first line of this file (mode 0600)."),
            show_default=False,
        ),
    ] = None,
    busy_timeout: Annotated[
        float | None,
        typer.Option(
            "--busy-timeout",
            envvar="NOK_BUSY_TIMEOUT",
            min=0.0,
            max=MAX_BUSY_TIMEOUT,
            metavar="SECONDS",
            help=_(
                "Seconds to wait for another nok process before giving up (at most 86400). "
                "Default: 15."
            ),
            show_default=False,
        ),
    ] = None,
    job_credential: Annotated[
        Path | None,
        typer.Option(
            "--job-credential",
            envvar="NOK_JOB_CREDENTIAL",
            help=_(
                "The scheduled job's credential (nok key job-credential): lets nok purge and "
                "nok backup erase what is due without a staff passphrase."
            ),
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help=_("Print the version and exit.")
        ),
    ] = False,
) -> None:
    """Global options: which vault, as whom, with which passphrase file, how long to wait."""
    import resource

    from nokcli import editor

    os.umask(0o077)
    # A core dump of a crashed nok would hold keys and note text; Python cannot wipe memory.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    editor.wipe_leftovers()
    if isinstance(ctx.obj, Context):
        return  # a command typed in `nok shell`, which brings its session's Context
    ctx.obj = Context.build(vault, as_user, passphrase_file, busy_timeout, job_credential)
    # On a shared vault, what SQLite makes beside it must be the group's from the start.
    os.umask(umask_for(ctx.obj.vault_path))


def _translate_docstrings(sub: typer.Typer) -> None:
    """Typer shows a command's docstring as its help; show the catalogue's translation.
    (nokcli.i18n_tools extracts every command's docstring, cleaned as inspect.getdoc does.)"""
    for info in (*sub.registered_commands, sub.registered_callback):
        if info is not None and info.help is None and info.callback is not None:
            doc = inspect.getdoc(info.callback)
            if doc:
                info.help = _(doc)


_translate_docstrings(app)
for _module, _name in COMMAND_MODULES:
    _sub = importlib.import_module(f"commands.{_module}").app
    _translate_docstrings(_sub)
    if _name is None:
        app.add_typer(_sub)
    else:
        app.add_typer(_sub, name=_name)


def main() -> None:
    """Console-script entry point."""
    if os.environ.get("NOK_COMPLETE"):
        from nokcli import complete  # a tab press in bash, zsh or fish: `nok completion`

        complete.answer(typer.main.get_command(app))
        return
    try:
        app(prog_name="nok")
    except Exception as exc:
        # A bug before any command runs (reading the command line): the same one line.
        _report_bug(exc)
        sys.exit(ExitCode.INTERNAL)


if __name__ == "__main__":
    main()
