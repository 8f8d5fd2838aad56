"""Drift and data quality of each machine over one recent span, and the verdict that tells a faulty machine from
a stale model from a broken sensor. Published as the ``quality`` object of the machine's retained state.

**Span**: the last ``--drift-window`` seconds (24 h) of the machine's reading clock, kept as ``BLOCKS`` (24) blocks
of ``--drift-window / 24`` seconds. A message's readings and windows, and a rejected message, count in the block of
the machine's newest reading; when that clock enters a new block, the oldest block is dropped. So the span holds
between 23/24 and all of ``--drift-window``, and each message costs O(1) (one ``bincount`` of its windows' bins).
The span is not kept across a restart of the daemon: drift is ``unavailable`` again for half a window.

**Figures**:

- ``drift_psi``: the population stability index (`pdm.detectors.drift.psi`) of the span's scored windows, counted in the
  model's score bins, against the machine's own calibration shares (the fleet's for a machine the model was not
  calibrated on); ``drift``: ``stable`` below ``--drift-moderate`` (0.1), ``drifted`` from ``--drift-high`` (0.25),
  ``moderate`` between, ``unavailable`` when the model has no ``calibration.json`` (saved before it existed) or the
  span since the machine's first reading (or the last model swap) covers less than half of ``--drift-window`` or
  holds fewer than ``MIN_WINDOWS`` (100) scored windows.
- ``rejected_rate``: rejected telemetry messages / telemetry messages (a rejected message counts when its topic
  names a machine the daemon already scores); ``missing_rate``: the worst sensor's share of null values among the
  span's readings; ``duplicate_rate`` and ``late_rate``: readings dropped / readings received; ``lost_rate``:
  messages missing upstream (``seq`` jumps) / messages sent; ``gaps``: window restarts.
- ``sensors``: ``{sensor: "missing" | "stuck" | "spikes" | "drift"}``, the sensors with a problem now.
  **Missing**: null in at least ``MISSING_RATE`` (10 %) of the span's readings, or null for at least a whole window
  now (every window scored now sees only the fill value). **Stuck**: the same value for more than ``STUCK_FACTOR``
  (3) x the longest run of identical values in the training data (``calibration.json``; quantised sensors repeat in
  normal running), not checked for models without it. **Spikes**: at least ``SPIKE_COUNT`` (5) readings held by
  the model's spike rule (`pdm.detectors.spikes`) within the last ``SPIKE_SPAN_S`` (1 h) of the machine's clock.
  **Drift**: its readings at rest are offset from its rest level in training (`pdm.detectors.rest`: only sensors
  with a stable rest level, on machines the model learned rest levels for; a sensor stuck now does not count as
  at rest, since a stuck activity sensor would fake a rest). Each sensor with a problem is also a
  ``kind: sensor`` alert (`pdm.daemon.machines.MachineState.sensor_alerts`). With ``--state-dir`` an open sensor
  alert survives a restart (`pdm.daemon.checkpoint`); as the span starts afresh, it is held open for `hold_s` of
  the reading clock and then cleared with its own id once its problem is gone (a drift alert: once the sensor
  reads its rest level again).

**Verdict** (the first that applies):

1. ``sensor_problem``: a sensor is missing or stuck. Fix the sensor first: this machine's scores, alerts and drift
   rest on it.
2. ``data_problem``: ``rejected_rate`` >= 5 %, or duplicate + late + lost >= 5 % (``FEED_RATE``): the feed
   (firmware, gateway, clock) rather than one sensor's values.
3. ``faulty``: an alert is open: the machine (its scores are over the threshold by the alarm rule; the drift an
   alert brings is the alert's).
4. ``model_stale``: ``drifted`` without an alert: the model no longer describes this machine's normal (retrain it;
   a slow fault still under the threshold looks the same, so look at the machine too).
5. ``ok`` (``moderate`` drift shows in ``drift``; many machines of one model there is the fleet rule,
   docs/daemon.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from pdm.detectors.drift import CalibrationSummary, drift_level, psi, score_bins
from pdm.detectors.rest import RestLevels, RestWatch

BLOCKS = 24
MIN_WINDOWS = 100
MISSING_RATE = 0.1
FEED_RATE = 0.05
STUCK_FACTOR = 3
SPIKE_COUNT = 5
SPIKE_SPAN_S = 3600.0
PROBLEMS = ("missing", "stuck", "spikes", "drift")
VERDICTS = ("ok", "faulty", "model_stale", "sensor_problem", "data_problem")
DRIFTS = ("stable", "moderate", "drifted", "unavailable")
# counter columns of a block; one null count per sensor follows them
MESSAGES, REJECTED, READINGS, DUPLICATES, LATE, LOST, GAPS, WINDOWS = range(8)
N_FIXED = 8


@dataclass(frozen=True)
class DriftSettings:
    """The drift settings: the span and the PSI levels."""

    window_s: float = 86_400.0
    moderate: float = 0.1
    high: float = 0.25


@dataclass(frozen=True)
class Reference:
    """What one model version brings to the checks: its score bins and calibration shares (``summary``, ``None``
    for a model saved before ``calibration.json``), the stuck limits, its window length."""

    summary: CalibrationSummary | None
    edges: np.ndarray
    stuck_after: np.ndarray | None  # (F,) readings
    window: int

    @classmethod
    def of(cls, summary: CalibrationSummary | None, window: int) -> Reference:
        if summary is None:
            return cls(None, np.zeros(0), None, window)
        return cls(summary, np.asarray(summary.edges, dtype=np.float64),
                   STUCK_FACTOR * np.asarray(summary.longest_repeat, dtype=np.int64), window)

    def rest(self, machine_id: str) -> RestLevels | None:
        """The rest levels ``machine_id``'s sensors are checked for drift against (``None``: not checked)."""
        return None if self.summary is None else self.summary.rest.get(machine_id)

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def bins(self, scores: np.ndarray) -> np.ndarray:
        return score_bins(self.edges, scores)


class MachineQuality:
    """One machine's span (see the module) and its newest sensor runs."""

    def __init__(self, n_sensors: int, n_bins: int, window_s: float) -> None:
        self.block_s = window_s / BLOCKS
        self.counts = np.zeros((BLOCKS, N_FIXED + n_sensors), dtype=np.int64)
        self.hist = np.zeros((BLOCKS, n_bins), dtype=np.int64)
        self.cur = -1  # the newest block's id (floor(ts / block_s))
        self.drift_from: float | None = None  # reading time the score counts start from (first reading, swap)
        self.last_ts: float | None = None
        self.last_values = np.full(n_sensors, np.nan)
        # per sensor, ending at the newest reading: the nulls, then the readings equal to the one before them
        self.runs = np.zeros(2 * n_sensors, dtype=np.int64)
        self.spikes: list[deque[tuple[float, int]]] = [deque(maxlen=SPIKE_COUNT) for _ in range(n_sensors)]
        self.verdict, self.drift = "ok", "unavailable"  # of the last report (the fleet gauges tally them)
        self.rest: RestWatch | None = None  # the sensor-drift rule (`watch_rest`)

    def watch_rest(self, levels: RestLevels | None) -> None:
        """Check the sensors for drift against ``levels`` from now on (``None``: not checked)."""
        self.rest = None if levels is None else RestWatch(levels)

    def _row(self, ts: float | None) -> int:
        """The ring row of the block holding ``ts`` (the current block when ``ts`` is older or unknown)."""
        if ts is not None:
            b = math.floor(ts / self.block_s)
            if b > self.cur:
                if self.cur < 0 or b - self.cur >= BLOCKS:  # the first reading, or silent for a whole span
                    self.counts[:] = 0
                    self.hist[:] = 0
                    if self.cur >= 0 and self.drift_from is not None:
                        self.drift_from = max(self.drift_from, b * self.block_s)
                else:
                    rows = np.arange(self.cur + 1, b + 1) % BLOCKS
                    self.counts[rows] = 0
                    self.hist[rows] = 0
                self.cur = b
        return max(self.cur, 0) % BLOCKS

    def observe(self, ts: np.ndarray, values: np.ndarray, *, duplicates: int, late: int, lost: int,
                gaps: int, spikes: np.ndarray | None = None, stuck_after: np.ndarray | None = None) -> None:
        """One accepted telemetry message: its applied readings (raw values, time order), what was dropped, the
        readings the spike rule held, per sensor, and the model's stuck limits (`Reference.stuck_after`): a sensor
        stuck at the end of the message does not tell the drift watch that the machine rests in it (it would fake
        a rest)."""
        n = len(ts)
        if spikes is not None and n:
            for j in np.flatnonzero(spikes):
                self.spikes[j].append((float(ts[-1]), int(spikes[j])))
        if n:
            self.last_ts = float(ts[-1])
            if self.drift_from is None:
                self.drift_from = float(ts[0])
        c = self.counts[self._row(self.last_ts)]
        c[MESSAGES] += 1
        c[READINGS] += n
        if duplicates or late or lost or gaps:
            c[DUPLICATES : GAPS + 1] += (duplicates, late, lost, gaps)
        if not n:
            return
        nulls = np.isnan(values)
        c[N_FIXED:] += np.add.reduce(nulls, axis=0)
        # runs ending at the newest reading, newest row first: nulls (broken by a value) and equal values (broken by
        # a change; a null equals nothing); the last row is a break that stands for "before this message"
        f = values.shape[1]
        breaks = np.ones((n + 1, 2 * f), dtype=bool)
        np.logical_not(nulls[::-1], out=breaks[:n, :f])
        breaks[:n, f:] = (values != np.concatenate((self.last_values[None, :], values[:-1])))[::-1]
        first = breaks.argmax(axis=0)  # readings after the newest break
        self.runs = np.where(first == n, self.runs + n, first)
        self.last_values = values[-1].copy()
        if self.rest is not None:
            stuck = self.repeat > stuck_after if stuck_after is not None else None
            self.rest.update(values, stuck if stuck is not None and stuck.any() else None)

    @property
    def null_run(self) -> np.ndarray:
        """Per sensor, the nulls ending at the newest reading."""
        return self.runs[: len(self.last_values)]

    @property
    def repeat(self) -> np.ndarray:
        """Per sensor, the equal values ending at the newest reading (1: it differs from the one before)."""
        return self.runs[len(self.last_values) :] + 1

    def scored(self, bins: np.ndarray) -> None:
        """The score bins of the windows one message made ready."""
        row = self._row(self.last_ts)
        self.hist[row] += np.bincount(bins, minlength=self.hist.shape[1])
        self.counts[row, WINDOWS] += len(bins)

    def rejected(self) -> None:
        c = self.counts[self._row(self.last_ts)]
        c[MESSAGES] += 1
        c[REJECTED] += 1

    def rebase(self, idx: list[int], n_bins: int, now_ts: float | None) -> None:
        """A new model version: its sensors are ``idx`` of the old ones; scores restart in its bins from now."""
        self.counts = np.concatenate([self.counts[:, :N_FIXED], self.counts[:, N_FIXED:][:, idx]], axis=1)
        self.counts[:, WINDOWS] = 0
        self.hist = np.zeros((BLOCKS, n_bins), dtype=np.int64)
        self.drift_from = now_ts
        f = len(self.last_values)
        self.last_values, self.runs = self.last_values[idx], self.runs[[*idx, *(f + i for i in idx)]]
        self.spikes = [self.spikes[i] for i in idx]

    def report(self, ref: Reference, machine_id: str, features: tuple[str, ...], alert_open: bool,
               rules: DriftSettings) -> dict[str, Any]:
        """The ``quality`` object (see the module); remembers its verdict and drift level."""
        tot = self.counts.sum(axis=0)
        messages, readings = int(tot[MESSAGES]), int(tot[READINGS])
        received = readings + int(tot[DUPLICATES]) + int(tot[LATE])
        sent = messages - int(tot[REJECTED]) + int(tot[LOST])
        missing = tot[N_FIXED:] / readings if readings else np.zeros(len(features))
        sensors = self.sensor_problems(ref, features, missing)
        out: dict[str, Any] = {
            "rejected_rate": _rate(tot[REJECTED], messages), "missing_rate": round(float(missing.max(initial=0)), 4),
            "duplicate_rate": _rate(tot[DUPLICATES], received), "late_rate": _rate(tot[LATE], received),
            "lost_rate": _rate(tot[LOST], sent), "gaps": int(tot[GAPS]), "sensors": sensors}
        value = self._psi(ref, machine_id, int(tot[WINDOWS]), rules)
        drift = "unavailable" if value is None else drift_level(value, rules.moderate, rules.high)
        feed = out["rejected_rate"] >= FEED_RATE or \
            out["duplicate_rate"] + out["late_rate"] + out["lost_rate"] >= FEED_RATE
        verdict = ("sensor_problem" if sensors else "data_problem" if feed else "faulty" if alert_open
                   else "model_stale" if drift == "drifted" else "ok")
        self.verdict, self.drift = verdict, drift
        span = self.span_s()
        return {"verdict": verdict, "drift": drift, "drift_psi": None if value is None else round(value, 4),
                "drift_windows": int(tot[WINDOWS]), "span_s": None if span is None else round(span, 1), **out}

    def sensor_problems(self, ref: Reference, features: tuple[str, ...],
                        missing: np.ndarray | None = None) -> dict[str, str]:
        """``{sensor: "missing" | "stuck" | "spikes" | "drift"}`` now (the module's rules)."""
        if missing is None:
            tot = self.counts.sum(axis=0)
            readings = int(tot[READINGS])
            missing = tot[N_FIXED:] / readings if readings else np.zeros(len(features))
        sensors: dict[str, str] = {}
        for j in np.flatnonzero((missing >= MISSING_RATE) | (self.null_run >= ref.window)):
            sensors[features[j]] = "missing"
        if ref.stuck_after is not None:
            for j in np.flatnonzero(self.repeat > ref.stuck_after):
                sensors.setdefault(features[j], "stuck")
        if self.last_ts is not None:
            since = self.last_ts - SPIKE_SPAN_S
            for k, recent in enumerate(self.spikes):
                if sum(n for t, n in recent if t >= since) >= SPIKE_COUNT:
                    sensors.setdefault(features[k], "spikes")
        if self.rest is not None:
            for d in self.rest.drifting:
                sensors.setdefault(features[d], "drift")
        return sensors

    def span_s(self) -> float | None:
        """Reading seconds the score counts cover (since the first reading or swap, within the kept blocks)."""
        if self.last_ts is None or self.drift_from is None:
            return None
        oldest = (self.cur - BLOCKS + 1) * self.block_s
        return max(0.0, self.last_ts - max(self.drift_from, oldest))

    def _psi(self, ref: Reference, machine_id: str, windows: int, rules: DriftSettings) -> float | None:
        span = self.span_s()
        if ref.summary is None or windows < MIN_WINDOWS or span is None or span < rules.window_s / 2:
            return None
        return psi(ref.summary.reference(machine_id), self.hist.sum(axis=0))


def hold_s(ref: Reference, period_s: float) -> float:
    """Reading seconds after a restart within which every sensor rule sees a problem that is still there again:
    the spike span, or the longest stuck limit when that is longer.

    >>> hold_s(Reference(None, np.zeros(0), np.array([30, 9000]), 15), 1.0)
    9000.0
    """
    stuck = 0.0 if ref.stuck_after is None or not len(ref.stuck_after) else float(ref.stuck_after.max()) * period_s
    return max(SPIKE_SPAN_S, stuck)


def _rate(count: np.integer[Any] | int, total: int) -> float:
    return round(float(count) / total, 4) if total else 0.0
