"""``funnel-stage-engine check``: what it prints and its exit status."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.main import main


def _run(*argv: str) -> tuple[int, str, str]:
    """``funnel-stage-engine check *argv``: exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exited,
    ):
        main(["check", *argv])
    assert isinstance(exited.value.code, int)
    return exited.value.code, out.getvalue(), err.getvalue()


def test_check_without_a_directory_lists_the_builtin_funnels() -> None:
    status, out, err = _run()
    assert (status, err) == (0, "")
    for funnel in load_funnels():
        assert f"{funnel.name}  version {funnel.version}" in out
    assert "hourglass  version" in out and "strict  12 stages" in out
    assert out.splitlines()[-1] == "built-in funnels: 3 funnel(s), all valid"


def test_check_copies_of_the_builtins_are_valid(tmp_path: Path) -> None:
    for funnel in load_funnels():
        assert funnel.source is not None
        (tmp_path / funnel.source.name).write_bytes(funnel.source.read_bytes())
    status, out, _ = _run(str(tmp_path))
    assert status == 0
    assert out.splitlines()[-1] == f"{tmp_path}: 3 funnel(s), all valid"


def test_check_exits_non_zero_and_names_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(
        "name: shop\nstages: [a]\nrules:\n  - {id: r, to: b, match: {event: X}}\n"
    )
    status, out, err = _run(str(tmp_path))
    assert status == 1
    assert out == ""
    assert err.splitlines() == [
        f"{tmp_path / 'shop.yaml'}: rules[0].to: unknown stage 'b' (stages: a)",
        f"{tmp_path}: 1 problem(s) in 1 file(s)",
    ]
