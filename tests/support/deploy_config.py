"""Reads the deploy files and the code they deploy, for tests/unit/deploy/test_deploy_config.py.

Nothing here lists services, settings or variables by hand: the workspace
members come from the root pyproject.toml, what a container runs from its
compose command or Dockerfile entry point, and the environment variables a
program reads from the pydantic-settings classes its modules use (plus literal
``os.environ`` reads and ``*_env:`` keys in the YAML files it ships).
"""

from __future__ import annotations

import glob
import importlib
import json
import pkgutil
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# --- The uv workspace -------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A workspace member: its folder (relative to the repo), project name and scripts."""

    path: str
    name: str
    scripts: dict[str, str]


@cache
def workspace_members() -> list[Member]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for folder in sorted(glob.glob(pattern, root_dir=REPO)):
            pyproject = REPO / folder / "pyproject.toml"
            if pyproject.is_file():
                project = tomllib.loads(pyproject.read_text())["project"]
                members.append(Member(folder, project["name"], project.get("scripts", {})))
    return members


def member_owning_script(script: str) -> Member | None:
    return next((m for m in workspace_members() if script in m.scripts), None)


# --- Dockerfiles ------------------------------------------------------------------------


@dataclass
class Stage:
    image: str  # with global ARG defaults substituted
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            image, _, name = args.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), image.strip())
            stages.append(Stage(image=image, name=name.strip() or None))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def command_words(args: str) -> list[str]:
    """An ENTRYPOINT/CMD/HEALTHCHECK command as words, exec form or shell form."""
    if args.startswith("["):
        return [str(word) for word in json.loads(args)]
    return shlex.split(args)


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """``--from=x --chmod=7 a b`` -> ({"from": "x", "chmod": "7"}, ["a", "b"])."""
    flags, words = {}, []
    for word in shlex.split(args):
        if word.startswith("--") and not words:
            name, _, value = word[2:].partition("=")
            flags[name] = value
        else:
            words.append(word)
    return flags, words


def env_assignments(args: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in shlex.split(args))


# --- docker-compose.yml -----------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def interpolated_names(text: str) -> set[str]:
    """Variables docker compose substitutes (``${NAME}``, ``${NAME:-default}``...)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def required_names(text: str) -> set[str]:
    """Variables compose refuses to run without (``${NAME:?message}``)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", text))


def service_dockerfile(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return REPO / build / "Dockerfile"
    return REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def service_command(service: dict[str, Any]) -> list[str]:
    """What the container runs: compose entrypoint/command, else the Dockerfile's."""
    final = parse_dockerfile(path).pop() if (path := service_dockerfile(service)) else None
    words: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if value is None and final is not None:
            found = final.all(key.upper() if key == "entrypoint" else "CMD")
            words += command_words(found[-1]) if found else []
        elif isinstance(value, str):
            words += shlex.split(value)
        elif value is not None:
            # Each item may itself be a shell command line (entrypoint: [sh, -c]).
            words += [word for item in value for word in shlex.split(str(item))]
    return words


def programs_in(words: list[str]) -> set[str]:
    """The Python modules a command runs: console scripts and ``python -m`` modules.

    A console script stands for its whole top-level package (a script's settings
    may be built anywhere in it); ``-m`` names exactly one module.
    """
    programs = set()
    for index, word in enumerate(words):
        member = member_owning_script(word)
        if member is not None:
            programs.add(member.scripts[word].split(":")[0].split(".")[0])
        elif word == "-m" and index + 1 < len(words):
            programs.add(words[index + 1] + ":module")
    return programs


# --- Environment variables programs read ------------------------------------------------


def _modules(program: str) -> list[ModuleType]:
    if program.endswith(":module"):
        return [importlib.import_module(program.removesuffix(":module"))]
    package = importlib.import_module(program)
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{program}."):
        if ".migrations" not in info.name:  # Alembic scripts run on import.
            found.append(importlib.import_module(info.name))
    return found


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias or info.alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def settings_classes(program: str) -> set[type[BaseSettings]]:
    return {
        value
        for module in _modules(program)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings
    }


ENVIRON_READ = re.compile(r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)""")
YAML_ENV_KEY = re.compile(r"""^\s*[\w-]*_env:\s*["']?([A-Z][A-Z0-9_]*)""", re.MULTILINE)


def _literal_reads(program: str) -> set[str]:
    names: set[str] = set()
    for module in _modules(program):
        source = Path(module.__file__ or "")
        names |= set(ENVIRON_READ.findall(source.read_text()))
        if source.name == "__init__.py":  # Package data: rule files name variables.
            for data in source.parent.rglob("*.y*ml"):
                names |= set(YAML_ENV_KEY.findall(data.read_text()))
    return names


@cache
def env_read_by(program: str) -> frozenset[str]:
    names = set(_literal_reads(program))
    for cls in settings_classes(program):
        names |= settings_env_names(cls)
    return frozenset(names)


def workspace_packages() -> list[str]:
    """The import packages of every member (``src/<package>/__init__.py``)."""
    return sorted(
        init.parent.name
        for member in workspace_members()
        for init in (REPO / member.path / "src").glob("*/__init__.py")
    )


def settings_prefixes() -> set[str]:
    """Every env_prefix in the workspace's packages, and every prefix-less variable."""
    prefixes: set[str] = set()
    for package in workspace_packages():
        for cls in settings_classes(package):
            prefix = cls.model_config.get("env_prefix", "")
            prefixes |= {prefix} if prefix else settings_env_names(cls)
    return prefixes


# --- .env.example -----------------------------------------------------------------------

ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def env_example_names() -> set[str]:
    """Variables .env.example sets (``NAME=``) or documents (``# NAME=default``)."""
    return set(ENV_LINE.findall(ENV_EXAMPLE.read_text()))


# --- Published ports --------------------------------------------------------------------

DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}")


@dataclass(frozen=True)
class Published:
    """A host port mapping as compose runs it when .env sets none of its variables."""

    written: str  # as in the compose file
    address: str  # host address; "" means every interface
    port: str  # host port or range; "" means one the engine picks
    target: str  # the container's port


def published_ports(service: dict[str, Any]) -> list[Published]:
    """A service's ``ports``, short or long syntax, with variables at their defaults."""
    found = []
    for mapping in service.get("ports", []):
        if isinstance(mapping, dict):
            address = DEFAULTED.sub(lambda m: m[1] or "", str(mapping.get("host_ip", "")))
            port = DEFAULTED.sub(lambda m: m[1] or "", str(mapping.get("published", "")))
            found.append(Published(str(mapping), address, port, str(mapping["target"])))
            continue
        text = DEFAULTED.sub(lambda m: m[1] or "", str(mapping)).split("/")[0]
        parts = text.rsplit(":", 2)
        target = parts.pop()
        port = parts.pop() if parts else ""
        address = parts.pop().strip("[]") if parts else ""
        found.append(Published(str(mapping), address, port, target))
    return found
