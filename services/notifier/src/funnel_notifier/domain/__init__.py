"""The notifier's pure core: rules, triggers, follow-up statuses and transitions, backoff,
webhook signing.

May import only ``funnel_notifier.domain``, ``funnel_shared``, the standard library, and
pydantic and PyYAML for the rule and record models (``tests/unit/notifier/test_layers.py``
checks this). No clock reads and no network or database: times and random draws are
arguments.
"""
