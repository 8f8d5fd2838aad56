"""The ring buffer of one machine's stream (`pdm.detectors.stream`): its newest scaled, filled readings,
contiguous, so windows are views.

Rules: rows are appended at the end; when the buffer is full, its newest ``window - 1`` rows (all a window needs)
move to the front. It always holds the newest ``min(rows appended since the last clear, window - 1)`` rows, at
least. A model swap rebuilds it for the new model (`Ring.rebuilt`), keeping the rows it holds.

>>> ring = Ring(window=3, n_features=1, capacity=4)
>>> for t in range(6):
...     _ = ring.extend(np.array([float(t)]), np.array([[float(t)]], dtype=np.float32))
>>> ring.last(3)[1][:, 0].tolist()
[3.0, 4.0, 5.0]
>>> bigger = ring.rebuilt(window=8, values=ring.last(ring.n)[1] * 10)
>>> bigger.n, bigger.last(2)[1][:, 0].tolist(), len(bigger.ts) >= 8
(4, [40.0, 50.0], True)
"""

from __future__ import annotations

import numpy as np


class Ring:
    """The newest readings of one machine (``ts`` and scaled, filled ``values``)."""

    def __init__(self, window: int, n_features: int, capacity: int | None = None) -> None:
        self.window = window
        cap = capacity or max(4 * window, 256)
        self.ts = np.zeros(cap, dtype=np.float64)
        self.values = np.zeros((cap, n_features), dtype=np.float32)
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def extend(self, ts: np.ndarray, values: np.ndarray) -> int:
        """Append rows; returns the row index of the first appended row."""
        k = len(ts)
        if self.n + k > len(self.ts):
            keep = min(self.n, self.window - 1)
            if keep + k > len(self.ts):  # a huge batch: grow
                cap = keep + k + self.window
                self.ts = np.concatenate([self.ts[self.n - keep : self.n], np.zeros(cap - keep)])
                self.values = np.concatenate([self.values[self.n - keep : self.n],
                                              np.zeros((cap - keep, self.values.shape[1]), dtype=np.float32)])
            else:
                self.ts[:keep] = self.ts[self.n - keep : self.n]
                self.values[:keep] = self.values[self.n - keep : self.n]
            self.n = keep
        start = self.n
        self.ts[start : start + k] = ts
        self.values[start : start + k] = values
        self.n += k
        return start

    def last(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ts[self.n - k : self.n], self.values[self.n - k : self.n]

    def rebuilt(self, window: int, values: np.ndarray) -> Ring:
        """A ring for a model with ``window`` holding this ring's timestamps and ``values`` (the held rows,
        converted for the new model: one row per held row, the new model's features as columns)."""
        n = len(values)
        if n != self.n:
            raise ValueError(f"found {n} rows, expected the {self.n} rows the ring holds")
        ring = Ring(window, values.shape[1], max(4 * window, 256, n + window))
        ring.ts[:n] = self.ts[: self.n]
        ring.values[:n] = values
        ring.n = n
        return ring
