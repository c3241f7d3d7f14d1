"""The exit codes of the command line and the error that carries one to `main`."""

from __future__ import annotations

from collections.abc import Sequence

# Scripts branch on these, so they are part of the CLI's contract (see `surefoot --help`).
EXIT_OK = 0
EXIT_REFUSED = 1  # the control plane refused the request, or something unexpected failed
EXIT_USAGE = 2  # bad arguments or bad local input: nothing was sent
EXIT_UNREACHABLE = 3  # no control plane answered at the address
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class CliError(Exception):
    """An error reported as `error: <message>` on stderr, then the process exits with a code.

    `details` are extra lines printed after the message, indented; used only for the field
    violations of a refused definition, where one line cannot say which fields are wrong.
    """

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, details: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.details = list(details)


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)
