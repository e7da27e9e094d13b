"""``funnel-stage-engine check [DIRECTORY]``: validate funnel definitions and say what is there.

Without a directory it checks the built-in funnels. Exit status 0 when every
file is valid, 1 otherwise; problems go to stderr, one per line, each naming
the file and the field.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from funnel_stage_engine.domain.definitions import check_funnels

__all__ = ["HELP", "arguments", "run_check", "run_from_arguments"]

HELP = "Validate funnel definition files (the built-ins when no directory is given)."


def arguments(parser: argparse.ArgumentParser) -> None:
    """The ``check`` subcommand's own arguments."""
    parser.add_argument("directory", nargs="?", type=Path, help="a directory of *.yaml files")


def run_from_arguments(args: argparse.Namespace) -> int:
    return run_check(args.directory)


def run_check(
    directory: Path | None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Check the funnels in ``directory`` (the built-ins when None); the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    funnels, errors = check_funnels(directory)
    where = directory or "built-in funnels"
    for funnel in funnels:
        definition = funnel.definition
        print(
            f"{funnel.name}  version {funnel.version}  {definition.ordering}  "
            f"{len(definition.stages)} stages  {len(definition.rules)} rules  {funnel.source}",
            file=out,
        )
    if errors:
        for error in errors:
            print(error, file=err)
        problems = sum(len(error.problems) for error in errors)
        print(f"{where}: {problems} problem(s) in {len(errors)} file(s)", file=err)
        return 1
    print(f"{where}: {len(funnels)} funnel(s), all valid", file=out)
    return 0
