"""Lint-level checks of deploy/*.Dockerfile, without a Docker engine.

What each image must be (issue 8, deploy/README.md): built from the repo root,
dependencies from the lock first, then only the service and the workspace
libraries it depends on, a slim final stage holding just the virtual
environment, a non-root user, a health check and the service's entry point.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.support.deploy_config import (
    REPO,
    Member,
    Stage,
    command_words,
    env_assignments,
    env_read_by,
    member_owning_script,
    parse_dockerfile,
    settings_classes,
    settings_prefixes,
    split_flags,
    workspace_members,
)

DOCKERFILES = sorted((REPO / "deploy").glob("*.Dockerfile"))


@pytest.fixture(params=DOCKERFILES, ids=lambda path: path.name)
def stages(request: pytest.FixtureRequest) -> list[Stage]:
    return parse_dockerfile(request.param)


def _service(stages: list[Stage]) -> Member:
    [entrypoint] = stages[-1].all("ENTRYPOINT")
    script = command_words(entrypoint)[0]
    member = member_owning_script(script)
    assert member is not None, f"ENTRYPOINT {script} is no workspace member's console script"
    return member


def _program(member: Member) -> str:
    return next(iter(member.scripts.values())).split(":")[0].split(".")[0]


def _uv_syncs(stage: Stage) -> list[list[str]]:
    runs: list[list[str]] = []
    for run in stage.all("RUN"):
        words = [word for word in command_words(run) if not word.startswith("--mount")]
        if words[:2] == ["uv", "sync"]:
            runs.append(words)
    return runs


def _workspace_dependencies(member: Member) -> list[Member]:
    """The members this one depends on, transitively (e.g. funnel-shared)."""
    by_name = {m.name: m for m in workspace_members()}
    found: list[Member] = []
    pending = [member]
    while pending:
        project = tomllib.loads((REPO / pending.pop().path / "pyproject.toml").read_text())
        for requirement in project["project"].get("dependencies", []):
            name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
            if name in by_name and by_name[name] not in found:
                found.append(by_name[name])
                pending.append(by_name[name])
    return found


def test_every_service_with_an_entry_point_has_an_image() -> None:
    services = [m for m in workspace_members() if m.path.startswith("services/") and m.scripts]
    assert services
    for member in services:
        assert (REPO / "deploy" / f"{Path(member.path).name}.Dockerfile").is_file(), member.path


def test_base_images_are_pinned_by_version_tag(stages: list[Stage]) -> None:
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.image in names:
            continue
        _, _, tag = stage.image.rpartition(":")
        pinned = "@sha256:" in stage.image or (
            "/" not in tag and tag != "latest" and re.search(r"\d", tag)
        )
        assert pinned, f"{stage.image} is not pinned to a version"


def test_builder_and_final_stage_use_the_same_python_image(stages: list[Stage]) -> None:
    # The venv's interpreter is a symlink into the builder's image.
    python = [stage.image for stage in stages if stage.image.startswith("python:")]
    assert len(python) >= 2 and len(set(python)) == 1, python
    assert "slim" in stages[-1].image


def test_uv_is_the_version_the_makefile_pins(stages: list[Stage]) -> None:
    [pinned] = re.findall(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    uv_images = [stage.image for stage in stages if stage.image.startswith("ghcr.io/astral-sh/uv")]
    assert uv_images == [f"ghcr.io/astral-sh/uv:{pinned}"]


def test_every_copied_path_exists_in_the_repo(stages: list[Stage]) -> None:
    for stage in stages:
        for args in stage.all("COPY") + stage.all("ADD"):
            flags, words = split_flags(args)
            if "from" not in flags:
                for source in words[:-1]:
                    assert (REPO / source).exists(), f"COPY {source}: no such path"


def test_dependencies_come_from_the_lock_before_any_code(stages: list[Stage]) -> None:
    builder = stages[-2]
    member = _service(stages)
    first, *rest = _uv_syncs(builder)
    assert {"--frozen", "--no-dev", "--no-install-workspace"} <= set(first)
    assert rest and all({"--frozen", "--no-dev"} <= set(words) for words in rest)
    assert "--no-editable" in rest[-1], "the final stage must not need the sources"
    for words in (first, *rest):
        assert words[words.index("--package") + 1] == member.name
    # Everything copied before the first sync: the lock and every member's pyproject.toml.
    before, copied_before = [], set()
    for keyword, args in builder.instructions:
        if keyword == "RUN" and "uv sync" in args:
            break
        if keyword == "COPY":
            before.append(args)
    for args in before:
        flags, words = split_flags(args)
        if "from" not in flags:
            for source in words[:-1]:
                assert source.endswith(("pyproject.toml", "uv.lock")), f"{source} before the lock"
                copied_before.add(source)
    expected = {"uv.lock", "pyproject.toml"} | {
        f"{m.path}/pyproject.toml" for m in workspace_members()
    }
    assert copied_before == expected


def test_the_image_holds_only_its_service_and_the_libraries_it_uses(stages: list[Stage]) -> None:
    member = _service(stages)
    allowed = {f"{m.path}/" for m in [member, *_workspace_dependencies(member)]}
    code = set()
    for args in stages[-2].all("COPY"):
        flags, words = split_flags(args)
        if "from" not in flags:
            code |= {source for source in words[:-1] if not source.endswith((".toml", ".lock"))}
    assert code == allowed


def test_the_final_stage_holds_only_the_virtual_environment(stages: list[Stage]) -> None:
    final, builder = stages[-1], stages[-2]
    copies = [split_flags(args) for args in final.all("COPY") + final.all("ADD")]
    assert copies == [({"from": builder.name or ""}, ["/app/.venv", "/app/.venv"])]
    assert "/app/.venv/bin" in env_assignments(" ".join(final.all("ENV")))["PATH"]


def test_the_service_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "no USER: the service would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_the_entry_point_is_the_services_console_script(stages: list[Stage]) -> None:
    member = _service(stages)
    [entrypoint] = stages[-1].all("ENTRYPOINT")
    assert entrypoint.startswith("["), "exec form, so the service gets the stop signal"
    assert command_words(entrypoint)[0] in member.scripts


def test_the_health_check_asks_the_service_on_its_own_port(stages: list[Stage]) -> None:
    member = _service(stages)
    [check] = stages[-1].all("HEALTHCHECK")
    assert "/healthz" in check
    [(variable, default)] = re.findall(r"\$\{(\w+):-(\d+)\}", check)
    assert variable in env_read_by(_program(member))
    defaults = {
        f"{cls.model_config.get('env_prefix', '')}{name}".upper(): info.default
        for cls in settings_classes(_program(member))
        for name, info in cls.model_fields.items()
    }
    assert int(default) == defaults[variable], "the health check's port is not the service's"
    assert str(default) in " ".join(stages[-1].all("EXPOSE")).split()


def test_image_settings_are_ones_the_service_reads(stages: list[Stage]) -> None:
    member = _service(stages)
    prefixes = settings_prefixes()
    environment = env_assignments(" ".join(stages[-1].all("ENV")))
    settings = [name for name in environment if name.startswith(tuple(prefixes))]
    assert settings, "the image should bind the service to 0.0.0.0 (its *_HOST setting)"
    unknown = set(settings) - env_read_by(_program(member))
    assert not unknown, f"{member.name} reads no such variable: {sorted(unknown)}"
