"""Every provider recipe in docs/security.md is accepted as producer settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kprod.config import ProducerConfig
from kprod.net.security import Security
from tests.security_recipes import recipes, run_recipe

EXPECTED = {
    "confluent-cloud": ("SASL_SSL", "PLAIN"),
    "confluent-cloud-oauth": ("SASL_SSL", "OAUTHBEARER"),
    "msk-scram": ("SASL_SSL", "SCRAM-SHA-512"),
    "msk-iam": ("SASL_SSL", "OAUTHBEARER"),
    "aiven-mtls": ("SSL", None),
    "event-hubs": ("SASL_SSL", "PLAIN"),
    "redpanda": ("SASL_SSL", "SCRAM-SHA-256"),
}


def test_the_page_has_one_recipe_per_provider_shape() -> None:
    assert list(recipes()) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_recipe_builds_a_producer_config(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("client")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "service.cert").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(tmp_path / "service.key"))
    monkeypatch.chdir(tmp_path)
    conf = run_recipe(name)
    cfg = ProducerConfig(conf)
    security = Security.from_config(cfg, set(cfg.originals))
    protocol, mechanism = EXPECTED[name]
    assert security.protocol == protocol and security.mechanism_name == mechanism
    assert security.tls is not None and security.tls.check_hostname
    if name == "msk-iam":
        assert security.token_source is not None and security.token_source.current() == "msk-token"
    if name == "event-hubs":
        auth = security.new_authenticator()
        assert auth is not None
        from kprod.protocol.messages import ApiKey
        auth.start({ApiKey.SASL_HANDSHAKE: 1, ApiKey.SASL_AUTHENTICATE: 2})
        assert auth.mechanism is not None
        message = auth.mechanism.first()
        assert message.startswith(b"\0$ConnectionString\0Endpoint=sb://mynamespace.servicebus.windows.net/;")
        assert message.endswith(b"SharedAccessKey=KEY")
