"""Every test module shown in docs/testing.md, run as written with ``pytester``.

A code block whose first line is ``# test_<name>.py`` is one module; the docs
and these tests cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

_DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_BLOCK = re.compile(r"```python\n(# (test_\w+)\.py\n.*?)```", re.DOTALL)
_EXAMPLES = {name: code for code, name in _BLOCK.findall(_DOC.read_text())}
_EXPECTED = {
    "test_orders_confluent": 1,
    "test_events_kafka_python": 1,
    "test_clicks_aiokafka": 1,
    "test_payments_kprod": 1,
    "test_resilience": 2,
}


def test_the_docs_show_each_client() -> None:
    assert sorted(_EXAMPLES) == sorted(_EXPECTED)


@pytest.mark.parametrize("name", sorted(_EXPECTED))
def test_example_passes(pytester: pytest.Pytester, name: str) -> None:
    pytester.makepyfile(**{name: _EXAMPLES[name]})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=_EXPECTED[name])
