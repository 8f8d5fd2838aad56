"""Sensor drift at rest: a sensor's reading offset while the machine stands still, where a bias shows and a fault
does not.

A drifting sensor adds a bias to everything it reports, whatever the machine does. A machine fault changes what
the machine does: imbalance shakes in proportion to speed, a failing cooler heats only under load, so at rest the
readings go back to their rest levels. The rest state is where the two part ways, and it needs no model of the
machine: its *activity sensors* (vibration, pressure: sensors that sit in a narrow band at the bottom of their
range together whenever the machine stops) say when it rests, and each sensor's reading at rest is compared with
its rest readings in training. Each sensor is judged only by the *other* activity sensors, so a drifting activity
sensor is judged too (a vibration offset at rest shows against the pressure's rest).

Learned per machine from its training rows (`RestLevels.fit`; all in the sensors' own units):

- A sensor's *bottom band* is ``[lo - 0.05 R, lo + BAND R]`` with ``lo`` its ``0.005`` quantile and ``R`` its
  ``0.005``-``0.995`` range. A sensor is an *activity sensor* when at least ``MIN_SHARE`` (1 %) of the rows are in
  its band and, for some other sensor likewise, at least ``COOCCUR`` (80 %) of either's band rows are in both
  (temperature has a bottom band too, the cold nights, but its band and the rest do not coincide).
- A row is *settled rest* for sensor ``j`` when every activity sensor other than ``j`` was in its band for
  ``SETTLE_S`` (5 minutes) before it and after it (pressure lags speed at stops and starts). Sensor ``j``'s rest
  levels are the ``0.005`` and ``0.995`` quantiles of its settled rest values, kept when they span at least
  ``MIN_REST_S`` (5 minutes) of readings and their spread is at most ``STABLE`` of ``R`` (a temperature cooling
  down after a stop has no rest level: it is not checked); ``margin`` is the larger of that spread and ``MARGIN``
  x ``R``.

Judged live (`RestWatch`), on each settled rest reading of a checked sensor: +1 above ``hi + margin``, -1 below
``lo - margin``, 0 inside; an exponential average of the +1s and of the -1s over ``VOTES_S`` (10 minutes) of
settled readings. **Drift** is raised when one average reaches ``ON`` (0.9, after at least that many settled
readings since the watch began) and ends when it falls below ``OFF`` (0.5). Between rests the verdict holds: the
evidence only comes when the machine stops.

The spans are times, counted in readings at the model's sampling period (`Spans`: 300 / 300 / 600 readings at
1 Hz, 30 / 30 / 60 at 10 s), with floors of ``MIN_SETTLE`` and ``MIN_VOTES`` readings so that slow data still
needs a few readings of evidence. Levels saved before the period was stored were all learned at 1 Hz.

Limits, plainly: a machine that never stops (or stops for less than ``2 SETTLE_S``) is never judged; a sensor
without a stable rest level (temperature, following the ambient) is not checked; a fault that changes a reading at
rest (a leak lowering the standing pressure) can look like drift of that sensor. Measured with
`benchmarks/sensor_drift.py --interval`: from 1 s to 30 s no false drift on healthy machine-days; at 60 s fewer
drifts are caught (at 3 minutes a settled rest needs 2 readings on either side, which says little). On the 8 SMD
servers (1-minute) and TEP (3-minute) it finds no activity sensors, so nothing is checked.

A pump: vibration and pressure fall to their rest levels whenever it stops, temperature creeps; later the
pressure transmitter reads 0.5 bar high:

>>> rng = np.random.default_rng(0)
>>> run = np.repeat(rng.random(60) < 0.6, 1200)                    # on and off in 20-minute stretches
>>> noise = lambda s: rng.normal(0, s, run.size)
>>> rows = np.column_stack([40 + 10 * run + noise(1.0), 0.1 + 2.0 * run + noise(0.03), 1.0 + 3.0 * run + noise(0.03)])
>>> levels = RestLevels.fit([rows])
>>> levels.checked                                                   # temperature has no rest level
[False, True, True]
>>> watch = RestWatch(levels)
>>> watch.update(rows); watch.drifting
[]
>>> biased = rows.copy(); biased[:, 2] += 0.5
>>> watch.update(biased); watch.drifting
[2]
>>> faulty = rows.copy(); faulty[:, 1] += 1.5 * run                 # imbalance: more vibration only while running
>>> watch = RestWatch(levels)
>>> watch.update(faulty); watch.drifting
[]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.signal import lfilter

BAND = 0.1
MIN_SHARE = 0.01
COOCCUR = 0.8
SETTLE_S = 300.0  # seconds of rest on either side of a judged reading
MIN_REST_S = 300.0  # seconds of settled rest a rest level is learned from, at least
VOTES_S = 600.0  # seconds of settled rest readings the vote averages span
MIN_SETTLE, MIN_VOTES = 2, 30  # readings, whatever the sampling period
STABLE = 0.2
MARGIN = 0.02
ON, OFF = 0.9, 0.5


class Spans(NamedTuple):
    """The rule's spans in readings at a sampling period: ``settle``, ``min_rest``, ``votes``.

    >>> Spans.at(1.0), Spans.at(10.0)
    (Spans(settle=300, min_rest=300, votes=600), Spans(settle=30, min_rest=30, votes=60))
    >>> Spans.at(60.0), Spans.at(180.0)
    (Spans(settle=5, min_rest=30, votes=30), Spans(settle=2, min_rest=30, votes=30))
    """

    settle: int
    min_rest: int
    votes: int

    @classmethod
    def at(cls, period_s: float) -> Spans:
        return cls(max(MIN_SETTLE, round(SETTLE_S / period_s)), max(MIN_VOTES, round(MIN_REST_S / period_s)),
                   max(MIN_VOTES, round(VOTES_S / period_s)))


class RestLevels(BaseModel):
    """One machine's rest bands (activity sensors) and rest levels (checked sensors); ``None`` where a sensor has
    none. Stored in ``calibration.json`` (`pdm.detectors.drift.CalibrationSummary`, ``rest``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    band_lo: list[float | None]
    band_hi: list[float | None]
    lo: list[float | None]
    hi: list[float | None]
    margin: list[float | None]
    period_s: float = Field(1.0, gt=0, le=86_400, description="the sampling period the spans are counted at "
                            "(1: levels saved before it, all learned at 1 Hz)")

    @property
    def spans(self) -> Spans:
        return Spans.at(self.period_s)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        n = len(self.band_lo)
        if any(len(x) != n for x in (self.band_hi, self.lo, self.hi, self.margin)):
            raise ValueError("rest levels: found lists of different lengths, expected one entry per sensor")
        for a, b in [*zip(self.band_lo, self.band_hi, strict=True), *zip(self.lo, self.hi, strict=True)]:
            if (a is None) != (b is None) or (a is not None and b is not None and not (
                    math.isfinite(a) and math.isfinite(b) and a <= b)):
                raise ValueError(f"rest levels: found a band ({a}, {b}), expected finite lo <= hi or both null")
        if any((m is None) != (lo is None) or (m is not None and not (math.isfinite(m) and m >= 0))
               for m, lo in zip(self.margin, self.lo, strict=True)):
            raise ValueError("rest levels: found a margin without a level or not finite >= 0")
        return self

    @property
    def activity(self) -> list[bool]:
        return [b is not None for b in self.band_lo]

    @property
    def checked(self) -> list[bool]:
        return [lo is not None for lo in self.lo]

    @classmethod
    def fit(cls, frames: Sequence[np.ndarray], period_s: float = 1.0) -> RestLevels:
        """From one machine's training rows (one ``(n, sensors)`` array per uninterrupted frame, NaN missing),
        sampled every ``period_s`` seconds."""
        spans = Spans.at(period_s)
        rows = np.concatenate([np.asarray(f, dtype=np.float64) for f in frames])
        n_sensors = rows.shape[1]
        finite = np.isfinite(rows)
        lo = np.array([np.quantile(rows[finite[:, k], k], 0.005) if finite[:, k].any() else np.nan
                       for k in range(n_sensors)])
        hi = np.array([np.quantile(rows[finite[:, k], k], 0.995) if finite[:, k].any() else np.nan
                       for k in range(n_sensors)])
        span = hi - lo
        band_lo, band_hi = lo - 0.05 * span, lo + BAND * span
        in_band = [_in_band(np.asarray(f, dtype=np.float64), band_lo, band_hi) for f in frames]
        pooled = np.concatenate(in_band)
        count = pooled.sum(axis=0)
        activity = np.zeros(n_sensors, dtype=bool)
        for k in range(n_sensors):
            for m in range(n_sensors):
                if m != k and min(count[k], count[m]) >= MIN_SHARE * len(rows) and span[k] > 0 and span[m] > 0 and \
                        (pooled[:, k] & pooled[:, m]).sum() >= COOCCUR * max(count[k], count[m]):
                    activity[k] = True
        levels: list[tuple[float, float, float] | None] = []
        for j in range(n_sensors):
            others = [k for k in range(n_sensors) if k != j and activity[k]]
            if not others:
                levels.append(None)
                continue
            values = np.concatenate([np.asarray(f, dtype=np.float64)[_settled(np.all(b[:, others], axis=1),
                                                                              spans.settle), j]
                                     for f, b in zip(frames, in_band, strict=True)])
            values = values[np.isfinite(values)]
            if len(values) < spans.min_rest:
                levels.append(None)
                continue
            a, b = (float(v) for v in np.quantile(values, [0.005, 0.995]))
            levels.append((a, b, max(b - a, MARGIN * float(span[j]))) if b - a <= STABLE * span[j] else None)
        return cls(band_lo=[float(band_lo[k]) if activity[k] else None for k in range(n_sensors)],
                   band_hi=[float(band_hi[k]) if activity[k] else None for k in range(n_sensors)],
                   lo=[lv[0] if lv else None for lv in levels], hi=[lv[1] if lv else None for lv in levels],
                   margin=[lv[2] if lv else None for lv in levels], period_s=period_s)


def _in_band(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (rows >= lo) & (rows <= hi)


def _settled(rest: np.ndarray, settle: int) -> np.ndarray:
    """Rows whose neighbourhood ``[i - settle, i + settle]`` is all rest (within the array)."""
    w = 2 * settle + 1
    out = np.zeros(len(rest), dtype=bool)
    if len(rest) >= w:
        breaks = np.cumsum(np.r_[0, ~rest])
        out[settle : len(rest) - settle] = (breaks[w:] - breaks[:-w]) == 0
    return out


class RestWatch:
    """One machine's live drift-at-rest judgement (see the module): O(sensors) state plus the last ``settle``
    readings as float32 (a reading is judged once the ``settle`` after it have arrived; 3.6 KB for 3 sensors at
    1 Hz)."""

    def __init__(self, levels: RestLevels) -> None:
        n = len(levels.lo)
        self.checked = [j for j in range(n) if levels.lo[j] is not None]
        self._band_lo = np.array([np.nan if b is None else b for b in levels.band_lo])
        self._band_hi = np.array([np.nan if b is None else b for b in levels.band_hi])
        self._band_lo_list, self._band_hi_list = self._band_lo.tolist(), self._band_hi.tolist()
        self._lo = np.array([-np.inf if v is None or m is None else v - m
                             for v, m in zip(levels.lo, levels.margin, strict=True)])
        self._hi = np.array([np.inf if v is None or m is None else v + m
                             for v, m in zip(levels.hi, levels.margin, strict=True)])
        self._others = {j: tuple(k for k in range(n) if k != j and levels.band_lo[k] is not None)
                        for j in self.checked}
        self._settle, _, self._votes = levels.spans
        self._period = levels.period_s
        self._ring = np.zeros((self._settle, n), dtype=np.float32)  # the last settle readings (reading i at i % settle)
        self._count = 0  # readings seen
        self._run = dict.fromkeys(self.checked, 0)  # rest rows in a row, per checked sensor, ending at the newest
        self._avg = {j: np.zeros(2) for j in self.checked}  # exponential averages of the +1s and the -1s
        self._seen = dict.fromkeys(self.checked, 0)  # settled readings judged
        self._on: set[int] = set()

    @property
    def drifting(self) -> list[int]:
        """The sensors (indices) drifting now."""
        return sorted(self._on)

    def judged(self, j: int) -> bool:
        """Sensor ``j`` has been judged on enough rest readings since the watch began to be raised."""
        return self._seen.get(j, 0) >= self._votes

    def update(self, values: np.ndarray, unsure: np.ndarray | None = None) -> None:
        """Applied readings of one message (time order, raw units, NaN missing). ``unsure``: (sensors,) bool, the
        sensors whose readings do not tell that the machine rests (a stuck sensor would fake a rest); they are
        taken as out of their rest band, and still judged themselves."""
        values = np.asarray(values, dtype=np.float64)
        new = len(values)
        if not self.checked or not new:
            return
        if new == 1:  # one reading per message: the same rules without numpy's per-call cost
            self._update_one(values[0], unsure)
            return
        first = self._count  # the reading number of values[0]
        in_band = _in_band(values, self._band_lo, self._band_hi)
        if unsure is not None:
            in_band[:, unsure] = False
        masks: dict[tuple[int, ...], np.ndarray] = {}
        idx = np.arange(new)
        for j in self.checked:
            others = self._others[j]
            if others not in masks:
                masks[others] = np.all(in_band[:, list(others)], axis=1)
            last = np.maximum.accumulate(np.where(masks[others], -1, idx))  # the newest row out of rest so far
            run = np.where(last >= 0, idx - last, self._run[j] + idx + 1)
            self._run[j] = int(run[-1])
            # the reading `settle` rows back from each new one is settled when the run covers 2 settle + 1 rows
            judged = first + np.flatnonzero(run >= 2 * self._settle + 1) - self._settle
            if not len(judged):
                continue
            old = judged < first
            x = np.where(old, self._ring[judged % self._settle, j], values[np.maximum(judged - first, 0), j])
            x = x[np.isfinite(x)]
            if len(x):
                self._vote(j, (x > self._hi[j]).astype(np.int8) - (x < self._lo[j]).astype(np.int8))
        keep = min(new, self._settle)
        self._ring[np.arange(first + new - keep, first + new) % self._settle] = values[-keep:]
        self._count += new

    def _update_one(self, row: np.ndarray, unsure: np.ndarray | None) -> None:
        values = row.tolist()
        in_band = [lo <= v <= hi for v, lo, hi in zip(values, self._band_lo_list, self._band_hi_list, strict=True)]
        if unsure is not None:
            in_band = [b and not u for b, u in zip(in_band, unsure.tolist(), strict=True)]
        slot = self._count % self._settle
        for j in self.checked:
            self._run[j] = self._run[j] + 1 if all(in_band[k] for k in self._others[j]) else 0
            if self._run[j] >= 2 * self._settle + 1:
                x = float(self._ring[slot, j])  # the reading `settle` back: the ring slot about to be overwritten
                if math.isfinite(x):
                    self._vote(j, np.array([int(x > self._hi[j]) - int(x < self._lo[j])], dtype=np.int8))
        self._ring[slot] = row
        self._count += 1

    def assume(self, j: int) -> None:
        """Take sensor ``j`` as drifting now (an alert restored from a checkpoint, or carried over to another model
        version): both averages start at ``ON`` and enough readings count as seen, so it stays raised while the
        evidence is on either side and clears only when the averages fall under ``OFF``."""
        if j in self._avg:
            self._avg[j][:] = ON
            self._seen[j] = max(self._seen[j], self._votes)
            self._on.add(j)

    def bounds(self) -> list[list[float]]:
        """Each checked sensor's ``[index, lo - margin, hi + margin, period]``: what the votes were cast against (a
        checkpoint keeps them to tell whether its evidence applies to a watch)."""
        return [[float(j), float(self._lo[j]), float(self._hi[j]), self._period] for j in self.checked]

    def evidence(self) -> dict[int, tuple[float, float, int, bool]]:
        """Each checked sensor's votes so far: the averages of the +1s and the -1s, the readings judged, and
        whether it is drifting now."""
        return {j: (float(self._avg[j][0]), float(self._avg[j][1]), self._seen[j], j in self._on)
                for j in self.checked}

    def resume(self, evidence: dict[int, tuple[float, float, int, bool]]) -> None:
        """Carry on from ``evidence`` (`evidence` of a watch with the same `bounds`, e.g. before a restart): the
        votes, the readings judged and the verdict are restored, as if the watch had never stopped; the settling
        starts afresh (the next vote comes after ``2 settle + 1`` readings at rest). A sensor that is not checked,
        averages outside ``[0, 1]`` or a negative count are a `ValueError`, and nothing is changed."""
        for j, (up, down, seen, _) in evidence.items():
            if j not in self._avg:
                raise ValueError(f"found sensor {j}, expected one of the checked sensors {self.checked}")
            if not (0.0 <= up <= 1.0 and 0.0 <= down <= 1.0 and seen >= 0):
                raise ValueError(f"found averages {up}, {down} and count {seen}, expected averages in [0, 1] and a "
                                 "count >= 0")
        for j, (up, down, seen, drifting) in evidence.items():
            self._avg[j][:] = (up, down)
            self._seen[j] = int(seen)
            if drifting:
                self._on.add(j)
            else:
                self._on.discard(j)

    def _vote(self, j: int, sides: np.ndarray) -> None:
        """The exponential averages of the +1s and the -1s, and the hysteresis applied after every vote in turn
        (so the verdict does not depend on how the readings were batched)."""
        keep = 1.0 - 1.0 / self._votes
        avg = self._avg[j]
        if len(sides) == 1:  # the common case of small messages, without the arrays
            avg *= keep
            avg[0 if sides[0] > 0 else 1] += (1.0 / self._votes) if sides[0] else 0.0
            self._seen[j] += 1
            self._switch(j, float(avg.max()), self._seen[j])
            return
        paths = [lfilter([1.0 / self._votes], [1.0, -keep], (sides > 0 if i == 0 else sides < 0).astype(np.float64),
                         zi=[keep * avg[i]])[0] for i in range(2)]
        top = np.maximum(paths[0], paths[1])
        seen = self._seen[j] + np.arange(1, len(sides) + 1)
        on = j in self._on
        i = 0
        while i < len(top):  # the next switch, if any, from vote i on
            hits = np.flatnonzero(top[i:] < OFF) if on else np.flatnonzero((top[i:] >= ON) & (seen[i:] >= self._votes))
            if not len(hits):
                break
            i += int(hits[0])
            on = not on
        if on:
            self._on.add(j)
        else:
            self._on.discard(j)
        avg[:] = (paths[0][-1], paths[1][-1])
        self._seen[j] = int(seen[-1])

    def _switch(self, j: int, top: float, seen: int) -> None:
        if j not in self._on and seen >= self._votes and top >= ON:
            self._on.add(j)
        elif j in self._on and top < OFF:
            self._on.discard(j)
