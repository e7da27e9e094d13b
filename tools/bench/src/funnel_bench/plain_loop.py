"""The stage-engine baseline (``python -m funnel_bench.plain_loop``).

A plain aiokafka consume-evaluate-produce loop: the same pure rule engine and
built-in funnels, the same output encoding, one changelog-like record per event
(the contact's state, to the event's partition, as faust's table does), acks=all,
and offsets committed after each fetched batch's records are acknowledged.
State lives in a dict. No faust: what is left is the floor for this work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from funnel_shared.events import ContactEvent
from funnel_shared.kafka import consumer_kwargs, producer_kwargs
from funnel_shared.settings import KafkaSettings
from funnel_stage_engine.domain import engine
from funnel_stage_engine.domain.definitions import load_funnels
from funnel_stage_engine.worker.handler import encode_output


async def _run(args: argparse.Namespace) -> None:
    kafka = KafkaSettings()
    funnels = load_funnels(None)
    states: dict[str, dict[str, Any]] = {}
    consumer = AIOKafkaConsumer(
        args.topic, **consumer_kwargs(kafka, client_id="bench-plain", group_id=args.group)
    )
    producer = AIOKafkaProducer(**producer_kwargs(kafka, client_id="bench-plain"))
    await producer.start()
    await consumer.start()
    progress = Path(args.progress_file)
    processed = 0
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            pending: list[asyncio.Future[Any]] = []
            for tp, records in batches.items():
                for record in records:
                    event = ContactEvent.model_validate_json(record.value)
                    contact = event.contact_key
                    state = engine.ContactState.from_json(states.get(contact))
                    result = engine.evaluate(
                        state, event, funnels=funnels, processed_at=datetime.now(UTC)
                    )
                    for output in result.outputs:
                        out = encode_output(output)
                        pending.append(
                            await producer.send(
                                args.out_topic,
                                key=out.key.encode(),
                                value=out.value,
                                headers=out.headers,
                            )
                        )
                    states[contact] = result.state.to_json()
                    pending.append(
                        await producer.send(
                            args.changelog_topic,
                            key=contact.encode(),
                            value=json.dumps(states[contact]).encode(),
                            partition=tp.partition,
                        )
                    )
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
                processed += sum(len(records) for records in batches.values())
                progress.with_suffix(".tmp").write_text(str(processed))
                progress.with_suffix(".tmp").replace(progress)  # The bench reads it whole.
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--changelog-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--progress-file", required=True, help="events finished, rewritten")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
