"""The read side: the projection of stage changes into PostgreSQL, and what reads it.

The projection consumer and store, the queries, the funnel report and chart,
the read API and the funnel pages. It may import ``domain`` (funnel
definitions) and the top-level ``metrics``, never ``worker``.
"""
