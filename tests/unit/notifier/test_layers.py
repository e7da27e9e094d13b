"""The notifier's domain stays pure: it imports only itself, funnel_shared, the standard
library and the few libraries listed here, and it never reads a clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import funnel_notifier.domain
import pytest

DOMAIN_PACKAGE = "funnel_notifier.domain"
DOMAIN = Path(funnel_notifier.domain.__file__).parent

# Third-party libraries the domain genuinely needs today, and why.
ALLOWED_THIRD_PARTY = {
    # Rule files and stage-changed records are validated into pydantic models,
    # which give the file-and-field error messages.
    "pydantic",
    # Rule files are YAML; their loading stays beside the rule models until the
    # shared YAML loader takes it over.
    "yaml",
}

# Standard-library modules that only bring clocks or chance: times and random
# draws are arguments in the domain.
IMPURE_STDLIB = {"time", "random"}

# Calls that read a clock: datetime.now(), date.today(), loop.time(), time.monotonic()...
CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns"}
CLOCK_CALLS |= {"perf_counter", "perf_counter_ns"}


def _allowed(module: str) -> bool:
    root = module.split(".")[0]
    if module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + "."):
        return True
    if root == "funnel_shared" or root in ALLOWED_THIRD_PARTY:
        return True
    return root in sys.stdlib_module_names and root not in IMPURE_STDLIB


def problems(source: str, *, filename: str = "<domain module>") -> list[str]:
    """What in ``source`` (a module of the domain package) breaks the domain's rules."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # ``from . import x``, ``from .rules import x``: the domain.
                modules = [f"{DOMAIN_PACKAGE}.{node.module}" if node.module else DOMAIN_PACKAGE]
            elif node.level > 1:
                modules = ["funnel_notifier (relative, outside the domain)"]
            else:
                modules = [node.module or ""]
        found += [f"imports {module}" for module in modules if not _allowed(module)]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLOCK_CALLS
        ):
            found.append(f"line {node.lineno}: reads a clock ({node.func.attr}())")
    return found


def domain_modules() -> list[Path]:
    return sorted(DOMAIN.glob("**/*.py"))


def test_the_domain_holds_the_notifier_rules_and_lifecycle() -> None:
    names = {path.name for path in domain_modules()}
    assert {"rules.py", "triggers.py", "followups.py", "backoff.py", "signing.py"} <= names


@pytest.mark.parametrize("path", domain_modules(), ids=lambda path: path.name)
def test_a_domain_module_imports_nothing_impure_and_reads_no_clock(path: Path) -> None:
    assert problems(path.read_text(), filename=str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import aiohttp",
        "import asyncpg",
        "from aiokafka import AIOKafkaProducer",
        "from fastapi import APIRouter",
        "import jinja2",
        "from funnel_notifier.channels import Delivery",
        "from funnel_notifier import metrics",
        "from ..postgres import queue",
        "import time",
        "from random import random",
        "from datetime import datetime, UTC\nx = datetime.now(UTC)",
        "import datetime\nx = datetime.date.today()",
        "def f(loop):\n    return loop.time()",
    ],
)
def test_the_check_catches_an_impure_import_or_a_clock_read(source: str) -> None:
    assert problems(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from funnel_shared.events import StageChanged",
        "from funnel_notifier.domain.rules import LoadedRule",
        "from .rules import LoadedRule",
        "from . import followups",
        "import json\nfrom datetime import datetime, timedelta",
        "from pydantic import BaseModel",
        "import yaml",
    ],
)
def test_the_check_lets_the_domain_use_itself_shared_and_the_standard_library(
    source: str,
) -> None:
    assert problems(source) == []
