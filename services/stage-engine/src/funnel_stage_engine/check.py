"""``funnel-stage-engine check [DIRECTORY]``: validate funnel definitions and say what is there.

Without a directory it checks the built-in funnels. Exit status 0 when every
file is valid, 1 otherwise; problems go to stderr, one per line, each naming
the file and the field.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from funnel_stage_engine.domain.definitions import check_funnels

__all__ = ["run_check"]


def run_check(argv: Sequence[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the ``check`` subcommand with its arguments (after ``check``); the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="funnel-stage-engine check",
        description="Validate funnel definition files (the built-ins when no directory is given).",
    )
    parser.add_argument("directory", nargs="?", type=Path, help="a directory of *.yaml files")
    args = parser.parse_args(list(argv))
    funnels, errors = check_funnels(args.directory)
    where = args.directory or "built-in funnels"
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
