"""Bounded per-contact state: traits, remembered ids, id lengths, what the producer carries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from funnel_shared.events import RejectedRecord
from funnel_shared.kafka import rejected_record
from funnel_stage_engine.domain.contact import decide
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.domain.identity import merge
from funnel_stage_engine.domain.limits import StateLimits, json_size, recent_ids
from funnel_stage_engine.domain.state import ContactState
from funnel_stage_engine.record_sizes import fit_dead_letter, record_size
from funnel_stage_engine.settings import StageEngineSettings
from funnel_stage_engine.worker.batch import Inbound
from funnel_stage_engine.worker.deadlines import DeadlineIndex, partition_of
from funnel_stage_engine.worker.handler import ContactEventHandler

from tests.support.contact_events import START, contact_event
from tests.support.stage_engine_handler import NOW, TOPICS, handler_under_test

FUNNELS = load_funnels()
SMALL = StateLimits(max_traits=5, max_traits_bytes=2048, dedupe_window=4, dedupe_window_bytes=1024)


def _identify(contact: str, **traits: Any) -> bytes:
    event = contact_event(contact, "identify", traits=traits)
    return event.model_dump_json().encode()


def _dead_letters(handler: ContactEventHandler, publisher: Any) -> list[RejectedRecord]:
    return [
        RejectedRecord.model_validate_json(value)
        for topic, _, value, _ in publisher.sent
        if topic == TOPICS.rejected
    ]


async def test_traits_past_the_byte_bound_dead_letter_the_event_and_keep_the_last_good_state() -> (
    None
):
    handler, states, publisher = handler_under_test()
    handler.limits = SMALL
    await handler.handle(key=b"c-1", value=_identify("c-1", email="a@example.com"))
    good = states.data["c-1"]

    outcomes = await handler.handle_batch(
        [
            _inbound("c-1", _identify("c-1", essay="x" * 4000)),  # Past 2,048 bytes.
            _inbound("c-2", _identify("c-2", email="b@example.com")),  # The batch goes on.
        ]
    )

    assert outcomes == ["rejected", "changed"]
    assert states.data["c-1"] == good
    assert states.data["c-2"]["traits"] == {"email": "b@example.com"}
    [dead] = _dead_letters(handler, publisher)
    assert dead.errors[0].startswith("StateLimitExceeded: the contact's traits would take")
    assert '"essay"' in dead.original
    assert (
        handler.metrics.registry.get_sample_value(
            "funnel_stage_engine_rejected_total", {"reason": "state_limit"}
        )
        == 1
    )


def test_traits_past_the_count_bound_are_refused_whole() -> None:
    state = ContactState(traits={f"t{n}": n for n in range(5)})
    event = contact_event("c-1", "identify", traits={"sixth": 6})

    decision = decide(state, event, funnels=FUNNELS, processed_at=NOW, limits=SMALL)

    assert decision.refused is not None and decision.refused.reason == "state_limit"
    assert "6 traits; at most 5" in decision.refused.detail
    assert decision.state is None and not decision.outputs


def test_an_event_without_new_traits_is_applied_even_if_the_contact_is_over_a_lowered_bound() -> (
    None
):
    state = ContactState(traits={f"t{n}": n for n in range(9)})
    event = contact_event("c-1", "track", "Signed Up")

    decision = decide(state, event, funnels=FUNNELS, processed_at=NOW, limits=SMALL)

    assert decision.refused is None and decision.outcome == "changed"


def test_the_dedupe_window_keeps_the_newest_ids_within_its_count_and_bytes() -> None:
    limits = StateLimits(dedupe_window=4, dedupe_window_bytes=1024)
    assert recent_ids(["a", "b", "c", "d", "e", "f"], limits) == ["c", "d", "e", "f"]
    long_ids = ["x" * 400, "y" * 400, "z" * 400]
    assert recent_ids(long_ids, limits) == ["y" * 400, "z" * 400]  # 1,200 bytes would not fit.


def test_a_contact_remembers_at_most_the_window_bytes_of_message_ids() -> None:
    state = ContactState()
    for n in range(20):
        event = contact_event("c-1", message_id=f"{n:03d}-" + "m" * 200)
        decision = decide(state, event, funnels=FUNNELS, processed_at=NOW, limits=SMALL)
        assert decision.state is not None
        state = decision.state

    assert sum(len(message_id) for message_id in state.seen_message_ids) <= 1024
    assert state.seen_message_ids[-1].startswith("019-")  # The newest is kept.
    assert len(state.seen_message_ids) == 4


def test_an_id_longer_than_allowed_is_refused() -> None:
    event = contact_event("u" * 300, "track", "Signed Up")

    decision = decide(ContactState(), event, funnels=FUNNELS, processed_at=NOW, limits=SMALL)

    assert decision.refused is not None and decision.refused.reason == "id_too_long"
    assert "userId has 300 characters; at most 255" in decision.refused.detail


def test_a_merge_keeps_the_identified_traits_and_adds_the_anonymous_ones_that_fit() -> None:
    identified = ContactState(traits={"email": "u@example.com", "name": "U"}, identified=True)
    anonymous = ContactState(traits={"name": "anon", "a": "x" * 1500, "b": "small"})

    merged, _ = merge(
        identified,
        anonymous,
        contact_id="u-1",
        merged_contact_id="a-1",
        cause_message_id="m-1",
        event_time=START,
        funnels=FUNNELS,
        processed_at=NOW,
        dedupe_window=4,
        limits=StateLimits(max_traits_bytes=1024),
    )

    assert merged.traits == {"email": "u@example.com", "name": "U", "b": "small"}
    assert json_size(merged.traits) <= 1024


async def test_an_output_larger_than_the_producer_carries_is_dead_lettered_not_sent() -> None:
    handler, states, publisher = handler_under_test()
    handler.limits = StateLimits(max_traits_bytes=200_000)
    handler.max_record_bytes = 65_536
    big = contact_event("c-1", "identify", traits={"email": "a@x.io", "blob": "b" * 80_000})

    outcomes = await handler.handle_batch(
        [
            _inbound("c-1", big.model_dump_json().encode()),
            _inbound("c-2", _identify("c-2", email="b@example.com")),
        ]
    )

    assert outcomes == ["rejected", "changed"]
    assert "c-1" not in states.data and "c-2" in states.data
    assert all(len(value) < 65_536 for _, _, value, _ in publisher.sent)
    [dead] = _dead_letters(handler, publisher)
    assert dead.errors[0].startswith("RecordTooLarge: a record for funnel.stage-changed.v1")
    assert dead.errors[-1].startswith("original truncated to its first")


def test_a_dead_letter_is_cut_to_what_the_producer_carries_and_says_so() -> None:
    original = '{"a": "' + '\\"' * 200_000 + '"}'  # Escaping makes the dead letter grow.

    def build(text: str, errors: list[str]) -> Any:
        return rejected_record(
            service="stage-engine", origin="t", key="k", original=text, errors=errors
        )

    record = fit_dead_letter(build, original=original, errors=["why"], max_bytes=100_000)

    assert record_size(record) <= 100_000
    dead = RejectedRecord.model_validate_json(record.value)
    assert dead.errors[0] == "why" and "truncated" in dead.errors[-1]
    assert original.startswith(dead.original)


def test_an_event_dated_far_in_the_future_moves_the_stall_clock_only_to_the_wall_clock() -> None:
    wall = START + timedelta(days=1)
    index = DeadlineIndex(
        partitions=6,
        idle_after_s=3600,
        lateness_s=0,
        future_tolerance_s=60,
        wall_clock=lambda: wall,
    )
    signed_up = "c-1"
    index.note(signed_up, wall + timedelta(days=2))  # Stalls two days from now.
    index.saw(signed_up, START.replace(year=9999))  # A hostile timestamp, same partition.

    assert index.now(partition_of(signed_up, 6)) == wall + timedelta(seconds=60)
    assert index.due({partition_of(signed_up, 6)}) == []


def test_the_settings_give_the_domain_its_limits() -> None:
    settings = StageEngineSettings(max_traits=7, dedupe_window_bytes=2048)
    limits = settings.state_limits()
    assert (limits.max_traits, limits.dedupe_window_bytes) == (7, 2048)


def _inbound(contact: str, value: bytes) -> Inbound:
    return Inbound(key=contact.encode(), value=value)
