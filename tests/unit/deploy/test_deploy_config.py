"""docker-compose.yml, .env.example and the README's deploy steps, without a Docker engine.

The compose file is validated against the compose-spec JSON schema vendored in
deploy/ (see deploy/README.md for its origin). What each container reads is
derived from the code it runs (tests/support/deploy_config.py), so a new setting or a
new service is checked without editing this file.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema

from tests.support.deploy_config import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    compose,
    env_example_names,
    env_read_by,
    interpolated_names,
    parse_dockerfile,
    programs_in,
    published_ports,
    required_names,
    service_command,
    service_dockerfile,
    workspace_members,
)

SCHEMA = json.loads((REPO / "deploy" / "compose-spec.schema.json").read_text())


def _schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def _built() -> dict[str, dict[str, Any]]:
    """Our services (and the init job): the ones compose builds from deploy/."""
    return {name: s for name, s in _services().items() if service_dockerfile(s) is not None}


def _reads(service: dict[str, Any]) -> frozenset[str]:
    programs = programs_in(service_command(service))
    assert programs, f"cannot tell which program runs: {service_command(service)}"
    return frozenset().union(*(env_read_by(program) for program in programs))


def _public_services() -> set[str]:
    """Services that may listen on every host interface: ingest only (browsers post to it)."""
    [ingest] = [m for m in workspace_members() if m.path == "services/ingest"]
    return {n for n, s in _built().items() if set(ingest.scripts) & set(service_command(s))}


def _exposed_beyond_this_host(services: dict[str, dict[str, Any]]) -> list[str]:
    """Mappings of non-public services that do not bind 127.0.0.1 when .env sets nothing."""
    public = _public_services()
    return [
        f"{name}: {port.written}"
        for name, service in services.items()
        if name not in public
        for port in published_ports(service)
        if port.address != "127.0.0.1"
    ]


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and check.get("test", ["NONE"])[0] != "NONE"
    dockerfile = service_dockerfile(service)
    return dockerfile is not None and bool(parse_dockerfile(dockerfile)[-1].all("HEALTHCHECK"))


def test_compose_file_follows_the_compose_specification() -> None:
    assert _schema_errors(compose()) == []


def test_the_schema_check_catches_a_file_that_breaks_the_specification() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["kafka"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    broken["services"]["kafka"]["healthcheck"]["intervall"] = "5s"
    assert len(_schema_errors(broken)) >= 2


def test_every_dependency_is_waited_for_until_healthy_or_done() -> None:
    services = _services()
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends_on.items():
            condition = rule.get("condition")
            if condition == "service_healthy":
                assert _has_healthcheck(services[target]), f"{name} waits for {target}'s health"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                # A job that restarts forever never completes.
                assert services[target].get("restart") in {"no", None}, target


def test_every_service_has_a_restart_policy() -> None:
    for name, service in _services().items():
        assert "restart" in service, name


def test_every_dockerfile_exists_and_builds_from_the_repo_root() -> None:
    for name, service in _built().items():
        dockerfile = service_dockerfile(service)
        assert dockerfile is not None and dockerfile.is_file(), f"{name}: {dockerfile}"
        assert (REPO / service["build"]["context"]).resolve() == REPO, name


def test_every_service_package_runs_in_compose() -> None:
    running = {word for service in _built().values() for word in service_command(service)}
    for member in workspace_members():
        if member.path.startswith("services/"):
            assert set(member.scripts) & running, f"{member.name} is not in docker-compose.yml"


def test_compose_passes_a_service_only_variables_it_reads() -> None:
    for name, service in _built().items():
        passed = set(service.get("environment", {}))
        unknown = passed - _reads(service)
        assert not unknown, f"{name} reads no such variable: {sorted(unknown)}"


def test_services_get_the_broker_and_database_they_read_and_wait_for_them() -> None:
    # Without the wiring a service would quietly use its default, 127.0.0.1.
    services = _services()
    [kafka] = [n for n, s in services.items() if "KAFKA_PROCESS_ROLES" in s.get("environment", {})]
    [postgres] = [n for n, s in services.items() if s.get("image", "").startswith("postgres:")]
    for name, service in _built().items():
        reads, environment = _reads(service), service.get("environment", {})
        for variable, server in (("KAFKA_BOOTSTRAP_SERVERS", kafka), ("DATABASE_URL", postgres)):
            if variable in reads:
                assert variable in environment, f"{name} reads {variable}"
                waits = service.get("depends_on", {}).get(server, {})
                assert waits.get("condition") == "service_healthy", f"{name} must wait for {server}"


def test_producers_are_idempotent() -> None:
    for name, service in _built().items():
        if "KAFKA_ENABLE_IDEMPOTENCE" in _reads(service):
            assert service["environment"].get("KAFKA_ENABLE_IDEMPOTENCE") == "true", name


def test_kafka_and_postgres_keep_their_data_in_named_volumes() -> None:
    declared = set(compose().get("volumes", {}))
    data_dirs = {}
    for name, service in _services().items():
        environment = service.get("environment", {})
        if "KAFKA_LOG_DIRS" in environment:
            data_dirs[name] = environment["KAFKA_LOG_DIRS"]
        if service.get("image", "").startswith("postgres:"):
            data_dirs[name] = environment.get("PGDATA", "/var/lib/postgresql/data")
    assert len(data_dirs) == 2, data_dirs
    for name, path in data_dirs.items():
        mounts = dict(v.split(":")[:2] for v in _services()[name]["volumes"] if ":" in v)
        assert path in mounts.values(), f"{name}: {path} is not on a volume"
        assert {v for v, target in mounts.items() if target == path} <= declared, name


def test_env_example_documents_every_variable_the_services_read() -> None:
    read = set().union(*(_reads(service) for service in _built().values()))
    missing = read - env_example_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_documents_every_variable_compose_substitutes() -> None:
    missing = interpolated_names(COMPOSE_FILE.read_text()) - env_example_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_names_only_variables_something_reads() -> None:
    known = interpolated_names(COMPOSE_FILE.read_text()).union(
        *(_reads(service) for service in _built().values())
    )
    stale = env_example_names() - known
    assert not stale, f"nothing reads these: {sorted(stale)}"


def test_env_example_sets_every_variable_compose_requires() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    assigned = {line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z]\w*=", line)}
    assert required_names(COMPOSE_FILE.read_text()) <= assigned


def test_env_example_lines_are_comments_or_assignments() -> None:
    bad = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#") and not re.match(r"^[A-Z][A-Z0-9_]*=\S", line)
    ]
    assert bad == []


def test_readme_deploy_section_has_the_steps_compose_needs() -> None:
    readme = (REPO / "docs" / "deploy.md").read_text()
    match = re.search(r"^## Deploy with docker-compose\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, "docs/deploy.md needs a '## Deploy with docker-compose' section"
    section = match[1]
    for step in ("cp .env.example .env", "docker compose up -d", "deploy/README.md"):
        assert step in section, step
    for name in required_names(COMPOSE_FILE.read_text()):
        assert name in section, f"the deploy steps must say to set {name}"
    for service in _services().values():
        for mapping in service.get("ports", []):
            published = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(mapping)).rsplit(":", 1)[0]
            assert published.rsplit(":", 1)[-1] in section, f"port {mapping} is not in the README"


def test_only_ingest_is_published_beyond_this_host_by_default() -> None:
    # The read API, the admin API, Mailpit's UI and Kafka have no authentication, and
    # engine-published ports bypass a host firewall.
    assert _public_services() == {"ingest"}
    assert _exposed_beyond_this_host(_services()) == []
    [ingest] = published_ports(_services()["ingest"])
    assert ingest.address == "", "ingest is for browsers and servers: every interface"


def test_the_binding_check_catches_a_port_published_on_every_interface() -> None:
    for mapping in ("8025:8025", "${MAILPIT_UI_PUBLISH:-8025}:8025", "0.0.0.0:8025:8025", "8025"):
        services = copy.deepcopy(_services())
        services["mailpit"]["ports"] = [mapping]
        assert _exposed_beyond_this_host(services) == [f"mailpit: {mapping}"], mapping
    services = copy.deepcopy(_services())
    services["notifier"]["ports"] = [{"target": 8002, "published": "8002"}]
    assert len(_exposed_beyond_this_host(services)) == 1


def test_every_non_public_binding_can_be_moved_in_env() -> None:
    # 127.0.0.1 is the default, not a wall: each service port is a variable .env can set
    # (Kafka's host listener excepted: it advertises localhost, see deploy/README.md).
    public = _public_services()
    for name, service in _services().items():
        for port in published_ports(service):
            if name in public or "KAFKA_PROCESS_ROLES" in service.get("environment", {}):
                continue
            assert re.fullmatch(r"\$\{\w+_PUBLISH:-127\.0\.0\.1:\d+\}:\d+", port.written), (
                f"{name}: {port.written}"
            )
