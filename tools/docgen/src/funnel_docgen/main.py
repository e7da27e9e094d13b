"""``funnel-docgen [--check] [ROOT]``: write (or check) the generated documents."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from funnel_docgen.asyncapi import render_asyncapi
from funnel_docgen.configuration import render_configuration, render_env_example

__all__ = ["main", "render_all"]


def render_all(root: Path) -> dict[Path, str]:
    """Repository-relative path -> the text the code renders now."""
    renderers: dict[str, Callable[[], str]] = {
        "docs/configuration.md": lambda: render_configuration(root),
        ".env.example": lambda: render_env_example(root),
        "docs/asyncapi.yaml": render_asyncapi,
    }
    return {Path(path): render() for path, render in renderers.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="funnel-docgen",
        description="Generate docs/configuration.md, .env.example and docs/asyncapi.yaml.",
    )
    parser.add_argument("root", nargs="?", default=".", type=Path, help="the repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render_all(args.root).items():
        target = args.root / path
        if target.is_file() and target.read_text() == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            target.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run make docs): {', '.join(stale)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
