"""Loads the optional compiled accelerator, ``kprod._speedups``.

``speedups`` is the module, or None when it is not built (no C compiler at
install time) or ``KPROD_NO_SPEEDUPS=1`` is set (the tests use it to run the
pure-Python reference code). Every compiled function has a pure-Python twin
that callers fall back to, and the two are tested to give the same bytes.
A leaf module: it imports nothing of kprod, so every layer may use it.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups", "disabled_by_env"]

#: Set to "1" to force the pure-Python code (checked once, at import).
ENV_VAR = "KPROD_NO_SPEEDUPS"

disabled_by_env: bool = os.environ.get(ENV_VAR, "") not in ("", "0")

speedups: ModuleType | None = None
if not disabled_by_env:
    try:
        from kprod import _speedups as speedups  # type: ignore[attr-defined,no-redef]
    except ImportError:
        speedups = None
