"""Label-free thresholds, fitted on the scores of held-back normal windows (the calibration set).

The target is a per-window false-alarm rate ``q``: the share of normal windows whose score should exceed the
threshold (``quantile``, ``pot``), or the number of *raises* per window (``declustered``). Three methods:

- ``quantile``: the empirical ``1 - q`` quantile of the calibration scores. Exact when the calibration set has many
  more than ``1 / q`` windows; coarse for extreme ``q``.
- ``pot`` (peaks over threshold): scores above an initial level ``u`` (the ``init_level`` quantile) are fitted with a
  generalised Pareto distribution (scipy), and the threshold is the level exceeded with probability ``q``
  (Siffer et al., KDD 2017)::

      z = u + sigma / xi * ((q * n / n_u) ** -xi - 1)      (xi != 0)
      z = u - sigma * log(q * n / n_u)                       (xi == 0)

  It extrapolates beyond the largest calibration score, so it works for extreme ``q``. When the target lies beyond
  the calibration data (``q * n < 1``, a short history), an exponential tail over the median is extrapolated too
  (never below the largest score), and the larger of the two is used: a short-tailed Pareto fit from a few values,
  or none at all (fewer than ``min_peaks`` peaks), does not get to bound scores the data never showed
  (``params["fallback"] = "exponential_tail"``). Otherwise, without a fit, it falls back to ``quantile``;
  ``params`` says which. When the target lies inside the
  calibration data (``q * n >= 1``) the fitted level may not exceed the largest calibration score: a heavy-tailed fit
  (large ``xi``, a few odd windows among the peaks) would otherwise put the threshold far above every normal score
  and every fault (seen: ``xi`` = 1.7, a threshold 1,400 times the initial level); the empirical quantile is used
  instead and ``params["reason"]`` says so.

- ``declustered``: what an operator counts is alarms, not windows. The calibrated value (the alarm statistic,
  `alarm_statistic`) moves slowly: one start or load step keeps it high for about ``alarm_n`` windows, so a
  day of calibration windows holds only a few hundred independent values, a per-window target of 1e-4 lies inside
  them on paper but beyond them in fact, and ``pot`` ends at the largest calibration value (its guard): an unseen
  stop 10 % stronger than any in the history pages someone. Here the values over the initial level ``u`` are
  grouped into clusters (exceedances closer than ``cluster_gap`` windows, within one run of consecutive values,
  are one cluster: one raise), a generalised Pareto distribution is fitted to the cluster maxima (an exponential
  tail for a shape beyond +-`MAX_ABS_XI`), and the threshold is the level that ``q`` clusters per window exceed
  (``q`` = raises per machine-day x the sampling period / 86,400)::

      z = u + sigma / xi * ((q / rate) ** -xi - 1),    rate = clusters over u per window

  When fewer than one raise is expected in the calibration data (``q * n < 1``) it is never below the largest
  cluster maximum (Coles 2001, chapter 5; Ferro and Segers 2003 for runs declustering). With fewer than
  `MIN_CLUSTERS` clusters (a short history) there is nothing to fit: ``pot`` is used (``params["fallback"] =
  "pot"``) with the per-window target ``q / theta``, ``theta`` (the extremal index) being clusters per exceedance
  of ``u``: a raise is a cluster of ``1 / theta`` windows over the threshold on average (Coles 2001, 5.3).

>>> import numpy as np
>>> scores = np.random.default_rng(0).exponential(size=20_000)
>>> t = Threshold.fit(scores, method="quantile", target_rate=0.01)
>>> bool(abs(t.value - np.log(100)) < 0.2)
True
>>> t = Threshold.fit(scores, method="pot", target_rate=0.001)
>>> bool(abs(t.value - np.log(1000)) < 0.5)
True

A tail far heavier than the bulk (a few odd windows) does not push the threshold past every calibration score:

>>> odd = np.concatenate([scores, np.full(30, 50.0)])
>>> t = Threshold.fit(odd, method="pot", target_rate=0.0001)
>>> round(t.params["pot_value"]), t.value, t.params["fallback"]
(135, 50.0, 'quantile')
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pdm.errors import DataError

ThresholdMethod = Literal["quantile", "pot", "declustered"]
THRESHOLD_METHODS = ("quantile", "pot", "declustered")
MIN_CLUSTERS = 10  # declustered: fewer clusters over the initial level fall back to per-window POT
MAX_ABS_XI = 0.5  # a Pareto shape fitted beyond this (from a few dozen clusters) is not trusted: exponential tail
CALIBRATION_PARTS = 5  # the held-back share is spread over at most this many parts of each frame
Piece = tuple[int, int, int, int]  # rows [fit_start, fit_end) fit, [cal_start, cal_end) calibrate


class Threshold(BaseModel):
    """A calibrated threshold with its method and parameters; serialised as ``threshold.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    value: float
    method: ThresholdMethod
    target_rate: float = Field(gt=0, lt=1)
    n_calibration: int
    calibration_exceedance_rate: float
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        scores: np.ndarray | Sequence[np.ndarray],
        *,
        method: ThresholdMethod,
        target_rate: float,
        init_level: float = 0.98,
        min_peaks: int = 20,
        cluster_gap: int = 1,
    ) -> Threshold:
        """``scores``: the calibration values, or a list of runs of consecutive values (one per segment; only
        ``declustered`` uses the runs). ``cluster_gap``: ``declustered`` merges exceedances closer than this."""
        one_run = isinstance(scores, np.ndarray) or not len(scores) or np.ndim(scores[0]) == 0
        runs = [np.asarray(scores, dtype=np.float64)] if one_run else [np.asarray(s, dtype=np.float64) for s in scores]
        runs = [r[np.isfinite(r)] for r in runs]
        scores = np.concatenate(runs) if runs else np.zeros(0)
        if len(scores) == 0:
            raise DataError("no calibration scores: expected at least one held-back normal window")
        if not 0 < target_rate < 1:
            raise DataError(f"found target_rate={target_rate}, expected 0 < target_rate < 1")
        if method == "declustered":
            value, params = _declustered(runs, target_rate, init_level, cluster_gap)
            if not math.isfinite(value):  # too few clusters to fit: per window, at the target over theta
                per_window = min(target_rate / params["extremal_index"], 0.5)
                value, pot = _pot_or_quantile(scores, per_window, init_level, min_peaks)
                params = {**pot, "declustered": params, "fallback": "pot", "pot_fallback": pot.get("fallback"),
                          "per_window_target": per_window}
        elif method == "pot":
            value, params = _pot_or_quantile(scores, target_rate, init_level, min_peaks)
        elif method == "quantile":
            value, params = float(np.quantile(scores, 1.0 - target_rate, method="higher")), {}
        else:
            raise DataError(f"found threshold method {method!r}, expected one of {list(THRESHOLD_METHODS)}")
        return cls(
            value=value,
            method=method,
            target_rate=target_rate,
            n_calibration=len(scores),
            calibration_exceedance_rate=float(np.mean(scores > value)),
            params=params,
        )


def _exponential_tail(scores: np.ndarray, q: float) -> tuple[float, dict[str, Any]]:
    """Too few peaks for a Pareto fit, and a target beyond the largest score: an exponential tail over the median,
    ``z = u + beta * ln(n_u / (q * n))`` with ``beta`` the mean excess over ``u`` (the ``xi = 0`` case of POT, one
    parameter, so a few dozen values suffice). Never below the largest score: with few calibration windows the
    empirical quantile would be the largest of them, far too low for a rare target."""
    u = float(np.median(scores))
    over = scores[scores > u]
    if len(over) == 0:
        return float(scores.max()), {"u": u, "n_peaks": 0}
    beta = float((over - u).mean())
    z = u + beta * math.log(len(over) / (q * len(scores)))
    return max(z, float(scores.max())), {"u": u, "n_peaks": len(over), "beta": beta}


def clusters(runs: Sequence[np.ndarray], level: float, gap: int) -> np.ndarray:
    """The maximum of every cluster of values over ``level``: exceedances closer than ``gap`` positions in one run
    are one cluster (runs declustering).

    >>> clusters([np.array([0, 5, 0, 6, 0, 0, 0, 7.0]), np.array([9.0])], level=1, gap=3).tolist()
    [6.0, 7.0, 9.0]
    """
    maxima: list[float] = []
    for run in runs:
        over = np.flatnonzero(run > level)
        if len(over):
            starts = np.r_[0, np.flatnonzero(np.diff(over) >= gap) + 1]
            maxima += np.maximum.reduceat(run[over], starts).tolist()
    return np.asarray(maxima, dtype=np.float64)


def _declustered(runs: Sequence[np.ndarray], q: float, init_level: float, gap: int) -> tuple[float, dict[str, Any]]:
    """Peaks over threshold on cluster maxima: ``q`` is the target number of clusters (alarm raises) per value."""
    from scipy.stats import genpareto

    scores = np.concatenate(runs)
    n = len(scores)
    u = float(np.quantile(scores, init_level))
    maxima = clusters(runs, u, gap)
    rate = len(maxima) / n  # clusters over u per value
    exceedances = int(np.sum(scores > u))
    params: dict[str, Any] = {"init_level": init_level, "u": u, "clusters": len(maxima), "cluster_gap": gap,
                              "values": n, "expected_in_calibration": q * n,
                              "extremal_index": len(maxima) / exceedances if exceedances else 1.0}
    if len(maxima) < MIN_CLUSTERS:
        return float("nan"), {**params, "reason": f"{len(maxima)} clusters, fewer than {MIN_CLUSTERS}"}
    ratio = q / rate  # the share of clusters allowed over the threshold
    if ratio >= 1.0:
        return u, {**params, "reason": "target rate not beyond the initial level"}
    excess = maxima - u
    xi, sigma = 0.0, float(excess.mean())
    fit_xi, _, fit_sigma = genpareto.fit(excess, floc=0.0)
    if abs(fit_xi) <= MAX_ABS_XI:
        xi, sigma = float(fit_xi), float(fit_sigma)
    else:
        params["reason"] = f"Pareto shape {fit_xi:.3g} beyond +-{MAX_ABS_XI}: exponential tail"
    z = u - sigma * math.log(ratio) if abs(xi) < 1e-06 else u + sigma / xi * (ratio ** (-xi) - 1.0)
    params.update(xi=xi, sigma=sigma, fitted_value=float(z))
    if q * n < 1.0:  # fewer than one raise expected in the calibration data: never below a cluster it holds
        z = max(z, float(maxima.max()))
    return float(z), params


def _pot_or_quantile(scores: np.ndarray, q: float, init_level: float, min_peaks: int) -> tuple[float, dict[str, Any]]:
    """``pot`` with its fallbacks (module docstring): the exponential tail beyond the data, else the quantile."""
    value, params = _pot(scores, q, init_level, min_peaks)
    if q * len(scores) < 1.0:  # the target lies beyond the calibration data
        tail_value, tail = _exponential_tail(scores, q)
        if not math.isfinite(value) or tail_value > value:
            params.update(fallback="exponential_tail", pot_value=value if math.isfinite(value) else None, tail=tail)
            value = tail_value
    if not math.isfinite(value):
        value = float(np.quantile(scores, 1.0 - q, method="higher"))
        params["fallback"] = "quantile"
    return value, params


def _pot(scores: np.ndarray, q: float, init_level: float, min_peaks: int) -> tuple[float, dict[str, Any]]:
    """Peaks-over-threshold; returns NaN (and the reason) when a fit is not possible."""
    from scipy.stats import genpareto

    n = len(scores)
    u = float(np.quantile(scores, init_level))
    excess = scores[scores > u] - u
    params: dict[str, Any] = {"init_level": init_level, "u": u, "n_peaks": len(excess)}
    if len(excess) < min_peaks:
        params["reason"] = f"{len(excess)} peaks over the initial level, fewer than min_peaks={min_peaks}"
        return float("nan"), params
    if q * n / len(excess) >= 1.0:
        # The target is less extreme than the initial level: the empirical quantile is the better estimate.
        params["reason"] = "target rate not beyond the initial level"
        return float("nan"), params
    xi, _, sigma = genpareto.fit(excess, floc=0.0)
    ratio = q * n / len(excess)
    z = u - sigma * math.log(ratio) if abs(xi) < 1e-06 else u + sigma / xi * (ratio ** (-xi) - 1.0)
    params.update({"xi": float(xi), "sigma": float(sigma)})
    top = float(scores.max())
    floor = float(np.quantile(scores, 1.0 - q, method="higher"))
    if z < floor:  # a short-tailed fit (xi << 0) may end below scores the target says are rare
        params["reason"] = (f"the fit (xi={xi:.3g}) puts the level at {z:.4g}, below the empirical "
                            f"{1 - q:.6g} quantile ({floor:.4g}): raised to it")
        params["pot_value"] = float(z)
        return floor, params
    if q * n >= 1.0 and z > top:
        params["reason"] = (f"the fit (xi={xi:.3g}) puts the level at {z:.4g}, above the largest of {n} calibration "
                            f"scores ({top:.4g}) although the target lies inside them")
        params["pot_value"] = float(z)
        return float("nan"), params
    return float(z), params


def split_history(n_rows: int, fraction: float, window: int) -> list[Piece]:
    """Cut a frame of ``n_rows`` into up to `CALIBRATION_PARTS` consecutive parts (each at least 20 windows long,
    or 200 rows) and hold back the last ``fraction`` of every part for calibration, so that the calibration set
    spans the whole history (its regimes, its days) instead of only its tail.

    >>> split_history(1000, 0.2, 10)
    [(0, 160, 160, 200), (200, 360, 360, 400), (400, 560, 560, 600), (600, 760, 760, 800), (800, 960, 960, 1000)]
    >>> split_history(300, 0.2, 16)
    [(0, 240, 240, 300)]
    """
    n_parts = max(1, min(CALIBRATION_PARTS, n_rows // max(20 * window, 200)))
    bounds = np.linspace(0, n_rows, n_parts + 1).round().astype(int).tolist()
    out = []
    for a, b in itertools.pairwise(bounds):
        cut = a + round((b - a) * (1 - fraction))
        out.append((a, cut, cut, b))
    return out


def alarm_statistic(scores: np.ndarray, k: int, n: int) -> np.ndarray:
    """The ``k``-th largest of each run of ``n`` consecutive window scores.

    The alarm rule raises exactly when this statistic exceeds the threshold, so calibrating the threshold on it
    controls how often normal data meets the raise condition; bursts shorter than ``k`` windows (load changes,
    starts and stops) no longer set the threshold. A segment shorter than ``n`` windows (a short history's
    calibration pieces) gives its window scores themselves: the statistic can be no larger, so the threshold errs
    on the safe side.

    >>> alarm_statistic(np.array([5.0, 1.0, 4.0, 2.0, 3.0]), k=2, n=3).tolist()
    [4.0, 2.0, 3.0]
    >>> alarm_statistic(np.array([5.0, 1.0]), k=1, n=3).tolist()
    [5.0, 1.0]
    """
    if len(scores) < n:
        return np.asarray(scores, dtype=np.float64)
    width = n
    view = np.lib.stride_tricks.sliding_window_view(scores, width)
    chunk = max(1, 2_000_000 // width)  # np.partition copies: bound the memory
    return np.concatenate([np.partition(view[i : i + chunk], width - k, axis=1)[:, width - k]
                           for i in range(0, len(view), chunk)])
