"""The stage engine's layers, read from the source: a pure domain, imports pointing one way."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import funnel_stage_engine

PACKAGE = Path(funnel_stage_engine.__file__).parent

# Third-party packages the domain may import, and why it needs them today:
# - pydantic: the contact state, the internal commands and the funnel definitions
#   are pydantic models (validated from JSON and YAML, dumped to the table);
# - yaml: funnel definitions are YAML files (``definitions.py`` parses them).
DOMAIN_THIRD_PARTY = {"pydantic", "yaml"}

# Reads of the clock: the domain gets time as arguments (``processed_at``, ``now``).
CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
}


def _modules(layer: str) -> list[Path]:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"no modules in {layer}/"
    return files


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            assert node.module is not None
            yield node.module
            # ``from funnel_stage_engine import worker`` names the layer in the alias.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _top(name: str) -> str:
    return name.split(".")[0]


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_domain_imports_only_itself_funnel_shared_the_standard_library_and_its_models() -> None:
    allowed_top = set(sys.stdlib_module_names) | DOMAIN_THIRD_PARTY | {"funnel_shared"}
    outside = {
        f"{path.name}: {name}"
        for path in _modules("domain")
        for name in _imports(path)
        if not (
            _inside(name, "funnel_stage_engine.domain")
            or (_top(name) in allowed_top)
            or name in {"funnel_stage_engine", "funnel_stage_engine.domain"}
        )
    }
    assert outside == set()


def test_the_domain_never_reads_the_clock() -> None:
    reads: set[str] = set()
    for path in _modules("domain"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import) and any(a.name == "time" for a in node.names):
                reads.add(f"{path.name}: import time")
            if isinstance(node, ast.ImportFrom) and node.module == "time":
                reads.add(f"{path.name}: from time import ...")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in CLOCK_READS
            ):
                reads.add(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert reads == set()


def test_the_clock_check_sees_a_clock_read(tmp_path: Path) -> None:
    # The walk above must not pass for want of finding anything.
    source = "from datetime import UTC, datetime\n\ndef now():\n    return datetime.now(UTC)\n"
    found = [
        (node.value.id, node.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    ]
    assert ("datetime", "now") in set(found) & CLOCK_READS


def test_imports_point_one_way_domain_then_read_then_worker() -> None:
    forbidden = {
        "domain": ("funnel_stage_engine.worker", "funnel_stage_engine.read"),
        "read": ("funnel_stage_engine.worker",),
    }
    crossings = {
        f"{layer}/{path.name}: {name}"
        for layer, banned in forbidden.items()
        for path in _modules(layer)
        for name in _imports(path)
        if any(_inside(name, package) for package in banned)
    }
    assert crossings == set()
