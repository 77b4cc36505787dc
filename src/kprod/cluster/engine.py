"""Routes each decoded request to its API handler, as the broker it was sent to.

The engine knows the advertised API versions, consults the request hooks
(:mod:`kprod.cluster.hooks`, which the fault menu is made of), and returns what the event loop must do with the connection: write a reply,
write nothing (Produce with acks=0), park the request (a long-polling Fetch)
or close the connection (an API or version the cluster does not serve, as
Kafka does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kprod.cluster.api_group import GROUP_VERSIONS
from kprod.cluster.groups import GroupCoordinator
from kprod.cluster.hooks import DROP, Error, HookContext, Hooks
from kprod.cluster.state import ClusterState, Partition
from kprod.protocol.framing import RequestFrame
from kprod.protocol.messages import ApiKey

if TYPE_CHECKING:
    from kprod.cluster.sasl_server import AuthSession, SaslServer

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
    # admin APIs (api_configs, api_topic_admin)
    21: (0, 2),  # DeleteRecords
    32: (1, 4),  # DescribeConfigs
    33: (0, 2),  # AlterConfigs
    35: (1, 4),  # DescribeLogDirs
    37: (0, 3),  # CreatePartitions
    44: (0, 1),  # IncrementalAlterConfigs
    60: (0, 2),  # DescribeCluster
    **GROUP_VERSIONS,
}


class RequestContext:
    """One request as the handlers see it: where it came in, what hooks decided."""

    __slots__ = ("node_id", "frame", "injection", "throttle_ms", "delay_ms")

    def __init__(
        self, node_id: int, frame: RequestFrame, injection: Error | None, throttle_ms: int, delay_ms: int = 0
    ) -> None:
        self.node_id = node_id
        self.frame = frame
        self.injection = injection
        self.throttle_ms = throttle_ms
        self.delay_ms = delay_ms

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
    """A response entity, plus record data to splice in without copying (Fetch).

    ``delay_ms`` and ``throttle_ms`` come from hooks: how late to send it, how
    long to mute the connection after it.
    """

    __slots__ = ("entity", "correlation_id", "payloads", "delay_ms", "throttle_ms")

    def __init__(self, entity: Any, correlation_id: int, payloads: list[tuple[bytes, list[bytes]]] | None = None) -> None:
        self.entity = entity
        self.correlation_id = correlation_id
        self.payloads = payloads
        self.delay_ms = 0
        self.throttle_ms = 0

    def timed(self, context: RequestContext) -> Reply:
        """This reply with the delay and throttle the hooks gave ``context``."""
        self.delay_ms = context.delay_ms
        self.throttle_ms = context.throttle_ms
        return self


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

    def __init__(self, state: ClusterState, hooks: Hooks, sasl: SaslServer | None = None) -> None:
        from kprod.cluster import api_admin, api_configs, api_fetch, api_group, api_produce, api_topic_admin

        self.state = state
        self.hooks = hooks
        # SASL listeners (kprod.cluster.sasl_server) advertise and gate with SaslHandshake/SaslAuthenticate
        self.sasl = sasl
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
            21: api_topic_admin.handle_delete_records,
            32: api_configs.handle_describe_configs,
            33: api_configs.handle_alter_configs,
            35: api_topic_admin.handle_describe_log_dirs,
            37: api_topic_admin.handle_create_partitions,
            44: api_configs.handle_incremental_alter_configs,
            60: api_topic_admin.handle_describe_cluster,
        }
        # Set by the event loop: called after records are appended to a partition.
        self.on_append: Callable[[Partition, int], None] = lambda partition, size: None
        # Set by the event loop: run a callback at a time.monotonic() deadline (group timeouts).
        self.add_timer: Callable[[float, Callable[[], None]], Any] = _no_timers
        self.groups = GroupCoordinator(state, lambda deadline, callback: self.add_timer(deadline, callback))

    @property
    def advertised(self) -> dict[int, tuple[int, int]]:
        """API key -> (min, max) this cluster offers: the module table (read live, so tests can
        narrow it), plus the SASL APIs on SASL listeners."""
        if self.sasl is None:
            return ADVERTISED_VERSIONS
        return {**ADVERTISED_VERSIONS, **self.sasl.versions}

    def handle(self, node_id: int, frame: RequestFrame, auth: AuthSession | None = None) -> Any:
        """Serve one request on broker ``node_id``: a Reply, None (no reply), CLOSE or a parked request.

        ``auth`` is the connection's SASL state on a SASL listener: it answers the
        SASL APIs and closes connections that ask anything else before authenticating.
        """
        if auth is not None:
            gated = auth.gate(frame)
            if gated is not None:
                return gated
        api_key = frame.api_key
        advertised = ADVERTISED_VERSIONS.get(api_key)
        supported = (
            advertised is not None and advertised[0] <= frame.api_version <= advertised[1] and frame.request is not None
        )
        if not supported:
            if api_key == ApiKey.API_VERSIONS:
                return self.api_versions_fallback(frame)
            return CLOSE
        if not self.hooks:
            return self._handlers[api_key](self, RequestContext(node_id, frame, None, 0))
        hook_context = HookContext(node_id, api_key, frame.api_version, frame.correlation_id, frame.client_id)
        decided = self.hooks.run(node_id, api_key, frame.request, hook_context)
        if decided is None:
            return self._handlers[api_key](self, RequestContext(node_id, frame, None, 0))
        result = decided.result
        if result is DROP:
            return CLOSE
        context = RequestContext(
            node_id, frame, result if isinstance(result, Error) else None, decided.throttle_ms, decided.delay_ms
        )
        if result is not None and not isinstance(result, Error):
            return Reply(result, frame.correlation_id).timed(context)  # a response the hook made
        outcome = self._handlers[api_key](self, context)
        if isinstance(outcome, Reply):
            outcome.timed(context)
        return outcome
