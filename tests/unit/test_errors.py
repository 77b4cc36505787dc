"""kprod.errors: the Kafka error-code table, the class hierarchy and the messages."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from kprod import errors
from kprod.errors import (
    ERROR_CLASSES,
    AuthorizationError,
    BrokerResponseError,
    BufferExhaustedError,
    ConfigError,
    FatalProducerError,
    ForkedProducerError,
    InterruptError,
    InvalidMetadataError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerClosedError,
    ProtocolError,
    RecordTooLargeError,
    RetriableError,
    SerializationError,
    UnknownBrokerError,
    error_class_for_code,
    error_for_code,
)

KIO_CODES = {int(code): code for code in ErrorCode if int(code) != 0}

# kafka-protocol.md section 6 (Java's RetriableException subclasses).
RETRIABLE = [2, 3, 5, 6, 7, 13, 14, 15, 16, 19, 20, 51, 56, 89, 100]
NOT_RETRIABLE = [-1, 1, 4, 10, 17, 18, 21, 29, 31, 32, 35, 36, 37, 38, 42, 45, 46, 47, 48, 49,
                 50, 53, 55, 59, 76, 87, 90, 120, 129]
# Java's InvalidMetadataException subclasses.
INVALID_METADATA = [3, 5, 6, 9, 13, 56, 72, 74, 80, 83, 84, 100, 103]
RETRIABLE_NOT_METADATA = [2, 7, 14, 15, 16, 19, 20, 41, 51, 75, 89]


def _python_name(kafka_name: str) -> str:
    for suffix in ("_EXCEPTION", "_ERROR"):
        kafka_name = kafka_name.removesuffix(suffix)
    return "".join(part.capitalize() for part in kafka_name.split("_")) + "Error"


# ------------------------------------------------------------------ the table


def test_table_covers_every_code_kio_knows() -> None:
    assert set(ERROR_CLASSES) == set(KIO_CODES)
    assert 0 not in ERROR_CLASSES
    assert min(ERROR_CLASSES) == -1 and max(ERROR_CLASSES) >= 133


@pytest.mark.parametrize("code", sorted(KIO_CODES))
def test_class_name_code_and_retriable_flag_match_kafka(code: int) -> None:
    cls = ERROR_CLASSES[code]
    kio_code = KIO_CODES[code]
    assert cls.code == code
    assert cls.kafka_name == kio_code.name.upper()
    assert cls.__name__ == _python_name(cls.kafka_name)
    assert getattr(errors, cls.__name__) is cls
    assert cls.__name__ in errors.__all__
    assert issubclass(cls, BrokerResponseError)
    assert cls.retriable is kio_code.retriable
    assert issubclass(cls, RetriableError) is kio_code.retriable


@pytest.mark.parametrize("code", RETRIABLE)
def test_retriable_codes_from_the_protocol_notes(code: int) -> None:
    err = error_for_code(code)
    assert isinstance(err, RetriableError)
    assert err.retriable is True


@pytest.mark.parametrize("code", NOT_RETRIABLE)
def test_non_retriable_codes_from_the_protocol_notes(code: int) -> None:
    err = error_for_code(code)
    assert not isinstance(err, RetriableError)
    assert err.retriable is False


@pytest.mark.parametrize("code", INVALID_METADATA)
def test_invalid_metadata_codes(code: int) -> None:
    err = error_for_code(code)
    assert isinstance(err, InvalidMetadataError) and isinstance(err, RetriableError)
    assert err.invalid_metadata is True


@pytest.mark.parametrize("code", RETRIABLE_NOT_METADATA)
def test_retriable_codes_that_do_not_refresh_metadata(code: int) -> None:
    err = error_for_code(code)
    assert isinstance(err, RetriableError)
    assert not isinstance(err, InvalidMetadataError)
    assert err.invalid_metadata is False


def test_well_known_class_names() -> None:
    assert ERROR_CLASSES[6] is errors.NotLeaderOrFollowerError
    assert ERROR_CLASSES[10] is errors.MessageTooLargeError
    assert ERROR_CLASSES[13] is errors.NetworkError
    assert ERROR_CLASSES[17] is errors.InvalidTopicError
    assert ERROR_CLASSES[35] is errors.UnsupportedVersionError
    assert ERROR_CLASSES[56] is errors.KafkaStorageError
    assert ERROR_CLASSES[90] is errors.ProducerFencedError
    assert ERROR_CLASSES[-1] is errors.UnknownServerError
    mro = errors.NotLeaderOrFollowerError.__mro__
    assert mro.index(InvalidMetadataError) < mro.index(RetriableError)
    assert mro.index(RetriableError) < mro.index(BrokerResponseError)


def test_java_relations_between_table_and_client_classes() -> None:
    # Java maps MESSAGE_TOO_LARGE to RecordTooLargeException.
    assert issubclass(errors.MessageTooLargeError, RecordTooLargeError)
    assert not issubclass(errors.MessageTooLargeError, RetriableError)
    # Java maps REQUEST_TIMED_OUT to TimeoutException.
    assert issubclass(errors.RequestTimedOutError, KafkaTimeoutError)
    assert issubclass(errors.RequestTimedOutError, TimeoutError)
    # Java's NetworkException is an InvalidMetadataException.
    assert issubclass(errors.NetworkError, KafkaConnectionError)
    assert issubclass(KafkaConnectionError, InvalidMetadataError)
    # UnknownProducerIdException extends OutOfOrderSequenceException.
    assert issubclass(errors.UnknownProducerIdError, errors.OutOfOrderSequenceNumberError)
    assert errors.UnknownProducerIdError.code == 59
    assert errors.OutOfOrderSequenceNumberError.code == 45
    for code in (29, 30, 31, 53, 65):
        assert issubclass(ERROR_CLASSES[code], AuthorizationError)
    for code in (33, 34, 58):
        assert issubclass(ERROR_CLASSES[code], errors.AuthenticationError)


def test_fatal_errors() -> None:
    for code in (31, 50, 53, 90):
        assert ERROR_CLASSES[code].fatal is True
        assert issubclass(ERROR_CLASSES[code], FatalProducerError)
    assert ProducerClosedError.fatal and ForkedProducerError.fatal
    for code in (6, 10, 45, 47, 59, 120):
        assert ERROR_CLASSES[code].fatal is False


def test_a_second_class_for_a_code_is_refused() -> None:
    with pytest.raises(TypeError, match="already mapped"):

        class Duplicate(BrokerResponseError, code=6, kafka_name="NOT_LEADER_OR_FOLLOWER"):
            description = "x."

    assert ERROR_CLASSES[6] is errors.NotLeaderOrFollowerError


def test_errors_module_imports_nothing_of_kprod_or_kio() -> None:
    tree = ast.parse(Path(errors.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "collections", "types", "typing"}


# ------------------------------------------------------------------ messages


def test_message_names_code_topic_partition_and_what_to_do() -> None:
    err = error_for_code(6, "Leader changed", topic="orders", partition=1)
    assert isinstance(err, errors.NotLeaderOrFollowerError)
    assert (err.code, err.topic, err.partition) == (6, "orders", 1)
    assert err.error_message == "Leader changed"
    text = str(err)
    assert text.startswith("Kafka error NOT_LEADER_OR_FOLLOWER (code 6) for topic-partition orders-1:")
    assert "The broker said: Leader changed." in text
    assert "refreshes metadata and retries" in text
    assert text.endswith(".")


def test_message_with_topic_only_and_with_no_location() -> None:
    assert "for topic 'orders':" in str(error_for_code(29, topic="orders"))
    bare = str(error_for_code(29))
    assert bare.startswith("Kafka error TOPIC_AUTHORIZATION_FAILED (code 29):")
    assert "ACL" in bare


def test_message_too_large_says_which_settings_to_change() -> None:
    text = str(error_for_code(10, topic="big", partition=0))
    assert "big-0" in text
    for setting in ("max.message.bytes", "batch.size", "max.request.size"):
        assert setting in text


def test_broker_message_equal_to_description_is_not_repeated() -> None:
    cls = ERROR_CLASSES[3]
    text = str(cls(cls.description, topic="t", partition=2))
    assert text.count(cls.description) == 1


@pytest.mark.parametrize("code", sorted(KIO_CODES))
def test_every_code_builds_a_complete_message(code: int) -> None:
    err = error_for_code(code, topic="t", partition=3)
    text = str(err)
    assert f"(code {code}) for topic-partition t-3: " in text
    assert type(err).description.endswith(".")
    assert type(err).description in text
    assert text.endswith(".")
    # description plus at least one sentence saying what to do
    assert len(re.findall(r"[.!?](?:\s|$)", text)) >= 2


def test_unknown_code_builds_a_generic_error() -> None:
    err = error_for_code(9999, "something new", topic="t", partition=0)
    assert type(err) is UnknownBrokerError
    assert isinstance(err, BrokerResponseError)
    assert err.code == 9999 and err.topic == "t" and err.partition == 0
    assert not err.retriable
    text = str(err)
    assert "9999" in text and "t-0" in text and "something new" in text
    assert "upgrade kprod" in text
    assert error_class_for_code(9999) is UnknownBrokerError
    assert error_class_for_code(6) is errors.NotLeaderOrFollowerError


def test_code_zero_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="success"):
        error_for_code(0)


# ------------------------------------------------------------------ client side


def test_client_error_hierarchy() -> None:
    assert issubclass(KafkaTimeoutError, RetriableError) and issubclass(KafkaTimeoutError, TimeoutError)
    assert issubclass(BufferExhaustedError, KafkaTimeoutError)
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, KafkaError)
    assert issubclass(ProducerClosedError, RuntimeError)
    assert issubclass(ForkedProducerError, RuntimeError)
    assert issubclass(ProtocolError, KafkaConnectionError)
    assert not issubclass(SerializationError, RetriableError)
    assert not issubclass(RecordTooLargeError, RetriableError)
    assert KafkaConnectionError.retriable and KafkaConnectionError.invalid_metadata
    for cls in (SerializationError, KafkaTimeoutError, RecordTooLargeError, ConfigError,
                InterruptError, ProducerClosedError, ForkedProducerError, KafkaConnectionError):
        assert cls.code is None


@pytest.mark.parametrize(
    "cls",
    [SerializationError, KafkaTimeoutError, BufferExhaustedError, RecordTooLargeError,
     InterruptError, ProducerClosedError, ForkedProducerError, KafkaConnectionError,
     ProtocolError],
)
def test_client_errors_have_a_default_message_with_location(cls: type[KafkaError]) -> None:
    err = cls(topic="orders", partition=4)
    assert "orders-4" in str(err)
    assert str(err).endswith(".")
    assert (err.topic, err.partition) == ("orders", 4)
    assert cls().args[0].count(".") >= 2  # what happened, what to do


def test_buffer_exhausted_message() -> None:
    text = str(BufferExhaustedError())
    assert "buffer.memory" in text and "max.block.ms" in text


def test_explicit_message_is_kept_verbatim() -> None:
    err = KafkaTimeoutError("Metadata for topic 'x' was not available after 60000 ms.", topic="x")
    assert str(err) == "Metadata for topic 'x' was not available after 60000 ms."
    assert err.topic == "x" and err.partition is None


def test_config_error_keeps_keys() -> None:
    err = ConfigError("bad", keys=("acks", "retries"))
    assert err.keys == ("acks", "retries")
    assert ConfigError("bad").keys == ()


def test_serialization_error_fields() -> None:
    err = SerializationError("x", topic="t", is_key=True, expected="a str", received="an int")
    assert (err.topic, err.is_key, err.expected, err.received) == ("t", True, "a str", "an int")


@pytest.mark.parametrize(
    "err",
    [
        error_for_code(6, "moved", topic="orders", partition=1),
        error_for_code(7, topic="a", partition=0),
        error_for_code(4242, "new", topic="z", partition=9),
        ConfigError("bad acks", keys=("acks",)),
        SerializationError("no", topic="t", is_key=False, expected="bytes", received="an int"),
        BufferExhaustedError(topic="t", partition=2),
    ],
)
def test_errors_survive_pickling(err: KafkaError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    assert copy.__dict__ == err.__dict__
    assert copy.code == err.code
