"""Exceptions raised by kprod, and the table of Kafka error codes.

Every error a user can see says what happened, where (topic-partition) and what
to do about it. The class hierarchy follows the Java client's so code ported
from it can ``except`` on the same ideas:

* ``RetriableError`` (Java ``RetriableException``): the producer retries these
  on its own until ``delivery.timeout.ms``; catch it to tell transient failures
  from permanent ones.
* ``InvalidMetadataError`` (Java ``InvalidMetadataException``): retriable, and
  the producer refreshes its metadata before retrying.
* ``FatalProducerError``: the producer cannot continue; close it.

Each Kafka error code maps to exactly one ``BrokerResponseError`` subclass,
named after the Kafka name in CamelCase with ``Error`` at the end (a trailing
``_EXCEPTION`` or ``_ERROR`` in the Kafka name is dropped, so
``NETWORK_EXCEPTION`` is ``NetworkError``). Classes register themselves in
``ERROR_CLASSES`` as they are defined, so the class statements below are the one
table; ``error_for_code`` builds an instance from a code.

This module imports nothing else of kprod: the protocol layer raises these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = [
    "ERROR_CLASSES",
    "AuthenticationError",
    "SslAuthenticationError",
    "AuthorizationError",
    "BrokerResponseError",
    "BufferExhaustedError",
    "ConfigError",
    "EventLoopError",
    "FatalProducerError",
    "ForkedProducerError",
    "InterruptError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidMetadataError",
    "InvalidTopicNameError",
    "KafkaConnectionError",
    "KafkaError",
    "KafkaTimeoutError",
    "ProducerClosedError",
    "ProtocolError",
    "RecordTooLargeError",
    "RetriableError",
    "SerializationError",
    "UnknownBrokerError",
    "error_class_for_code",
    "error_for_code",
]


def _where(topic: str | None, partition: int | None) -> str:
    """Say where an error happened, in the topic-partition form Kafka tools print."""
    if topic is None:
        return "" if partition is None else f" for partition {partition}"
    if partition is None or partition < 0:
        return f" for topic '{topic}'"
    return f" for topic-partition {topic}-{partition}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _rebuild(cls: type[KafkaError], args: tuple[Any, ...], state: dict[str, Any]) -> KafkaError:
    """Unpickle without calling ``__init__``, whose keyword-only arguments pickle can't pass."""
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class KafkaError(Exception):
    """Base of every error kprod raises.

    ``topic`` and ``partition`` say where it happened when that is known;
    ``code`` is the Kafka error code for errors a broker returned, else None.
    """

    code: int | None = None
    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    fatal: ClassVar[bool] = False
    default_message: ClassVar[str] = "The Kafka client failed{where}. Check the logs for details."

    def __init__(
        self,
        message: str | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
    ) -> None:
        if message is None:
            message = type(self).default_message.format(where=_where(topic, partition))
        super().__init__(message)
        self.topic = topic
        self.partition = partition

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class RetriableError(KafkaError):
    """Transient: the same request may succeed if tried again (Java RetriableException)."""

    retriable = True


class InvalidMetadataError(RetriableError):
    """Retriable after a metadata refresh: leadership or topic layout changed."""

    invalid_metadata = True


class FatalProducerError(KafkaError):
    """Marker: after this error the producer cannot be used any more; close it."""

    fatal = True


class AuthorizationError(KafkaError):
    """The principal lacks an ACL for the operation (Java AuthorizationException)."""


class AuthenticationError(KafkaError):
    """The client could not authenticate (Java AuthenticationException)."""


class SslAuthenticationError(AuthenticationError):
    """The TLS handshake failed: certificate, trust or protocol (Java SslAuthenticationException)."""


# ---------------------------------------------------------------- client side


class SerializationError(KafkaError):
    """A key or value could not be turned into bytes (Java SerializationException).

    Raised from ``send()``, before the record reaches the buffer. ``is_key`` says
    whether the key (True) or the value (False) failed, when known; ``expected``
    and ``received`` describe the data, when the serializer could tell; ``field``
    names the record field (``"key"``, ``"value"``, ``"headers"``) and ``index``
    the record's position in a ``send_many()`` call, when known.
    """

    default_message = (
        "A record could not be serialized{where}. Pass data the configured serializer accepts,"
        " or set key.serializer / value.serializer to one that accepts it."
    )

    def __init__(
        self,
        message: str | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        is_key: bool | None = None,
        expected: str | None = None,
        received: str | None = None,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, topic=topic, partition=partition)
        self.is_key = is_key
        self.expected = expected
        self.received = received
        self.field = field
        self.index = index


class InvalidArgumentError(KafkaError, ValueError):
    """An argument of a kprod call is not valid (Java IllegalArgumentException).

    Raised before anything happens: a refused ``send()`` or ``send_many()``
    queues nothing. Also a ``ValueError``. ``field`` names the argument at fault
    (``"timestamp"``, ``"partition"``, ``"topic"``...); ``index`` is the record's
    position in a ``send_many()`` call, else None.
    """

    default_message = "An argument is not valid{where}. Fix the argument named above."

    def __init__(
        self,
        message: str | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, topic=topic, partition=partition)
        self.field = field
        self.index = index


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of a kprod call has the wrong type: an :class:`InvalidArgumentError`
    that is also a ``TypeError``, so either ``except`` catches it."""


class KafkaTimeoutError(RetriableError, TimeoutError):
    """An operation did not finish in time (Java TimeoutException).

    Also a Python ``TimeoutError``, so generic timeout handling catches it.
    """

    default_message = (
        "The operation did not complete in time{where}. Check that the brokers are reachable,"
        " or raise the timeout that expired (max.block.ms, delivery.timeout.ms or"
        " request.timeout.ms)."
    )


class BufferExhaustedError(KafkaTimeoutError):
    """``buffer.memory`` stayed full for ``max.block.ms`` (Java BufferExhaustedException)."""

    default_message = (
        "The producer's buffer (buffer.memory) stayed full for max.block.ms{where}. Raise"
        " buffer.memory or max.block.ms, or send more slowly than the brokers accept."
    )


class RecordTooLargeError(KafkaError):
    """A record is too large to send (Java RecordTooLargeException).

    kprod raises it itself when one serialized record exceeds ``max.request.size``
    or ``buffer.memory``. The broker's MESSAGE_TOO_LARGE (code 10) becomes
    ``MessageTooLargeError``, a subclass of this class: Java maps code 10 to the
    same RecordTooLargeException, so ``except RecordTooLargeError`` catches both
    the client-side check and the broker's refusal, while code that cares can
    still tell them apart.
    """

    default_message = (
        "The record is too large to send{where}. Send smaller records, or raise"
        " max.request.size (and max.message.bytes on the topic) to fit them."
    )


class ConfigError(KafkaError, ValueError):
    """A configuration value is wrong or missing (Java ConfigException).

    Also a ``ValueError``. ``keys`` names every configuration key at fault.
    """

    default_message = "The producer configuration is not valid. Fix the settings named above."

    def __init__(self, message: str | None = None, *, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = tuple(keys)


class InterruptError(KafkaError):
    """A blocking call was interrupted before it finished (Java InterruptException)."""

    default_message = (
        "A blocking producer call was interrupted{where}. Call it again if the interruption"
        " was not meant to stop it."
    )


class ProducerClosedError(FatalProducerError, RuntimeError):
    """The producer was used after ``close()`` (Java throws IllegalStateException)."""

    default_message = (
        "The producer is closed, so it cannot send{where}. Create a new producer, and call"
        " close() only when you are done with it."
    )


class ForkedProducerError(FatalProducerError, RuntimeError):
    """A producer was used in a child process after ``fork()``.

    Its I/O thread and sockets belong to the parent; using them from the child
    would hang or corrupt the parent's connections, so kprod refuses.
    """

    default_message = (
        "This producer was created in another process and cannot be used after fork(){where}."
        " Create a new producer in the child process."
    )


class EventLoopError(KafkaError, RuntimeError):
    """An asyncio producer was used outside the event loop it was started on, or before
    ``start()``. Its futures and callbacks belong to that one loop."""

    default_message = (
        "This AsyncProducer belongs to another event loop, or is not started{where}. Start it with"
        " 'async with AsyncProducer(...)' (or 'await producer.start()') in the loop that uses it,"
        " and create one producer per event loop."
    )


class KafkaConnectionError(InvalidMetadataError):
    """The connection to a broker was lost or could not be made.

    Java reports this as NetworkException, which is an InvalidMetadataException:
    a lost broker may mean the leaders moved, so the producer refreshes metadata
    and retries. The broker-side code 13 (NETWORK_EXCEPTION) is ``NetworkError``,
    a subclass of this class.
    """

    default_message = (
        "The connection to the broker was lost{where}. kprod reconnects and retries; if this"
        " persists, check that the broker is up and reachable from this host."
    )


class ProtocolError(KafkaConnectionError):
    """The bytes on a connection broke the Kafka protocol (bad frame, wrong correlation id).

    The connection cannot be trusted after that, so it is closed like a lost
    connection and its requests are retried on a new one: hence a subclass of
    ``KafkaConnectionError``.
    """

    default_message = (
        "The broker sent bytes that do not follow the Kafka protocol{where}. kprod resets the"
        " connection and retries; if this persists, check that bootstrap.servers points at"
        " Kafka brokers."
    )


# ---------------------------------------------------------------- broker side

_BY_CODE: dict[int, type[BrokerResponseError]] = {}

ERROR_CLASSES: Mapping[int, type[BrokerResponseError]] = MappingProxyType(_BY_CODE)
"""Every known Kafka error code (except 0, NONE) to its exception class."""


class BrokerResponseError(KafkaError):
    """An error code a broker returned in a response.

    Class attributes: ``code``, ``kafka_name`` (the protocol's name for the
    code), ``description`` (what it means) and ``hint`` (what to do);
    ``retriable`` follows from the ``RetriableError`` mixin. Instances add the
    broker's own ``error_message``, if it sent one, and the topic-partition.
    """

    code: int = -1
    kafka_name: ClassVar[str] = "UNKNOWN"
    description: ClassVar[str] = "The broker returned an error."
    hint: ClassVar[str] = ""

    def __init_subclass__(
        cls, /, code: int | None = None, kafka_name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if code is None:
            return
        if code in _BY_CODE:
            raise TypeError(f"Kafka error code {code} is already mapped to {_BY_CODE[code]!r}.")
        cls.code = code
        cls.kafka_name = kafka_name or cls.__name__
        _BY_CODE[code] = cls

    def __init__(
        self,
        message: str | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
    ) -> None:
        self.error_message = message
        text = self._compose(message, topic, partition)
        super().__init__(text, topic=topic, partition=partition)

    def _compose(self, message: str | None, topic: str | None, partition: int | None) -> str:
        cls = type(self)
        parts = [f"Kafka error {cls.kafka_name} (code {self.code}){_where(topic, partition)}:"]
        parts.append(cls.description)
        if message and message.strip() and message.strip() != cls.description:
            parts.append(f"The broker said: {_sentence(message)}")
        parts.append(cls.hint or _default_hint(cls))
        return " ".join(parts)


def _default_hint(cls: type[KafkaError]) -> str:
    if cls.invalid_metadata:
        return (
            "kprod refreshes metadata and retries until delivery.timeout.ms expires; if this"
            " persists, check the broker logs."
        )
    if cls.retriable:
        return (
            "kprod retries until delivery.timeout.ms expires; if this persists, check the broker"
            " logs."
        )
    return "It is not retriable; check the broker logs for the cause."


class UnknownBrokerError(BrokerResponseError):
    """A broker error code this version of kprod does not know."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
    ) -> None:
        self.code = code
        super().__init__(message, topic=topic, partition=partition)

    def _compose(self, message: str | None, topic: str | None, partition: int | None) -> str:
        text = (
            f"The broker returned Kafka error code {self.code}{_where(topic, partition)}, which"
            " this version of kprod does not know."
        )
        if message and message.strip():
            text += f" The broker said: {_sentence(message)}"
        return text + " Check the broker logs, or upgrade kprod."


# The table: one class per Kafka error code, in code order. Names, codes and the
# retriable / invalid-metadata classification follow the Java client's
# org.apache.kafka.common.protocol.Errors and its exception classes.


class UnknownServerError(BrokerResponseError, code=-1, kafka_name="UNKNOWN_SERVER_ERROR"):
    description = "The broker hit an unexpected error while handling the request."
    hint = "Look in the broker logs for the stack trace behind it; kprod does not retry it."


class OffsetOutOfRangeError(BrokerResponseError, code=1, kafka_name="OFFSET_OUT_OF_RANGE"):
    description = "The requested offset lies outside the offsets the partition holds."


class CorruptMessageError(
    RetriableError, BrokerResponseError, code=2, kafka_name="CORRUPT_MESSAGE"
):
    description = (
        "The broker found the batch corrupt: a CRC or size check failed, or a compacted topic "
        "received a record without a key."
    )
    hint = (
        "kprod retries the batch; if it keeps failing, give every record a key when the topic is "
        "compacted, or report the batch as a kprod bug."
    )


class UnknownTopicOrPartitionError(
    InvalidMetadataError, BrokerResponseError, code=3, kafka_name="UNKNOWN_TOPIC_OR_PARTITION"
):
    description = "The broker does not host this topic-partition."
    hint = (
        "Create the topic (or enable auto.create.topics.enable on the brokers) and check the "
        "partition number; kprod refreshes metadata and retries meanwhile."
    )


class InvalidFetchSizeError(BrokerResponseError, code=4, kafka_name="INVALID_FETCH_SIZE"):
    description = "The requested fetch size is not valid."


class LeaderNotAvailableError(
    InvalidMetadataError, BrokerResponseError, code=5, kafka_name="LEADER_NOT_AVAILABLE"
):
    description = (
        "The partition has no leader right now, usually during a leader election or while the "
        "topic is being created."
    )
    hint = (
        "kprod refreshes metadata and retries; if it persists, check that the brokers hosting the"
        " partition are up."
    )


class NotLeaderOrFollowerError(
    InvalidMetadataError, BrokerResponseError, code=6, kafka_name="NOT_LEADER_OR_FOLLOWER"
):
    description = (
        "The broker is not the leader (or not a replica) of this partition, so the client's "
        "metadata is stale."
    )
    hint = (
        "kprod refreshes metadata and retries on the new leader; if it persists, check the "
        "partition's leadership with kafka-topics --describe."
    )


class RequestTimedOutError(
    KafkaTimeoutError, BrokerResponseError, code=7, kafka_name="REQUEST_TIMED_OUT"
):
    description = (
        "The broker did not collect the required acknowledgements within the request timeout."
    )
    hint = (
        "kprod retries until delivery.timeout.ms; if it persists, check the health of the "
        "follower replicas or raise request.timeout.ms."
    )


class BrokerNotAvailableError(BrokerResponseError, code=8, kafka_name="BROKER_NOT_AVAILABLE"):
    description = "The broker is not available."
    hint = "Check that the broker is running and reachable from this host."


class ReplicaNotAvailableError(
    InvalidMetadataError, BrokerResponseError, code=9, kafka_name="REPLICA_NOT_AVAILABLE"
):
    description = "A replica of this partition is not available."


class MessageTooLargeError(
    RecordTooLargeError, BrokerResponseError, code=10, kafka_name="MESSAGE_TOO_LARGE"
):
    description = "The batch is larger than the largest message the broker or topic accepts."
    hint = (
        "Raise max.message.bytes on the topic (or message.max.bytes on the brokers), or lower "
        "batch.size / max.request.size so batches fit."
    )


class StaleControllerEpochError(BrokerResponseError, code=11, kafka_name="STALE_CONTROLLER_EPOCH"):
    description = "The controller has moved to another node."


class OffsetMetadataTooLargeError(
    BrokerResponseError, code=12, kafka_name="OFFSET_METADATA_TOO_LARGE"
):
    description = "The metadata attached to an offset commit is too large."


class NetworkError(
    KafkaConnectionError, BrokerResponseError, code=13, kafka_name="NETWORK_EXCEPTION"
):
    description = "The connection to the broker was lost before a response arrived."
    hint = (
        "kprod reconnects and retries; if it persists, check the network path and the broker's "
        "listener settings."
    )


class CoordinatorLoadInProgressError(
    RetriableError, BrokerResponseError, code=14, kafka_name="COORDINATOR_LOAD_IN_PROGRESS"
):
    description = "The coordinator is still loading its state."
    hint = "kprod retries after a short backoff."


class CoordinatorNotAvailableError(
    RetriableError, BrokerResponseError, code=15, kafka_name="COORDINATOR_NOT_AVAILABLE"
):
    description = "The coordinator is not available."
    hint = (
        "kprod looks up the coordinator again and retries; if it persists, check the internal "
        "__transaction_state topic and the brokers hosting it."
    )


class NotCoordinatorError(
    RetriableError, BrokerResponseError, code=16, kafka_name="NOT_COORDINATOR"
):
    description = "The broker is not the coordinator for this key."
    hint = "kprod looks up the coordinator again and retries."


class InvalidTopicError(BrokerResponseError, code=17, kafka_name="INVALID_TOPIC_EXCEPTION"):
    description = "The topic name is not valid."
    hint = (
        "Use a topic name of 1 to 249 characters made of ASCII letters, digits, '.', '_' and '-',"
        " and do not write to internal topics."
    )


class InvalidTopicNameError(InvalidTopicError, InvalidArgumentError):
    """``send()`` was given a topic name that Kafka would refuse: refused at once, client side.

    Both an :class:`InvalidTopicError` (what the broker answers for such a name; Java's
    InvalidTopicException) and an :class:`InvalidArgumentError` (a ``ValueError``), with
    ``field`` "topic"."""

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        KafkaError.__init__(self, message, topic=topic)  # the client's words: no broker message to compose
        self.error_message = None
        self.field = "topic"
        self.index = None


class RecordListTooLargeError(BrokerResponseError, code=18, kafka_name="RECORD_LIST_TOO_LARGE"):
    description = "The batch is larger than the topic's segment size."
    hint = "Lower batch.size, or raise segment.bytes on the topic."


class NotEnoughReplicasError(
    RetriableError, BrokerResponseError, code=19, kafka_name="NOT_ENOUGH_REPLICAS"
):
    description = (
        "The partition has fewer in-sync replicas than min.insync.replicas, so nothing was "
        "written."
    )
    hint = (
        "kprod retries until delivery.timeout.ms; bring the lagging replicas back or lower "
        "min.insync.replicas on the topic."
    )


class NotEnoughReplicasAfterAppendError(
    RetriableError, BrokerResponseError, code=20, kafka_name="NOT_ENOUGH_REPLICAS_AFTER_APPEND"
):
    description = (
        "The records were written, but to fewer in-sync replicas than min.insync.replicas."
    )
    hint = (
        "kprod retries (idempotence keeps the retry from duplicating records); bring the lagging "
        "replicas back or lower min.insync.replicas on the topic."
    )


class InvalidRequiredAcksError(BrokerResponseError, code=21, kafka_name="INVALID_REQUIRED_ACKS"):
    description = "The request asked for an acks value the broker does not accept."
    hint = "Set acks to 0, 1 or all."


class IllegalGenerationError(BrokerResponseError, code=22, kafka_name="ILLEGAL_GENERATION"):
    description = "The consumer group generation is not valid."


class InconsistentGroupProtocolError(
    BrokerResponseError, code=23, kafka_name="INCONSISTENT_GROUP_PROTOCOL"
):
    description = "The member's group protocols do not match those of the group."


class InvalidGroupIdError(BrokerResponseError, code=24, kafka_name="INVALID_GROUP_ID"):
    description = "The group id is not valid."


class UnknownMemberIdError(BrokerResponseError, code=25, kafka_name="UNKNOWN_MEMBER_ID"):
    description = "The coordinator does not know this group member."


class InvalidSessionTimeoutError(
    BrokerResponseError, code=26, kafka_name="INVALID_SESSION_TIMEOUT"
):
    description = "The session timeout is outside the range the broker allows."


class RebalanceInProgressError(BrokerResponseError, code=27, kafka_name="REBALANCE_IN_PROGRESS"):
    description = "The group is rebalancing."


class InvalidCommitOffsetSizeError(
    BrokerResponseError, code=28, kafka_name="INVALID_COMMIT_OFFSET_SIZE"
):
    description = "The offset commit is not of a valid size."


class TopicAuthorizationFailedError(
    AuthorizationError, BrokerResponseError, code=29, kafka_name="TOPIC_AUTHORIZATION_FAILED"
):
    description = "The client's principal is not authorized to write to this topic."
    hint = "Check the topic ACLs: the principal needs WRITE (and DESCRIBE) on the topic."


class GroupAuthorizationFailedError(
    AuthorizationError, BrokerResponseError, code=30, kafka_name="GROUP_AUTHORIZATION_FAILED"
):
    description = "The client's principal is not authorized to use this group."
    hint = "Check the group ACLs for this principal."


class ClusterAuthorizationFailedError(
    AuthorizationError,
    FatalProducerError,
    BrokerResponseError,
    code=31,
    kafka_name="CLUSTER_AUTHORIZATION_FAILED",
):
    description = "The client's principal is not authorized for this cluster operation."
    hint = (
        "Check the cluster ACLs: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or "
        "WRITE on its topics; or set enable.idempotence=false."
    )


class InvalidTimestampError(BrokerResponseError, code=32, kafka_name="INVALID_TIMESTAMP"):
    description = "The record timestamp is outside the range the topic accepts."
    hint = (
        "Send records with a current timestamp (or none), or widen "
        "message.timestamp.before.max.ms / message.timestamp.after.max.ms on the topic."
    )


class UnsupportedSaslMechanismError(
    AuthenticationError, BrokerResponseError, code=33, kafka_name="UNSUPPORTED_SASL_MECHANISM"
):
    description = "The broker does not support the requested SASL mechanism."


class IllegalSaslStateError(
    AuthenticationError, BrokerResponseError, code=34, kafka_name="ILLEGAL_SASL_STATE"
):
    description = "The request is not valid in the current SASL state."


class UnsupportedVersionError(BrokerResponseError, code=35, kafka_name="UNSUPPORTED_VERSION"):
    description = "The broker does not support this API version."
    hint = (
        "Upgrade the brokers, or check that bootstrap.servers points at Kafka brokers of a "
        "supported version (2.8 or later)."
    )


class TopicAlreadyExistsError(BrokerResponseError, code=36, kafka_name="TOPIC_ALREADY_EXISTS"):
    description = "A topic with this name already exists."


class InvalidPartitionsError(BrokerResponseError, code=37, kafka_name="INVALID_PARTITIONS"):
    description = "The number of partitions is not valid."
    hint = "Ask for at least one partition."


class InvalidReplicationFactorError(
    BrokerResponseError, code=38, kafka_name="INVALID_REPLICATION_FACTOR"
):
    description = "The replication factor is below 1 or larger than the number of brokers."
    hint = "Ask for a replication factor between 1 and the number of live brokers."


class InvalidReplicaAssignmentError(
    BrokerResponseError, code=39, kafka_name="INVALID_REPLICA_ASSIGNMENT"
):
    description = "The replica assignment is not valid."


class InvalidConfigError(BrokerResponseError, code=40, kafka_name="INVALID_CONFIG"):
    description = "The configuration in the request is not valid."


class NotControllerError(
    RetriableError, BrokerResponseError, code=41, kafka_name="NOT_CONTROLLER"
):
    description = "The broker is not the active controller."


class InvalidRequestError(BrokerResponseError, code=42, kafka_name="INVALID_REQUEST"):
    description = (
        "The broker could not make sense of the request: it was malformed or the broker does not "
        "support it."
    )
    hint = (
        "Check the broker logs for the reason, and report it as a kprod bug if the request came "
        "from kprod."
    )


class UnsupportedForMessageFormatError(
    BrokerResponseError, code=43, kafka_name="UNSUPPORTED_FOR_MESSAGE_FORMAT"
):
    description = "The topic's message format does not support this request."


class PolicyViolationError(BrokerResponseError, code=44, kafka_name="POLICY_VIOLATION"):
    description = "The request breaks a policy configured on the broker."


class OutOfOrderSequenceNumberError(
    BrokerResponseError, code=45, kafka_name="OUT_OF_ORDER_SEQUENCE_NUMBER"
):
    description = (
        "The broker received an idempotent batch whose sequence number does not follow the last "
        "one it stored."
    )
    hint = (
        "kprod resets the producer's sequence state; records sent before the gap may have been "
        "lost, so check the topic if exactly-once delivery matters."
    )


class DuplicateSequenceNumberError(
    BrokerResponseError, code=46, kafka_name="DUPLICATE_SEQUENCE_NUMBER"
):
    description = "The broker received a batch it had already written."
    hint = "kprod treats this as a success of the earlier write."


class InvalidProducerEpochError(BrokerResponseError, code=47, kafka_name="INVALID_PRODUCER_EPOCH"):
    description = "The producer used an epoch older than the one the broker knows."
    hint = (
        "Abort the current transaction and continue; if it repeats, another producer instance may"
        " share this transactional.id."
    )


class InvalidTxnStateError(BrokerResponseError, code=48, kafka_name="INVALID_TXN_STATE"):
    description = "The transactional operation is not valid in the transaction's current state."
    hint = (
        "Call the transaction methods in order: init_transactions, begin_transaction, send, then "
        "commit_transaction or abort_transaction."
    )


class InvalidProducerIdMappingError(
    BrokerResponseError, code=49, kafka_name="INVALID_PRODUCER_ID_MAPPING"
):
    description = "The producer id is not the one currently assigned to this transactional id."
    hint = "Re-initialise the producer with init_transactions."


class InvalidTransactionTimeoutError(
    FatalProducerError, BrokerResponseError, code=50, kafka_name="INVALID_TRANSACTION_TIMEOUT"
):
    description = "The transaction timeout is larger than the broker allows."
    hint = (
        "Set transaction.timeout.ms at or below the brokers' transaction.max.timeout.ms (15 "
        "minutes by default)."
    )


class ConcurrentTransactionsError(
    RetriableError, BrokerResponseError, code=51, kafka_name="CONCURRENT_TRANSACTIONS"
):
    description = "Another operation on the same transaction is still completing."
    hint = "kprod retries after a short backoff."


class TransactionCoordinatorFencedError(
    BrokerResponseError, code=52, kafka_name="TRANSACTION_COORDINATOR_FENCED"
):
    description = "The transaction coordinator that sent the request has been replaced."


class TransactionalIdAuthorizationFailedError(
    AuthorizationError,
    FatalProducerError,
    BrokerResponseError,
    code=53,
    kafka_name="TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
):
    description = "The client's principal is not authorized to use this transactional id."
    hint = "Grant WRITE and DESCRIBE on the TransactionalId resource to this principal."


class SecurityDisabledError(BrokerResponseError, code=54, kafka_name="SECURITY_DISABLED"):
    description = "Security features are disabled on the broker."


class OperationNotAttemptedError(
    BrokerResponseError, code=55, kafka_name="OPERATION_NOT_ATTEMPTED"
):
    description = (
        "The broker did not try this operation because another part of the same request failed."
    )
    hint = (
        "Fix the error reported for the other part of the request; this one follows from it."
    )


class KafkaStorageError(
    InvalidMetadataError, BrokerResponseError, code=56, kafka_name="KAFKA_STORAGE_ERROR"
):
    description = "The broker could not access the log directory holding this partition."
    hint = (
        "kprod refreshes metadata and retries; check the broker's disks and log directories."
    )


class LogDirNotFoundError(BrokerResponseError, code=57, kafka_name="LOG_DIR_NOT_FOUND"):
    description = "The requested log directory does not exist on the broker."


class SaslAuthenticationFailedError(
    AuthenticationError, BrokerResponseError, code=58, kafka_name="SASL_AUTHENTICATION_FAILED"
):
    description = "SASL authentication failed."
    hint = "Check the credentials and the SASL mechanism."


class UnknownProducerIdError(
    OutOfOrderSequenceNumberError, code=59, kafka_name="UNKNOWN_PRODUCER_ID"
):
    description = (
        "The broker no longer has state for this producer id, for example because all its records"
        " were deleted by retention."
    )
    hint = "kprod resets the producer's sequence state and continues."


class ReassignmentInProgressError(
    BrokerResponseError, code=60, kafka_name="REASSIGNMENT_IN_PROGRESS"
):
    description = "A partition reassignment is in progress."


class DelegationTokenAuthDisabledError(
    BrokerResponseError, code=61, kafka_name="DELEGATION_TOKEN_AUTH_DISABLED"
):
    description = "Delegation tokens are not enabled on the broker."


class DelegationTokenNotFoundError(
    BrokerResponseError, code=62, kafka_name="DELEGATION_TOKEN_NOT_FOUND"
):
    description = "The delegation token was not found."


class DelegationTokenOwnerMismatchError(
    BrokerResponseError, code=63, kafka_name="DELEGATION_TOKEN_OWNER_MISMATCH"
):
    description = "The principal is not the owner or renewer of the delegation token."


class DelegationTokenRequestNotAllowedError(
    BrokerResponseError, code=64, kafka_name="DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"
):
    description = "Delegation token requests are not allowed on this kind of connection."


class DelegationTokenAuthorizationFailedError(
    AuthorizationError,
    BrokerResponseError,
    code=65,
    kafka_name="DELEGATION_TOKEN_AUTHORIZATION_FAILED",
):
    description = "The client's principal is not authorized for this delegation token operation."


class DelegationTokenExpiredError(
    BrokerResponseError, code=66, kafka_name="DELEGATION_TOKEN_EXPIRED"
):
    description = "The delegation token has expired."


class InvalidPrincipalTypeError(BrokerResponseError, code=67, kafka_name="INVALID_PRINCIPAL_TYPE"):
    description = "The principal type is not supported."


class NonEmptyGroupError(BrokerResponseError, code=68, kafka_name="NON_EMPTY_GROUP"):
    description = "The group still has members."


class GroupIdNotFoundError(BrokerResponseError, code=69, kafka_name="GROUP_ID_NOT_FOUND"):
    description = "The group does not exist."


class FetchSessionIdNotFoundError(
    RetriableError, BrokerResponseError, code=70, kafka_name="FETCH_SESSION_ID_NOT_FOUND"
):
    description = "The fetch session was not found."


class InvalidFetchSessionEpochError(
    RetriableError, BrokerResponseError, code=71, kafka_name="INVALID_FETCH_SESSION_EPOCH"
):
    description = "The fetch session epoch is not valid."


class ListenerNotFoundError(
    InvalidMetadataError, BrokerResponseError, code=72, kafka_name="LISTENER_NOT_FOUND"
):
    description = "The leader has no listener matching the one the metadata request came in on."
    hint = (
        "kprod refreshes metadata and retries; if it persists, make every broker define the "
        "listener this client connects to."
    )


class TopicDeletionDisabledError(
    BrokerResponseError, code=73, kafka_name="TOPIC_DELETION_DISABLED"
):
    description = "Topic deletion is disabled on the broker."


class FencedLeaderEpochError(
    InvalidMetadataError, BrokerResponseError, code=74, kafka_name="FENCED_LEADER_EPOCH"
):
    description = "The leader epoch in the request is older than the broker's."


class UnknownLeaderEpochError(
    RetriableError, BrokerResponseError, code=75, kafka_name="UNKNOWN_LEADER_EPOCH"
):
    description = "The leader epoch in the request is newer than the broker's."


class UnsupportedCompressionTypeError(
    BrokerResponseError, code=76, kafka_name="UNSUPPORTED_COMPRESSION_TYPE"
):
    description = (
        "The broker does not accept this compression type for this request version or topic."
    )
    hint = (
        "Choose a compression.type the brokers support (zstd needs brokers of 2.1 or later)."
    )


class StaleBrokerEpochError(BrokerResponseError, code=77, kafka_name="STALE_BROKER_EPOCH"):
    description = "The broker epoch is stale."


class OffsetNotAvailableError(
    RetriableError, BrokerResponseError, code=78, kafka_name="OFFSET_NOT_AVAILABLE"
):
    description = "The leader's high watermark has not caught up after a recent election."


class MemberIdRequiredError(BrokerResponseError, code=79, kafka_name="MEMBER_ID_REQUIRED"):
    description = "The group member must have a member id first."


class PreferredLeaderNotAvailableError(
    InvalidMetadataError, BrokerResponseError, code=80, kafka_name="PREFERRED_LEADER_NOT_AVAILABLE"
):
    description = "The preferred leader is not available."


class GroupMaxSizeReachedError(BrokerResponseError, code=81, kafka_name="GROUP_MAX_SIZE_REACHED"):
    description = "The group has reached its maximum size."


class FencedInstanceIdError(BrokerResponseError, code=82, kafka_name="FENCED_INSTANCE_ID"):
    description = "Another member with the same group.instance.id has replaced this one."


class EligibleLeadersNotAvailableError(
    InvalidMetadataError, BrokerResponseError, code=83, kafka_name="ELIGIBLE_LEADERS_NOT_AVAILABLE"
):
    description = "No eligible leader is available for the partition."


class ElectionNotNeededError(
    InvalidMetadataError, BrokerResponseError, code=84, kafka_name="ELECTION_NOT_NEEDED"
):
    description = "The partition needs no leader election."


class NoReassignmentInProgressError(
    BrokerResponseError, code=85, kafka_name="NO_REASSIGNMENT_IN_PROGRESS"
):
    description = "No partition reassignment is in progress."


class GroupSubscribedToTopicError(
    BrokerResponseError, code=86, kafka_name="GROUP_SUBSCRIBED_TO_TOPIC"
):
    description = "The group is still subscribed to the topic."


class InvalidRecordError(BrokerResponseError, code=87, kafka_name="INVALID_RECORD"):
    description = "The broker's validation rejected the batch or one of its records."
    hint = (
        "Read the broker message for the record at fault; common causes are a null key on a "
        "compacted topic or a bad timestamp."
    )


class UnstableOffsetCommitError(
    RetriableError, BrokerResponseError, code=88, kafka_name="UNSTABLE_OFFSET_COMMIT"
):
    description = "There are pending transactional offsets that must be resolved first."


class ThrottlingQuotaExceededError(
    RetriableError, BrokerResponseError, code=89, kafka_name="THROTTLING_QUOTA_EXCEEDED"
):
    description = "The request exceeded the client's throttling quota."
    hint = (
        "kprod retries after a backoff; ask the cluster operator to raise the quota if it "
        "persists."
    )


class ProducerFencedError(
    FatalProducerError, BrokerResponseError, code=90, kafka_name="PRODUCER_FENCED"
):
    description = "A newer producer with the same transactional.id has fenced this one."
    hint = (
        "Close this producer: another instance with the same transactional.id has taken over."
    )


class ResourceNotFoundError(BrokerResponseError, code=91, kafka_name="RESOURCE_NOT_FOUND"):
    description = "The request referred to a resource that does not exist."


class DuplicateResourceError(BrokerResponseError, code=92, kafka_name="DUPLICATE_RESOURCE"):
    description = "The request referred to the same resource twice."


class UnacceptableCredentialError(
    BrokerResponseError, code=93, kafka_name="UNACCEPTABLE_CREDENTIAL"
):
    description = "The credential does not meet the acceptance criteria."


class InconsistentVoterSetError(BrokerResponseError, code=94, kafka_name="INCONSISTENT_VOTER_SET"):
    description = "The sender or receiver of a voter request is not an expected voter."


class InvalidUpdateVersionError(BrokerResponseError, code=95, kafka_name="INVALID_UPDATE_VERSION"):
    description = "The update version is not valid."


class FeatureUpdateFailedError(BrokerResponseError, code=96, kafka_name="FEATURE_UPDATE_FAILED"):
    description = "Finalized features could not be updated because of a broker error."


class PrincipalDeserializationFailureError(
    BrokerResponseError, code=97, kafka_name="PRINCIPAL_DESERIALIZATION_FAILURE"
):
    description = "A forwarded request's principal could not be deserialized."


class SnapshotNotFoundError(BrokerResponseError, code=98, kafka_name="SNAPSHOT_NOT_FOUND"):
    description = "The requested snapshot was not found."


class PositionOutOfRangeError(BrokerResponseError, code=99, kafka_name="POSITION_OUT_OF_RANGE"):
    description = "The requested snapshot position is out of range."


class UnknownTopicIdError(
    InvalidMetadataError, BrokerResponseError, code=100, kafka_name="UNKNOWN_TOPIC_ID"
):
    description = "The broker does not host a topic with this topic id."
    hint = (
        "kprod refreshes metadata and retries; if it persists, the topic may have been deleted "
        "and re-created."
    )


class DuplicateBrokerRegistrationError(
    BrokerResponseError, code=101, kafka_name="DUPLICATE_BROKER_REGISTRATION"
):
    description = "This broker id is already registered."


class BrokerIdNotRegisteredError(
    BrokerResponseError, code=102, kafka_name="BROKER_ID_NOT_REGISTERED"
):
    description = "This broker id is not registered."


class InconsistentTopicIdError(
    InvalidMetadataError, BrokerResponseError, code=103, kafka_name="INCONSISTENT_TOPIC_ID"
):
    description = "The topic id in the request does not match the broker's log."


class InconsistentClusterIdError(
    BrokerResponseError, code=104, kafka_name="INCONSISTENT_CLUSTER_ID"
):
    description = "The cluster id in the request does not match the broker's."


class TransactionalIdNotFoundError(
    BrokerResponseError, code=105, kafka_name="TRANSACTIONAL_ID_NOT_FOUND"
):
    description = "The transactional id was not found."


class FetchSessionTopicIdError(
    RetriableError, BrokerResponseError, code=106, kafka_name="FETCH_SESSION_TOPIC_ID_ERROR"
):
    description = "The fetch session used topic ids inconsistently."


class IneligibleReplicaError(BrokerResponseError, code=107, kafka_name="INELIGIBLE_REPLICA"):
    description = "The new in-sync replica set contains an ineligible replica."


class NewLeaderElectedError(BrokerResponseError, code=108, kafka_name="NEW_LEADER_ELECTED"):
    description = "The partition state was updated but a new leader was elected meanwhile."


class OffsetMovedToTieredStorageError(
    BrokerResponseError, code=109, kafka_name="OFFSET_MOVED_TO_TIERED_STORAGE"
):
    description = "The requested offset has moved to tiered storage."


class FencedMemberEpochError(BrokerResponseError, code=110, kafka_name="FENCED_MEMBER_EPOCH"):
    description = "The group coordinator fenced this member's epoch."


class UnreleasedInstanceIdError(
    BrokerResponseError, code=111, kafka_name="UNRELEASED_INSTANCE_ID"
):
    description = "Another group member still uses this instance id."


class UnsupportedAssignorError(BrokerResponseError, code=112, kafka_name="UNSUPPORTED_ASSIGNOR"):
    description = "The group does not support this assignor."


class StaleMemberEpochError(BrokerResponseError, code=113, kafka_name="STALE_MEMBER_EPOCH"):
    description = "The member epoch is stale."


class MismatchedEndpointTypeError(
    BrokerResponseError, code=114, kafka_name="MISMATCHED_ENDPOINT_TYPE"
):
    description = "The request was sent to the wrong kind of endpoint."


class UnsupportedEndpointTypeError(
    BrokerResponseError, code=115, kafka_name="UNSUPPORTED_ENDPOINT_TYPE"
):
    description = "This endpoint type is not supported."


class UnknownControllerIdError(BrokerResponseError, code=116, kafka_name="UNKNOWN_CONTROLLER_ID"):
    description = "The controller id is not known."


class UnknownSubscriptionIdError(
    BrokerResponseError, code=117, kafka_name="UNKNOWN_SUBSCRIPTION_ID"
):
    description = "The client telemetry subscription id is unknown or outdated."


class TelemetryTooLargeError(BrokerResponseError, code=118, kafka_name="TELEMETRY_TOO_LARGE"):
    description = "The client telemetry push is larger than the broker accepts."


class InvalidRegistrationError(BrokerResponseError, code=119, kafka_name="INVALID_REGISTRATION"):
    description = "The controller found the broker registration not valid."


class TransactionAbortableError(BrokerResponseError, code=120, kafka_name="TRANSACTION_ABORTABLE"):
    description = "The broker hit an error inside the transaction; the transaction cannot commit."
    hint = "Abort the transaction with abort_transaction, then start a new one."


class InvalidRecordStateError(BrokerResponseError, code=121, kafka_name="INVALID_RECORD_STATE"):
    description = "The record state is not valid for this acknowledgement."


class ShareSessionNotFoundError(
    RetriableError, BrokerResponseError, code=122, kafka_name="SHARE_SESSION_NOT_FOUND"
):
    description = "The share session was not found."


class InvalidShareSessionEpochError(
    RetriableError, BrokerResponseError, code=123, kafka_name="INVALID_SHARE_SESSION_EPOCH"
):
    description = "The share session epoch is not valid."


class FencedStateEpochError(BrokerResponseError, code=124, kafka_name="FENCED_STATE_EPOCH"):
    description = "The share-group state epoch does not match."


class InvalidVoterKeyError(BrokerResponseError, code=125, kafka_name="INVALID_VOTER_KEY"):
    description = "The voter key does not match the receiving replica."


class DuplicateVoterError(BrokerResponseError, code=126, kafka_name="DUPLICATE_VOTER"):
    description = "The voter is already in the voter set."


class VoterNotFoundError(BrokerResponseError, code=127, kafka_name="VOTER_NOT_FOUND"):
    description = "The voter is not in the voter set."


class InvalidRegularExpressionError(
    BrokerResponseError, code=128, kafka_name="INVALID_REGULAR_EXPRESSION"
):
    description = "The regular expression is not valid."


class RebootstrapRequiredError(BrokerResponseError, code=129, kafka_name="REBOOTSTRAP_REQUIRED"):
    description = "The client's metadata is stale and the broker asks it to bootstrap again."
    hint = (
        "kprod bootstraps again from bootstrap.servers (metadata.recovery.strategy=rebootstrap)."
    )


class StreamsInvalidTopologyError(
    BrokerResponseError, code=130, kafka_name="STREAMS_INVALID_TOPOLOGY"
):
    description = "The Streams topology is not valid."


class StreamsInvalidTopologyEpochError(
    BrokerResponseError, code=131, kafka_name="STREAMS_INVALID_TOPOLOGY_EPOCH"
):
    description = "The Streams topology epoch is not valid."


class StreamsTopologyFencedError(
    BrokerResponseError, code=132, kafka_name="STREAMS_TOPOLOGY_FENCED"
):
    description = "The Streams topology epoch is outdated."


class ShareSessionLimitReachedError(
    RetriableError, BrokerResponseError, code=133, kafka_name="SHARE_SESSION_LIMIT_REACHED"
):
    description = "The broker's limit of share sessions has been reached."

def error_class_for_code(code: int) -> type[BrokerResponseError]:
    """The class for a Kafka error code; ``UnknownBrokerError`` for codes not in the table."""
    return _BY_CODE.get(code, UnknownBrokerError)


def error_for_code(
    code: int,
    message: str | None = None,
    *,
    topic: str | None = None,
    partition: int | None = None,
) -> BrokerResponseError:
    """Build the exception for a Kafka error code a broker returned.

    ``message`` is the broker's error message, if the response carried one. Code
    0 (NONE) means success and raises ``ValueError``: callers check for it first.
    """
    if code == 0:
        raise ValueError("Kafka error code 0 means success; there is no error to build for it.")
    cls = _BY_CODE.get(code)
    if cls is None:
        return UnknownBrokerError(code, message, topic=topic, partition=partition)
    return cls(message, topic=topic, partition=partition)


def _export_table() -> None:
    """Add every table class to ``__all__`` so star-imports and docs see them."""
    for cls in _BY_CODE.values():
        __all__.append(cls.__name__)


_export_table()
