"""Version negotiation: the highest version both kprod and the broker speak, or a clear error."""

from __future__ import annotations

import pytest

from kprod.errors import UnsupportedVersionError
from kprod.protocol.messages import CLIENT_VERSIONS, ApiKey, request_type
from kprod.protocol.versions import (
    CLIENT_SOFTWARE_NAME,
    api_versions_request,
    choose_version,
    negotiate,
)


def test_client_ranges_are_the_documented_ones() -> None:
    assert CLIENT_VERSIONS[ApiKey.PRODUCE] == (3, 11)
    assert CLIENT_VERSIONS[ApiKey.METADATA] == (1, 12)
    assert CLIENT_VERSIONS[ApiKey.API_VERSIONS] == (0, 4)


@pytest.mark.parametrize(
    ("broker_range", "chosen"),
    [
        ((0, 13), 11),  # Kafka 4.3: the broker goes higher, kprod stops at 11
        ((3, 12), 11),  # Kafka 4.0 accepts 3-12
        ((0, 11), 11),  # Kafka 3.8
        ((0, 9), 9),  # Kafka 3.0-3.6: the broker's max
        ((0, 3), 3),  # the lowest version kprod speaks
        ((11, 11), 11),
    ],
)
def test_choose_version_takes_the_lower_of_both_maxima(broker_range: tuple[int, int], chosen: int) -> None:
    assert choose_version(ApiKey.PRODUCE, {ApiKey.PRODUCE: broker_range}) == chosen


def test_choose_version_for_metadata_against_kafka_4() -> None:
    assert choose_version(ApiKey.METADATA, {ApiKey.METADATA: (0, 13)}) == 12
    assert choose_version(ApiKey.METADATA, {ApiKey.METADATA: (0, 12)}) == 12
    assert choose_version(ApiKey.METADATA, {ApiKey.METADATA: (0, 11)}) == 11


def test_no_overlap_below_raises_naming_both_ranges() -> None:
    expected = r"No common Produce version: the broker supports v0-v2, kprod v3-v11"
    with pytest.raises(UnsupportedVersionError, match=expected):
        choose_version(ApiKey.PRODUCE, {ApiKey.PRODUCE: (0, 2)})


def test_no_overlap_above_raises() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"broker supports v12-v13, kprod v3-v11"):
        choose_version(ApiKey.PRODUCE, {ApiKey.PRODUCE: (12, 13)})


def test_api_missing_from_the_broker_raises() -> None:
    with pytest.raises(UnsupportedVersionError, match="does not support Produce at all"):
        choose_version(ApiKey.PRODUCE, {ApiKey.METADATA: (0, 12)})


def test_unsupported_version_error_is_kafka_error_35() -> None:
    try:
        choose_version(ApiKey.PRODUCE, {})
    except UnsupportedVersionError as exc:
        assert exc.code == 35
    else:
        pytest.fail("choose_version accepted a broker without Produce")


def test_negotiate_keeps_only_apis_with_a_common_version() -> None:
    broker = {
        ApiKey.PRODUCE: (0, 13),
        ApiKey.METADATA: (0, 13),
        ApiKey.FETCH: (4, 18),
        ApiKey.INIT_PRODUCER_ID: (5, 6),  # above kprod's 0-4: left out
        99: (0, 1),  # an API kprod does not know: ignored
    }
    assert negotiate(broker) == {ApiKey.PRODUCE: 11, ApiKey.METADATA: 12, ApiKey.FETCH: 12}


def test_api_versions_request_names_the_client_from_v3() -> None:
    v3 = api_versions_request(3, "1.2.3")
    assert type(v3) is request_type(ApiKey.API_VERSIONS, 3)
    assert (v3.client_software_name, v3.client_software_version) == (CLIENT_SOFTWARE_NAME, "1.2.3")
    assert CLIENT_SOFTWARE_NAME == "kprod"
    v4 = api_versions_request(4, "1.2.3")
    assert type(v4) is request_type(ApiKey.API_VERSIONS, 4)
    v2 = api_versions_request(2, "1.2.3")
    assert type(v2) is request_type(ApiKey.API_VERSIONS, 2)
    assert not hasattr(v2, "client_software_name")
