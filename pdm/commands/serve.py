"""``python -m pdm serve``: the scoring daemon (see docs/daemon.md). Settings come from flags, ``PDM_*``
environment variables, a TOML config file and defaults, in that order; ``--help`` lists them."""

from __future__ import annotations

import argparse
import logging

from pdm.shutdown import stop_on_signals

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pdm.daemon.settings import add_arguments

    p = sub.add_parser(
        "serve", help="score live MQTT telemetry and publish alerts (the daemon)",
        description="Subscribe to PREFIX/telemetry/+, keep a window per machine, score micro-batches with the "
        "model routed by machine_type, raise and clear alerts on PREFIX/alerts/MACHINE, keep a retained state per "
        "machine on PREFIX/state/MACHINE. Precedence: flag > PDM_<NAME> environment variable > --config file > "
        "default. The MQTT password is read only from PDM_MQTT_PASSWORD or --password-file.",
    )
    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pdm.daemon.service import Daemon
    from pdm.daemon.settings import from_args
    from pdm.recorder import Recorder, for_serve, recording

    settings = from_args(args)
    logger.info("settings: %s", settings)  # SecretStr prints as '**********'
    daemon = Daemon(settings)
    # --record-dir: the recorder runs beside the daemon, on its own connection, started first and stopped last
    recorder = Recorder(for_serve(settings, settings.record_dir, model_sensors=daemon.models.features)) \
        if settings.record_dir is not None else None
    with stop_on_signals(daemon.stop, logger, "draining, publishing offline, exiting"), recording(recorder):
        return daemon.run()
