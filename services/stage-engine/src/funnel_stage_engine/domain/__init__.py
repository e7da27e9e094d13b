"""The funnel domain: definitions, rules, identity, stalls and per-contact decisions.

Pure: it imports only the standard library, ``funnel_shared``, pydantic (the
state, commands and definitions are pydantic models) and PyYAML (funnel files).
No faust, aiokafka, asyncpg, FastAPI or prometheus, and no clock reads: time
comes in as arguments. Nothing here imports ``worker`` or ``read``.
"""
