"""Definition files: YAML read into a pydantic model, or one error naming file and field.

Funnel definitions and follow-up rules are both YAML files validated by a
pydantic model. Loading never half-succeeds: a file with a problem raises
``DefinitionFileError`` (or the service's subclass of it) whose message has
one line per problem, each naming the file and the field as the file spells
it, e.g. ``lifecycle.yaml: rules[1].after: '2 days' is not a duration like ...``
or ``shop.yaml: line 3, column 1: YAML syntax error: ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "SUFFIXES",
    "DefinitionFileError",
    "definition_files",
    "field_path",
    "load_definition",
    "parse_definition",
    "validation_problems",
    "yaml_problem",
]

SUFFIXES = (".yaml", ".yml")
M = TypeVar("M", bound=BaseModel)


class DefinitionFileError(ValueError):
    """A definition file is invalid. The message names the file and the field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))


def parse_definition(
    content: bytes | str,
    model: type[M],
    *,
    path: Path,
    holds: str = "a mapping",
    error: type[DefinitionFileError] = DefinitionFileError,
) -> M:
    """One file's content validated as ``model``; ``path`` is only for messages.

    ``holds`` says what the top level must be, for the message when it is not a
    mapping ("the file must hold {holds}; got a list"). ``error`` is the class
    raised, so each service keeps its own error type.
    """
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise error(path, [yaml_problem(exc)]) from exc
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise error(path, [f"the file must hold {holds}; got {kind}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(path, validation_problems(exc, data)) from exc


def load_definition(
    path: Path,
    model: type[M],
    *,
    holds: str = "a mapping",
    error: type[DefinitionFileError] = DefinitionFileError,
) -> M:
    """``parse_definition`` on a file's bytes."""
    return parse_definition(path.read_bytes(), model, path=path, holds=holds, error=error)


def definition_files(
    directory: Path,
    *,
    required: str | None = None,
    error: type[DefinitionFileError] = DefinitionFileError,
) -> list[Path]:
    """The ``*.yaml`` and ``*.yml`` files in ``directory``, sorted by name.

    Raises ``error`` when ``directory`` is not a directory, and when it holds no
    such file and ``required`` names what was expected (e.g. "funnel definitions").
    """
    if not directory.is_dir():
        raise error(directory, ["not a directory"])
    paths = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if not paths and required is not None:
        raise error(directory, [f"no {required} (*.yaml, *.yml)"])
    return paths


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML syntax error with its line and column (1-based), when YAML gives them."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"YAML syntax error: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"


def validation_problems(exc: ValidationError, data: Any) -> list[str]:
    """``field.path: message`` per pydantic error, the path as the file spells it.

    A model validator's ``ValueError`` may hold several lines, each already
    starting with its own field path: each line is one problem.
    """
    problems = []
    for error in exc.errors():
        where = field_path(error["loc"], data)
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ValueError):
            messages = str(cause).splitlines()
        else:
            messages = [str(error["msg"]).removeprefix("Value error, ")]
        problems += [message if not where else f"{where}: {message}" for message in messages]
    return problems


def field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """``rules[2].match.properties.price.gt`` from a pydantic error location.

    The location is walked along the data, so the path reads as the file does:
    an index into something the file wrote as a single value (validated as a
    one-item list) is left out, and so is the tag pydantic inserts for a
    discriminated union (``webhook`` in ``action.webhook.url`` when the action
    says ``type: webhook``).
    """
    path = ""
    current = data
    for part in loc:
        if isinstance(part, int):
            if not isinstance(current, list):
                continue
            path += f"[{part}]"
            current = current[part] if part < len(current) else None
            continue
        if isinstance(current, dict) and part not in current and part in current.values():
            continue
        path += f".{part}" if path else part
        current = current.get(part) if isinstance(current, dict) else None
    return path
