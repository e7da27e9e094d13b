"""``funnel-stage-engine``: run the faust worker."""

from __future__ import annotations

import sys

import faust
from funnel_shared.settings import KafkaSettings, TopicSettings

from funnel_stage_engine.app import create_app
from funnel_stage_engine.check import run_check
from funnel_stage_engine.settings import StageEngineSettings


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        sys.exit(run_check(sys.argv[2:]))
    settings = StageEngineSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings=settings, kafka=KafkaSettings(), topics=TopicSettings())
    # The worker installs SIGINT/SIGTERM handlers and shuts the app down cleanly.
    worker = faust.Worker(app, loglevel="INFO")
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
