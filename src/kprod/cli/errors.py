"""The two ways a command ends early: bad usage (exit 2) and a failed run (exit 1).

Commands raise these with a finished one-line message; ``kprod.cli.main``
prints it as ``kprod <command>: error: <message>`` and never a traceback.
"""

from __future__ import annotations

__all__ = ["CliError", "UsageError", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class CliError(Exception):
    """The run could not go on (unreachable cluster, unknown topic...): exit status 1."""

    status = EXIT_FAILED


class UsageError(CliError):
    """The command line or a setting is wrong (unknown option, bad number, bad property): exit status 2."""

    status = EXIT_USAGE
