"""Spikes: single readings that jump far from a sensor's value and straight back, a fault of the sensor or its wiring.

A spike is not a machine fault, and one reading must not make a whole minute of windows look abnormal: the
reconstruction error of every window holding it would be large, and the alarm rule would raise a machine alert for
a broken sensor. Rule, per sensor, on scaled readings in time order (the batch path and the stream apply the same
one, so they build the same windows):

- The *step limit* is ``SPIKE_FACTOR`` x the largest step between two consecutive readings of the sensor in the
  training data (scaled units); ``inf`` (no filtering) for a sensor that never moved.
- A reading further than the limit from the sensor's last accepted value is *held*: it counts as missing (the
  missing-value rule carries the last value forward) and as a spike.
- A reading that stays beyond the limit for more than ``HOLD`` readings in a row is accepted: the level really
  changed (a start, a step fault), and the held readings are no longer counted as spikes.
- A missing reading changes nothing. The state restarts with each segment.

The spike counts are what a caller reports as the sensor's own problem (`pdm.daemon` raises a ``sensor`` alert).

>>> import numpy as np
>>> f = SpikeFilter(np.array([1.0]))
>>> x = np.array([[0.0], [0.5], [9.0], [0.0], [5.0], [5.5], [6.0]])
>>> cleaned, spikes = f.apply(x)
>>> cleaned[:, 0].tolist(), int(spikes[0])     # the lone 9.0 is held; the step to 5 is accepted at its 2nd reading
([0.0, 0.5, nan, 0.0, nan, 5.5, 6.0], 1)
"""

from __future__ import annotations

import math

import numpy as np

SPIKE_FACTOR = 2.0
HOLD = 1  # readings beyond the limit that are held before the new level is accepted


def step_limits(segments: list[np.ndarray]) -> np.ndarray:
    """(F,) step limits from scaled training segments (NaN allowed): `SPIKE_FACTOR` x the largest step."""
    n = segments[0].shape[1]
    largest = np.zeros(n)
    for seg in segments:
        if len(seg) < 2:
            continue
        steps = np.abs(np.diff(np.asarray(seg, dtype=np.float64), axis=0))
        largest = np.fmax(largest, np.nanmax(np.where(np.isnan(steps), -np.inf, steps), axis=0))
    return np.where(largest > 0, SPIKE_FACTOR * largest, np.inf)


class SpikeFilter:
    """The rule of the module for one segment of one machine; ``limits`` (F,) scaled units."""

    def __init__(self, limits: np.ndarray) -> None:
        self.limits = np.asarray(limits, dtype=np.float64)
        n = len(self.limits)
        self.ref = np.full(n, np.nan)  # last accepted value
        self.held = np.zeros(n, dtype=np.int64)  # readings held in a row (spikes once a reading comes back)

    def reset(self) -> None:
        self.ref[:] = np.nan
        self.held[:] = 0

    def rescale(self, idx: list[int], factor: np.ndarray, offset: np.ndarray, limits: np.ndarray) -> None:
        """Keep the state across a model swap: sensors ``idx`` of the old model, ``ref`` mapped by
        ``ref * factor + offset``, and the new model's ``limits``."""
        self.ref = self.ref[idx] * factor + offset
        self.held = self.held[idx].copy()
        self.limits = np.asarray(limits, dtype=np.float64)

    def apply(self, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, F) scaled readings -> a copy with spikes set to NaN, and the spikes per sensor (F,)."""
        out = np.array(scaled, copy=True)
        spikes = np.zeros(len(self.limits), dtype=np.int64)
        if len(out) == 0:
            return out, spikes
        for j, limit in enumerate(self.limits):
            if math.isinf(limit):
                continue
            col = out[:, j].astype(np.float64)
            prev = np.concatenate([[self.ref[j]], col[:-1]])
            jumps = np.abs(col - prev) > limit  # False where either is NaN
            if not jumps.any() and self.held[j] == 0:  # no candidate: every reading accepted
                valid = np.flatnonzero(~np.isnan(col))
                if len(valid):
                    self.ref[j] = col[valid[-1]]
                continue
            spikes[j] = self._column(out, j, col, limit)
        return out, spikes

    def _column(self, out: np.ndarray, j: int, col: np.ndarray, limit: float) -> int:
        ref, held, count = self.ref[j], int(self.held[j]), 0
        for i, v in enumerate(col.tolist()):
            if math.isnan(v):  # missing, changes nothing
                continue
            if math.isnan(ref) or abs(v - ref) <= limit:  # accepted: the readings held before it were spikes
                ref, count, held = v, count + held, 0
            elif held >= HOLD:  # beyond the limit once more: the level changed, and the held ones were not spikes
                ref, held = v, 0
            else:
                held += 1
                out[i, j] = np.nan
        self.ref[j], self.held[j] = ref, held
        return count
