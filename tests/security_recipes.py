"""The provider recipes of docs/security.md, loaded so tests can run them."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
_RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    """Recipe name -> its Python code, in the page's order."""
    return dict(_RECIPE.findall(DOC.read_text(encoding="utf-8")))


class _FakeMskSigner:
    """Stands in for aws_msk_iam_sasl_signer (an optional extra): same call, same return shape."""

    token = "msk-token"

    @classmethod
    def generate_auth_token(cls, region: str) -> tuple[str, int]:
        import time

        return cls.token, int((time.time() + 900) * 1000)


def run_recipe(name: str) -> dict[str, Any]:
    """Execute one recipe (in the current directory) and return its ``config``."""
    if "aws_msk_iam_sasl_signer" not in sys.modules:
        fake = types.ModuleType("aws_msk_iam_sasl_signer")
        fake.MSKAuthTokenProvider = _FakeMskSigner  # type: ignore[attr-defined]
        sys.modules["aws_msk_iam_sasl_signer"] = fake
    namespace: dict[str, Any] = {}
    exec(compile(recipes()[name], f"docs/security.md:{name}", "exec"), namespace)
    return dict(namespace["config"])
