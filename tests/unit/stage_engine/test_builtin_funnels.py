"""The built-in funnels, each driven through the journey it describes."""

from __future__ import annotations

import pytest
from funnel_stage_engine.domain.definitions import Funnel, load_funnels

from tests.support.journeys import T0, blocked, days, drive, identify, moves, page, track


@pytest.fixture(scope="module")
def builtins() -> dict[str, Funnel]:
    return {funnel.name: funnel for funnel in load_funnels()}


def test_the_builtin_funnels_are_lifecycle_aida_and_hourglass(
    builtins: dict[str, Funnel],
) -> None:
    assert list(builtins) == ["aida", "hourglass", "lifecycle"]
    assert builtins["hourglass"].definition.ordering == "strict"
    assert len(builtins["hourglass"].definition.stages) == 12
    assert builtins["lifecycle"].definition.stages == [
        "visitor", "lead", "prospect", "customer", "repeat_customer", "advocate",
    ]  # fmt: skip


def test_lifecycle_takes_a_visitor_all_the_way_to_advocate(builtins: dict[str, Funnel]) -> None:
    journey = [
        page("Home", at=T0),
        identify({"email": "zoe@example.com", "name": "Zoë"}, at=T0 + days(1)),
        track("Demo Requested", at=T0 + days(2)),
        track("Order Completed", at=T0 + days(3)),
        track("Order Completed", at=T0 + days(40)),
        track("Referral Sent", at=T0 + days(41)),
    ]
    state, outputs = drive([builtins["lifecycle"]], journey)
    assert moves(outputs, "lifecycle") == [
        (None, "visitor"),
        ("visitor", "lead"),
        ("lead", "prospect"),
        ("prospect", "customer"),
        ("customer", "repeat_customer"),
        ("repeat_customer", "advocate"),
    ]
    assert [output.rule_id for output in outputs] == [
        "visit", "gave-email", "two-way-interaction", "first-order", "second-order",
        "referral-sent",
    ]  # fmt: skip
    assert state.funnels["lifecycle"].furthest == "advocate"
    # The email given at the identify call travels with every later change.
    assert all(o.traits["email"] == "zoe@example.com" for o in outputs[1:])


@pytest.mark.parametrize("event", ["Signed Up", "Offer Claimed", "Lead Magnet Downloaded"])
def test_lifecycle_signing_up_or_claiming_a_free_offer_makes_a_lead(
    builtins: dict[str, Funnel], event: str
) -> None:
    _, outputs = drive([builtins["lifecycle"]], [track(event)])
    assert moves(outputs, "lifecycle") == [(None, "lead")]


def test_lifecycle_an_email_in_context_traits_makes_a_lead(builtins: dict[str, Funnel]) -> None:
    _, outputs = drive(
        [builtins["lifecycle"]],
        [track("Form Submitted", context={"traits": {"email": "a@example.com"}})],
    )
    assert moves(outputs, "lifecycle") == [(None, "lead")]


def test_lifecycle_three_pricing_page_views_in_a_week_make_a_prospect(
    builtins: dict[str, Funnel],
) -> None:
    views = [
        page("Pricing", at=T0),
        page(context={"page": {"path": "/pricing/teams"}}, at=T0 + days(2)),
        page("Pricing", at=T0 + days(6)),
    ]
    _, outputs = drive([builtins["lifecycle"]], [track("Signed Up"), *views])
    assert moves(outputs, "lifecycle") == [(None, "lead"), ("lead", "prospect")]
    assert outputs[-1].rule_id == "pricing-interest"


def test_lifecycle_referral_does_not_make_a_non_customer_an_advocate(
    builtins: dict[str, Funnel],
) -> None:
    _, outputs = drive([builtins["lifecycle"]], [track("Signed Up"), track("Referral Sent")])
    assert moves(outputs, "lifecycle") == [(None, "lead")]


def test_lifecycle_a_referral_converting_makes_the_referrer_an_advocate(
    builtins: dict[str, Funnel],
) -> None:
    _, outputs = drive(
        [builtins["lifecycle"]], [track("Order Completed"), track("Referral Converted")]
    )
    assert moves(outputs, "lifecycle") == [(None, "customer"), ("customer", "advocate")]


def test_aida_follows_a_shopper_from_attention_to_action(builtins: dict[str, Funnel]) -> None:
    journey = [
        page("Home"),
        track("Product Viewed", properties={"product_id": "p-1"}),
        track("Product Added", properties={"product_id": "p-1"}),
        track("Checkout Started"),
        track("Order Completed", properties={"revenue": 25}),
    ]
    state, outputs = drive([builtins["aida"]], journey)
    assert moves(outputs, "aida") == [
        (None, "attention"),
        ("attention", "interest"),
        ("interest", "desire"),
        ("desire", "action"),
    ]
    assert state.funnels["aida"].current == "action"


HOURGLASS_STEPS = [
    ("Opportunity Created", "opportunity"),
    ("Discovery Call Completed", "discovery"),
    ("Appointment Scheduled", "appointment"),
    ("Presentation Completed", "presentation"),
    ("Follow Up Started", "follow_up"),
    ("Order Completed", "closed"),
    ("Sale Cemented", "cementing"),
    ("Order Delivered", "delivery"),
    ("Service Check In Completed", "service"),
    ("Surprise Sent", "surprise"),
    ("Subscription Renewed", "renewal"),
    ("Referral Sent", "referral"),
]


def test_hourglass_walks_all_twelve_steps_in_order(builtins: dict[str, Funnel]) -> None:
    journey = [track(event, at=T0 + days(i)) for i, (event, _) in enumerate(HOURGLASS_STEPS)]
    state, outputs = drive([builtins["hourglass"]], journey)
    stages = [stage for _, stage in HOURGLASS_STEPS]
    assert moves(outputs, "hourglass") == list(zip([None, *stages[:-1]], stages, strict=True))
    assert blocked(outputs, "hourglass") == []
    assert state.funnels["hourglass"].furthest == "referral"


def test_hourglass_refuses_to_close_a_sale_straight_after_discovery(
    builtins: dict[str, Funnel],
) -> None:
    journey = [
        track("Opportunity Created"),
        track("Discovery Call Completed"),
        track("Order Completed"),
    ]
    state, outputs = drive([builtins["hourglass"]], journey)
    assert moves(outputs, "hourglass") == [(None, "opportunity"), ("opportunity", "discovery")]
    assert blocked(outputs, "hourglass") == [("discovery", "closed")]
    assert state.funnels["hourglass"].current == "discovery"


def test_every_output_carries_the_version_of_its_funnel_file(
    builtins: dict[str, Funnel],
) -> None:
    _, outputs = drive(list(builtins.values()), [page("Home"), track("Order Completed")])
    assert outputs
    for output in outputs:
        assert output.funnel_version == builtins[output.funnel].version
