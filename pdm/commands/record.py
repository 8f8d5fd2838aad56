"""``python -m pdm record``: the recorder (see docs/recorder.md). Settings come from flags, ``PDM_RECORD_*`` (and,
for the broker connection, ``PDM_*``) environment variables, a TOML config file and defaults, in that order;
``--help`` lists them."""

from __future__ import annotations

import argparse
import logging

from pdm.shutdown import stop_on_signals

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pdm.recorder.settings import add_arguments

    p = sub.add_parser(
        "record", help="record telemetry, scores, alerts and states as Parquet (for retraining)",
        description="Subscribe to the MQTT contract's topics and record validated telemetry, the daemon's scores, "
        "alerts and state transitions, maintenance windows and truth events as Parquet under --root "
        "(ROOT/<table>/date=YYYY-MM-DD/part-*.parquet), through fsynced write-ahead segments: a crash loses at "
        "most one --flush-interval. Precedence: flag > PDM_RECORD_<NAME> (PDM_<NAME> for the connection settings) "
        "> --config file > default. The MQTT password is read only from PDM_MQTT_PASSWORD or --password-file.",
    )
    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pdm.recorder.service import Recorder
    from pdm.recorder.settings import from_args

    settings = from_args(args)
    logger.info("settings: %s", settings)  # SecretStr prints as '**********'
    recorder = Recorder(settings)

    with stop_on_signals(recorder.request_stop, logger, "recording what is queued, compacting, exiting"):
        return recorder.run()
