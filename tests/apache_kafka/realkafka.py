"""A real Apache Kafka 4.x cluster (3 KRaft nodes) for kprod's integration tests and benchmarks.

kprod's own embedded cluster can only prove kprod agrees with itself; these brokers are
the reference it must interoperate with. The module has no pytest import so `bench/`
scripts can use it too:

    sys.path.insert(0, str(repo_root))
    from tests.apache_kafka.realkafka import KafkaCluster
    with KafkaCluster() as kafka:
        kafka.create_topic("t", partitions=6)
        ...

Jars come from Maven (tests/apache_kafka/pom.xml) into `<repo>/.cache/kafka-<version>/libs`.
Facts behind the settings: docs/real-kafka.md in the shared project docs.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

__all__ = [
    "ClusterControlError",
    "ExternalCluster",
    "KafkaCluster",
    "KafkaSetupError",
    "KafkaStartError",
    "KafkaUnavailableError",
    "NodeMetadata",
    "PartitionState",
    "RealKafkaError",
    "ensure_kafka_jars",
    "fetch_node_metadata",
    "find_coordinator_error",
    "find_java",
    "kafka_version",
    "unique_topic",
]

KAFKA_DIR = Path(__file__).resolve().parent
REPO_ROOT = KAFKA_DIR.parents[1]
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
CACHE_ROOT = REPO_ROOT / ".cache"

# Maven 3.8 resolves the bare `dependency:` prefix to plugin 2.8; pin a known-good one.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_MIN_JAVA = 17
_HOST = "127.0.0.1"
_NODE_IDS = (1, 2, 3)
_LOG_TAIL_LINES = 40
_MVN_TIMEOUT = 900.0

# The same G1 flags kafka-run-class.sh uses; the heap is small because three JVMs share 2 cores.
_JVM_FLAGS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)

# Broker settings shared by all nodes (real-kafka.md §2 and the fast-failover values of §5).
_COMMON_SETTINGS: dict[str, str] = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "num.partitions": "1",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "3",
    "group.initial.rebalance.delay.ms": "0",
    # The 128 MiB default is allocated on the heap at startup; far too much for -Xmx512m.
    "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
    # A killed node is fenced (and loses its leaderships) after 3 s instead of 9 s.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "5000",
    # Tests must see UNKNOWN_TOPIC_OR_PARTITION for topics they did not create.
    "auto.create.topics.enable": "false",
    # Leaders move only when a test makes them move; restore() re-elects preferred leaders.
    "auto.leader.rebalance.enable": "false",
}

# Settings realkafka.py derives per node; overriding them would break the cluster's wiring.
_RESERVED_SETTINGS = frozenset(
    {
        "node.id",
        "process.roles",
        "listeners",
        "advertised.listeners",
        "log.dirs",
        "log.dir",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "controller.listener.names",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
    }
)

# Quiet, fast-reconnecting settings for the admin clients this module creates itself.
_ADMIN_SETTINGS: dict[str, Any] = {
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    # librdkafka reports every refused connect at level 3; a stopped node would flood stderr.
    "log_level": 2,
}


class RealKafkaError(Exception):
    """Base of this module's errors."""


class KafkaUnavailableError(RealKafkaError):
    """The real Kafka cluster cannot be provided here (tests skip, or fail under CI=true)."""


class KafkaSetupError(KafkaUnavailableError):
    """A prerequisite is missing: Java 17+, Maven, the jars, or confluent-kafka."""


class KafkaStartError(KafkaUnavailableError):
    """Kafka was runnable but a node did not format, start or become ready in time."""


class ClusterControlError(RealKafkaError):
    """Stopping or starting nodes was asked of a cluster this process does not run."""


# ---------------------------------------------------------------------------------------------
# Prerequisites: Java, Maven, jars, confluent-kafka


@cache
def find_java() -> str:
    """Path of a Java 17+ executable, from JAVA_HOME or else PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise KafkaSetupError(
                f"JAVA_HOME={java_home} has no executable bin/java; point JAVA_HOME at a "
                f"Java {_MIN_JAVA}+ installation or unset it to use java from PATH"
            )
        path = str(java)
    else:
        found = shutil.which("java")
        if found is None:
            raise KafkaSetupError(
                f"java not found: install a Java {_MIN_JAVA}+ runtime (e.g. apt-get install "
                "openjdk-17-jre-headless) or set JAVA_HOME"
            )
        path = found
    major = _java_major_version(path)
    if major < _MIN_JAVA:
        raise KafkaSetupError(
            f"{path} is Java {major}; Kafka 4.x needs Java {_MIN_JAVA}+ "
            "(set JAVA_HOME to a newer one)"
        )
    return path


def _java_major_version(java: str) -> int:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaSetupError(f"cannot run `{java} -version`: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if done.returncode != 0 or match is None:
        raise KafkaSetupError(
            f"`{java} -version` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version the pom pins (its `kafka.version` property)."""
    try:
        root = ElementTree.parse(pom).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise KafkaSetupError(f"cannot read {pom}: {exc}") from exc
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = root.findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise KafkaSetupError(f"{pom} has no <properties><kafka.version>; add one")
    return version.strip()


def ensure_kafka_jars(pom: Path = POM, cache_root: Path = CACHE_ROOT) -> Path:
    """Folder holding the pom's runtime jars, fetched with Maven unless already complete.

    A marker file carrying the pom's hash records a finished fetch, so a changed pom or an
    interrupted fetch is redone. A file lock keeps parallel test processes from fetching
    into the same folder at once.
    """
    version = kafka_version(pom)
    home = cache_root / f"kafka-{version}"
    libs = home / "libs"
    marker = home / "libs.complete"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if _fetch_is_complete(marker, digest, libs, version):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _fetch_is_complete(marker, digest, libs, version):
            return libs
        _fetch_jars(pom, libs, marker, digest, version)
    return libs


def _fetch_is_complete(marker: Path, digest: str, libs: Path, version: str) -> bool:
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        return False
    return recorded == digest and (libs / f"kafka_2.13-{version}.jar").is_file()


def _fetch_jars(pom: Path, libs: Path, marker: Path, digest: str, version: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaSetupError(
            "mvn (Apache Maven) not found on PATH; it fetches the Kafka jars for the "
            "integration tests. Install it (e.g. apt-get install maven) or set "
            "KPROD_BOOTSTRAP=host:port to test against a running cluster"
        )
    java = find_java()
    marker.unlink(missing_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    env = dict(os.environ)
    env.setdefault("JAVA_HOME", str(Path(java).resolve().parents[1]))
    command = [
        mvn,
        "-B",
        "-q",
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
        "-f",
        str(pom),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=pom.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=_MVN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaSetupError(
            f"Maven did not fetch the Kafka jars within {_MVN_TIMEOUT:.0f} s: {' '.join(command)}"
        ) from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-30:]
        raise KafkaSetupError(
            f"Maven failed to fetch the Kafka jars (exit {done.returncode}); is Maven Central "
            f"reachable? Command: {' '.join(command)}\n" + "\n".join(output)
        )
    if not (libs / f"kafka_2.13-{version}.jar").is_file():
        raise KafkaSetupError(f"Maven succeeded but {libs} lacks kafka_2.13-{version}.jar")
    marker.write_text(digest + "\n")


def _confluent_kafka() -> ModuleType:
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError as exc:
        raise KafkaSetupError(
            "confluent-kafka is not installed; it checks the real cluster's metadata "
            "(pip install -e '.[test]')"
        ) from exc
    return confluent_kafka


def _admin_client(bootstrap: str) -> Any:
    admin_module = _confluent_kafka().admin
    return admin_module.AdminClient({"bootstrap.servers": bootstrap, **_ADMIN_SETTINGS})


def unique_topic(prefix: str = "kprod") -> str:
    """A topic name no earlier call returned: `prefix` made legal plus a random suffix."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", prefix).strip("-.") or "kprod"
    return f"{clean[:200]}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------
# One broker's own view of the cluster
#
# librdkafka may send any request to any broker it is connected to, even when given a single
# bootstrap address, so it cannot tell what one particular node knows. Brokers apply metadata
# asynchronously: right after CreateTopics one of them may not know the topic yet. Hence a
# bare Metadata request on a socket of our own to the node in question.

# The oldest versions Kafka 4.x still serves (KIP-896): plain encodings without tagged fields.
_METADATA = (3, 4)  # (api key, version)
_FIND_COORDINATOR = (10, 1)
_CLIENT_ID = b"kprod-realkafka"


@dataclass(frozen=True)
class PartitionState:
    """A partition as one broker's metadata describes it."""

    error_code: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class NodeMetadata:
    """What one broker answered to Metadata (all topics): its own, possibly lagging, view."""

    node_id: int
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    topic_errors: dict[str, int]
    topics: dict[str, dict[int, PartitionState]]

    def topic_problem(self, topic: str, partitions: int | None = None) -> str | None:
        """Why `topic` is not usable per this view (None when every partition has a leader)."""
        if self.topic_errors.get(topic):
            return f"node {self.node_id}: topic {topic!r} error code {self.topic_errors[topic]}"
        described = self.topics.get(topic)
        if described is None:
            return f"node {self.node_id} does not know topic {topic!r} yet"
        if partitions is not None and len(described) != partitions:
            return (
                f"node {self.node_id} sees {len(described)} of {partitions} partitions of {topic!r}"
            )
        for index, state in sorted(described.items()):
            if state.error_code or state.leader < 0:
                return (
                    f"node {self.node_id}: {topic}[{index}] has no leader "
                    f"(error code {state.error_code})"
                )
        return None


class _Reader:
    """Big-endian reads over a Kafka response body."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def _unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._offset)
        self._offset += struct.calcsize(fmt)
        return int(value)

    def int8(self) -> int:
        return self._unpack(">b")

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        text = self._data[self._offset : self._offset + length].decode()
        self._offset += length
        return text

    def int32_array(self) -> tuple[int, ...]:
        count = self.int32()
        values = struct.unpack_from(f">{max(count, 0)}i", self._data, self._offset)
        self._offset += 4 * max(count, 0)
        return tuple(values)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection mid-response")
        chunks += chunk
    return bytes(chunks)


def _exchange(host: str, port: int, api: tuple[int, int], body: bytes, timeout: float) -> _Reader:
    """One request/response on a fresh connection; the reader starts at the response body.

    Raises OSError when the broker does not answer within `timeout` seconds.
    """
    api_key, version = api
    header = struct.pack(
        f">hhih{len(_CLIENT_ID)}s", api_key, version, 1, len(_CLIENT_ID), _CLIENT_ID
    )
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _receive_exactly(sock, 4))
        reader = _Reader(_receive_exactly(sock, size))
    if reader.int32() != 1:
        raise ConnectionError(f"{host}:{port} answered with a foreign correlation id")
    return reader


def fetch_node_metadata(node_id: int, host: str, port: int, timeout: float = 5.0) -> NodeMetadata:
    """Send Metadata (all topics, no auto-creation) to exactly one broker and decode its answer."""
    # topics: null (= all); allow_auto_topic_creation: false
    reader = _exchange(host, port, _METADATA, struct.pack(">ib", -1, 0), timeout)
    try:
        return _decode_metadata(node_id, reader)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ConnectionError(f"undecodable Metadata response from {host}:{port}: {exc}") from exc


def _decode_metadata(node_id: int, reader: _Reader) -> NodeMetadata:
    reader.int32()  # throttle_time_ms
    brokers: dict[int, tuple[str, int]] = {}
    for _ in range(reader.int32()):
        broker_id, broker_host, broker_port = reader.int32(), reader.string(), reader.int32()
        reader.string()  # rack
        brokers[broker_id] = (broker_host or "", broker_port)
    reader.string()  # cluster_id
    controller_id = reader.int32()
    topic_errors: dict[str, int] = {}
    topics: dict[str, dict[int, PartitionState]] = {}
    for _ in range(reader.int32()):
        error_code, name = reader.int16(), reader.string() or ""
        reader.int8()  # is_internal
        partitions: dict[int, PartitionState] = {}
        for _ in range(reader.int32()):
            partition_error, index, leader = reader.int16(), reader.int32(), reader.int32()
            partitions[index] = PartitionState(
                partition_error, leader, reader.int32_array(), reader.int32_array()
            )
        topic_errors[name] = error_code
        topics[name] = partitions
    return NodeMetadata(node_id, brokers, controller_id, topic_errors, topics)


def find_coordinator_error(host: str, port: int, key: str, key_type: int, timeout: float) -> int:
    """Error code of FindCoordinator(`key`, `key_type`: 0 group, 1 transaction) at one broker.

    0 means the coordinator is ready. Asking makes the broker create the internal topic
    behind it (__consumer_offsets, __transaction_state) if it does not exist yet.
    """
    encoded = key.encode()
    body = struct.pack(f">h{len(encoded)}sb", len(encoded), encoded, key_type)
    reader = _exchange(host, port, _FIND_COORDINATOR, body, timeout)
    reader.int32()  # throttle_time_ms
    return reader.int16()


# ---------------------------------------------------------------------------------------------
# Operations shared by the managed and the external cluster


def _wait_until(
    condition: Callable[[], str | None], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll `condition` (None = satisfied, else the reason) until it holds or `timeout` passes.

    A failing request (socket error, librdkafka error) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    wake = threading.Event()
    kafka_exception = _confluent_kafka().KafkaException
    while True:
        try:
            reason = condition()
        except (OSError, kafka_exception) as exc:
            reason = f"request failed: {exc}"
        if not reason:
            return
        if time.monotonic() >= deadline:
            raise RealKafkaError(f"{what} not reached within {timeout:.0f} s: {reason}")
        wake.wait(interval)


class _ClusterClient:
    """Topic and metadata operations over the Kafka protocol, for any reachable cluster."""

    controllable: bool = False
    _admin: Any = None

    @property
    def bootstrap_servers(self) -> str:
        raise NotImplementedError

    @property
    def node_ids(self) -> list[int]:
        raise NotImplementedError

    def broker_address(self, node_id: int) -> tuple[str, int]:
        raise NotImplementedError

    def _serving_node_ids(self) -> list[int]:
        """Nodes a client may currently talk to."""
        return self.node_ids

    def admin(self) -> Any:
        """A shared confluent-kafka AdminClient for this cluster."""
        if self._admin is None:
            self._admin = _admin_client(self.bootstrap_servers)
        return self._admin

    def metadata(self, timeout: float = 10.0) -> Any:
        """All topics and brokers as some broker sees them (confluent-kafka ClusterMetadata)."""
        return self.admin().list_topics(timeout=timeout)

    def node_metadata(self, node_id: int, timeout: float = 5.0) -> NodeMetadata:
        """Metadata as node `node_id` itself sees it (a request sent to that node only)."""
        host, port = self.broker_address(node_id)
        return fetch_node_metadata(node_id, host, port, timeout)

    def _each_serving_node(
        self, check: Callable[[NodeMetadata], str | None]
    ) -> Callable[[], str | None]:
        def condition() -> str | None:
            for node_id in self._serving_node_ids():
                problem = check(self.node_metadata(node_id))
                if problem:
                    return problem
            return None

        return condition

    def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int = 3,
        config: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Create `name`; return once every serving broker knows a leader for each partition.

        Brokers learn of new topics asynchronously; waiting for all of them keeps a client
        that asks any broker from seeing UNKNOWN_TOPIC_OR_PARTITION right after this returns.
        """
        if partitions < 1 or replication_factor < 1:
            raise ValueError(
                f"create_topic({name!r}): partitions ({partitions}) and replication_factor "
                f"({replication_factor}) must both be at least 1"
            )
        confluent_kafka = _confluent_kafka()
        new_topic = confluent_kafka.admin.NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config={key: str(value) for key, value in (config or {}).items()},
        )
        futures = self.admin().create_topics(
            [new_topic], operation_timeout=timeout, request_timeout=timeout
        )
        try:
            futures[name].result(timeout=timeout)
        except confluent_kafka.KafkaException as exc:
            raise RealKafkaError(f"creating topic {name!r} failed: {exc}") from exc
        _wait_until(
            self._each_serving_node(lambda view: view.topic_problem(name, partitions)),
            timeout,
            f"a leader for every partition of {name!r} on every broker",
        )

    def wait_for_full_isr(self, topic: str | None = None, timeout: float = 60.0) -> None:
        """Wait until every serving broker shows each partition (of `topic`, or of all topics)
        led and with all its replicas in sync."""

        def full_isr(view: NodeMetadata) -> str | None:
            if topic is not None and topic not in view.topics:
                return f"node {view.node_id} does not know topic {topic!r}"
            for name, partitions in view.topics.items():
                if topic is not None and name != topic:
                    continue
                for index, state in partitions.items():
                    if state.leader < 0 or set(state.isr) != set(state.replicas):
                        return (
                            f"node {view.node_id}: {name}[{index}] leader {state.leader} "
                            f"isr {list(state.isr)} replicas {list(state.replicas)}"
                        )
            return None

        what = f"full ISR on {'every partition' if topic is None else repr(topic)}"
        _wait_until(self._each_serving_node(full_isr), timeout, what)

    def leader(self, topic: str, partition: int, timeout: float = 10.0) -> int:
        """Node id leading `topic`[`partition`] as all serving brokers agree; -1 for none.

        Brokers apply leader changes one after another, so right after a failover their
        answers can differ for a moment; this waits (up to `timeout`) until they agree.
        """
        answers: dict[int, int] = {}

        def agreed() -> str | None:
            answers.clear()
            unaware = []
            for node_id in self._serving_node_ids():
                view = self.node_metadata(node_id)
                described = view.topics.get(topic)
                if described is None or view.topic_errors.get(topic):
                    unaware.append(node_id)
                    continue
                if partition not in described:
                    raise RealKafkaError(
                        f"leader({topic!r}, {partition}): the topic has partitions "
                        f"0..{len(described) - 1}"
                    )
                answers[node_id] = described[partition].leader
            if unaware and not answers:
                raise RealKafkaError(f"leader({topic!r}, {partition}): no broker knows the topic")
            if unaware:
                return f"nodes {unaware} do not know topic {topic!r} yet"
            if len(set(answers.values())) != 1:
                return f"brokers disagree on the leader: {answers}"
            return None

        _wait_until(agreed, timeout, f"agreement on the leader of {topic}[{partition}]")
        return next(iter(answers.values()))


# ---------------------------------------------------------------------------------------------
# Ports and process hygiene


_RESERVED_PORTS: set[int] = set()
_PORT_LOCK = threading.Lock()
_LIVE_CLUSTERS: set[KafkaCluster] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _pick_free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free now.

    They come from below the kernel's ephemeral range, so outgoing connections (which take
    ephemeral ports) cannot grab them between this check and Java's bind. A random
    choice keeps parallel test processes apart; a bind at startup that still loses the race is
    detected and retried with new ports by KafkaCluster.start().
    """
    low, _ = _ephemeral_range()
    first, last = 12000, low - 1
    if last - first < 1000:
        first, last = 1024, low - 1
    held: list[socket.socket] = []
    ports: list[int] = []
    with _PORT_LOCK:
        try:
            for _ in range(2000):
                if len(ports) == count:
                    break
                port = random.randint(first, last)
                if port in _RESERVED_PORTS or port in ports:
                    continue
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.bind((_HOST, port))
                except OSError:
                    sock.close()
                    continue
                held.append(sock)
                ports.append(port)
        finally:
            for sock in held:
                sock.close()
        if len(ports) < count:
            raise KafkaStartError(f"found only {len(ports)} of {count} free ports on {_HOST}")
        _RESERVED_PORTS.update(ports)
    return ports


def _release_ports(ports: Iterable[int]) -> None:
    with _PORT_LOCK:
        _RESERVED_PORTS.difference_update(ports)


def _parent_death_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL` so brokers die with this process even if it is SIGKILLed.

    Linux sends the signal when the *thread* that spawned the child exits, so it is only
    used from the main thread, which lives as long as the process.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL"]


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


_DIR_PREFIX = "kprod-kafka-"
_OWNER_FILE = "owner.pid"


def _remove_orphaned_dirs(parent: Path | None) -> None:
    """Delete cluster directories whose owning process died without close() (e.g. SIGKILL).

    Only directories carrying an owner.pid of a process that no longer exists are removed,
    so live clusters of other processes are left alone.
    """
    for directory in Path(parent or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        try:
            owner = int((directory / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner <= 0:
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except PermissionError:
            continue  # alive, owned by another user


@atexit.register
def _close_live_clusters() -> None:
    """Backstop for clusters nobody closed (a crashed test session, a script's exception)."""
    for cluster in list(_LIVE_CLUSTERS):
        cluster.close(timeout=5.0)


# ---------------------------------------------------------------------------------------------
# The managed cluster


@dataclass
class _Node:
    node_id: int
    broker_port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: secured clusters only: listener name (MTLS, SASL_SSL, SASL_PLAINTEXT) -> port
    secured_ports: dict[str, int] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    @property
    def properties_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster(_ClusterClient):
    """Three combined broker+controller KRaft nodes on 127.0.0.1, each its own JVM.

    Use as a context manager (or call start()/close()). Each node logs to
    `<directory>/nodeN/kafka.log`; the whole directory goes away on close().
    `timings` records how long the jar check, format, start and internal topics took.
    """

    controllable = True

    def __init__(
        self,
        *,
        heap: str = "512m",
        start_timeout: float = 180.0,
        overrides: Mapping[str, object] | None = None,
        create_internal_topics: bool = True,
        parent_dir: str | Path | None = None,
        keep_dir: bool = False,
        secured: bool = False,
    ) -> None:
        if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]", heap):
            raise ValueError(f"heap={heap!r}: use a JVM size such as '512m' or '1g'")
        clashing = sorted(set(overrides or {}) & _RESERVED_SETTINGS)
        if clashing:
            raise ValueError(
                f"overrides may not set {', '.join(clashing)}: KafkaCluster derives them per node"
            )
        self._heap = heap
        self._start_timeout = start_timeout
        self._overrides = {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in (overrides or {}).items()
        }
        self._create_internal_topics = create_internal_topics
        self._parent_dir = Path(parent_dir) if parent_dir is not None else None
        self._keep_dir = keep_dir
        # secured=True adds MTLS, SASL_SSL and SASL_PLAINTEXT listeners (tests/apache_kafka/secured.py).
        self._secured = secured
        self.security: Any = None  # SecurityMaterial once started, when secured
        self._nodes: dict[int, _Node] = {}
        self._dir: Path | None = None
        self._libs: Path | None = None
        self._java = ""
        self._started = False
        self._closed = False
        # Set by stop_node(); restore() then rechecks ISRs and preferred leaders.
        self._disturbed = False
        self.timings: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> KafkaCluster:
        """Fetch jars if needed, format the 3 nodes, start them and wait until all serve."""
        if self._closed:
            raise RealKafkaError("this KafkaCluster was closed; create a new one")
        if self._started:
            return self
        begin = time.monotonic()
        _confluent_kafka()  # fail before starting JVMs when it is missing
        self._libs = ensure_kafka_jars()
        self._java = find_java()
        if not LOG4J_CONFIG.is_file():
            raise KafkaSetupError(f"{LOG4J_CONFIG} is missing; the brokers need it for logging")
        self.timings["jars"] = time.monotonic() - begin
        _remove_orphaned_dirs(self._parent_dir)
        self._dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=self._parent_dir))
        (self._dir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        _LIVE_CLUSTERS.add(self)
        try:
            if self._secured:
                from tests.apache_kafka.secured import SecurityMaterial

                self.security = SecurityMaterial(self._dir / "tls")
            self._start_fresh()
            if self._create_internal_topics:
                begin = time.monotonic()
                try:
                    self._warm_internal_topics(self._start_timeout)
                except KafkaUnavailableError:
                    raise
                except (RealKafkaError, _confluent_kafka().KafkaException) as exc:
                    raise KafkaStartError(f"creating the internal topics failed: {exc}") from exc
                self.timings["internal_topics"] = time.monotonic() - begin
            self._wait_client_sees_all(self._start_timeout)
        except BaseException:
            self.close()
            raise
        self._started = True
        return self

    def _start_fresh(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            self._layout_nodes()
            begin = time.monotonic()
            self._format_all()
            self.timings["format"] = time.monotonic() - begin
            begin = time.monotonic()
            try:
                for node in self._nodes.values():
                    self._spawn(node)
                self._wait_ready(list(self._nodes), time.monotonic() + self._start_timeout)
            except KafkaStartError:
                lost_port_race = any(
                    "Address already in use" in _tail(node.log_path, 400)
                    for node in self._nodes.values()
                )
                self._kill_all()
                if lost_port_race and attempt < attempts:
                    self._discard_nodes()
                    continue
                raise
            self.timings["start"] = time.monotonic() - begin
            return

    def _layout_nodes(self) -> None:
        assert self._dir is not None
        extra = ("MTLS", "SASL_SSL", "SASL_PLAINTEXT") if self._secured else ()
        per_node = 2 + len(extra)
        ports = _pick_free_ports(per_node * len(_NODE_IDS))
        self._nodes = {
            node_id: _Node(
                node_id=node_id,
                broker_port=ports[per_node * index],
                controller_port=ports[per_node * index + 1],
                directory=self._dir / f"node{node_id}",
                secured_ports={name: ports[per_node * index + 2 + i] for i, name in enumerate(extra)},
            )
            for index, node_id in enumerate(_NODE_IDS)
        }
        voters = ",".join(
            f"{node.node_id}@{_HOST}:{node.controller_port}" for node in self._nodes.values()
        )
        for node in self._nodes.values():
            node.directory.mkdir(parents=True)
            secured = "".join(f",{name}://{_HOST}:{port}" for name, port in node.secured_ports.items())
            settings = {
                "node.id": str(node.node_id),
                "listeners": f"PLAINTEXT://{_HOST}:{node.broker_port},"
                f"CONTROLLER://{_HOST}:{node.controller_port}{secured}",
                "advertised.listeners": f"PLAINTEXT://{_HOST}:{node.broker_port},"
                f"CONTROLLER://{_HOST}:{node.controller_port}{secured}",
                "log.dirs": str(node.data_dir),
                "controller.quorum.voters": voters,
                **_COMMON_SETTINGS,
                **(self.security.broker_settings() if self.security is not None else {}),
                **self._overrides,
            }
            node.properties_path.write_text(
                "".join(f"{key}={value}\n" for key, value in settings.items())
            )
            node.command = self._java_command("kafka.Kafka", [str(node.properties_path)])

    def _discard_nodes(self) -> None:
        _release_ports(p for n in self._nodes.values() for p in self._node_ports(n))
        for node in self._nodes.values():
            shutil.rmtree(node.directory, ignore_errors=True)
        self._nodes = {}

    @staticmethod
    def _node_ports(node: _Node) -> list[int]:
        return [node.broker_port, node.controller_port, *node.secured_ports.values()]

    def _java_command(self, main_class: str, arguments: list[str]) -> list[str]:
        return [
            self._java,
            f"-Xmx{self._heap}",
            *_JVM_FLAGS,
            *(self.security.jvm_flags if self.security is not None else ()),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{self._libs}/*",
            main_class,
            *arguments,
        ]

    def _format_all(self) -> None:
        """Format every node's storage with one cluster id (JVMs run in parallel)."""
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        cluster_id = "A" + cluster_id[1:] if cluster_id.startswith("-") else cluster_id
        running: list[tuple[_Node, subprocess.Popen[bytes]]] = []
        for node in self._nodes.values():
            command = self._java_command(
                "kafka.tools.StorageTool",
                ["format", "-t", cluster_id, "-c", str(node.properties_path),
                 *(self.security.format_arguments if self.security is not None else ())],
            )
            with open(node.directory / "format.log", "wb") as output:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
                )
            running.append((node, process))
        failures = []
        for node, process in running:
            try:
                code = process.wait(timeout=self._start_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                failures.append(
                    f"node {node.node_id}: StorageTool format exited {code}:\n"
                    + _tail(node.directory / "format.log")
                )
        if failures:
            raise KafkaStartError("formatting KRaft storage failed\n" + "\n".join(failures))

    def _spawn(self, node: _Node) -> None:
        node.starts += 1
        with open(node.log_path, "ab") as log:
            if node.starts > 1:
                log.write(f"\n----- realkafka: start #{node.starts} -----\n".encode())
                log.flush()
            node.process = subprocess.Popen(
                _parent_death_prefix() + node.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, node_ids: list[int], deadline: float) -> None:
        """Wait until each node answers Metadata itself and lists every running node.

        A node's metadata lists only unfenced brokers, so seeing all running nodes also
        proves they registered and were unfenced.
        """
        pending = set(node_ids)
        last_seen: dict[int, str] = {node_id: "no reply yet" for node_id in node_ids}
        wake = threading.Event()
        while pending:
            for node_id in sorted(pending):
                node = self._nodes[node_id]
                assert node.process is not None
                code = node.process.poll()
                if code is not None:
                    raise KafkaStartError(
                        f"Kafka node {node_id} exited with code {code} while starting; "
                        f"last lines of {node.log_path}:\n{_tail(node.log_path)}"
                    )
                expected = {n.node_id for n in self._nodes.values() if n.running()}
                try:
                    metadata = self.node_metadata(node_id, timeout=2.0)
                except OSError as exc:
                    last_seen[node_id] = f"no Metadata reply ({exc})"
                    continue
                seen = set(metadata.brokers)
                if expected <= seen:
                    pending.discard(node_id)
                else:
                    last_seen[node_id] = f"its metadata lists brokers {sorted(seen)}"
            if not pending:
                return
            if time.monotonic() >= deadline:
                details = "\n".join(
                    f"node {node_id}: {last_seen[node_id]}; last lines of "
                    f"{self._nodes[node_id].log_path}:\n{_tail(self._nodes[node_id].log_path)}"
                    for node_id in sorted(pending)
                )
                raise KafkaStartError(f"Kafka nodes {sorted(pending)} not ready in time\n{details}")
            wake.wait(0.2)

    def _warm_internal_topics(self, timeout: float) -> None:
        """Create __consumer_offsets and __transaction_state while all 3 brokers are up.

        Both have replication factor 3 and are created on first use, which fails while a
        node is down; a test that kills a node first would otherwise break later ones.
        """
        host, port = self.broker_address(self._serving_node_ids()[0])

        def coordinators_ready() -> str | None:
            for key_type, topic in ((0, "__consumer_offsets"), (1, "__transaction_state")):
                error = find_coordinator_error(host, port, "kprod-realkafka-warmup", key_type, 5.0)
                if error:
                    return f"FindCoordinator for {topic} answers error code {error}"
            return None

        _wait_until(coordinators_ready, timeout, "group and transaction coordinators", 0.2)

        def internal_topics_led(view: NodeMetadata) -> str | None:
            return view.topic_problem("__consumer_offsets") or view.topic_problem(
                "__transaction_state"
            )

        _wait_until(
            self._each_serving_node(internal_topics_led), timeout, "internal topics with leaders"
        )

    def _wait_client_sees_all(self, timeout: float) -> None:
        """The bootstrap list works for a real client (confluent-kafka) and lists all brokers."""

        def all_brokers() -> str | None:
            seen = sorted(self.metadata(timeout=5.0).brokers)
            return None if seen == list(_NODE_IDS) else f"the client sees brokers {seen}"

        try:
            _wait_until(all_brokers, timeout, "a client seeing all 3 brokers")
        except RealKafkaError as exc:
            raise KafkaStartError(str(exc)) from exc

    def close(self, timeout: float = 15.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after `timeout`) and delete the cluster's files."""
        if self._closed:
            return
        self._closed = True
        self._admin = None  # destroy librdkafka's handle while its brokers still answer
        self._kill_all(grace=timeout)
        _release_ports(p for n in self._nodes.values() for p in self._node_ports(n))
        if self.security is not None:
            self.security.close()
        if self._dir is not None and self._keep_dir:
            (self._dir / _OWNER_FILE).unlink(missing_ok=True)  # kept on purpose: not an orphan
        elif self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        _LIVE_CLUSTERS.discard(self)

    def _kill_all(self, grace: float = 0.0) -> None:
        """Signal all nodes at once; controlled shutdown can hang once the quorum is gone."""
        alive = [node.process for node in self._nodes.values() if node.running()]
        for process in alive:
            assert process is not None
            process.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace
        for process in alive:
            assert process is not None
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- addresses -------------------------------------------------------------------------

    def _node(self, node_id: int) -> _Node:
        if not self._nodes:
            raise RealKafkaError("the cluster is not started; call start() or use `with`")
        node = self._nodes.get(node_id)
        if node is None:
            raise ValueError(f"node_id {node_id!r} is not one of {list(self._nodes)}")
        return node

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` for every node's broker listener."""
        if not self._nodes:
            raise RealKafkaError("the cluster is not started; call start() or use `with`")
        return ",".join(f"{_HOST}:{node.broker_port}" for node in self._nodes.values())

    @property
    def node_ids(self) -> list[int]:
        return list(_NODE_IDS)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RealKafkaError("the cluster is not started; call start() or use `with`")
        return self._dir

    def broker_address(self, node_id: int) -> tuple[str, int]:
        return _HOST, self._node(node_id).broker_port

    def listener_bootstrap(self, listener: str) -> str:
        """Bootstrap servers of a secured listener: MTLS, SASL_SSL or SASL_PLAINTEXT."""
        if self.security is None:
            raise RealKafkaError("this cluster has no secured listeners; create it with secured=True")
        return ",".join(f"{_HOST}:{node.secured_ports[listener]}" for node in self._nodes.values())

    def log_path(self, node_id: int) -> Path:
        """The file holding node `node_id`'s stdout and stderr (all its runs)."""
        return self._node(node_id).log_path

    def _serving_node_ids(self) -> list[int]:
        return [node.node_id for node in self._nodes.values() if node.running()]

    # -- failures --------------------------------------------------------------------------

    def is_running(self, node_id: int) -> bool:
        return self._node(node_id).running()

    def stop_node(self, node_id: int, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop a node: SIGKILL when `kill`, else SIGTERM (controlled shutdown) and wait.

        A SIGTERM'd node still running after `timeout` gets SIGKILL. Stopping a stopped
        node does nothing.
        """
        node = self._node(node_id)
        process = node.process
        if process is None or process.poll() is not None:
            return
        self._disturbed = True
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Restart a stopped node with its old command, directory and ports; wait until it serves.

        The node needs a KRaft quorum (2 of 3 voters) to finish starting; to bring back
        several stopped nodes at once use restore().
        """
        node = self._node(node_id)
        if node.running():
            return
        self._spawn(node)
        try:
            self._wait_ready([node_id], time.monotonic() + timeout)
        except KafkaStartError:
            self.stop_node(node_id, kill=True)
            raise

    def restore(self, timeout: float = 120.0) -> None:
        """Undo what tests did to the nodes: all running, full ISRs, preferred leaders.

        Does nothing (beyond a liveness check) when no node was stopped since the last call.
        """
        stopped = [node for node in self._nodes.values() if not node.running()]
        if not stopped and not self._disturbed:
            return
        deadline = time.monotonic() + timeout
        for node in stopped:
            self._spawn(node)
        try:
            self._wait_ready([node.node_id for node in stopped], deadline)
        except KafkaStartError:
            for node in stopped:
                self.stop_node(node.node_id, kill=True)
            raise
        self.wait_for_full_isr(timeout=max(1.0, deadline - time.monotonic()))
        self._elect_preferred_leaders(max(1.0, deadline - time.monotonic()))
        self._disturbed = False

    def _elect_preferred_leaders(self, timeout: float) -> None:
        confluent_kafka = _confluent_kafka()
        # No timeout keywords: confluent-kafka 2.16.1's elect_leaders rejects them (TypeError).
        future = self.admin().elect_leaders(confluent_kafka.ElectionType.PREFERRED, None)
        results = future.result(timeout=timeout)
        not_needed = confluent_kafka.KafkaError.ELECTION_NOT_NEEDED
        for partition, error in results.items():
            if error is not None and error.args[0].code() != not_needed:
                raise RealKafkaError(
                    f"preferred leader election for {partition.topic}[{partition.partition}] "
                    f"failed: {error}"
                )

        def preferred(view: NodeMetadata) -> str | None:
            for topic, partitions in view.topics.items():
                for index, state in partitions.items():
                    if state.replicas and state.leader != state.replicas[0]:
                        return (
                            f"node {view.node_id}: {topic}[{index}] led by {state.leader}, "
                            f"preferred {state.replicas[0]}"
                        )
            return None

        _wait_until(self._each_serving_node(preferred), timeout, "preferred leaders")


# ---------------------------------------------------------------------------------------------
# A cluster somebody else runs


class ExternalCluster(_ClusterClient):
    """A cluster at `KPROD_BOOTSTRAP`: read and create topics, but never stop or start nodes."""

    controllable = False

    def __init__(self, bootstrap_servers: str | None = None) -> None:
        value = (
            bootstrap_servers
            if bootstrap_servers is not None
            else os.environ.get("KPROD_BOOTSTRAP", "")
        )
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        bad = [
            entry
            for entry in entries
            if not re.fullmatch(r"[^\s:]+:([1-9][0-9]{0,4})", entry)
            or int(entry.rsplit(":", 1)[1]) > 65535
        ]
        if not entries or bad:
            raise ValueError(
                f"KPROD_BOOTSTRAP={value!r}: expected host:port[,host:port...] "
                f"(bad entries: {bad or 'none given'})"
            )
        self._bootstrap = ",".join(entries)

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def check(self, timeout: float = 15.0) -> None:
        """Fail clearly when the cluster does not answer Metadata."""
        try:
            self.metadata(timeout=timeout)
        except _confluent_kafka().KafkaException as exc:
            raise KafkaUnavailableError(
                f"the external cluster at KPROD_BOOTSTRAP={self._bootstrap} gave no metadata "
                f"within {timeout:.0f} s: {exc}"
            ) from exc

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.metadata().brokers)

    def broker_address(self, node_id: int) -> tuple[str, int]:
        broker = self.metadata().brokers.get(node_id)
        if broker is None:
            raise ValueError(f"node_id {node_id!r} is not one of {self.node_ids}")
        return str(broker.host), int(broker.port)

    def _refuse(self, action: str) -> ClusterControlError:
        return ClusterControlError(
            f"cannot {action}: the cluster at KPROD_BOOTSTRAP={self._bootstrap} is not run by "
            "this process; unset KPROD_BOOTSTRAP to use the managed 3-node cluster"
        )

    def is_running(self, node_id: int) -> bool:
        raise self._refuse(f"tell whether node {node_id} runs")

    def stop_node(self, node_id: int, kill: bool = False, timeout: float = 30.0) -> None:
        raise self._refuse(f"stop node {node_id}")

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        raise self._refuse(f"start node {node_id}")

    def restore(self, timeout: float = 120.0) -> None:
        raise self._refuse("restore nodes")

    def close(self, timeout: float = 15.0) -> None:
        """Nothing to stop; present so callers can treat both clusters alike."""
