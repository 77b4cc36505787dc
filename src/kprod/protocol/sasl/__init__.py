"""SASL for Kafka clients, sans-IO: mechanisms, the KIP-152 exchange and JAAS lines."""

from kprod.protocol.sasl.authenticator import SaslAuthenticator
from kprod.protocol.sasl.jaas import JaasConfig, parse_jaas
from kprod.protocol.sasl.mechanisms import Mechanism, OAuthBearer, Plain, Scram

__all__ = ["SaslAuthenticator", "JaasConfig", "parse_jaas", "Mechanism", "OAuthBearer", "Plain", "Scram"]
