"""The stage engine: applies funnel rules to contact events and serves what came of it.

Three layers, one folder each: ``domain`` (pure funnel rules and per-contact
decisions), ``worker`` (the faust app around them) and ``read`` (the projection,
read API and funnel pages). ``main``, ``check``, ``settings`` and ``metrics`` sit
at the top. Dependencies point one way: ``domain`` imports neither ``worker`` nor
``read``, and ``read`` does not import ``worker``.
"""
