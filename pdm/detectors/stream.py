"""Streaming: one machine's readings, a batch at a time, turned into the windows the batch path scores.

A fitted detector hands out one `WindowStream` per machine: ``Detector.stream(machine_id, stride=1)``.
``append(ts, values)`` applies a batch of raw readings and returns the windows that became ready;
`Detector.score_windows` scores them, and ``score > Detector.threshold`` fed to the machine's
``Detector.new_alarm_tracker()`` is the alarm rule. For the same readings, the windows (and so the scores) are the
ones `Detector.detect` builds. Rules:

- **Scaling**: the machine's own statistics (``per_machine``), else the fleet's for a machine the model has not
  seen (logged once, when the stream is made).
- **Order**: a batch's readings are applied in timestamp order (sorted first). A reading that repeats a timestamp
  of its batch (the first is kept), or equals the newest applied one, is a *duplicate*; one older than the newest
  applied reading is *late*. Both are dropped and counted: the windows have moved on, and re-scoring the past would
  re-order alarms.
- **Spikes**: the model's spike rule (`pdm.detectors.spikes`, when it has one): a reading far from the sensor's
  last accepted value is held as missing, once; ``Appended.spikes`` counts them per sensor.
- **Missing values** (NaN, ±inf): the model's rule: the last valid scaled value of the same sensor since the
  segment's start, else 0 (the training median).
- **Gaps**: a step larger than ``Detector.max_gap_s`` (``max_gap_factor`` x the training period) restarts the
  segment: the window fills again from the next reading (`WindowStream.warming_up`) and the alarm look-back
  restarts, which is the caller's (``Appended.gaps`` counts the restarts).
- **Stride**: a window is ready at every ``stride``-th reading, counted from the segment's first full window.
- **Model swap**: `WindowStream.rebase` moves the stream to another version of the model; its rules are there.

>>> import pandas as pd
>>> from pdm.detectors.zscore import RobustZScoreDetector
>>> rng = np.random.default_rng(0)
>>> det = RobustZScoreDetector(scaling="global", threshold_method="quantile", target_false_alarm_rate=0.01)
>>> det = det.fit(pd.DataFrame({"ts": np.arange(2000.0), "temperature": rng.normal(60, 1, 2000)}))
>>> stream = det.stream("pump-1")
>>> got = stream.append([3.0, 1.0, 2.0, 2.0], [[61.0], [90.0], [np.nan], [60.0]])
>>> got.end_ts.tolist(), (got.readings, got.duplicates, got.late)
([1.0, 2.0, 3.0], (3, 1, 0))
>>> scores, _ = det.score_windows(got.windows)
>>> bool(scores[0] > det.threshold), bool(scores[1] == scores[0])  # 90 stands out; the missing value repeats it
(True, True)
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from pdm.detectors.frames import fill_missing, sliding_windows
from pdm.detectors.ring import Ring
from pdm.detectors.spikes import SpikeFilter
from pdm.errors import DataError

if TYPE_CHECKING:
    from pdm.detectors.base import Detector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appended:
    """What one `WindowStream.append` did.

    ``windows`` (k, window, F) float32: the scaled, filled windows that became ready (k may be 0), in time order;
    ``start_ts`` / ``end_ts``: the timestamps of each one's first and last reading. ``ts`` / ``values``: the
    readings applied (time order, raw values). ``duplicates`` and ``late``: readings dropped; ``gaps``: segment
    restarts."""

    windows: np.ndarray
    start_ts: np.ndarray
    end_ts: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    duplicates: int = 0
    late: int = 0
    gaps: int = 0
    spikes: np.ndarray | None = None  # (F,) readings held as spikes, per sensor

    @property
    def readings(self) -> int:
        """Readings applied."""
        return len(self.ts)


def machine_scaling(detector: Detector, machine_id: str, note: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The machine's center and scale under ``detector``: its own statistics (``per_machine``) when the model has
    them, else the fleet's (logged when ``note``)."""
    scaler = detector.scaler_
    stats = scaler.global_stats
    if scaler.mode == "per_machine":
        if machine_id in scaler.machines:
            stats = scaler.machines[machine_id]
        elif note:
            where = detector.version_dir
            model = f"model {where.parent.name} version {where.name}" if where is not None else \
                f"this {type(detector).__name__}"
            logger.info("machine %r is new to %s: scaled with the fleet's statistics until the model is retrained "
                        "with it", machine_id, model)
    return np.asarray(stats.center, dtype=np.float64), np.asarray(stats.scale, dtype=np.float64)


def _spike_filter(detector: Detector) -> SpikeFilter | None:
    limits = detector.spike_limits
    return None if limits is None else SpikeFilter(limits)


class WindowStream:
    """One machine's readings -> the windows its detector scores, by the rules of the module.

    Made by `Detector.stream`. ``ring`` holds the segment's newest scaled, filled readings (`pdm.detectors.ring`),
    ``seg_count`` counts the readings since the segment started, ``last_ts`` is the newest applied reading's time.
    """

    def __init__(self, detector: Detector, machine_id: str, *, stride: int = 1) -> None:
        if isinstance(stride, bool) or not isinstance(stride, int | np.integer) or stride < 1:
            raise DataError(f"stride: found {stride!r}, expected an integer >= 1")
        self.detector = detector
        self.machine_id = machine_id
        self.stride = int(stride)
        self.center, self.scale = machine_scaling(detector, machine_id)
        self.references = detector.reference_columns  # raw readings -> what the model judges, before scaling
        self._max_gap = detector.max_gap_s
        n = len(detector.feature_names)
        self.ring = Ring(detector.window_length, n)
        self.last_ts: float | None = None
        self.seg_count = 0  # readings since the segment started
        self._last_filled: np.ndarray | None = None  # (F,) the newest scaled, filled reading of the segment
        # per sensor: readings at the segment's start filled with the default (no valid value yet), and whether a
        # valid value has been seen in the segment; a model swap needs them to convert the ring exactly
        self._lead = np.zeros(n, dtype=np.int64)
        self._seen = np.zeros(n, dtype=bool)
        self._all_seen = False
        self._spikes = _spike_filter(detector)

    @property
    def window(self) -> int:
        return self.detector.window_length

    @property
    def warming_up(self) -> bool:
        """The segment holds less than one window: nothing is ready yet."""
        return self.seg_count < self.window

    def append(self, ts: ArrayLike, values: ArrayLike) -> Appended:
        """Apply a batch of readings: ``ts`` (n,) epoch seconds, any order; ``values`` (n, F) raw, in the order of
        ``Detector.feature_names``, NaN for a missing value. Returns the windows that became ready and the counts."""
        return self._append(np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64))

    def _append(self, ts: np.ndarray, values: np.ndarray) -> Appended:
        n_feat = len(self.center)
        if ts.ndim != 1 or values.shape != (len(ts), n_feat):
            raise DataError(f"found timestamps of shape {ts.shape} and values of shape {values.shape}, expected "
                            f"(n,) and (n, {n_feat}): one column per sensor of {list(self.detector.feature_names)}")
        if not np.isfinite(ts).all():
            raise DataError("found a timestamp that is not a finite number, expected Unix epoch seconds")
        if np.isinf(values).any():
            values = np.where(np.isinf(values), np.nan, values)
        duplicates = late = gaps = 0
        if len(ts) > 1 and np.any(np.diff(ts) <= 0):
            order = np.argsort(ts, kind="stable")
            ts, values = ts[order], values[order]
            repeat = np.concatenate([[False], np.diff(ts) == 0])
            duplicates += int(repeat.sum())
            ts, values = ts[~repeat], values[~repeat]
        if self.last_ts is not None:
            old = ts <= self.last_ts
            if old.any():
                duplicates += int((ts == self.last_ts).sum())
                late += int((ts < self.last_ts).sum())
                ts, values = ts[~old], values[~old]
        windows, starts, ends = [], [], []
        spikes = np.zeros(n_feat, dtype=np.int64)
        if len(ts):
            scaled = ((self.references.apply(values) - self.center) / self.scale).astype(np.float32)
            steps = np.diff(ts, prepend=ts[0] if self.last_ts is None else self.last_ts)
            cuts = np.flatnonzero(steps > self._max_gap).tolist()
            for s, e in itertools.pairwise([0, *cuts, len(ts)]):
                if e <= s:
                    continue
                if s in cuts:
                    gaps += 1
                    self._restart()
                part = scaled[s:e]
                if self._spikes is not None:
                    part, found = self._spikes.apply(part)
                    spikes += found
                got = self._extend(ts[s:e], part)
                if got is not None:
                    windows.append(got[0])
                    starts.append(got[1])
                    ends.append(got[2])
            self.last_ts = float(ts[-1])
        if not windows:
            empty = np.empty((0, self.window, n_feat), dtype=np.float32)
            return Appended(empty, ts[:0], ts[:0], ts, values, duplicates, late, gaps, spikes)
        return Appended(np.concatenate(windows), np.concatenate(starts), np.concatenate(ends), ts, values,
                        duplicates, late, gaps, spikes)

    def _restart(self) -> None:
        """A gap: the segment starts again."""
        self.ring.clear()
        self._last_filled = None
        self.seg_count = 0
        self._lead[:] = 0
        self._seen[:] = False
        self._all_seen = False
        if self._spikes is not None:
            self._spikes.reset()

    def _extend(self, ts: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Append readings of one segment; returns the windows that became ready, with their start and end times."""
        window = self.window
        head = np.full((1, scaled.shape[1]), np.nan, dtype=np.float32) if self._last_filled is None \
            else self._last_filled[None, :]
        if not self._all_seen:  # count the default fills at the segment's start, per sensor
            valid = ~np.isnan(scaled)
            any_valid = valid.any(axis=0)
            leading = np.where(any_valid, valid.argmax(axis=0), len(scaled))
            self._lead[~self._seen] += leading[~self._seen]
            self._seen |= any_valid
            self._all_seen = bool(self._seen.all())
        filled = fill_missing(np.concatenate([head, scaled]))[1:]
        self._last_filled = filled[-1].copy()
        first = self.ring.extend(ts, filled)
        counts = self.seg_count + 1 + np.arange(len(ts))  # readings in the segment after each new row
        self.seg_count += len(ts)
        ready = (counts >= window) & ((counts - window) % self.stride == 0)
        if not ready.any():
            return None
        rows = first + np.flatnonzero(ready)  # ring row of each ready window's last reading
        lo = int(rows[0]) - window + 1
        all_w = sliding_windows(self.ring.values[lo : int(rows[-1]) + 1], window)
        picked = np.ascontiguousarray(all_w[rows - rows[0]])
        return picked, self.ring.ts[rows - window + 1].copy(), self.ring.ts[rows].copy()

    def rebase(self, detector: Detector) -> int:
        """Move the stream to another version of its model (a hot reload), between two batches.

        Rules: the segment goes on (no restart). ``detector`` needs a subset of the current sensors (else a
        `DataError`). The readings the ring holds are converted exactly to its sensors and scaling:
        ``(value x old scale + old center - new center) / new scale``, and a default fill at the segment's start
        stays the default (0, the training median). A new window no longer than the readings held is complete at
        the next reading. A longer one: the ring holds only the newest ``old window - 1`` readings, so the segment
        continues from them and the stream is warming up until it holds a full new window; the windows ending in
        those readings are never ready. Returns the number of those windows (0 for a seamless swap). With a
        ``stride`` > 1 the stride counts from the new window's first complete one.
        """
        old_features, features = self.detector.feature_names, detector.feature_names
        extra = [f for f in features if f not in old_features]
        if extra:
            raise DataError(f"features: found {list(features)}, expected a subset of {list(old_features)} (the "
                            f"stream has no {extra})")
        if dict(detector.references or {}) != dict(self.detector.references or {}):
            raise DataError(f"references: found {dict(detector.references or {})}, expected "
                            f"{dict(self.detector.references or {})} (the readings held are in the old terms)")
        idx = [old_features.index(f) for f in features]
        center, scale = machine_scaling(detector, self.machine_id, note=False)
        held = self.ring.last(self.ring.n)[1][:, idx].astype(np.float64)
        values = ((held * self.scale[idx] + self.center[idx] - center) / scale).astype(np.float32)
        first = self.ring.n - self.seg_count  # ring row of the segment's first reading (<= 0 once compacted)
        for j, i in enumerate(idx):
            stop = first + int(self._lead[i])
            if stop > 0:
                values[max(first, 0) : stop, j] = 0.0
        if self._last_filled is not None:
            filled = (self._last_filled[idx] * self.scale[idx] + self.center[idx] - center) / scale
            filled[~self._seen[idx]] = 0.0
            self._last_filled = filled.astype(np.float32)
        window = detector.window_length
        self.ring = self.ring.rebuilt(window, values)
        self._lead, self._seen = self._lead[idx].copy(), self._seen[idx].copy()
        self._all_seen = bool(self._seen.all())
        new_filter = _spike_filter(detector)
        if self._spikes is not None and new_filter is not None:  # the held state goes on, in the new scaling
            self._spikes.rescale(idx, self.scale[idx] / scale, (self.center[idx] - center) / scale, new_filter.limits)
        else:
            self._spikes = new_filter
        self.center, self.scale = center, scale
        skipped = 0
        if self.seg_count > self.ring.n and self.ring.n < window - 1:
            self._lead = np.maximum(self._lead - (self.seg_count - self.ring.n), 0)
            skipped = min(self.seg_count, window - 1) - self.ring.n
            self.seg_count = self.ring.n
        self.detector = detector
        self.references = detector.reference_columns
        self._max_gap = detector.max_gap_s
        return skipped

    # ------------------------------------------------------------------ added for the daemon's input bounds (issue 14)
    def envelope(self, n_scales: float) -> tuple[np.ndarray, np.ndarray]:
        """Per sensor (in the order of ``Detector.feature_names``), the values within ``n_scales`` robust scales
        of the machine's training median, in the scaling this stream applies now: ``center -+ n_scales x scale``.
        The values are what the model judges: raw readings after ``references`` (`pdm.detectors.references`). A
        value outside is further from what the model was trained on than ``n_scales`` robust standard deviations;
        the daemon refuses such readings (``--model-range``)."""
        return self.center - n_scales * self.scale, self.center + n_scales * self.scale
