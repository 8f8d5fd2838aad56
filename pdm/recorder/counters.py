"""Thread-safe named counters (what the recorder did, and what it refused and why).

>>> c = Counters()
>>> c.inc("rejected.not_json"); c.inc("rows.telemetry", 60)
>>> c.get("rows.telemetry"), c.snapshot()
(60, {'rejected.not_json': 1, 'rows.telemetry': 60})
>>> c.group("rejected")
{'not_json': 1}
"""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def group(self, prefix: str) -> dict[str, int]:
        """The counters named ``prefix.<label>``, by label."""
        head = prefix + "."
        return {k[len(head):]: v for k, v in self.snapshot().items() if k.startswith(head)}
