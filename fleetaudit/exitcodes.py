"""The process exit codes, defined once: the CLI exits with them, `policy.exit_code`
chooses among the audit's, and the README's table says the same.

Pure: no import beyond the standard library.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["EXIT_CONFIG", "EXIT_FINDINGS", "EXIT_INCOMPLETE", "EXIT_INTERRUPTED", "EXIT_OK",
           "ExitCode"]


class ExitCode(IntEnum):
    OK = 0  # audit complete; no active finding at or above --fail-on
    FINDINGS = 1  # an active finding at or above --fail-on (wins over INCOMPLETE: certain)
    CONFIG = 2  # usage or configuration error, or the report could not be written
    INCOMPLETE = 3  # some host could not be fully audited; the report says why
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


EXIT_OK = ExitCode.OK
EXIT_FINDINGS = ExitCode.FINDINGS
EXIT_CONFIG = ExitCode.CONFIG
EXIT_INCOMPLETE = ExitCode.INCOMPLETE
EXIT_INTERRUPTED = ExitCode.INTERRUPTED
