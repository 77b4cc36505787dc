"""The protocol and net layer rules of docs/DESIGN.md ("Layers"), checked over the import graph.

Every import statement of every module (at any depth: function-level imports
count too) is read with ``ast``, so a rule broken anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "kprod"

#: Leaf modules every layer may import.
LEAVES = {"kprod.errors", "kprod._native", "kprod._version"}


def _imports(path: Path) -> set[str]:
    """Dotted names of everything ``path`` imports (``from kprod import _native`` counts as kprod._native)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "kprod":
                names.update(f"kprod.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _kprod_imports(path: Path) -> set[str]:
    return {name for name in _imports(path) if name.startswith("kprod.")}


def _under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", _modules("protocol"), ids=lambda p: str(p.relative_to(SRC)))
def test_protocol_imports_only_itself_errors_and_native(path: Path) -> None:
    allowed = {"kprod.errors", "kprod._native"}
    bad = {n for n in _kprod_imports(path) if n not in allowed and not _under(n, "kprod.protocol")}
    assert not bad, f"{path.name} imports {sorted(bad)}; the protocol layer is sans-IO and stands alone"


@pytest.mark.parametrize("path", _modules("protocol"), ids=lambda p: str(p.relative_to(SRC)))
def test_protocol_is_sans_io(path: Path) -> None:
    io_modules = {"socket", "selectors", "select", "logging", "time", "ssl", "asyncio"}
    bad = {n for n in _imports(path) if n.split(".")[0] in io_modules}
    assert not bad, f"{path.name} imports {sorted(bad)}; the protocol layer has no sockets, clocks or logging"
    # threading.local (a per-thread codec context) is allowed; starting threads is not.
    started = [
        node.attr for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in ("Thread", "Timer")
    ]
    assert not started, f"{path.name} uses threading.{started[0]}; the protocol layer starts no threads"


def test_only_protocol_messages_imports_kio() -> None:
    importers = sorted(
        str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if any(_under(n, "kio") for n in _imports(path))
    )
    assert importers == ["protocol/messages.py"]


@pytest.mark.parametrize("path", _modules("net"), ids=lambda p: str(p.relative_to(SRC)))
def test_net_imports_only_protocol_itself_and_leaves(path: Path) -> None:
    bad = {n for n in _kprod_imports(path) if n not in LEAVES and not _under(n, "kprod.protocol", "kprod.net")}
    assert not bad, f"{path.name} imports {sorted(bad)}; net sits on protocol only"


def test_the_rule_reader_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import kio.serial\nfrom kprod import _native, errors\n"
        "def f():\n    from kprod.producer import sender\n    import socket\n"
    )
    assert _imports(sample) == {"kio.serial", "kprod", "kprod._native", "kprod.errors", "kprod.producer", "socket"}
