"""``retrain --every``: one retrain every interval, from the start of one run to the start of the next, until
SIGTERM or SIGINT.

A run that fails (bad data, a missing file, another retrain holding the lock) is logged and the loop goes on; a
signal during a run aborts it (versions are written atomically, so nothing half-written stays) and ends the loop,
a signal while waiting ends it at once. Each outcome is logged on the ``pdm.retrain`` logger (set to INFO).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pdm.contract.timespec import parse_duration
from pdm.errors import DataError, PdmError
from pdm.retrain.lock import LockedError
from pdm.shutdown import stop_on_signals

logger = logging.getLogger("pdm.retrain")
MIN_INTERVAL_S = 60.0


def parse_interval(text: str) -> float:
    """Seconds between two runs from ``--every`` text (e.g. ``24h``); at least a minute."""
    every = parse_duration(text, "--every")
    if every < MIN_INTERVAL_S:
        raise DataError(f"found --every {text}, expected at least 1m")
    return every


def run_every(interval_s: float, run_once: Callable[[], int]) -> int:
    """Call ``run_once`` (it returns the run's exit code, 0 when the challenger was promoted) every ``interval_s``
    seconds until SIGTERM/SIGINT; returns 0 once stopped (module docstring)."""
    stop = threading.Event()
    running = threading.Event()

    def on_stop() -> None:
        stop.set()
        if running.is_set():
            raise KeyboardInterrupt  # abort the run in progress: versions are written atomically

    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    with stop_on_signals(on_stop, logger, "stopping"):
        while not stop.is_set():
            started = time.monotonic()
            running.set()
            try:
                code = run_once()
                logger.info("retrain finished: exit code %d (%s)", code, "promoted" if code == 0 else "champion kept")
            except LockedError as exc:
                logger.warning("retrain skipped: %s", exc)
            except (PdmError, OSError) as exc:
                logger.error("retrain failed: %s", exc)
            except KeyboardInterrupt:
                logger.warning("retrain interrupted")
            finally:
                running.clear()
            wait = max(0.0, interval_s - (time.monotonic() - started))
            if not stop.is_set():
                logger.info("next retrain in %.0f s", wait)
            stop.wait(wait)
    logger.info("stopped")
    return 0
