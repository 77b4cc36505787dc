"""Request hooks: a test's function sees each decoded request and may change its fate.

``cluster.intercept(api, fn, times=None, broker=None)`` registers a hook;
before a broker handles a request of that API, ``fn(request, context)`` runs
on the event loop thread and returns one of:

* ``None``: pass, the broker handles the request as usual (not counted);
* an ``int`` error code, or ``Error(code, after_append=False)``: the request
  is answered with that code in every partition (topic-level for Metadata and
  admin APIs); with ``after_append`` a Produce is written first;
* ``Delay(ms)``: the response leaves ``ms`` later (later hooks still run);
* ``Throttle(ms)``: the response reports ``throttle_time_ms=ms`` and the
  connection is muted that long after it, as a quota does;
* ``DROP``: the connection is closed without an answer;
* a response entity of the request's API and version (``context.response_module``
  holds its classes): sent as it is, the broker does nothing else.

A hook that returns something other than ``None`` has *acted*; after ``times``
actions it is removed. Hooks of one request run broker-specific first, then
cluster-wide, each in the order registered; ``Delay`` and ``Throttle`` add up
and the first other result decides. The fault menu (``inject_errors``,
``add_latency``, ``throttle``) registers constant hooks of the same kind.

This module holds no sockets: the engine asks :meth:`Hooks.run` what to do.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kprod.cluster.exceptions import ClusterError
from kprod.protocol.messages import ErrorCode, encode_entity, request_type, response_module

__all__ = [
    "DROP",
    "Delay",
    "Error",
    "Hook",
    "HookContext",
    "HookInfo",
    "Hooks",
    "Throttle",
    "api_key_of",
    "api_label",
    "check_result",
]

log = logging.getLogger("kprod.cluster")


@dataclass(frozen=True, slots=True)
class Error:
    """Answer with ``error_code``; ``after_append`` (Produce): write the records first."""

    error_code: int
    after_append: bool = False


@dataclass(frozen=True, slots=True)
class Delay:
    """Send the response ``ms`` milliseconds late."""

    ms: int


@dataclass(frozen=True, slots=True)
class Throttle:
    """Report ``throttle_time_ms=ms`` and mute the connection that long after the response."""

    ms: int


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"

    def __reduce__(self) -> str:
        return "DROP"  # one instance, also across the child-process pipe


#: Hook result: close the connection without answering.
DROP: Any = _Drop()


@dataclass(frozen=True, slots=True)
class HookInfo:
    """What a hook is and has done (returned by ``hooks()`` and ``clear_faults()``)."""

    id: int
    api: str  # API name, or "*" for every API
    broker: int | None
    remaining: int | None  # actions left before it is removed; None: until removed
    fired: int  # actions so far
    description: str
    active: bool = True  # False once removed (by remove(), its times, or clear_faults())


class HookContext:
    """What a hook function sees besides the request: where it came and how to answer."""

    __slots__ = ("node_id", "api_key", "api_version", "correlation_id", "client_id")

    def __init__(self, node_id: int, api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> None:
        self.node_id = node_id
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id
        self.client_id = client_id

    @property
    def api(self) -> str:
        return api_label(self.api_key)

    @property
    def response_module(self) -> ModuleType:
        """The module of the response classes of this request's API and version."""
        return response_module(self.api_key, self.api_version)

    def __repr__(self) -> str:
        return f"HookContext(broker={self.node_id}, api={self.api}, v{self.api_version}, client_id={self.client_id!r})"


# -- API names --------------------------------------------------------------------


def api_label(api_key: int) -> str:
    """Kafka's name of an API ("Produce", "DescribeConfigs", ...), from its kio request class."""
    from kprod.cluster.engine import ADVERTISED_VERSIONS

    versions = ADVERTISED_VERSIONS.get(api_key)
    if versions is None:
        return f"api {api_key}"
    return request_type(api_key, versions[1]).__name__.removesuffix("Request")


def api_key_of(api: str | int | None) -> int | None:
    """The API key of a served API given by name or key; None (every API) stays None."""
    from kprod.cluster.engine import ADVERTISED_VERSIONS

    if api is None or api == "*":
        return None
    names = {api_label(key): key for key in ADVERTISED_VERSIONS}
    if isinstance(api, int) and not isinstance(api, bool) and int(api) in ADVERTISED_VERSIONS:
        return int(api)
    if isinstance(api, str) and api in names:
        return names[api]
    served = ", ".join(sorted(names))
    raise ClusterError(
        f"API {api!r} is not served by the embedded cluster; give one of: {served} (or an API key, or None for all)."
    )


# -- results ------------------------------------------------------------------------


def _check_ms(kind: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ClusterError(f"{kind} must be a non-negative number of milliseconds, got {value!r}.")


def check_result(result: Any, api_key: int | None) -> Any:
    """``result`` normalised (an int becomes ``Error``), or ClusterError saying what is allowed."""
    if isinstance(result, int) and not isinstance(result, bool):
        result = Error(result)
    if isinstance(result, Error):
        try:
            ErrorCode(result.error_code)
        except ValueError:
            raise ClusterError(f"{result.error_code!r} is not a Kafka error code.") from None
        if result.error_code == 0:
            raise ClusterError("error code 0 (NONE) is not an error; return None to let the request pass.")
        if result.after_append and api_key != 0:
            raise ClusterError("after_append applies to Produce only.")
        return result
    if isinstance(result, (Delay, Throttle)):
        _check_ms(type(result).__name__, result.ms)
        return result
    if result is DROP:
        return result
    if getattr(type(result), "__api_key__", None) is not None and getattr(type(result), "__type__", None) is not None:
        if type(result).__type__.name != "response":
            raise ClusterError(f"A hook returned {type(result).__name__}, a request: return a response entity.")
        if api_key is not None and int(type(result).__api_key__) != api_key:
            raise ClusterError(f"A hook returned {type(result).__name__}, not a response of {api_label(api_key)}.")
        try:
            encode_entity(result)
        except Exception as exc:
            raise ClusterError(
                f"A hook's {type(result).__name__} cannot be encoded ({type(exc).__name__}: {exc}): build it"
                " with the types kio expects (ErrorCode members, timedelta durations, tuples)."
            ) from None
        return result
    raise ClusterError(
        f"A hook returned {result!r}: return None (pass), an error code or Error(code), Delay(ms),"
        " Throttle(ms), DROP or a response entity."
    )


def _describe(result: Any) -> str:
    if callable(result):
        return f"function {getattr(result, '__qualname__', repr(result))}"
    if isinstance(result, Error):
        name = ErrorCode(result.error_code).name.upper()
        return f"error {name} ({result.error_code})" + (" after append" if result.after_append else "")
    if isinstance(result, Delay):
        return f"delay {result.ms} ms"
    if isinstance(result, Throttle):
        return f"throttle {result.ms} ms"
    if result is DROP:
        return "drop the connection"
    return f"respond {type(result).__name__}"


class _Hook:
    __slots__ = ("id", "api_key", "broker", "remaining", "fired", "fn", "constant", "kind")

    def __init__(self, hook_id: int, api_key: int | None, broker: int | None, times: int | None, fn: Any, kind: str) -> None:
        self.id = hook_id
        self.api_key = api_key
        self.broker = broker
        self.remaining = times
        self.fired = 0
        self.kind = kind
        if callable(fn):
            self.fn: Callable[[Any, HookContext], Any] | None = fn
            self.constant = None
        else:
            self.fn = None
            self.constant = check_result(fn, api_key)

    def info(self, active: bool = True) -> HookInfo:
        what = _describe(self.fn if self.fn is not None else self.constant)
        api = "*" if self.api_key is None else api_label(self.api_key)
        where = "any broker" if self.broker is None else f"broker {self.broker}"
        left = "" if self.remaining is None else f", {self.remaining} left"
        return HookInfo(
            self.id, api, self.broker, self.remaining, self.fired, f"{api} on {where}: {what}{left}", active
        )


class Outcome:
    """What the hooks decided for one request."""

    __slots__ = ("result", "delay_ms", "throttle_ms")

    def __init__(self) -> None:
        self.result: Any = None  # Error, DROP, a response entity, or None
        self.delay_ms = 0
        self.throttle_ms = 0


class Hooks:
    """The registered hooks, consulted for every request (changed only on the loop thread)."""

    __slots__ = ("_hooks", "_gone", "_ids", "errors")

    def __init__(self) -> None:
        self._hooks: dict[int, _Hook] = {}
        self._gone: dict[int, HookInfo] = {}  # final state of removed hooks, for their handles
        self._ids = itertools.count(1)
        self.errors: list[str] = []  # hook functions that raised or returned nonsense

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def add(self, api: str | int | None, fn: Any, times: int | None = None, broker: int | None = None, kind: str = "hook") -> HookInfo:
        """Register a hook (``fn`` a function or a constant result); checks everything first."""
        api_key = api_key_of(api)
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
            raise ClusterError(f"times must be a positive number of actions or None (for ever), got {times!r}.")
        hook = _Hook(next(self._ids), api_key, broker, times, fn, kind)
        self._hooks[hook.id] = hook
        return hook.info()

    def remove(self, hook_id: int) -> HookInfo | None:
        """Remove a hook; its final state (None for an id never given)."""
        hook = self._hooks.pop(hook_id, None)
        if hook is None:
            return self._gone.get(hook_id)
        info = self._gone[hook_id] = hook.info(active=False)
        return info

    def remove_where(self, kind: str, broker: int | None) -> list[HookInfo]:
        gone = [h for h in self._hooks.values() if h.kind == kind and h.broker == broker]
        return [info for h in gone if (info := self.remove(h.id)) is not None]

    def info(self, hook_id: int) -> HookInfo | None:
        hook = self._hooks.get(hook_id)
        return self._gone.get(hook_id) if hook is None else hook.info()

    def infos(self) -> list[HookInfo]:
        return [hook.info() for hook in self._hooks.values()]

    def clear(self) -> list[HookInfo]:
        """Remove every hook; what each was when removed."""
        return [info for hook_id in list(self._hooks) if (info := self.remove(hook_id)) is not None]

    def pending(self, kind: str) -> int:
        """Actions still to come from hooks of ``kind`` with a limit."""
        return sum(h.remaining or 0 for h in self._hooks.values() if h.kind == kind)

    def run(self, node_id: int, api_key: int, request: Any, context: HookContext) -> Outcome | None:
        """Ask each hook that applies; None when none acted."""
        hooks = [h for h in self._hooks.values() if h.broker == node_id and h.api_key in (api_key, None)]
        hooks += [h for h in self._hooks.values() if h.broker is None and h.api_key in (api_key, None)]
        outcome: Outcome | None = None
        for hook in hooks:
            result = self._ask(hook, request, context)
            if result is None:
                continue
            if outcome is None:
                outcome = Outcome()
            hook.fired += 1
            if hook.remaining is not None:
                hook.remaining -= 1
                if hook.remaining <= 0:
                    self.remove(hook.id)
            if isinstance(result, Delay):
                outcome.delay_ms += result.ms
            elif isinstance(result, Throttle):
                outcome.throttle_ms += result.ms
            else:
                outcome.result = result
                break
        return outcome

    def _ask(self, hook: _Hook, request: Any, context: HookContext) -> Any:
        if hook.fn is None:
            return hook.constant
        try:
            result = hook.fn(request, context)
            if result is None:
                return None
            result = check_result(result, context.api_key)
            if not isinstance(result, (Error, Delay, Throttle)) and result is not DROP:
                if int(type(result).__version__) != context.api_version:
                    raise ClusterError(
                        f"A hook returned {type(result).__name__} v{type(result).__version__} for a"
                        f" v{context.api_version} request: build it from context.response_module."
                    )
            return result
        except Exception as exc:  # a test's function must not stop the brokers
            message = f"hook {hook.info().description} raised {type(exc).__name__}: {exc}"
            self.errors.append(message)
            log.error("%s; the request is handled as if the hook passed", message)
            return None


class Hook:
    """The handle ``intercept`` returns: ``remove()`` it, or read what it did."""

    __slots__ = ("id", "_call")

    def __init__(self, hook_id: int, call: Callable[..., Any]) -> None:
        self.id = hook_id
        self._call = call

    def remove(self) -> HookInfo:
        """Remove the hook (idempotent): its final state."""
        return self._call("remove_hook", self.id)  # type: ignore[no-any-return]

    @property
    def info(self) -> HookInfo:
        """Its state now (``active`` is False once removed by ``remove``, ``times`` or ``clear_faults``)."""
        return self._call("hook_info", self.id)  # type: ignore[no-any-return]

    @property
    def fired(self) -> int:
        """How many times it has acted so far."""
        return self.info.fired

    @property
    def active(self) -> bool:
        return self.info.active

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Hook({self.id})"
