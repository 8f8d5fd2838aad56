"""Logging helpers shared by the daemon and the recorder: `RateLimitedLog`, at most one line per key per interval,
with the count of lines held back.

>>> import logging
>>> log = RateLimitedLog(logging.getLogger("x"), every_s=60)
>>> log.allow("k"), log.allow("k"), log.allow("k")
(0, None, None)
"""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self.logger, self.every = logger, every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """The number of lines held back since the last one for ``key`` when a line may be written, else None."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)

    def _emit(self, level: int, key: str, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        held = self.allow(key)
        if held is None:
            return
        suffix = f" (and {held} more like it in the last {self.every:g} s)" if held else ""
        self.logger.log(level, msg + suffix, *args, exc_info=exc_info)

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._emit(logging.WARNING, key, msg, args, False)

    def exception(self, key: str, msg: str, *args: object) -> None:
        self._emit(logging.ERROR, key, msg, args, True)
