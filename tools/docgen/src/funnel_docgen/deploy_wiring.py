"""What docker-compose.yml and the images set themselves, read from those files.

.env.example notes these ("Set by docker-compose.yml: kafka:9092") so that a
reader knows which lines of their .env would be overridden.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Wiring", "compose_variables", "read_wiring"]

_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


@dataclass(frozen=True)
class Wiring:
    compose: dict[str, dict[str, str]]  # variable -> {service: value}
    images: dict[str, dict[str, str]]  # variable -> {image: value}


def compose_variables(compose_text: str) -> dict[str, str | None]:
    """Variables compose substitutes: name -> default (``None``: required, no default)."""
    found: dict[str, str | None] = {}
    for name, kind, rest in _INTERPOLATION.findall(compose_text):
        default = rest if kind == "-" else None
        if kind == "" and name not in found:
            found[name] = ""
        elif kind == "?" or name not in found or found[name] in ("", None):
            found[name] = default
    return found


def _dockerfile_env(path: Path) -> dict[str, str]:
    """ENV of the final stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    final = text.rsplit("\nFROM ", 1)[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "ENV":
            for word in shlex.split(args):
                name, equals, value = word.partition("=")
                if equals:
                    env[name] = value
    return env


def read_wiring(root: Path) -> Wiring:
    document: dict[str, Any] = yaml.safe_load((root / "docker-compose.yml").read_text())
    compose: dict[str, dict[str, str]] = {}
    images: dict[str, dict[str, str]] = {}
    dockerfiles: set[str] = set()
    for name, service in document["services"].items():
        build = service.get("build")
        if build is None:  # Kafka, PostgreSQL, Mailpit: not ours.
            continue
        for variable, value in (service.get("environment") or {}).items():
            compose.setdefault(variable, {})[name] = str(value)
        dockerfiles.add(build.get("dockerfile", "Dockerfile"))
    for dockerfile in sorted(dockerfiles):
        image = Path(dockerfile).name.removesuffix(".Dockerfile")
        for variable, value in _dockerfile_env(root / dockerfile).items():
            images.setdefault(variable, {})[image] = value
    return Wiring(compose=compose, images=images)
