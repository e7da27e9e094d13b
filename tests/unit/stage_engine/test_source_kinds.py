"""Rules can require the source an event came from: ``source: {kind: server}``, or by name.

Browser write keys are public, so anyone can post ``Order Completed`` with one;
a rule that counts money only from server sources cannot be moved by them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_stage_engine.domain.definitions import FunnelDefinitionError, parse_funnel

from tests.support.journeys import drive, funnel, moves, track

SHOP = funnel(
    """
name: shop
stages: [visitor, customer]
rules:
  - id: order
    to: customer
    match: {event: Order Completed, source: {kind: server}}
  - {id: visit, to: visitor, match: {type: track}}
"""
)


def test_a_rule_requiring_a_server_source_refuses_a_browser_event() -> None:
    _, outputs = drive([SHOP], [track("Order Completed", source="web", sourceKind="browser")])
    assert moves(outputs, "shop") == [(None, "visitor")]  # The catch-all, not the order.


def test_a_server_event_satisfies_it() -> None:
    _, outputs = drive([SHOP], [track("Order Completed", source="shop", sourceKind="server")])
    assert moves(outputs, "shop") == [(None, "customer")]


def test_an_event_from_before_source_kinds_counts_as_browser() -> None:
    _, outputs = drive([SHOP], [track("Order Completed", source="web")])
    assert moves(outputs, "shop") == [(None, "visitor")]


def test_a_rule_can_name_sources_and_kinds_as_one_or_a_list() -> None:
    named = funnel(
        """
name: named
stages: [customer]
rules:
  - id: o
    to: customer
    match: {event: Order Completed, source: {name: [pos, shop], kind: server}}
"""
    )
    events = [
        track("Order Completed", source="web", sourceKind="server", message_id="m-1"),
        track("Order Completed", source="shop", sourceKind="browser", message_id="m-2"),
        track("Order Completed", source="pos", sourceKind="server", message_id="m-3"),
    ]
    _, outputs = drive([named], events)
    assert [(o.cause_message_id, o.cause_source, o.cause_source_kind) for o in outputs] == [
        ("m-3", "pos", "server")
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{kind: admin}",
            "shop.yaml: rules[0].match.source.kind: Input should be 'browser' or 'server'",
        ),
        ("{kinds: server}", "shop.yaml: rules[0].match.source.kinds: Extra inputs"),
        ("{}", "shop.yaml: rules[0].match.source: give name, kind or both"),
        ("server", "shop.yaml: rules[0].match.source: Input should be a valid dictionary"),
        ("{kind: []}", "shop.yaml: rules[0].match.source.kind: give at least one"),
    ],
)
def test_a_bad_source_condition_is_refused_naming_the_file_and_field(
    source: str, expected: str
) -> None:
    text = f"""
name: shop
stages: [customer]
rules:
  - {{id: order, to: customer, match: {{event: Order Completed, source: {source}}}}}
"""
    with pytest.raises(FunnelDefinitionError) as refused:
        parse_funnel(text.encode(), path=Path("shop.yaml"))
    assert expected in str(refused.value)
