"""One YAML definition loader: every problem names the file and the field as written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from funnel_shared.definition_files import (
    DefinitionFileError,
    definition_files,
    load_definition,
    parse_definition,
)
from funnel_shared.durations import Duration
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Webhook(BaseModel):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")


class _Kafka(BaseModel):
    type: Literal["kafka"]
    topic: str


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    after: Duration
    match: list[dict[str, str]] = Field(default_factory=list)
    action: Annotated[_Webhook | _Kafka, Field(discriminator="type")] | None = None

    @field_validator("match", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class _File(BaseModel):
    name: str
    rules: list[_Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> _File:
        ids = [rule.id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError("rules: an id is used twice\nname: and a second problem")
        return self


GOOD = """
name: shop
rules:
  - {id: a, after: 1.5h, match: {type: page}}
  - {id: b, after: 2d, action: {type: kafka, topic: tasks}}
"""


class _ServiceError(DefinitionFileError):
    pass


def _problems(text: str) -> list[str]:
    with pytest.raises(_ServiceError) as caught:
        parse_definition(text, _File, path=Path("shop.yaml"), holds="one shop", error=_ServiceError)
    assert caught.value.path == Path("shop.yaml")
    assert all(line.startswith("shop.yaml: ") for line in str(caught.value).splitlines())
    return caught.value.problems


def test_a_good_file_parses_into_the_model() -> None:
    parsed = parse_definition(GOOD, _File, path=Path("shop.yaml"))
    assert [rule.id for rule in parsed.rules] == ["a", "b"]
    assert parsed.rules[0].after.total_seconds() == 5400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("after: 2d", "after: 2 days"), "rules[1].after: '2 days' is not a duration"),
        (GOOD.replace("topic: tasks", "tpic: tasks"), "rules[1].action.topic: Field required"),
        (GOOD.replace("type: kafka", "type: fax"), "rules[1].action: Input tag 'fax'"),
        (GOOD.replace("{type: page}", "{type: 3}"), "rules[0].match.type: Input should be a valid"),
        (GOOD.replace("id: b,", "id: b, colour: red,"), "rules[1].colour: Extra inputs are not"),
        ("name: shop\n", "rules: Field required"),
    ],
)
def test_a_problem_names_the_field_as_the_file_spells_it(text: str, expected: str) -> None:
    [problem] = _problems(text)
    assert problem.startswith(expected)


def test_a_webhook_problem_leaves_out_the_union_tag() -> None:
    text = GOOD.replace("{type: kafka, topic: tasks}", "{type: webhook, url: ftp://x}")
    [problem] = _problems(text)
    assert problem.startswith("rules[1].action.url: String should match pattern")


def test_a_model_level_problem_keeps_each_of_its_lines_and_paths() -> None:
    assert _problems(GOOD.replace("id: b", "id: a")) == [
        "rules: an id is used twice",
        "name: and a second problem",
    ]


def test_a_yaml_syntax_error_names_the_line_and_column() -> None:
    [problem] = _problems("name: shop\nrules: [a, b\nother: 1\n")
    assert problem.startswith("line 3, column ")
    assert "YAML syntax error" in problem


@pytest.mark.parametrize(("text", "kind"), [("", "nothing"), ("- a\n- b\n", "list")])
def test_a_file_that_is_not_a_mapping_is_refused(text: str, kind: str) -> None:
    assert _problems(text) == [f"the file must hold one shop; got {kind}"]


def test_a_file_is_read_and_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "shop.yml"
    path.write_text(GOOD.replace("after: 2d", "after: -2d"))
    with pytest.raises(DefinitionFileError) as caught:
        load_definition(path, _File)
    assert str(caught.value) == f"{path}: rules[1].after: a duration cannot be negative"


def test_a_directory_lists_its_yaml_files_sorted_by_name(tmp_path: Path) -> None:
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text(GOOD)
    (tmp_path / "c.yaml").mkdir()
    assert [path.name for path in definition_files(tmp_path)] == ["a.yml", "b.yaml"]


def test_a_directory_that_is_missing_or_must_not_be_empty_is_refused(tmp_path: Path) -> None:
    assert definition_files(tmp_path) == []
    with pytest.raises(DefinitionFileError, match=r"no shops \(\*\.yaml, \*\.yml\)"):
        definition_files(tmp_path, required="shops")
    with pytest.raises(_ServiceError, match="not a directory"):
        definition_files(tmp_path / "missing", error=_ServiceError)
