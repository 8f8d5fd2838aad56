"""The calibration summary stored with a model (``calibration.json``) and the drift statistic: the population
stability index (PSI) of recent window scores against the calibration windows' scores.

What is stored (`CalibrationSummary.fit`, at fit time, from the held-back calibration windows whose scores set the
threshold, and from the training rows):

- ``edges``: the interior bin edges of the window score, at the pooled calibration scores' deciles (ties merged, so
  there may be fewer than 10 bins). Bin ``i`` holds the scores ``edges[i-1] <= s < edges[i]`` (`score_bins`).
- ``fleet``: each bin's share of all calibration windows; ``machines``: each machine's own shares on the same bins,
  for machines with at least ``MIN_MACHINE_WINDOWS`` calibration windows (machines differ: a compressor's normal
  scores sit below a pump's, so a machine is compared with its own calibration when it has one).
- ``quantiles``: a fixed set of quantiles of the pooled calibration scores (for people and reports).
- ``longest_repeat``: per sensor, the longest run of identical consecutive values in the training rows (the
  stuck-sensor rule's reference: quantised sensors repeat values in normal running).
- ``rest``: per machine, its rest bands and each sensor's rest level (`pdm.detectors.rest.RestLevels`: the
  sensor-drift rule's reference); absent in models saved before it, whose sensors are not checked for drift.

PSI of observed counts ``c`` (shares ``a = c / sum(c)``) against reference shares ``e``::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)        with a_i and e_i floored at EPS = 1e-4 (an empty bin)

The usual reading: below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above drifted (`drift_level`).

>>> round(psi([0.5, 0.5], np.array([1, 3])), 4)      # (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5)
0.2747
>>> psi([0.25, 0.25, 0.5], np.array([2, 2, 4]))
0.0
>>> score_bins(np.array([1.0, 2.0]), np.array([0.5, 1.0, 1.5, 2.5])).tolist()
[0, 1, 1, 2]
>>> drift_level(0.03), drift_level(0.1), drift_level(0.3)
('stable', 'moderate', 'drifted')
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pdm.detectors.rest import RestLevels
from pdm.errors import DataError

BINS = 10
EPS = 1e-4
MIN_MACHINE_WINDOWS = 1000  # 100 per decile: fewer, and the machine is compared with the fleet's shares
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
STABLE_BELOW, DRIFTED_FROM = 0.1, 0.25
DriftLevel = Literal["stable", "moderate", "drifted"]


class BinShares(BaseModel):
    """Shares of the calibration windows in each score bin (sum 1) and how many windows they come from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    shares: list[float]
    n_windows: int = Field(ge=1)

    @model_validator(mode="after")
    def _a_distribution(self) -> Self:
        if any(not math.isfinite(s) or s < 0 for s in self.shares) or abs(math.fsum(self.shares) - 1.0) > 1e-6:
            raise ValueError(f"shares: found {self.shares}, expected finite shares >= 0 that sum to 1")
        return self


class CalibrationSummary(BaseModel):
    """The calibration score distribution and the training sensors' longest repeats; ``calibration.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: Literal[1] = 1
    edges: list[float]
    fleet: BinShares
    machines: dict[str, BinShares] = Field(default_factory=dict)
    quantiles: dict[str, float]
    longest_repeat: list[int]
    rest: dict[str, RestLevels] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        e = self.edges
        if not e or any(not math.isfinite(x) for x in e) or any(b <= a for a, b in itertools.pairwise(e)):
            raise ValueError(f"edges: found {e[:12]}, expected at least one finite edge, strictly increasing")
        for name, b in [("fleet", self.fleet), *((f"machines.{m}", s) for m, s in self.machines.items())]:
            if len(b.shares) != len(e) + 1:
                raise ValueError(f"{name}: found {len(b.shares)} shares, expected {len(e) + 1} (one per bin)")
        if any(r < 1 for r in self.longest_repeat):
            raise ValueError(f"longest_repeat: found {self.longest_repeat}, expected counts >= 1")
        for m, levels in self.rest.items():
            if len(levels.lo) != len(self.longest_repeat):
                raise ValueError(f"rest.{m}: found {len(levels.lo)} sensors, expected {len(self.longest_repeat)}")
        return self

    @classmethod
    def fit(cls, scores: Mapping[str, Sequence[np.ndarray]], training_values: Sequence[np.ndarray],
            bins: int = BINS, *, machines: Sequence[str] | None = None, period_s: float = 1.0,
            unchecked: Sequence[int] = ()) -> CalibrationSummary:
        """``scores``: each machine's calibration window scores (one array per segment); ``training_values``: the
        training rows (n, sensors) of each frame, in time order; ``machines``: each frame's machine (rest levels
        are learned per machine; none without); ``period_s``: the sampling period (the rest rule's spans);
        ``unchecked``: sensor columns that get no rest level and tell nothing about rest (reference sensors: an
        ambient temperature's level is the weather's, not the sensor's)."""
        per_machine = {m: np.concatenate([np.asarray(s, dtype=np.float64) for s in segs]) if segs else np.empty(0)
                       for m, segs in scores.items()}
        pooled = np.concatenate([*per_machine.values(), np.empty(0)])
        pooled = pooled[np.isfinite(pooled)]
        if len(pooled) == 0:
            raise DataError("no calibration scores: expected at least one held-back normal window")
        edges = np.unique(np.quantile(pooled, np.arange(1, bins) / bins))

        def shares(x: np.ndarray) -> BinShares:
            counts = np.bincount(score_bins(edges, x), minlength=len(edges) + 1)
            return BinShares(shares=(counts / counts.sum()).tolist(), n_windows=int(counts.sum()))

        machine_shares = {m: shares(x[np.isfinite(x)]) for m, x in sorted(per_machine.items())
                          if np.isfinite(x).sum() >= MIN_MACHINE_WINDOWS}
        n_sensors = training_values[0].shape[1] if training_values else 0
        longest = np.ones(n_sensors, dtype=np.int64)
        for values in training_values:
            longest = np.maximum(longest, longest_repeats(values))
        frames: dict[str, list[np.ndarray]] = {}
        for owner, values in zip(machines, training_values, strict=True) if machines is not None else []:
            if unchecked:
                values = np.array(values, dtype=np.float64, copy=True)  # noqa: PLW2901 - a masked copy
                values[:, list(unchecked)] = np.nan
            frames.setdefault(owner, []).append(values)
        return cls(edges=edges.tolist(), fleet=shares(pooled), machines=machine_shares,
                   quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(pooled, QUANTILES), strict=True)},
                   longest_repeat=longest.tolist(),
                   rest={m: RestLevels.fit(f, period_s) for m, f in sorted(frames.items())})

    def reference(self, machine_id: str) -> np.ndarray:
        """The shares ``machine_id`` is compared with: its own, else the fleet's."""
        own = self.machines.get(machine_id)
        return np.asarray((own or self.fleet).shares, dtype=np.float64)


def score_bins(edges: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The bin of each score: ``i`` such that ``edges[i-1] <= score < edges[i]`` (0 below the first edge)."""
    return np.searchsorted(edges, scores, side="right")


def psi(expected: Sequence[float] | np.ndarray, counts: np.ndarray) -> float:
    """Population stability index of observed bin ``counts`` against the ``expected`` shares (see the module)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise DataError("psi: found no observations, expected counts that sum to more than 0")
    a = np.maximum(counts / total, EPS)
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_level(value: float, moderate: float = STABLE_BELOW, high: float = DRIFTED_FROM) -> DriftLevel:
    """``stable`` below ``moderate``, ``drifted`` from ``high``, ``moderate`` between."""
    return "stable" if value < moderate else "drifted" if value >= high else "moderate"


def longest_repeats(values: np.ndarray) -> np.ndarray:
    """Per column, the longest run of identical consecutive values (a null breaks a run; 1 when nothing repeats).

    >>> longest_repeats(np.array([[1.0, 5.0], [1.0, np.nan], [1.0, np.nan], [2.0, 5.0]])).tolist()
    [3, 1]
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.ones(values.shape[1], dtype=np.int64)
    same = values[1:] == values[:-1]  # NaN == NaN is False: a null breaks the run
    out = np.ones(values.shape[1], dtype=np.int64)
    for j in range(values.shape[1]):
        change = np.flatnonzero(np.r_[True, ~same[:, j], True])
        out[j] = int(np.diff(change).max())
    return out
