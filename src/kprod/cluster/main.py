"""``python -m kprod.cluster`` / ``kprod cluster``: run an embedded cluster in the foreground.

Prints the bootstrap address as the first line of standard output (so a
script can read it), serves until Ctrl-C or SIGTERM, then stops the brokers
and exits 0. ``run(argv)`` is what the ``kprod cluster`` command calls.

With ``--security-protocol`` other than PLAINTEXT the following lines are the
client settings (Java keys, ``key=value``) ending with an empty line; the CA
(and for mTLS the client's key and certificate) go to files, and passwords
are never printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

from kprod.cluster.embedded import EmbeddedCluster
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.security import SECURITY_PROTOCOLS, redacted

__all__ = ["build_parser", "run"]


def _write(path: str, data: str) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(data)
    except OSError as exc:
        raise ClusterError(f"Cannot write {path}: {exc.strerror or exc}. Give --ca-file a writable path.") from None


def _print_client_settings(cluster: EmbeddedCluster, user: str | None, ca_file: str | None) -> str | None:
    """The Java-style client settings, one ``key=value`` a line, then an empty line.

    Certificates and keys go to files named by the settings; the password is
    shown as a placeholder (the user typed it, and output ends up in logs).
    Returns the temporary directory made for the files, if one was.
    """
    settings = cluster.client_config(user)
    made = None
    if not ca_file and settings["security.protocol"] in ("SSL", "SASL_SSL"):
        made = tempfile.mkdtemp(prefix="kprod-cluster-")
    directory = made or os.path.dirname(ca_file or "")
    if "ssl.truststore.certificates" in settings:
        path = ca_file or os.path.join(directory, "ca.pem")
        _write(path, settings.pop("ssl.truststore.certificates"))
        settings["ssl.truststore.location"] = path
    if "ssl.keystore.key" in settings:
        path = os.path.join(directory or ".", "client.pem")
        _write(path, settings.pop("ssl.keystore.key") + settings.pop("ssl.keystore.certificate.chain"))
        settings["ssl.keystore.location"] = path
    for key, value in redacted(settings).items():
        print(f"{key}={value}")
    print(flush=True)
    return made


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _topic(text: str) -> tuple[str, int, int]:
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"expected NAME[:PARTITIONS[:REPLICATION_FACTOR]], got {text!r}")
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        raise argparse.ArgumentTypeError(f"partitions and replication factor must be integers in {text!r}") from None
    partitions = numbers[0] if numbers else 1
    replication = numbers[1] if len(numbers) > 1 else 1
    return parts[0], partitions, replication


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD")  # never echo the password back
    return name, password


def build_parser(prog: str = "python -m kprod.cluster") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run kprod's embedded Kafka-protocol cluster in the foreground: a development and test"
            " tool, not a production broker. Prints the bootstrap address, stops on Ctrl-C."
        ),
    )
    parser.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    parser.add_argument(
        "--port", type=int, default=0, help="port of broker 0; the others follow (default: free ports)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    parser.add_argument(
        "--config",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="Kafka broker setting, e.g. num.partitions=6 or min.insync.replicas=2 (repeatable)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        type=_topic,
        default=[],
        metavar="NAME[:PARTITIONS[:RF]]",
        help="create a topic at start (repeatable)",
    )
    security = parser.add_argument_group("security (test certificates and users; not a production setup)")
    security.add_argument(
        "--security-protocol",
        default="PLAINTEXT",
        type=str.upper,
        choices=SECURITY_PROTOCOLS,
        help="listener protocol (default PLAINTEXT); SSL and SASL_SSL make a throw-away CA",
    )
    security.add_argument(
        "--sasl-mechanism",
        action="append",
        default=[],
        metavar="MECHANISM",
        help="enable PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (repeatable or comma-separated;"
        " default PLAIN and both SCRAMs)",
    )
    security.add_argument(
        "--user", action="append", type=_user, default=[], metavar="NAME:PASSWORD", help="a SASL user (repeatable)"
    )
    security.add_argument(
        "--ssl-client-auth",
        choices=("none", "requested", "required"),
        default=None,
        help="ask SSL clients for a certificate signed by the cluster's CA (mTLS)",
    )
    security.add_argument(
        "--ca-file", default=None, metavar="PATH", help="where to write the CA certificate (default: a new temp dir)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level of the brokers (default WARNING)")
    return parser


def run(argv: Sequence[str] | None = None, *, prog: str = "python -m kprod.cluster") -> int:
    """Parse ``argv``, serve until interrupted; returns the exit status."""
    options = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=options.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        mechanisms = [m.strip() for text in options.sasl_mechanism for m in text.split(",") if m.strip()]
        cluster = EmbeddedCluster(
            options.brokers,
            port=options.port or None,
            host=options.host,
            config=dict(options.config),
            security_protocol=options.security_protocol,
            sasl_mechanisms=mechanisms or None,
            users=dict(options.user) or None,
            ssl_client_auth=options.ssl_client_auth,
        )
        cluster.start()
    except ClusterError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    made: str | None = None

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
    try:
        for name, partitions, replication in options.topic:
            cluster.create_topic(name, partitions, replication)
        print(cluster.bootstrap_servers, flush=True)
        if cluster.security_protocol != "PLAINTEXT":
            made = _print_client_settings(cluster, options.user[0][0] if options.user else None, options.ca_file)
        print(
            f"kprod embedded cluster: {options.brokers} brokers on {cluster.bootstrap_servers}"
            f" ({options.security_protocol}). A development and test tool, NOT a production broker:"
            " data lives in memory and is lost on exit. Press Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            pass
    except ClusterError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    finally:
        cluster.stop()
        if made is not None:  # the CA and client key files die with the cluster
            shutil.rmtree(made, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("kprod embedded cluster stopped.", file=sys.stderr, flush=True)
    return 0
