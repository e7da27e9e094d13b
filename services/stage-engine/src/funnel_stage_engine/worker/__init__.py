"""The faust worker: the app, the batch handler and the adapters around it.

It decodes records, asks ``domain.contact.decide`` what each one means, publishes
the outputs, waits for the acks, stores the states and counts. It may import
``domain``, ``read`` (to serve the read side on the worker's loop) and the
top-level ``settings`` and ``metrics``. Faust's private internals are used only
in ``faust_internals.py``.
"""
