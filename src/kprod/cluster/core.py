"""The cluster in this process: state, handlers and the event loop, plus its operations.

``EmbeddedCluster`` is a thin facade over either a ``ClusterCore`` in this
process or one in a child process (:mod:`kprod.cluster.process`). Every
operation is a method named ``op_<name>`` that runs on the event loop
thread, so it sees and changes the cluster between two requests, never in
the middle of one; ``invoke(name, *args)`` is the single door to them, which
keeps the two modes identical.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kprod.cluster.config import describe_topic_config, parse_broker_config
from kprod.cluster import faults
from kprod.cluster.engine import Engine
from kprod.cluster.exceptions import ClusterError
from kprod.cluster.groups import GroupInfo
from kprod.cluster.hooks import HookInfo, Hooks
from kprod.cluster.info import BrokerInfo, LoggedBatch, PartitionInfo, decode_batches
from kprod.cluster.sasl_server import Authentication
from kprod.cluster.security import ServerSecurity, server_ssl_context
from kprod.cluster.server import EventLoop
from kprod.cluster.state import ClusterState

__all__ = ["ClusterCore"]

log = logging.getLogger("kprod.cluster")

# operations that run in the caller's thread (they call the loop themselves)
_OFF_LOOP = frozenset({"partition_log"})


class ClusterCore:
    """Brokers of one embedded cluster, served by one event loop thread."""

    def __init__(
        self,
        brokers: int = 3,
        ports: Sequence[int] | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, Any] | None = None,
        security: ServerSecurity | None = None,
    ) -> None:
        if not isinstance(brokers, int) or brokers < 1:
            raise ClusterError(f"brokers must be a positive number of brokers, got {brokers!r}.")
        if ports is None:
            ports = [0] * brokers
        ports = list(ports)
        if len(ports) != brokers:
            raise ClusterError(f"Got {len(ports)} ports for {brokers} brokers: give one port per broker.")
        self.host = host
        self._requested_ports = ports
        self.state = ClusterState([(n, host, 0) for n in range(brokers)], parse_broker_config(config))
        self.hooks = Hooks()
        self.security = security or ServerSecurity()
        sasl = None
        if self.security.sasl:
            from kprod.cluster.sasl_server import SaslServer

            sasl = SaslServer(
                self.security.mechanisms,
                self.security.users,
                self.security.oauthbearer_validator,
                self.state.config.max_reauth_ms,
            )
        self.engine = Engine(self.state, self.hooks, sasl)
        self._loop: EventLoop | None = None

    @property
    def loop(self) -> EventLoop:
        if self._loop is None:
            raise ClusterError("The embedded cluster is not started.")
        return self._loop

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> list[BrokerInfo]:
        if self._loop is not None:
            raise ClusterError("The embedded cluster is already started.")
        tls = server_ssl_context(self.security) if self.security.tls else None
        self._loop = EventLoop(self.engine, self.host, tls)
        try:
            for node_id, port in enumerate(self._requested_ports):
                broker = self.state.brokers[node_id]
                broker.port = self.loop.listen(node_id, port)
                broker.running = True
        except BaseException:
            self.loop.stop()
            raise
        self.loop.start()
        log.info("embedded cluster started: %s", self.bootstrap_servers())
        return self.state.broker_infos()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()

    def bootstrap_servers(self) -> str:
        return ",".join(f"{b.host}:{b.port}" for b in self.state.brokers.values())

    def invoke(self, name: str, *args: Any) -> Any:
        """Run operation ``name`` on the loop thread (the one door for both modes)."""
        method = getattr(self, f"op_{name}", None)
        if method is None:
            raise ClusterError(f"The embedded cluster has no operation {name!r}.")
        if name in _OFF_LOOP:
            return method(*args)
        return self.loop.call(method, *args)

    # -- read-back --------------------------------------------------------------------------

    def op_brokers(self) -> list[BrokerInfo]:
        return self.state.broker_infos()

    def op_topics(self) -> list[str]:
        return sorted(self.state.topics)

    def op_partition_info(self, topic: str, partition: int) -> PartitionInfo:
        p = self.state.partition(topic, partition)
        return PartitionInfo(
            topic=topic,
            partition=partition,
            leader=p.leader,
            leader_epoch=p.leader_epoch,
            replicas=tuple(p.replicas),
            isr=tuple(p.isr),
            log_start_offset=p.log.log_start_offset,
            end_offset=p.log.end_offset,
        )

    def _stored_batches(self, topic: str, partition: int) -> list[bytes]:
        return self.state.partition(topic, partition).log.batches()

    def op_partition_log(self, topic: str, partition: int) -> list[LoggedBatch]:
        # Only the list of stored batches is taken on the loop thread; decoding
        # them (maybe many records) happens in the caller's thread.
        return decode_batches(self.loop.call(self._stored_batches, topic, partition))

    def op_connections(self, node_id: int | None = None) -> int:
        if node_id is not None:
            self.state.broker(node_id)
        return self.loop.connection_count(node_id)

    def op_waiting_fetches(self, node_id: int | None = None) -> int:
        if node_id is not None:
            self.state.broker(node_id)
        return self.loop.parked_count(node_id)

    def op_internal_errors(self) -> list[str]:
        return [*self.loop.internal_errors, *self.hooks.errors]

    def op_authentications(self) -> list[Authentication]:
        sasl = self.engine.sasl
        return list(sasl.authentications) if sasl is not None else []

    # -- consumer groups -----------------------------------------------------------------------

    def op_groups(self) -> list[str]:
        return sorted(self.engine.groups.groups)

    def op_group_info(self, group_id: str) -> GroupInfo:
        info = self.engine.groups.info(group_id)
        if info is None:
            raise ClusterError(f"There is no group {group_id!r}; the groups are {sorted(self.engine.groups.groups)}.")
        return info

    def op_group_coordinator(self, group_id: str) -> int:
        if not isinstance(group_id, str):
            raise ClusterError(f"A group id is a string, got {group_id!r}.")
        return self.engine.groups.coordinator(group_id)

    # -- topics -------------------------------------------------------------------------------

    def op_create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, Any] | None = None,
        assignments: Mapping[int, Sequence[int]] | None = None,
    ) -> None:
        if assignments is not None:
            partitions = replication_factor = -1
        self.state.create_topic(name, partitions, replication_factor, config, assignments)

    def op_delete_topic(self, name: str) -> None:
        self.state.delete_topic(name)

    def op_compact(self, name: str) -> int:
        return self.state.compact(name)

    def op_topic_config(self, name: str) -> dict[str, str]:
        topic = self.state.topics.get(name)
        if topic is None:
            raise ClusterError(f"Topic {name!r} does not exist; topics are {sorted(self.state.topics)}.")
        return {e.name: e.value for e in describe_topic_config(topic.overrides, self.state.config)}

    # -- brokers and leadership ------------------------------------------------------------------

    def op_stop_broker(self, node_id: int) -> None:
        self.state.stop_broker(node_id)
        self.loop.close_listener(node_id)
        log.info("broker %d stopped", node_id)

    def op_start_broker(self, node_id: int) -> None:
        broker = self.state.broker(node_id)
        if broker.running:
            raise ClusterError(f"Broker {node_id} is already running.")
        self.loop.listen(node_id, broker.port)
        self.state.start_broker(node_id)
        log.info("broker %d started on %s:%d", node_id, broker.host, broker.port)

    def op_move_leader(self, topic: str, partition: int, node_id: int) -> None:
        self.state.move_leader(topic, partition, node_id)

    def op_shrink_isr(self, topic: str, partition: int, isr: Sequence[int]) -> None:
        self.state.shrink_isr(topic, partition, list(isr))

    def op_restore_isr(self, topic: str, partition: int) -> None:
        self.state.restore_isr(topic, partition)

    # -- hooks and the fault menu -------------------------------------------------------------

    def op_intercept(self, api: str | int | None, fn: Any, times: int | None = None, broker: int | None = None) -> HookInfo:
        if broker is not None:
            self.state.broker(broker)
        return self.hooks.add(api, fn, times, broker)

    def op_remove_hook(self, hook_id: int) -> HookInfo | None:
        return self.hooks.remove(hook_id)

    def op_hook_info(self, hook_id: int) -> HookInfo | None:
        return self.hooks.info(hook_id)

    def op_hooks(self) -> list[HookInfo]:
        return self.hooks.infos()

    def op_inject_errors(
        self, api_key: int, error_code: int, count: int = 1, broker: int | None = None, after_append: bool = False
    ) -> HookInfo:
        if broker is not None:
            self.state.broker(broker)
        return faults.inject_errors(self.hooks, api_key, error_code, count, broker, after_append)

    def op_pending_injections(self) -> int:
        return self.hooks.pending(faults.ERROR_KIND)

    def op_add_latency(self, node_id: int, ms: int) -> HookInfo | None:
        self.state.broker(node_id)
        return faults.add_latency(self.hooks, node_id, ms)

    def op_throttle(self, node_id: int, ms: int) -> HookInfo | None:
        self.state.broker(node_id)
        return faults.throttle(self.hooks, node_id, ms)

    def op_clear_faults(self) -> list[HookInfo]:
        return self.hooks.clear()

    def op_drop_connections(self, node_id: int | None = None) -> int:
        if node_id is not None:
            self.state.broker(node_id)
        return self.loop.drop_connections(node_id)
