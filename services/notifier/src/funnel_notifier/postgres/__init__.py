"""PostgreSQL adapters: intake (stage changes and the follow-ups they schedule), the
follow-up queue, the admin queries and the event outbox.

May import ``funnel_notifier.domain``, ``funnel_notifier.channels`` (the delivery types),
``funnel_shared``, asyncpg and aiokafka. Every follow-up status written or matched comes
from ``funnel_notifier.domain.followups``.
"""
