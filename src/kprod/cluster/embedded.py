"""``EmbeddedCluster``: a multi-broker Kafka-protocol cluster for development and tests.

It is a development and test tool, NOT a production broker: logs live in
memory (bounded per partition), there are no transactions or ACLs, its TLS
certificates are throw-away test ones, and records are checked by batch header
and CRC only. For production use Apache Kafka.
"""

from __future__ import annotations

import pickle
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from kprod.cluster.core import ClusterCore
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.groups import GroupInfo
from kprod.cluster.hooks import Hook, HookInfo
from kprod.cluster.info import BrokerInfo, LoggedBatch, PartitionInfo, Record
from kprod.cluster.process import ProcessBackend
from kprod.cluster.sasl_server import Authentication, TokenValidator
from kprod.cluster.security import TlsAuthority, client_config, client_ssl_context, parse_security

__all__ = ["EmbeddedCluster"]


class EmbeddedCluster:
    """N brokers on loopback speaking the Kafka protocol, with faults on demand.

    A development and test tool, not a production broker (see the module
    docstring). Usable as a context manager::

        with EmbeddedCluster(brokers=3) as cluster:
            cluster.create_topic("t", partitions=6, replication_factor=3,
                                 config={"min.insync.replicas": "2"})
            producer = Producer({"bootstrap.servers": cluster.bootstrap_servers})
            ...
            cluster.stop_broker(cluster.leader("t", 0))

    Brokers have node ids 0..N-1 and listen on free ports unless ``port`` (the
    first broker's; the others follow consecutively) or ``ports`` (one per
    broker) is given. ``config`` takes Kafka broker keys:
    ``auto.create.topics.enable`` (true), ``num.partitions`` (1),
    ``default.replication.factor`` (1), ``min.insync.replicas`` (1),
    ``message.max.bytes`` (1048588), ``log.message.timestamp.type``
    (CreateTime) and ``log.retention.bytes`` (64 MiB per partition; -1 for no
    bound).

    With ``process=True`` the brokers run in a child Python process with the
    same API, so they do not compete with the application for the GIL.

    Security: ``security_protocol`` is PLAINTEXT (default), SSL, SASL_PLAINTEXT
    or SASL_SSL. TLS listeners get a throw-away CA and broker certificate
    (``ca_pem``; needs ``kprod[tls]``); ``ssl_client_auth="required"`` (or
    ``"requested"``) asks clients for a certificate signed by that CA (mTLS).
    SASL listeners enable ``sasl_mechanisms`` (PLAIN, SCRAM-SHA-256,
    SCRAM-SHA-512, OAUTHBEARER; default the first three) for ``users``
    ({name: password}); OAUTHBEARER tokens are checked by
    ``oauthbearer_validator(token)`` returning the principal (or principal and
    expiry in epoch seconds) or raising, by default an unsecured JWT's ``sub``
    and ``exp``. ``config={"connections.max.reauth.ms": N}`` sets a SASL
    session lifetime. ``client_config(user=...)`` gives the client settings.
    """

    def __init__(
        self,
        brokers: int = 3,
        *,
        port: int | None = None,
        ports: Sequence[int] | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, Any] | None = None,
        process: bool = False,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanisms: Sequence[str] | None = None,
        users: Mapping[str, str] | None = None,
        ssl_client_auth: str | None = None,
        oauthbearer_validator: TokenValidator | None = None,
    ) -> None:
        if port is not None and ports is not None:
            raise ClusterError("Give either port (the first broker's) or ports (one per broker), not both.")
        if port is not None:
            if not isinstance(port, int) or not 0 < port <= 65535 - brokers + 1:
                raise ClusterError(f"port {port!r} must leave room for {brokers} consecutive ports below 65536.")
            ports = [port + n for n in range(brokers)]
        security = parse_security(security_protocol, sasl_mechanisms, users, ssl_client_auth, oauthbearer_validator)
        if process and oauthbearer_validator is not None:
            try:
                pickle.dumps(oauthbearer_validator)
            except Exception:
                raise ClusterError(
                    "With process=True the oauthbearer_validator must be picklable (a module-level"
                    " function), because it runs in the child process."
                ) from None
        self._authority: TlsAuthority | None = None
        if security.tls:
            self._authority = TlsAuthority(host)
            security = replace(
                security,
                ca_pem=self._authority.ca_pem,
                cert_chain_pem=self._authority.cert_chain_pem,
                key_pem=self._authority.key_pem,
            )
        self._security = security
        self._options: dict[str, Any] = {
            "brokers": brokers,
            "ports": list(ports) if ports is not None else None,
            "host": host,
            "config": dict(config) if config is not None else None,
            "security": security,
        }
        self.process = process
        self._backend: ClusterCore | ProcessBackend | None = None
        self._brokers: list[BrokerInfo] = []
        ClusterCore(**self._options)  # check the arguments now rather than at start() (binds nothing)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmbeddedCluster:
        """Bind every broker and start serving (``with`` does this for you)."""
        if self._backend is not None:
            raise ClusterError("The embedded cluster is already started.")
        if self.process:
            process = ProcessBackend(self._options)
            self._brokers = process.brokers
            self._backend = process
        else:
            core = ClusterCore(**self._options)
            self._brokers = core.start()
            self._backend = core
        return self

    def stop(self) -> None:
        """Stop every broker and release every port (idempotent)."""
        backend, self._backend = self._backend, None
        if isinstance(backend, ClusterCore):
            backend.stop()
        elif backend is not None:
            backend.close()

    close = stop

    def __enter__(self) -> EmbeddedCluster:
        return self if self._backend is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, name: str, *args: Any) -> Any:
        backend = self._backend
        if backend is None:
            raise ClusterError("The embedded cluster is not started: use it as a context manager or call start().")
        return backend.invoke(name, *args)

    # -- addresses ----------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT,127.0.0.1:PORT,..."``: every broker, running or not."""
        if not self._brokers:
            raise ClusterError("The embedded cluster is not started, so its ports are not known yet.")
        return ",".join(b.address for b in self._brokers)

    # -- security ---------------------------------------------------------------------------------

    @property
    def security_protocol(self) -> str:
        return self._security.protocol

    @property
    def ca_pem(self) -> str:
        """The PEM certificate of the cluster's throw-away CA (SSL and SASL_SSL listeners)."""
        if self._authority is None:
            raise ClusterError(f"This cluster is {self._security.protocol}: it has no CA (use SSL or SASL_SSL).")
        return self._authority.ca_pem.decode("ascii")

    def client_config(
        self, user: str | None = None, *, mechanism: str | None = None, style: str = "java"
    ) -> dict[str, str]:
        """The settings a client needs to connect as ``user`` (the only user if not given).

        ``style="java"`` gives the Java client's keys, which kprod takes:
        ``bootstrap.servers``, ``security.protocol``, ``sasl.mechanism`` and
        ``sasl.jaas.config``, ``ssl.truststore.type=PEM`` with
        ``ssl.truststore.certificates``, and a PEM keystore for mTLS.
        ``style="librdkafka"`` gives confluent-kafka's keys (``sasl.username``,
        ``ssl.ca.pem``, ...). ``mechanism`` picks one of the enabled SASL
        mechanisms (default the first). The result holds the password and
        keys: do not log it.
        """
        return client_config(self._security, self._authority, self.bootstrap_servers, user, mechanism, style)

    def authentications(self) -> list[Authentication]:
        """Every successful SASL authentication so far, oldest first: principal, mechanism,
        and whether it re-authenticated a connection (KIP-368)."""
        return self._call("authentications")  # type: ignore[no-any-return]

    def ssl_context(self, user: str | None = None) -> ssl.SSLContext:
        """A client ``ssl.SSLContext`` trusting the cluster's CA, with a client certificate
        for ``user`` when the cluster asks for one (for kafka-python, aiokafka, ...)."""
        if self._authority is None:
            raise ClusterError(f"This cluster is {self._security.protocol}: it has no TLS (use SSL or SASL_SSL).")
        return client_ssl_context(self._authority, user, self._security.client_auth)

    @property
    def brokers(self) -> list[BrokerInfo]:
        """Every broker with its node id, address and whether it is running."""
        return self._call("brokers")  # type: ignore[no-any-return]

    # -- topics ----------------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        assignments: Mapping[int, Sequence[int]] | None = None,
    ) -> None:
        """Create a topic. ``config`` takes Kafka topic keys: ``min.insync.replicas``,
        ``max.message.bytes``, ``message.timestamp.type`` (CreateTime or LogAppendTime),
        ``retention.bytes``. ``assignments`` ({partition: [node ids]}, leader first)
        replaces ``partitions`` and ``replication_factor``."""
        self._call("create_topic", name, partitions, replication_factor, dict(config or {}), assignments)

    def delete_topic(self, name: str) -> None:
        self._call("delete_topic", name)

    def compact(self, topic: str) -> int:
        """Run the log cleaner on a ``cleanup.policy=compact`` topic now: every partition keeps
        only the last record of each key (offsets keep their gaps). Returns the records removed."""
        return self._call("compact", topic)  # type: ignore[no-any-return]

    def topic_config(self, topic: str) -> dict[str, str]:
        """Every setting of a topic as DescribeConfigs reports it (key -> value)."""
        return self._call("topic_config", topic)  # type: ignore[no-any-return]

    def topics(self) -> list[str]:
        return self._call("topics")  # type: ignore[no-any-return]

    def partition_info(self, topic: str, partition: int) -> PartitionInfo:
        """Leader, leader epoch, replicas, ISR and log bounds of one partition."""
        return self._call("partition_info", topic, partition)  # type: ignore[no-any-return]

    def leader(self, topic: str, partition: int) -> int:
        """Node id of the partition's leader (-1 while the partition is offline)."""
        return self.partition_info(topic, partition).leader

    def isr(self, topic: str, partition: int) -> list[int]:
        """Node ids of the partition's in-sync replicas, in assignment order."""
        return list(self.partition_info(topic, partition).isr)

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next record appended to the partition will get."""
        return self.partition_info(topic, partition).end_offset

    def partition_log(self, topic: str, partition: int) -> list[LoggedBatch]:
        """Every retained batch of the partition, oldest first, with decoded records."""
        return self._call("partition_log", topic, partition)  # type: ignore[no-any-return]

    def records(self, topic: str, partition: int) -> list[Record]:
        """Every retained record of the partition in offset order."""
        return [record for batch in self.partition_log(topic, partition) for record in batch.records]

    # -- brokers and leadership ----------------------------------------------------------------

    def stop_broker(self, node_id: int) -> None:
        """Stop a broker: its port refuses connections, its clients are cut off, it leaves
        every ISR, and the partitions it led elect the next in-sync replica."""
        self._call("stop_broker", node_id)

    def start_broker(self, node_id: int) -> None:
        """Restart a stopped broker on the same port; its replicas catch up and rejoin the ISR."""
        self._call("start_broker", node_id)

    def move_leader(self, topic: str, partition: int, node_id: int) -> None:
        """Make ``node_id`` (a running in-sync replica) the partition's leader."""
        self._call("move_leader", topic, partition, node_id)

    def shrink_isr(self, topic: str, partition: int, isr: Sequence[int]) -> None:
        """Remove replicas from the ISR as if they fell behind; they stay out until
        ``restore_isr`` or a restart of their broker. The leader must stay."""
        self._call("shrink_isr", topic, partition, list(isr))

    def restore_isr(self, topic: str, partition: int) -> None:
        """Let replicas removed by ``shrink_isr`` catch up and rejoin the ISR."""
        self._call("restore_isr", topic, partition)

    # -- request hooks and faults ---------------------------------------------------------------

    def intercept(
        self,
        api: str | int | None,
        fn: Any,
        times: int | None = None,
        broker: int | None = None,
    ) -> Hook:
        """Let ``fn(request, context)`` decide the fate of each request of ``api`` (a name
        such as ``"Produce"``, an API key, or None for every API) on ``broker`` (or any).

        ``fn`` returns None (pass), an error code or ``Error(code)``, ``Delay(ms)``,
        ``Throttle(ms)``, ``DROP`` or a response entity (see :mod:`kprod.cluster.hooks`);
        after ``times`` non-None results the hook is removed. Instead of a function,
        ``fn`` may be one such result, returned for every request: the only kind the
        child-process mode takes (a function cannot cross the process boundary).
        Returns a handle with ``remove()``; ``clear_faults()`` removes every hook.
        """
        if self.process and callable(fn):
            raise ClusterError(
                "A hook function cannot run in the cluster's child process (process=True): give a constant"
                " result instead (an error code, Error(...), Delay(ms), Throttle(ms), DROP or a response"
                " entity), or use an in-process cluster."
            )
        info: HookInfo = self._call("intercept", api, fn, times, broker)
        return Hook(info.id, self._call)

    def hooks(self) -> list[HookInfo]:
        """Every active hook (including those of the fault methods), oldest first."""
        return self._call("hooks")  # type: ignore[no-any-return]

    def inject_errors(
        self,
        api_key: int,
        error_code: int,
        count: int = 1,
        broker: int | None = None,
        *,
        after_append: bool = False,
    ) -> Hook:
        """Answer the next ``count`` requests of ``api_key`` (on ``broker``, or any) with
        ``error_code``. With ``after_append`` a Produce is written first, then answered
        with the error, as when a response is lost. A hook: returns its handle."""
        info: HookInfo = self._call("inject_errors", int(api_key), int(error_code), count, broker, after_append)
        return Hook(info.id, self._call)

    def pending_injections(self) -> int:
        """Requests still to be answered with an injected error."""
        return self._call("pending_injections")  # type: ignore[no-any-return]

    def add_latency(self, node_id: int, ms: int) -> None:
        """Delay every response of a broker by ``ms`` milliseconds (0 removes the delay)."""
        self._call("add_latency", node_id, ms)

    def throttle(self, node_id: int, ms: int) -> None:
        """Report ``throttle_time_ms=ms`` in a broker's responses and mute each connection
        for that long after a response, as a quota does (0 removes the throttle)."""
        self._call("throttle", node_id, ms)

    def clear_faults(self) -> list[HookInfo]:
        """Remove every hook: pending error injections, latency, throttling and the hooks
        given to ``intercept``. Returns what each was when removed."""
        return self._call("clear_faults")  # type: ignore[no-any-return]

    def drop_connections(self, node_id: int | None = None) -> int:
        """Close the client connections of one broker (or of all); returns how many."""
        return self._call("drop_connections", node_id)  # type: ignore[no-any-return]

    def connections(self, node_id: int | None = None) -> int:
        """Open client connections to one broker (or to all)."""
        return self._call("connections", node_id)  # type: ignore[no-any-return]

    def waiting_fetches(self, node_id: int | None = None) -> int:
        """Fetch requests long-polling for data right now (on one broker, or all)."""
        return self._call("waiting_fetches", node_id)  # type: ignore[no-any-return]

    # -- consumer groups -----------------------------------------------------------------------------

    def groups(self) -> list[str]:
        """The ids of every consumer group the cluster knows (with members or committed offsets)."""
        return self._call("groups")  # type: ignore[no-any-return]

    def group_info(self, group_id: str) -> GroupInfo:
        """State, generation, protocol, leader, members and committed offsets of a group."""
        return self._call("group_info", group_id)  # type: ignore[no-any-return]

    def group_coordinator(self, group_id: str) -> int:
        """Node id of the broker coordinating ``group_id`` (-1 when no broker runs)."""
        return self._call("group_coordinator", group_id)  # type: ignore[no-any-return]

    def internal_errors(self) -> list[str]:
        """Unexpected exceptions the brokers hit while serving (empty when all is well)."""
        return self._call("internal_errors")  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        state = "stopped" if self._backend is None else self.bootstrap_servers
        mode = "child process" if self.process else "thread"
        return f"EmbeddedCluster({self._options['brokers']} brokers, {mode}, {state})"
