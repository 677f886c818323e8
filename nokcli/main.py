"""The console script ``nok``.

Two answers need no command tree, and come before Typer and the commands are imported
(that import is most of nok's start-up): ``nok --version`` and ``nok completion SHELL``
(run once per new shell by ``source <(nok completion bash)``). Everything else, and any
other spelling of these, goes to the Typer application (nokcli.app).
"""

import contextlib
import os
import sys


def main() -> None:
    """Console-script entry point."""
    args = sys.argv[1:]
    if not os.environ.get("NOK_COMPLETE"):
        if args == ["--version"]:
            from vault import __version__

            _print(f"nok {__version__}\n")
            return
        if len(args) == 2 and args[0] == "completion":
            from nokcli.shells import SCRIPTS

            if args[1] in SCRIPTS:
                _print(SCRIPTS[args[1]])
                return
    from nokcli.app import main as run

    run()


def _print(text: str) -> None:
    """Write ``text`` to standard output, as the Typer application would: a closed
    reader is a quiet exit 141, any other failure one line and exit 12."""
    from vault.errors import ExitCode

    if sys.stdout is None:  # started with standard output closed: nowhere to write
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()
        sys.exit(ExitCode.BROKEN_PIPE)
    except OSError as exc:
        from nokcli import output
        from nokcli.i18n import render

        quiet_stdout()
        output.error(render("cannot write to standard output: {reason}", reason=exc.strerror))
        sys.exit(ExitCode.STORAGE)


def quiet_stdout() -> None:
    """The reader of stdout left (``nok note list | head``): like any Unix tool, stop
    quietly, and keep Python's own flush at exit from failing on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    main()
