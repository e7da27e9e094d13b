"""Funnel definition files: loading, versions, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_stage_engine.domain.definitions import (
    FunnelDefinitionError,
    check_funnels,
    load_funnels,
    parse_funnel,
)

VALID = """\
name: shop
description: A small shop.
stages: [browsing, buying]
rules:
  - id: bought
    to: buying
    match: {event: Order Completed, properties: {price: {gt: 10}}}
"""


def _problems(text: str, file_name: str = "shop.yaml") -> list[str]:
    with pytest.raises(FunnelDefinitionError) as caught:
        parse_funnel(text.encode(), path=Path(file_name))
    assert caught.value.path == Path(file_name)
    assert all(line.startswith(f"{file_name}: ") for line in str(caught.value).splitlines())
    return caught.value.problems


def test_a_valid_file_loads_with_its_defaults() -> None:
    funnel = parse_funnel(VALID.encode(), path=Path("shop.yaml"))
    assert funnel.name == "shop"
    assert funnel.definition.ordering == "forward"
    [rule] = funnel.definition.rules
    assert (rule.from_, rule.backward, rule.count) == (None, False, None)


def test_the_version_is_a_hash_of_the_file_content() -> None:
    first = parse_funnel(VALID.encode(), path=Path("a.yaml"))
    same = parse_funnel(VALID.encode(), path=Path("b.yaml"))
    edited = parse_funnel((VALID + "# a comment\n").encode(), path=Path("a.yaml"))
    assert first.version == same.version
    assert first.version != edited.version
    assert len(first.version) == 12


def test_a_wrong_type_names_the_field_path() -> None:
    text = VALID.replace("{gt: 10}", "{gt: lots}")
    assert _problems(text) == [
        "rules[0].match.properties.price.gt: Input should be a valid number,"
        " unable to parse string as a number"
    ]


def test_a_list_of_matches_is_indexed_in_the_field_path() -> None:
    text = VALID.replace(
        "match: {event: Order Completed, properties: {price: {gt: 10}}}",
        "match: [{event: Order Completed}, {evnt: Typo}]",
    )
    assert _problems(text) == ["rules[0].match[1].evnt: Extra inputs are not permitted"]


def test_a_condition_with_two_operators_is_refused() -> None:
    [problem] = _problems(VALID.replace("{gt: 10}", "{gt: 10, lt: 20}"))
    assert problem.startswith("rules[0].match.properties.price: a condition takes exactly one")


def test_an_unknown_target_stage_is_refused() -> None:
    assert _problems(VALID.replace("to: buying", "to: paying")) == [
        "rules[0].to: unknown stage 'paying' (stages: browsing, buying)"
    ]


def test_an_unknown_from_stage_is_refused() -> None:
    text = VALID.replace("to: buying", "to: buying\n    from: [browsing, lurking]")
    assert _problems(text) == [
        "rules[0].from[1]: unknown stage 'lurking' (stages: browsing, buying)"
    ]


def test_duplicate_rule_ids_and_stages_are_all_reported() -> None:
    text = VALID.replace("[browsing, buying]", "[browsing, buying, buying]") + (
        "  - {id: bought, to: browsing, match: {type: page}}\n"
    )
    assert _problems(text) == [
        "stages: 'buying' is listed 2 times",
        "rules: the rule id 'bought' is used 2 times",
    ]


def test_empty_stages_are_refused() -> None:
    [problem] = _problems(VALID.replace("[browsing, buying]", "[]"))
    assert problem.startswith("stages: List should have at least 1 item")


def test_an_unknown_ordering_mode_is_refused() -> None:
    [problem] = _problems(VALID + "ordering: sideways\n")
    assert problem.startswith("ordering: Input should be 'strict', 'forward' or 'free'")


def test_a_bad_count_window_is_refused() -> None:
    text = VALID.replace("to: buying", "to: buying\n    count: {at_least: 3, within: 7 days}")
    [problem] = _problems(text)
    assert problem.startswith("rules[0].count.within: '7 days' is not a duration like 30s")


def test_a_missing_field_is_named() -> None:
    assert _problems("name: shop\nstages: [a]\n") == ["rules: Field required"]


def test_a_yaml_syntax_error_names_the_line() -> None:
    [problem] = _problems("name: shop\nstages: [a, b\nrules: []\n")
    assert problem.startswith("line 3, column ")
    assert "YAML syntax error" in problem


@pytest.mark.parametrize(("text", "kind"), [("", "nothing"), ("- a\n- b\n", "list")])
def test_a_file_that_is_not_a_mapping_is_refused(text: str, kind: str) -> None:
    assert _problems(text) == [f"the file must hold one funnel (a mapping); got {kind}"]


def test_a_directory_loads_every_yaml_file_sorted_by_name(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(VALID)
    (tmp_path / "a.yml").write_text(VALID.replace("name: shop", "name: another"))
    (tmp_path / "notes.txt").write_text("not a funnel")
    assert [funnel.name for funnel in load_funnels(tmp_path)] == ["another", "shop"]


def test_two_files_defining_the_same_funnel_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    with pytest.raises(FunnelDefinitionError) as caught:
        load_funnels(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'b.yaml'}: name: the funnel 'shop' is already defined in"
        f" {tmp_path / 'a.yaml'}"
    )


def test_check_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(VALID.replace("name: shop", "name: Bad Name"))
    (tmp_path / "worse.yaml").write_text("name: [")
    funnels, errors = check_funnels(tmp_path)
    assert [funnel.name for funnel in funnels] == ["shop"]
    assert [error.path.name for error in errors] == ["bad.yaml", "worse.yaml"]
    assert errors[0].problems[0].startswith("name: String should match pattern")


def test_an_empty_or_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FunnelDefinitionError, match="no funnel definitions"):
        load_funnels(tmp_path)
    with pytest.raises(FunnelDefinitionError, match="not a directory"):
        load_funnels(tmp_path / "missing")
