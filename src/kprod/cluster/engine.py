"""Routes each decoded request to its API handler, as the broker it was sent to.

The engine knows the advertised API versions, consults the fault injections,
and returns what the event loop must do with the connection: write a reply,
write nothing (Produce with acks=0), park the request (a long-polling Fetch)
or close the connection (an API or version the cluster does not serve, as
Kafka does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kprod.cluster.api_group import GROUP_VERSIONS
from kprod.cluster.faults import Faults, Injection
from kprod.cluster.groups import GroupCoordinator
from kprod.cluster.state import ClusterState, Partition
from kprod.protocol.framing import RequestFrame
from kprod.protocol.messages import ApiKey

__all__ = ["ADVERTISED_VERSIONS", "CLOSE", "Engine", "Reply", "RequestContext"]

OFFSET_FOR_LEADER_EPOCH = 23  # not in kprod.protocol's ApiKey: only this server side uses it

#: API key -> (min, max) version advertised in ApiVersions. Produce starts at 0
#: like Kafka 4.0 (librdkafka checks for v0, KAFKA-18659) though v0-2 are refused.
ADVERTISED_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (0, 11),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 7),
    ApiKey.METADATA: (0, 12),
    ApiKey.API_VERSIONS: (0, 4),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 6),
    ApiKey.INIT_PRODUCER_ID: (0, 5),
    OFFSET_FOR_LEADER_EPOCH: (2, 4),
    **GROUP_VERSIONS,
}


class RequestContext:
    """One request as the handlers see it: where it came in, what faults apply."""

    __slots__ = ("node_id", "frame", "injection", "throttle_ms")

    def __init__(self, node_id: int, frame: RequestFrame, injection: Injection | None, throttle_ms: int) -> None:
        self.node_id = node_id
        self.frame = frame
        self.injection = injection
        self.throttle_ms = throttle_ms

    @property
    def version(self) -> int:
        return self.frame.api_version

    @property
    def request(self) -> Any:
        return self.frame.request

    @property
    def injected_error(self) -> int:
        """The injected error code for this request (0 if none), ignoring after-append injections."""
        injection = self.injection
        if injection is None or injection.after_append:
            return 0
        return injection.error_code


class Reply:
    """A response entity, plus record data to splice in without copying (Fetch)."""

    __slots__ = ("entity", "correlation_id", "payloads")

    def __init__(self, entity: Any, correlation_id: int, payloads: list[tuple[bytes, list[bytes]]] | None = None) -> None:
        self.entity = entity
        self.correlation_id = correlation_id
        self.payloads = payloads


class _Close:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CLOSE"


#: Outcome telling the event loop to close the connection without replying.
CLOSE: Any = _Close()

Handler = Callable[["Engine", RequestContext], Any]


def _no_timers(deadline: float, callback: Callable[[], None]) -> Any:
    raise RuntimeError("the embedded cluster's event loop is not attached, so it has no timers")


class Engine:
    """The request handlers of every broker, over one shared cluster state."""

    def __init__(self, state: ClusterState, faults: Faults) -> None:
        from kprod.cluster import api_admin, api_fetch, api_group, api_produce

        self.state = state
        self.faults = faults
        self.api_versions_fallback = api_admin.api_versions_fallback
        self._handlers: dict[int, Handler] = {
            ApiKey.API_VERSIONS: api_admin.handle_api_versions,
            ApiKey.METADATA: api_admin.handle_metadata,
            ApiKey.CREATE_TOPICS: api_admin.handle_create_topics,
            ApiKey.DELETE_TOPICS: api_admin.handle_delete_topics,
            ApiKey.INIT_PRODUCER_ID: api_admin.handle_init_producer_id,
            ApiKey.FIND_COORDINATOR: api_group.handle_find_coordinator,
            ApiKey.JOIN_GROUP: api_group.handle_join_group,
            ApiKey.SYNC_GROUP: api_group.handle_sync_group,
            ApiKey.HEARTBEAT: api_group.handle_heartbeat,
            ApiKey.LEAVE_GROUP: api_group.handle_leave_group,
            ApiKey.OFFSET_COMMIT: api_group.handle_offset_commit,
            ApiKey.OFFSET_FETCH: api_group.handle_offset_fetch,
            ApiKey.OFFSET_DELETE: api_group.handle_offset_delete,
            ApiKey.LIST_GROUPS: api_group.handle_list_groups,
            ApiKey.DESCRIBE_GROUPS: api_group.handle_describe_groups,
            ApiKey.DELETE_GROUPS: api_group.handle_delete_groups,
            ApiKey.CONSUMER_GROUP_HEARTBEAT: api_group.handle_consumer_group_heartbeat,
            ApiKey.PRODUCE: api_produce.handle_produce,
            ApiKey.FETCH: api_fetch.handle_fetch,
            ApiKey.LIST_OFFSETS: api_fetch.handle_list_offsets,
            OFFSET_FOR_LEADER_EPOCH: api_fetch.handle_offset_for_leader_epoch,
        }
        # Set by the event loop: called after records are appended to a partition.
        self.on_append: Callable[[Partition, int], None] = lambda partition, size: None
        # Set by the event loop: run a callback at a time.monotonic() deadline (group timeouts).
        self.add_timer: Callable[[float, Callable[[], None]], Any] = _no_timers
        self.groups = GroupCoordinator(state, lambda deadline, callback: self.add_timer(deadline, callback))

    def handle(self, node_id: int, frame: RequestFrame) -> Any:
        """Serve one request on broker ``node_id``: a Reply, None (no reply), CLOSE or a parked request."""
        api_key = frame.api_key
        advertised = ADVERTISED_VERSIONS.get(api_key)
        supported = (
            advertised is not None and advertised[0] <= frame.api_version <= advertised[1] and frame.request is not None
        )
        if not supported:
            if api_key == ApiKey.API_VERSIONS:
                return self.api_versions_fallback(frame)
            return CLOSE
        faults = self.faults
        context = RequestContext(
            node_id, frame, faults.take(api_key, node_id), faults.throttle_ms.get(node_id, 0)
        )
        return self._handlers[api_key](self, context)
