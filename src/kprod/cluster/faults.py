"""The fault menu (inject errors, add latency, throttle) as constant request hooks.

Each helper checks its arguments and registers a hook in
:class:`kprod.cluster.hooks.Hooks` whose result never changes, so it works
the same in the child-process mode (a constant crosses the process pipe, a
function does not). ``clear_faults`` removes these and every other hook.
"""

from __future__ import annotations

from kprod.cluster.exceptions import ClusterError
from kprod.cluster.hooks import Delay, Error, HookInfo, Hooks, Throttle

__all__ = ["ERROR_KIND", "add_latency", "inject_errors", "throttle"]

ERROR_KIND = "inject_errors"
_LATENCY_KIND = "add_latency"
_THROTTLE_KIND = "throttle"


def inject_errors(
    hooks: Hooks, api_key: int, error_code: int, count: int, broker: int | None, after_append: bool
) -> HookInfo:
    """Answer the next ``count`` requests of ``api_key`` (on ``broker``, or any) with ``error_code``."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ClusterError(f"count must be a positive number of requests, got {count!r}.")
    if error_code == 0:
        raise ClusterError("error_code 0 (NONE) is not an error; give the code to inject.")
    return hooks.add(api_key, Error(error_code, after_append), times=count, broker=broker, kind=ERROR_KIND)


def _set_per_broker(hooks: Hooks, kind: str, node_id: int, ms: int, result: Delay | Throttle) -> HookInfo | None:
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        raise ClusterError(f"{kind.replace('add_', '')} must be a non-negative number of milliseconds, got {ms!r}.")
    hooks.remove_where(kind, node_id)  # one setting per broker: the new one replaces it
    if ms == 0:
        return None
    return hooks.add(None, result, broker=node_id, kind=kind)


def add_latency(hooks: Hooks, node_id: int, ms: int) -> HookInfo | None:
    """Delay every response of broker ``node_id`` by ``ms`` (0 removes the delay)."""
    return _set_per_broker(hooks, _LATENCY_KIND, node_id, ms, Delay(ms))


def throttle(hooks: Hooks, node_id: int, ms: int) -> HookInfo | None:
    """Throttle every response of broker ``node_id`` by ``ms`` (0 removes the throttle)."""
    return _set_per_broker(hooks, _THROTTLE_KIND, node_id, ms, Throttle(ms))
