"""One command style: ``funnel-<service>`` serves; other tasks are subcommands.

Every service's entry point is built by ``command_line``: ``--help`` says what
the service does and lists the environment variables its settings read (from
the settings classes' own field descriptions), and each subcommand
(``migrate``, ``check``) has its own ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic_settings import BaseSettings

__all__ = ["Subcommand", "command_line", "environment_help"]

# What a command does with its parsed arguments; the result is the exit status.
Action = Callable[[argparse.Namespace], int | None]


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    run: Action
    # Adds the subcommand's own arguments to its parser.
    arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda _: None)


def environment_help(*settings: type[BaseSettings]) -> str:
    """``NAME  description`` for every field of the settings classes, as read from env."""
    lines = ["environment variables:"]
    for model in settings:
        prefix = str(model.model_config.get("env_prefix") or "")
        for name, info in model.model_fields.items():
            lines.append(f"  {(prefix + name).upper():<34} {info.description or ''}".rstrip())
    return "\n".join(lines)


def command_line(
    *,
    prog: str,
    description: str,
    serve: Action,
    subcommands: Sequence[Subcommand] = (),
    settings: Sequence[type[BaseSettings]] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and run ``serve`` or the named subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=environment_help(*settings) if settings else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=serve)
    if subcommands:
        commands = parser.add_subparsers(title="commands", metavar="COMMAND")
        for subcommand in subcommands:
            sub = commands.add_parser(
                subcommand.name, help=subcommand.help, description=subcommand.help
            )
            subcommand.arguments(sub)
            sub.set_defaults(run=subcommand.run)
    args = parser.parse_args(argv)
    status = args.run(args)
    return 0 if status is None else status
