"""``kprod cluster``: the embedded cluster in the foreground (``kprod.cluster.main``).

Prints the bootstrap address as the first line of stdout, serves until
Ctrl-C or SIGTERM, then stops the brokers and exits 0. The command line is
checked first with the cluster's own parser, so a mistake is one line here
as in the other commands.
"""

from __future__ import annotations

from typing import NoReturn

from kprod.cli.errors import UsageError

__all__ = ["run"]


def run(argv: list[str], prog: str = "kprod cluster") -> int:
    """Run ``kprod cluster`` with ``argv``; returns the exit status."""
    from kprod.cluster.main import build_parser
    from kprod.cluster.main import run as run_cluster

    parser = build_parser(prog)

    def error(message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{prog} --help')")

    parser.error = error  # type: ignore[method-assign]
    parser.parse_args(argv)  # --help prints and exits here
    return run_cluster(argv, prog=prog)
