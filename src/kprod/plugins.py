"""Configured plugins: one way to turn a config value into an object.

Java names plugins by class; kprod also takes the object itself or its class.
A string is a dotted ``package.module.Name`` imported on demand. Objects with a
``configure(configs)`` method get the producer's original settings, as Java's
``Configurable`` does.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from kprod.errors import ConfigError

__all__ = ["load_plugin", "load_plugins"]


def load_plugin(key: str, spec: Any, config: Mapping[str, Any] | None = None) -> Any:
    """The object ``spec`` names for setting ``key``: imported, instantiated and configured."""
    if isinstance(spec, str):
        module_name, _, attr = spec.strip().rpartition(".")
        if not module_name:
            raise ConfigError(f"{key} entry {spec!r}: give 'package.module.ClassName' or an object.")
        try:
            spec = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{key} entry {spec!r} could not be loaded: {exc}.") from exc
    plugin = spec() if isinstance(spec, type) else spec
    configure = getattr(plugin, "configure", None)
    if callable(configure) and config is not None:
        configure(dict(getattr(config, "originals", config)))
    return plugin


def load_plugins(key: str, specs: Iterable[Any], config: Mapping[str, Any] | None = None,
                 *skip: str) -> list[Any]:
    """Every entry of a list setting; string entries in ``skip`` (Java-only defaults) are left out."""
    return [load_plugin(key, spec, config) for spec in specs or () if not (isinstance(spec, str) and spec in skip)]
