"""Reference documents generated from the code: configuration, .env.example, AsyncAPI.

``make docs`` (``funnel-docgen``) writes them; tests/unit/docs/ fails when a
file in the repository differs from what the code renders now.
"""
