"""docs/configuration.md, .env.example and docs/asyncapi.yaml are what the code renders now.

Each is generated (``make docs``) from the settings classes' field descriptions, the
event models and the topic settings: a change to any of them without regenerating
fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_docgen.catalog import GROUPS, variables
from funnel_docgen.main import render_all
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[3]
RENDERED = render_all(REPO)


@pytest.mark.parametrize("path", sorted(RENDERED), ids=str)
def test_generated_file_matches_the_code(path: Path) -> None:
    assert (REPO / path).read_text() == RENDERED[path], f"{path} is stale: run make docs"


def test_every_setting_of_every_settings_class_is_documented() -> None:
    page = RENDERED[Path("docs/configuration.md")]
    names = {variable.name for variable in variables()}
    for group in GROUPS:
        cls = group.load()
        prefix = cls.model_config.get("env_prefix", "")
        for field in cls.model_fields:
            assert f"{prefix}{field}".upper() in names, f"{cls.__name__}.{field}"
    for name in names:
        assert f"`{name}`" in page, name


def test_no_secret_default_is_written_out() -> None:
    secrets = [
        info.get_default(call_default_factory=True)
        for group in GROUPS
        for info in group.load().model_fields.values()
        if info.annotation is SecretStr and not info.is_required()
    ]
    assert secrets, "DATABASE_URL has a SecretStr default: this test must see it"
    for value in secrets:
        if isinstance(value, SecretStr) and value.get_secret_value():
            for path, text in RENDERED.items():
                assert value.get_secret_value() not in text, path


def test_every_setting_has_a_description() -> None:
    undocumented = [variable.name for variable in variables() if not variable.description]
    assert undocumented == []


def test_env_example_lists_the_webhook_variables_the_shipped_rules_name() -> None:
    env_example = RENDERED[Path(".env.example")]
    for name in ("CRM_WEBHOOK_URL", "CRM_WEBHOOK_SECRET", "SALES_WEBHOOK_URL"):
        assert f"\n# {name}=\n" in env_example, name
