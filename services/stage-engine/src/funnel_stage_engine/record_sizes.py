"""What the producer can carry: record sizes as aiokafka measures them (worker, projection).

aiokafka's producer refuses, in ``send()``, a record whose estimated size
(``DefaultRecordBatchBuilder.estimate_size_in_bytes``: key, value, headers and
the batch overhead) exceeds its ``max_request_size`` (faust's
``producer_max_request_size``, 1,000,000 by default). Raised there, inside a
batch's ``publish_all``, that would fail the whole batch and stop the worker,
and the same batch would fail again after every restart. So the handler
measures every record a message produces, and the contact's new state, before
anything of the batch is sent, and dead-letters the one message that would
overflow (``too_large``). Checked against aiokafka 0.12.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from funnel_shared.publishing import OutboundRecord

from funnel_stage_engine.domain.state import ContactState

__all__ = ["STATE_SLACK_BYTES", "fit_dead_letter", "record_size", "state_size"]

# The table's own JSON codec may write a value a little differently (dates, escapes)
# from pydantic's: a state is held to the limit minus this.
STATE_SLACK_BYTES = 4096


def record_size(record: OutboundRecord) -> int:
    """The size aiokafka's producer compares with its ``max_request_size``."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        record.key.encode("utf-8", "surrogatepass"), record.value, record.headers
    )
    return size


def state_size(contact_id: str, state: ContactState) -> int:
    """About the size of the contact's changelog record (faust tables: JSON key and value)."""
    key = json.dumps(contact_id).encode()
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        key, state.model_dump_json().encode("utf-8", "surrogatepass"), []
    )
    return size + STATE_SLACK_BYTES


def fit_dead_letter(
    build: Callable[[str, list[str]], OutboundRecord],
    *,
    original: str,
    errors: list[str],
    max_bytes: int,
) -> OutboundRecord:
    """``build(original, errors)``, with the original cut short until the record fits.

    A dead letter carries the original record as JSON text, which escaping can
    make several times larger than the record itself. The reason always fits;
    a cut original says so in its errors.
    """
    record = build(original, errors)
    kept = len(original)
    while record_size(record) > max_bytes and kept > 0:
        kept //= 2
        note = f"original truncated to its first {kept} of {len(original)} characters"
        record = build(original[:kept], [*errors, note])
    return record
