"""Every environment variable Funnel reads, from the pydantic-settings classes' fields.

The classes are read through ``model_fields``, never instantiated, so no
environment is needed. Which program reads a class is found by importing each
program's modules and looking for the class among their names, the same way
the deploy tests find what a container reads.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

__all__ = ["GROUPS", "PROGRAMS", "Group", "Variable", "rule_variables", "variables"]

# Program name in the docs -> the package (or the ``python -m`` module) that runs it.
PROGRAMS: dict[str, str] = {
    "ingest": "funnel_ingest",
    "stage engine": "funnel_stage_engine",
    "notifier": "funnel_notifier",
    "topic creation": "funnel_shared.topics:module",
    "dev stack": "funnel_devstack",
}


@dataclass(frozen=True)
class Group:
    """One settings class, as a section of the reference."""

    title: str
    cls: str  # "module:ClassName"
    intro: str

    def load(self) -> type[BaseSettings]:
        module, _, name = self.cls.partition(":")
        loaded: type[BaseSettings] = getattr(importlib.import_module(module), name)
        return loaded


GROUPS: tuple[Group, ...] = (
    Group(
        "Kafka",
        "funnel_shared.settings:KafkaSettings",
        "How every program reaches the Kafka-protocol broker and talks to it. The defaults"
        " suit Apache Kafka; the embedded broker needs a few changed, which `make dev` and"
        " the test fixtures do through these same variables"
        " (see [the embedded broker](embedded-broker.md)).",
    ),
    Group(
        "Topics",
        "funnel_shared.settings:TopicSettings",
        "Topic names. The defaults are the contracts in [asyncapi.yaml](asyncapi.yaml);"
        " changing one after data was written starts an empty topic.",
    ),
    Group(
        "Topic configs",
        "funnel_shared.topics:TopicConfigSettings",
        "Configs for the topics `python -m funnel_shared.topics` creates (the docker-compose"
        " init job runs it). Unset: the broker's default. Topics that exist already are"
        " left as they are.",
    ),
    Group(
        "PostgreSQL",
        "funnel_shared.settings:DatabaseSettings",
        "The notifier's queue and the stage engine's projection.",
    ),
    Group("Ingest", "funnel_ingest.settings:IngestSettings", "The HTTP API (port 8000)."),
    Group(
        "Stage engine",
        "funnel_stage_engine.settings:StageEngineSettings",
        "The faust worker, the projection, the read API and the funnel pages (port 8001).",
    ),
    Group(
        "Notifier",
        "funnel_notifier.settings:NotifierSettings",
        "Follow-up rules, the queue, delivery and the admin API (port 8002).",
    ),
    Group(
        "Dev stack",
        "funnel_devstack.settings:DevSettings",
        "`make dev` (`funnel-dev`) only. Everything has a default.",
    ),
)


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: str | None  # None: required, or a secret (never shown)
    secret: bool
    required: bool
    description: str
    readers: tuple[str, ...]
    group: str


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(named) + (", optional" if type(None) in args else "")
    if origin is dict:
        return "JSON object"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", SecretStr: "string"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation)).removeprefix("IPvAny").lower()


def _default_text(info: FieldInfo) -> str | None:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def env_name(cls: type[BaseSettings], field: str, info: FieldInfo) -> str:
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def _modules(program: str) -> list[types.ModuleType]:
    if program.endswith(":module"):
        return [importlib.import_module(program.removesuffix(":module"))]
    package = importlib.import_module(program)
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{program}."):
        if ".migrations" not in info.name:  # Alembic scripts run on import.
            found.append(importlib.import_module(info.name))
    return found


@cache
def _read_by() -> dict[type, tuple[str, ...]]:
    readers: dict[type, list[str]] = {}
    for name, program in PROGRAMS.items():
        classes = {
            value
            for module in _modules(program)
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, BaseSettings)
        }
        for cls in classes:
            readers.setdefault(cls, []).append(name)
    return {cls: tuple(names) for cls, names in readers.items()}


def variables() -> list[Variable]:
    """Every variable, grouped and in field order."""
    found = []
    for group in GROUPS:
        cls = group.load()
        readers = _read_by().get(cls, ())
        for field, info in cls.model_fields.items():
            secret = _is_secret(info.annotation)
            default = _default_text(info)
            found.append(
                Variable(
                    name=env_name(cls, field, info),
                    type=_type_name(info.annotation),
                    default=None if secret else default,
                    secret=secret,
                    required=info.is_required(),
                    description=info.description or "",
                    readers=readers,
                    group=group.title,
                )
            )
    return found


_ENV_KEY = re.compile(r"""^\s*([\w-]*_env):\s*["']?([A-Z][A-Z0-9_]*)""", re.MULTILINE)


def rule_variables() -> list[tuple[str, str, Path]]:
    """(variable, key, file) for every ``*_env:`` key in the notifier's shipped rule files."""
    notifier = importlib.import_module("funnel_notifier")
    root = Path(notifier.__file__ or "").parent
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        for key, name in _ENV_KEY.findall(path.read_text()):
            found.append((name, key, path.relative_to(root)))
    return found
