"""A clean stop on SIGTERM and SIGINT, shared by ``serve``, ``record`` and the ``retrain --every`` loop.

Inside ``with stop_on_signals(stop, logger, "draining, exiting"):`` either signal logs one warning line
(``received SIGTERM: draining, exiting``) and calls ``stop()``, which asks the service to return from its loop (it
may also raise, e.g. `KeyboardInterrupt` to abort work in progress); the previous handlers are restored on leaving.
Signal handlers run in the main thread only, so this is entered from the main thread.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: Callable[[], object], logger: logging.Logger, doing: str) -> Iterator[None]:
    """Call ``stop()`` on SIGTERM or SIGINT after logging ``received <SIGNAL>: <doing>`` (module docstring)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.warning("received %s: %s", signal.Signals(signum).name, doing)
        stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
