"""Every example in ``examples/`` loads with the services' own loaders, so a broken
example fails ``make test`` at once, not in the middle of a demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from funnel_devstack.journeys import find_examples, load_example
from funnel_notifier.domain.rules import load_rules
from funnel_stage_engine.domain.definitions import load_funnels

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMES = find_examples(EXAMPLES)


def test_the_five_playbooks_are_there() -> None:
    assert NAMES == [
        "aida-segments",
        "awareness-to-advocacy",
        "free-offer",
        "hourglass-sales",
        "value-ladder",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_an_example_loads_and_its_rules_and_journey_fit_its_funnels(name: str) -> None:
    example = load_example(EXAMPLES / name)
    funnels = {
        funnel.definition.name: funnel.definition for funnel in load_funnels(example.funnels)
    }
    rules = load_rules(example.rules)
    assert rules, f"{name}: no follow-up rules"
    for loaded in rules:
        rule = loaded.rule
        assert loaded.funnel in funnels, f"{rule.id}: no funnel {loaded.funnel!r} in {name}"
        if rule.stage is not None:
            assert rule.stage in funnels[loaded.funnel].stages, f"{rule.id}: {rule.stage}"
    # Every contact of the journey does something, and the README explains the example.
    users = {str((event.model_extra or {}).get("userId")) for event in example.journey.events}
    assert users == set(example.journey.contacts)
    assert (example.directory / "README.md").is_file()
