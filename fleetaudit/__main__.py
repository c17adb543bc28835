"""`python -m fleetaudit`, and the `fleetaudit` command: signals first, then the CLI.

The Ctrl-C/SIGTERM handlers are installed before the CLI (typer, rich, pydantic,
asyncssh: a second or more under load) is imported, so a signal at any moment ends the
run with exit code 130 and one line, never a traceback or a silent 143.
"""

from __future__ import annotations

import sys

from fleetaudit import interrupt

EXIT_INTERRUPTED = 130  # fleetaudit.exitcodes.ExitCode.INTERRUPTED, not imported: too early


def main() -> None:
    code: int | str | None = 0
    try:  # from the handlers' first instant: a signal right after install() is caught too
        interrupt.install()
        from fleetaudit.cli import app

        app(prog_name="fleetaudit")
    except interrupt.Interrupted:
        code = EXIT_INTERRUPTED
    except SystemExit as exc:  # how click ends every command
        code = exc.code
    interrupt.exiting()
    if interrupt.received() is not None:
        code = EXIT_INTERRUPTED  # asked to stop, even if the command got to its end
    if code == EXIT_INTERRUPTED:
        interrupt.say_interrupted()
    sys.exit(code)


if __name__ == "__main__":
    main()
