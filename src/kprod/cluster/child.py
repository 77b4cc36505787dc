"""The child side of the child-process mode: serve ``ClusterCore`` operations over a pipe.

Started by :class:`kprod.cluster.process.ProcessBackend` as
``python -m kprod.cluster.child --fd N``; not meant to be run by hand (use
``python -m kprod.cluster`` for a foreground cluster). It answers each
pickled ``(operation, args)`` with ``("ok", result)`` or
``("error", exception)`` and exits when the parent says stop or goes away.
"""

from __future__ import annotations

import argparse
import pickle
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from kprod.cluster.exceptions import ClusterError

__all__ = ["main"]


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return ClusterError(f"{type(exc).__name__}: {exc}")


def _serve(conn: Connection) -> None:
    from kprod.cluster.core import ClusterCore

    core: ClusterCore | None = None
    try:
        while True:
            try:
                name, args = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            try:
                if name == "start":
                    core = ClusterCore(**args[0])
                    result: Any = core.start()
                elif name == "stop":
                    conn.send(("ok", None))
                    return
                elif core is None:
                    raise ClusterError("The cluster has not started.")
                else:
                    result = core.invoke(name, *args)
            except BaseException as exc:
                conn.send(("error", _picklable(exc)))
                continue
            conn.send(("ok", result))
    finally:
        if core is not None:
            core.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kprod embedded cluster child process (internal)")
    parser.add_argument("--fd", type=int, required=True)
    options = parser.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group: the parent decides
    # when the cluster stops (or the pipe closes), not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(options.fd)
    try:
        _serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
