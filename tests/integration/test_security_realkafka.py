"""TLS and SASL against a real Kafka 4.x cluster with secured listeners (issue 12).

kprod writes over each listener and confluent-kafka reads back with the same
credentials; refused credentials, certificates and tokens give errors naming
the cause. This module starts its own secured cluster (the shared one is
plaintext), whatever KPROD_BOOTSTRAP says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kprod import Producer
from kprod.errors import (
    AuthenticationError,
    SaslAuthenticationFailedError,
    SslAuthenticationError,
    UnsupportedSaslMechanismError,
)
from tests.apache_kafka.pytest_support import unavailable
from tests.apache_kafka.realkafka import KafkaCluster, KafkaUnavailableError, unique_topic
from tests.apache_kafka.secured import CLIENT_ID, CLIENT_SECRET, PASSWORD, REAUTH_MS, USER
from tests.helpers import consume_all

pytest.importorskip("trustme")

LISTENER = {"mtls": "MTLS", "plain": "SASL_SSL", "scram-sha-512": "SASL_SSL",
            "oauthbearer": "SASL_SSL", "scram-sha-256": "SASL_PLAINTEXT"}
QUICK = {"max.block.ms": 15000, "reconnect.backoff.max.ms": 500, "linger.ms": 0}


@pytest.fixture(scope="module")
def secured() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(secured=True)
    try:
        cluster.start()
    except KafkaUnavailableError as exc:
        unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.close()


def settings(cluster: KafkaCluster, kind: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    kprod_conf, ck_conf = cluster.security.client_settings(kind, cluster.listener_bootstrap(LISTENER[kind]))
    return {**kprod_conf, **QUICK, **extra}, ck_conf


def new_topic(cluster: KafkaCluster, partitions: int = 3) -> str:
    name = unique_topic("sec")
    cluster.create_topic(name, partitions, 3)
    return name


@pytest.mark.parametrize("kind", ["mtls", "plain", "scram-sha-512", "oauthbearer", "scram-sha-256"])
def test_kprod_writes_and_confluent_reads_back_over_each_listener(secured: KafkaCluster, kind: str) -> None:
    topic = new_topic(secured)
    kprod_conf, ck_conf = settings(secured, kind)
    sent = [(i % 3, f"k{i}".encode(), f"{kind}-value-{i}".encode()) for i in range(300)]
    with Producer(kprod_conf) as producer:
        futures = [producer.send(topic, value, key=key, partition=p, headers=[("n", str(i).encode())])
                   for i, (p, key, value) in enumerate(sent)]
        metadata = [f.result(timeout=30) for f in futures]
    assert [m.partition for m in metadata] == [p for p, _, _ in sent]
    read = consume_all(ck_conf, topic, range(3), expected=len(sent))
    for partition in range(3):
        mine = [(key, value) for p, key, value in sent if p == partition]
        got = read[partition]
        assert [(m.key, m.value) for m in got] == mine
        assert [m.offset for m in got] == list(range(len(mine)))
        assert [m.headers for m in got] == [[("n", str(i).encode())] for i, (p, _, _) in enumerate(sent) if p == partition]


def test_reauthentication_loses_duplicates_and_reorders_nothing(
        secured: KafkaCluster, caplog: pytest.LogCaptureFixture) -> None:
    """The SASL_PLAINTEXT listener's sessions last REAUTH_MS: kprod must re-authenticate in time."""
    topic = new_topic(secured, partitions=2)
    kprod_conf, ck_conf = settings(secured, "scram-sha-256")
    caplog.set_level(logging.DEBUG, logger="kprod.net")
    sent: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 10 * REAUTH_MS / 1000.0
    with Producer(kprod_conf) as producer:
        while True:
            reauths = sum("Re-authenticated with" in r.getMessage() for r in caplog.records)
            if reauths >= 4 or time.monotonic() > deadline:
                break
            chunk = [(i % 2, f"r{len(sent) + i}".encode()) for i in range(200)]
            futures = [producer.send(topic, value, partition=p) for p, value in chunk]
            for future in futures:
                future.result(timeout=30)  # a broker closing an expired session would fail these
            sent += chunk
    assert reauths >= 4, f"only {reauths} re-authentications in {10 * REAUTH_MS} ms"
    read = consume_all(ck_conf, topic, range(2), expected=len(sent), timeout=60)
    for partition in range(2):
        assert [m.value for m in read[partition]] == [v for p, v in sent if p == partition]


def _expect_refusal(conf: dict[str, Any], error: type[BaseException], *fragments: str) -> BaseException:
    with Producer(conf) as producer:
        began = time.monotonic()
        with pytest.raises(error) as info:
            producer.send("sec-refused-topic", b"x")
        assert time.monotonic() - began < conf["max.block.ms"] / 1000.0
        producer.flush(timeout=5)  # nothing pending: must not hang
    text = str(info.value)
    for fragment in fragments:
        assert fragment in text, text
    assert not getattr(info.value, "retriable", True)
    return info.value


def test_wrong_password_is_an_authentication_error(secured: KafkaCluster) -> None:
    conf, _ = settings(secured, "scram-sha-512", **{"sasl.password": "not-" + PASSWORD})
    _expect_refusal(conf, SaslAuthenticationFailedError, "SCRAM-SHA-512", "SASL_AUTHENTICATION_FAILED")


def test_unsupported_mechanism_names_the_enabled_ones(secured: KafkaCluster) -> None:
    conf, _ = settings(secured, "plain", **{"sasl.mechanism": "SCRAM-SHA-256"})
    _expect_refusal(conf, UnsupportedSaslMechanismError, "PLAIN", "SCRAM-SHA-512", "OAUTHBEARER")


def test_wrong_ca_names_host_and_unknown_ca(secured: KafkaCluster) -> None:
    conf, _ = settings(secured, "mtls", **{"ssl.truststore.location": str(secured.security.other_ca_pem)})
    error = _expect_refusal(conf, SslAuthenticationError, "unknown CA")
    # whichever bootstrap broker was tried first is named
    assert any(f"broker {address} failed" in str(error) for address in conf["bootstrap.servers"].split(",")), error


def test_wrong_hostname_is_a_hostname_mismatch(secured: KafkaCluster) -> None:
    conf, _ = settings(secured, "mtls")
    conf["bootstrap.servers"] = conf["bootstrap.servers"].replace("127.0.0.1", "localhost")
    _expect_refusal(conf, SslAuthenticationError, "localhost:", "hostname mismatch")


def test_expired_token_is_refused_by_the_broker(secured: KafkaCluster) -> None:
    expired = secured.security.token(lifetime_s=-600, issued_at=time.time() - 1200)
    conf, _ = settings(secured, "oauthbearer", **{
        "sasl.oauthbearer.token.provider": lambda: (expired, time.time() + 3600)})
    _expect_refusal(conf, SaslAuthenticationFailedError, "OAUTHBEARER")


def test_tls_to_a_plaintext_port_and_plaintext_to_a_tls_port(secured: KafkaCluster) -> None:
    conf, _ = settings(secured, "mtls")
    conf["bootstrap.servers"] = secured.bootstrap_servers
    _expect_refusal(conf, SslAuthenticationError, "PLAINTEXT")
    plain = {"bootstrap.servers": secured.listener_bootstrap("MTLS"), **QUICK}
    _expect_refusal(plain, AuthenticationError, "TLS listener")


def test_token_refresh_and_reauth_then_refused_token_fails_pending_records(secured: KafkaCluster) -> None:
    """Tokens live 8 s, so the broker's session does too: kprod fetches a new token on its I/O
    thread and re-authenticates. When the provider starts handing out tokens the broker refuses,
    the next re-authentication fails and so do the records waiting for that broker."""
    calls: list[str] = []
    refuse = threading.Event()

    def provider() -> tuple[str, float]:
        calls.append(threading.current_thread().name)
        if refuse.is_set():
            return secured.security.token(subject=USER, lifetime_s=8) + "x", time.time() + 8  # bad signature
        return secured.security.token(subject=USER, lifetime_s=8), time.time() + 8

    topic = new_topic(secured, partitions=1)
    conf, ck_conf = settings(secured, "oauthbearer", **{
        "sasl.oauthbearer.token.provider": provider, "sasl.login.refresh.min.period.seconds": 1,
        "sasl.login.refresh.buffer.seconds": 2})
    with Producer(conf) as producer:
        producer.send(topic, b"first").result(timeout=30)
        deadline = time.monotonic() + 30
        sent = [b"first"]
        while len(calls) < 3 and time.monotonic() < deadline:
            value = f"during-{len(sent)}".encode()
            producer.send(topic, value).result(timeout=30)
            sent.append(value)
        assert len(calls) >= 3, calls
        assert all(name.startswith("kprod-network-thread") for name in calls), calls
        refuse.set()
        failure: BaseException | None = None
        deadline = time.monotonic() + 30
        while failure is None and time.monotonic() < deadline:
            future = producer.send(topic, b"after-refusal")
            try:
                future.result(timeout=30)
                sent.append(b"after-refusal")
            except AuthenticationError as exc:
                failure = exc
        assert isinstance(failure, AuthenticationError), failure
    read = consume_all(ck_conf, topic, [0], expected=len(sent))
    assert [m.value for m in read[0]] == sent


def test_cli_produce_with_a_properties_file_over_sasl_ssl(secured: KafkaCluster, tmp_path: Any) -> None:
    import subprocess
    import sys

    topic = new_topic(secured, partitions=1)
    _, ck_conf = settings(secured, "scram-sha-512")
    properties = tmp_path / "client.properties"
    properties.write_text(
        f"bootstrap.servers={secured.listener_bootstrap('SASL_SSL')}\n"
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        f"ssl.truststore.location={secured.security.ca_pem}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        f'    username="{USER}" password="{PASSWORD}";\n')
    lines = [f"line-{i}" for i in range(50)]
    run = subprocess.run([sys.executable, "-m", "kprod", "produce", "--topic", topic, "--producer.config",
                          str(properties)], input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=120)
    output = (run.stdout + run.stderr).decode()
    assert run.returncode == 0, output
    assert PASSWORD not in output
    read = consume_all(ck_conf, topic, [0], expected=len(lines))
    assert [m.value for m in read[0]] == [line.encode() for line in lines]


@pytest.mark.parametrize("kind", ["mtls", "scram-sha-512"])
def test_blocking_connection_speaks_tls_and_sasl(secured: KafkaCluster, kind: str) -> None:
    from kprod.config import ProducerConfig
    from kprod.net.blocking import BlockingConnection
    from kprod.net.security import Security
    from kprod.protocol.messages import ApiKey
    from kprod.protocol.requests import metadata_request

    conf, _ = settings(secured, kind)
    cfg = ProducerConfig(conf)
    host, port = conf["bootstrap.servers"].split(",")[0].split(":")
    with BlockingConnection(host, int(port), security=Security.from_config(cfg, set(cfg.originals))) as conn:
        response = conn.send(metadata_request(conn.version(ApiKey.METADATA), None))
    listener_ports = {int(p.split(":")[1]) for p in conf["bootstrap.servers"].split(",")}
    assert {int(b.port) for b in response.brokers} == listener_ports


@pytest.mark.parametrize(("recipe", "kind"), [
    ("confluent-cloud", "plain"), ("msk-scram", "scram-sha-512"), ("redpanda", "scram-sha-256"),
    ("aiven-mtls", "mtls"), ("msk-iam", "oauthbearer"),
])
def test_docs_recipes_against_the_matching_listener(
        secured: KafkaCluster, recipe: str, kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe's keys, with this cluster's address, credentials and CA filled in."""
    from tests.security_recipes import _FakeMskSigner, run_recipe

    material = secured.security
    client = material.client_pem.read_text()
    split = client.index("-----BEGIN CERTIFICATE-----")
    key = client[:split]
    (tmp_path / "ca.pem").write_bytes(material.ca_pem.read_bytes())
    (tmp_path / "service.cert").write_text(client[split:])
    (tmp_path / "service.key").write_text(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_FakeMskSigner, "token", material.token())
    conf = run_recipe(recipe)
    conf["bootstrap.servers"] = secured.listener_bootstrap(LISTENER[kind])
    conf["ssl.truststore.location"] = str(material.ca_pem)
    if kind == "scram-sha-256":
        conf["security.protocol"] = "SASL_PLAINTEXT"  # the test cluster's SCRAM-SHA-256 listener has no TLS
    for field_name in ("sasl.jaas.config", "sasl.username", "sasl.password"):
        if field_name in conf:
            for placeholder, value in (("API_KEY", USER), ("API_SECRET", PASSWORD), ('"USER"', f'"{USER}"'),
                                       ('"PASSWORD"', f'"{PASSWORD}"')):
                conf[field_name] = conf[field_name].replace(placeholder, value)
            if conf[field_name] == "USER":
                conf[field_name] = USER
            if conf[field_name] == "PASSWORD":
                conf[field_name] = PASSWORD
    topic = new_topic(secured, partitions=1)
    with Producer({**conf, **QUICK}) as producer:
        offsets = [producer.send(topic, f"{recipe}-{i}".encode()).result(timeout=30).offset for i in range(20)]
    assert offsets == list(range(20))
    _, ck_conf = settings(secured, kind)
    read = consume_all(ck_conf, topic, [0], expected=20)
    assert [m.value for m in read[0]] == [f"{recipe}-{i}".encode() for i in range(20)]


def _client_credentials(cluster: KafkaCluster, secret: str) -> dict[str, Any]:
    conf, _ = settings(cluster, "oauthbearer")
    del conf["sasl.oauthbearer.token.provider"]
    return {**conf, "sasl.oauthbearer.token.endpoint.url": cluster.security.token_endpoint_url,
            "sasl.oauthbearer.client.credentials.client.id": CLIENT_ID,
            "sasl.oauthbearer.client.credentials.client.secret": secret,
            "sasl.oauthbearer.scope": "kafka",
            "sasl.login.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"}


def test_oidc_client_credentials_flow(secured: KafkaCluster) -> None:
    topic = new_topic(secured, partitions=1)
    _, ck_conf = settings(secured, "oauthbearer")
    with Producer(_client_credentials(secured, CLIENT_SECRET)) as producer:
        offsets = [producer.send(topic, f"oidc-{i}".encode()).result(timeout=30).offset for i in range(10)]
    assert offsets == list(range(10))
    read = consume_all(ck_conf, topic, [0], expected=10)
    assert [m.value for m in read[0]] == [f"oidc-{i}".encode() for i in range(10)]


def test_oidc_wrong_client_secret_is_an_authentication_error(secured: KafkaCluster) -> None:
    _expect_refusal(_client_credentials(secured, "wrong"), AuthenticationError, "token endpoint", "401")


def test_cli_perf_with_command_config_over_mtls(secured: KafkaCluster, tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.helpers import high_watermarks

    topic = new_topic(secured, partitions=3)
    properties = tmp_path / "client.properties"
    properties.write_text(
        f"bootstrap.servers={secured.listener_bootstrap('MTLS')}\nsecurity.protocol=SSL\n"
        f"ssl.truststore.location={secured.security.ca_pem}\nssl.keystore.location={secured.security.client_pem}\n"
        "ssl.key.password=\n")
    run = subprocess.run([sys.executable, "-m", "kprod", "perf", "--topic", topic, "--num-records", "5000",
                          "--record-size", "100", "--command-config", str(properties), "--json"],
                         capture_output=True, timeout=180)
    assert run.returncode == 0, (run.stdout + run.stderr).decode()
    marks = high_watermarks(secured.bootstrap_servers, topic, range(3))
    assert sum(marks.values()) == 5000
