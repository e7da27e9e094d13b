"""The deploy docs and `make deploy-check` (deploy/check.sh) agree with the files they describe.

`make deploy-check` needs a container engine, so `make test` does not run it; these
checks keep its script, the Makefile target and the docs from drifting apart.
"""

from __future__ import annotations

import json
import re

from funnel_stage_engine.metrics import StageEngineMetrics
from prometheus_client import generate_latest

from tests.support.deploy_config import REPO, parse_dockerfile

CHECK = REPO / "deploy" / "check.sh"
DEPLOY_DOCS = REPO / "docs" / "deploy.md"
DEPLOY_README = REPO / "deploy" / "README.md"
MAKEFILE = REPO / "Makefile"


def _python_images_pinned() -> set[str]:
    return {
        stage.image
        for dockerfile in sorted((REPO / "deploy").glob("*.Dockerfile"))
        for stage in parse_dockerfile(dockerfile)
        if stage.image.startswith("python:")
    }


def _python_images_named(text: str) -> set[str]:
    return set(re.findall(r"\bpython:[\w.-]*\w", text))


def _docs_batch() -> object:
    [payload] = re.findall(r"/v1/batch -d '(.*?)'", DEPLOY_DOCS.read_text(), re.S)
    return json.loads(payload)


def _check_batch() -> object:
    [payload] = re.findall(r"^send '(.*?)'$", CHECK.read_text(), re.S | re.M)
    return json.loads(payload)


def test_deploy_readme_names_the_python_image_the_dockerfiles_pin() -> None:
    [pinned] = _python_images_pinned()
    named = _python_images_named(DEPLOY_README.read_text())
    assert named == {pinned}, f"deploy/README.md: {sorted(named)}; the Dockerfiles: {pinned}"


def test_the_python_image_comparison_sees_a_different_tag() -> None:
    text = "The final stage is the same `python:3.12-slim` image, pinned as `python:3.12.12-slim`."
    assert _python_images_named(text) == {"python:3.12-slim", "python:3.12.12-slim"}


def test_the_check_sends_the_docs_batch() -> None:
    assert _check_batch() == _docs_batch()


def test_the_makefile_runs_the_check_with_engine_and_compose_variables() -> None:
    makefile = MAKEFILE.read_text()
    assert re.search(r"^ENGINE \?= docker$", makefile, re.M)
    assert re.search(r"^COMPOSE \?= docker compose$", makefile, re.M)
    [recipe] = re.findall(r"^deploy-check:.*\n\t(.*)$", makefile, re.M)
    assert "$(ENGINE)" in recipe and "$(COMPOSE)" in recipe and "deploy/check.sh" in recipe
    # It needs a container engine: never a prerequisite of make test.
    [test_target] = re.findall(r"^test:(.*)$", makefile, re.M)
    assert "deploy-check" not in test_target


def test_the_check_reads_the_stage_changed_topic_the_contracts_define() -> None:
    [topic] = re.findall(r"^STAGE_CHANGED_TOPIC=(\S+)$", CHECK.read_text(), re.M)
    asyncapi = (REPO / "docs" / "asyncapi.yaml").read_text()
    assert re.search(rf"^\s+address: {re.escape(topic)}$", asyncapi, re.M), topic


def test_the_check_parses_the_stage_engines_partition_metric() -> None:
    # Step "the replicas share the partitions" reads each replica's consumer-lag gauge.
    [pattern] = re.findall(r"sed -n 's/\^(.*?)\.\*/\\1/p'", CHECK.read_text())
    regex = pattern.replace(r"\(", "(").replace(r"\)", ")")  # sed's basic regex -> Python's
    rendered = generate_latest(StageEngineMetrics(lag=lambda: {3: 0, 5: 7}).registry).decode()
    assert re.findall(rf"^{regex}", rendered, re.M) == ["3", "5"]


def test_the_docs_describe_the_check_as_it_runs() -> None:
    check, docs = CHECK.read_text(), DEPLOY_DOCS.read_text()
    section = docs.split("## Check a deployment: `make deploy-check`", 1)[-1]
    assert section != docs, "docs/deploy.md needs the make deploy-check section"
    defaults = re.findall(r"^\w+=\$\{(DEPLOY_CHECK_\w+):-([^}]+)\}$", check, re.M)
    defaults += re.findall(r"^(TAG)=(\S+)$", check, re.M)
    assert len(defaults) == 3, defaults
    for name, default in defaults:
        assert f"`{name}`" in section or name == "TAG", f"the docs do not name {name}"
        assert default in section, f"{name} default {default!r} is not in the docs"
    tables = set(re.findall(r"\bselect [^\"]*?\bfrom ([a-z_]+)", check))
    assert tables, "the check reads no table?"
    for table in sorted(tables):
        assert f"`{table}`" in section, f"the check reads {table}: say so in the docs"
    for variable in ("ENGINE", "COMPOSE", "DEPLOY_CHECK_KEEP_IMAGES"):
        assert variable in check and variable in section, variable
