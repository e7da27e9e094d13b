"""Match conditions on properties, traits and context: every operator, and what matches."""

from __future__ import annotations

from typing import Any

import pytest
from funnel_stage_engine.domain.matching import Condition, Match, matches

from tests.support.journeys import contact_event, identify, page, track

ORDER = track(
    "Order Completed",
    properties={
        "revenue": 120.5,
        "currency": "EUR",
        "coupon": None,
        "products": [{"sku": "a"}, "gift"],
        "tags": ["vip", "eu"],
        "paid": True,
        "count": 1,
        "order": {"channel": "web-shop"},
    },
    context={"page": {"path": "/checkout/done"}, "locale": "de-DE"},
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("EUR", True),
        ("USD", False),
        ({"equals": "EUR"}, True),
        ({"equals": None}, False),
        ({"in": ["USD", "EUR"]}, True),
        ({"in": ["USD"]}, False),
        ({"exists": True}, True),
        ({"exists": False}, False),
        ({"prefix": "EU"}, True),
        ({"prefix": "US"}, False),
        ({"contains": "U"}, True),
        ({"contains": "X"}, False),
    ],
)
def test_currency_conditions(condition: Any, expected: bool) -> None:
    match = Match.model_validate({"properties": {"currency": condition}})
    assert matches(match, ORDER) is expected


@pytest.mark.parametrize(
    ("operator", "bound", "expected"),
    [
        ("gt", 120, True),
        ("gt", 120.5, False),
        ("gte", 120.5, True),
        ("gte", 121, False),
        ("lt", 121, True),
        ("lt", 120.5, False),
        ("lte", 120.5, True),
        ("lte", 120, False),
    ],
)
def test_numeric_comparisons(operator: str, bound: float, expected: bool) -> None:
    match = Match.model_validate({"properties": {"revenue": {operator: bound}}})
    assert matches(match, ORDER) is expected


@pytest.mark.parametrize(
    ("path", "condition", "expected"),
    [
        ("tags", {"contains": "vip"}, True),  # A list contains an element.
        ("tags", {"contains": "v"}, False),  # ...not a substring of one.
        ("products", {"contains": "gift"}, True),
        ("currency", {"gt": 1}, False),  # Comparisons need a number.
        ("paid", {"gt": 0}, False),  # A boolean is not a number.
        ("paid", 1, False),  # JSON true is not 1.
        ("count", True, False),  # ...and 1 is not true.
        ("paid", True, True),
        ("count", 1, True),
        ("coupon", {"exists": True}, False),  # null counts as absent.
        ("coupon", {"exists": False}, True),
        ("missing", {"exists": False}, True),
        ("missing", {"prefix": ""}, False),
        ("missing", {"equals": None}, False),  # An absent path equals nothing.
        ("order.channel", {"prefix": "web"}, True),  # Dotted paths reach into objects.
        ("order.channel.deeper", {"exists": True}, False),
        ("revenue", {"in": [120.5, 99]}, True),
    ],
)
def test_condition_edge_cases(path: str, condition: Any, expected: bool) -> None:
    match = Match.model_validate({"properties": {path: condition}})
    assert matches(match, ORDER) is expected


def test_a_key_containing_dots_is_found_as_written() -> None:
    event = track("Clicked", properties={"utm.source": "news"})
    assert matches(Match.model_validate({"properties": {"utm.source": "news"}}), event)


def test_context_conditions_use_dotted_paths() -> None:
    assert matches(Match.model_validate({"context": {"page.path": {"prefix": "/checkout"}}}), ORDER)
    assert not matches(Match.model_validate({"context": {"locale": {"in": ["en-US"]}}}), ORDER)


def test_trait_conditions_see_identify_traits_and_context_traits() -> None:
    match = Match.model_validate({"traits": {"plan": "pro", "email": {"contains": "@"}}})
    assert matches(match, identify({"plan": "pro", "email": "a@example.com"}))
    assert matches(match, track("X", context={"traits": {"plan": "pro", "email": "a@b"}}))
    assert not matches(match, identify({"plan": "free", "email": "a@example.com"}))


def test_group_traits_describe_the_group_not_the_contact() -> None:
    event = contact_event("group", groupId="acme", traits={"plan": "pro"})
    assert not matches(Match.model_validate({"traits": {"plan": "pro"}}), event)


def test_every_part_of_a_match_must_hold() -> None:
    match = Match.model_validate(
        {
            "type": "track",
            "event": ["Order Completed", "Order Updated"],
            "properties": {"currency": "EUR", "revenue": {"gt": 500}},
        }
    )
    assert not matches(match, ORDER)
    match = Match.model_validate({"type": "track", "event": "Order Completed"})
    assert matches(match, ORDER)


def test_type_event_and_name_select_the_event() -> None:
    pricing = page("Pricing")
    assert matches(Match.model_validate({"type": ["page", "screen"]}), pricing)
    assert not matches(Match.model_validate({"type": "track"}), pricing)
    assert matches(Match.model_validate({"name": "Pricing"}), pricing)
    assert not matches(Match.model_validate({"name": "Pricing"}), track("Pricing"))
    assert not matches(Match.model_validate({"event": "Pricing"}), pricing)
    assert matches(Match(), pricing)  # An empty match matches every event.


@pytest.mark.parametrize(
    "raw",
    [{"gt": 1, "lt": 5}, {}, {"between": [1, 2]}, {"gt": "many"}, {"exists": "perhaps"}],
)
def test_a_condition_needs_exactly_one_known_operator(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Condition.model_validate(raw)
