"""Sensor relations: each sensor's window mean, as the other sensors' window means predict it.

A machine ties its sensors together through its operating point: a pump's discharge pressure and its vibration both
follow its speed, a motor's winding temperature follows its load. Many faults break such a relationship while every
sensor stays inside its own normal range (a leak lowers the pressure at the same speed, imbalance raises the
vibration at every speed), and an autoencoder whose window sees a minute of data reproduces the new level. This term
scores the broken relationship.

Rules:

- ``m`` is the mean of each scaled sensor over the window. Each sensor ``j`` is predicted by least squares, fitted on
  the training windows of the whole fleet (in each machine's own scaled units), from ``1``, the other sensors' means
  ``m_k`` and their pairwise products ``m_a * m_b`` (``a <= b``; no term involves ``j``). With more than
  ``MAX_QUADRATIC_SENSORS`` sensors the products are left out (a linear fit).
- The residual ``r_j = m_j - prediction_j`` is allowed the range it had in training, from its ``quantile`` to its
  ``1 - quantile`` quantile; the *excess* is the sum over sensors of the squared distance beyond that range, in the
  squared scaled units of the reconstruction error: 0 inside, growing quadratically outside.
- Attribution (`SensorRelations.contributions`): a broken relation shows in the residual of every sensor that takes
  part in it, so the excess is shared out by *reconstruction-based contribution*: sensor ``k``'s share is how much
  of the excess disappears when ``m_k`` is replaced by its own prediction (Alcala and Qin, Automatica 2009). The
  sensor whose value explains the break gets the blame, not the sensors predicted from it.
- A window in which some sensor does not change at all (a missing sensor carried forward, a stuck sensor: real
  readings jitter by at least one quantisation step over a window) has no relations term: the relation is not
  measured, and a machine alert would blame a data-quality problem on the machine. The reconstruction and envelope
  terms still score it, and the daemon's data-quality verdict reports the sensor. A sensor that holds one value in
  more than `STILL_SHARE` of the training windows (``still``: a server metric flat for an hour at a time) is still
  by nature, and so is one constant in training or a reference input: such a sensor holding one value is not a
  frozen sensor. (Before this rule, on SMD at one reading a minute, 88-100 % of the windows of every machine held
  some still metric, so the term scored almost nothing there.)
- ``reference`` is the score scale the detector weighs the term against (its threshold, see
  `pdm.detectors.gru`); ``None`` until calibrated.

Three noisy readings of one speed; the second then reads 25 % low at the same speed:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> speed = np.repeat(rng.uniform(0, 2, 200), 50)
>>> noise = lambda: rng.normal(0, 0.05, speed.size)
>>> normal = np.column_stack([speed + noise(), 2 * speed + noise(), 1 - speed + noise()])
>>> rel = SensorRelations.fit([normal], window=10)
>>> windows = lambda x: np.lib.stride_tricks.sliding_window_view(x, 10, axis=0).transpose(0, 2, 1)
>>> float(rel.excess(windows(normal)).sum(axis=1).max()) < 0.001    # the training data stays inside
True
>>> leak = normal.copy(); leak[:, 1] -= 0.5 * speed
>>> excess = rel.excess(windows(leak)).sum(axis=1)
>>> bool(np.mean(excess > 0) > 0.8)
True
>>> share = rel.contributions(windows(leak))                       # the same totals, shared out
>>> bool(np.allclose(share.sum(axis=1), excess))
True
>>> bool(np.mean(share[excess > 0].argmax(axis=1) == 1) > 0.9)       # blamed on the second reading
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from pdm.detectors.ranges import BLOCKS, HeldOutRanges, covered, time_blocks
from pdm.errors import CorruptModelError, DataError
from pdm.saving import VersionDir

logger = logging.getLogger(__name__)

RELATIONS_FILE = "relations.json"
RELATIONS_Q = 1e-4  # each residual's allowed range: this quantile and its complement in training
MAX_FIT_WINDOWS = 200_000  # training windows used for the fit (evenly strided beyond this)
MAX_QUADRATIC_SENSORS = 16  # beyond this many sensors the design leaves out the products (its size grows as F^2)
STILL_SHARE = 0.01  # a sensor that held one value in more training windows than this is still by nature


def n_terms(n_sensors: int, quadratic: bool = True) -> int:
    """Columns of the design: 1, every sensor mean, and (``quadratic``) every product of two (``a <= b``)."""
    return 1 + n_sensors + (n_sensors * (n_sensors + 1) // 2 if quadratic else 0)


def _pairs(n_sensors: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n_sensors) for b in range(a, n_sensors)]


def design(means: np.ndarray, quadratic: bool = True) -> np.ndarray:
    """(B, F) window means -> (B, n_terms(F)) design: ``[1, m_1..m_F, m_a * m_b for a <= b]``."""
    means = np.asarray(means, dtype=np.float64)
    products = [means[:, a] * means[:, b] for a, b in _pairs(means.shape[1])] if quadratic else []
    return np.column_stack([np.ones(len(means)), means, *products])


def own_terms(n_sensors: int, quadratic: bool = True) -> np.ndarray:
    """(F, n_terms) mask: ``True`` where a design column involves that sensor (it may not predict itself)."""
    mask = np.zeros((n_sensors, n_terms(n_sensors, quadratic)), dtype=bool)
    for j in range(n_sensors):
        mask[j, 1 + j] = True
        if quadratic:
            for i, (a, b) in enumerate(_pairs(n_sensors)):
                mask[j, 1 + n_sensors + i] = j in (a, b)
    return mask


def window_means(segment: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Mean of each sensor over every ``window`` consecutive rows (every ``stride``-th window), float64."""
    total = np.cumsum(np.vstack([np.zeros((1, segment.shape[1])), np.asarray(segment, dtype=np.float64)]), axis=0)
    return np.asarray((total[window:] - total[:-window])[::stride] / window)


class SensorRelations(BaseModel):
    """Fitted relations; serialised as ``relations.json``. ``coef[j]`` predicts sensor ``j`` from `design`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    quantile: float = Field(gt=0, lt=0.5, description="the residual range: this quantile and its complement")
    quadratic: bool = Field(description="whether the design holds the products of two sensor means")
    n_windows: int = Field(ge=1, description="training windows the fit used")
    coef: list[list[float]] = Field(description="(sensors, terms) least-squares coefficients")
    low: list[float] = Field(description="lowest normal residual of each sensor")
    high: list[float] = Field(description="highest normal residual of each sensor")
    reference: float | None = Field(None, gt=0, description="score scale the term was weighed against by models "
                                    "saved before the held-out margin (None: the detector's relations_weight alone)")
    margin: list[float] | None = Field(None, description="how far the held-out parts of the history went beyond "
                                       "the rest's residual range (already in low/high; `pdm.detectors.ranges`)")
    outside: list[float] | None = Field(None, description="held-out share outside the rest's residual range")
    still: list[float] | None = Field(None, description="share of training windows in which the sensor held one "
                                      "value (None: saved before the check; every sensor counts as never still)")
    _coef: np.ndarray = PrivateAttr()
    _low: np.ndarray = PrivateAttr()
    _high: np.ndarray = PrivateAttr()
    _covered: np.ndarray = PrivateAttr()
    _still: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> SensorRelations:
        f, terms = len(self.low), n_terms(len(self.low), self.quadratic)
        if f < 1 or len(self.high) != f or len(self.coef) != f:
            raise ValueError(f"found {len(self.coef)} coefficient rows, {len(self.low)} low and {len(self.high)} "
                             "high bounds, expected one of each per sensor (at least one sensor)")
        if any(len(row) != terms for row in self.coef):
            raise ValueError(f"found coefficient rows of lengths {sorted({len(r) for r in self.coef})}, "
                             f"expected {terms} for {f} sensors")
        coef = np.asarray(self.coef, dtype=np.float64)
        low, high = np.asarray(self.low, dtype=np.float64), np.asarray(self.high, dtype=np.float64)
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("found non-finite values, expected finite coefficients and bounds")
        if self.reference is not None and not math.isfinite(self.reference):
            raise ValueError(f"found reference={self.reference}, expected a finite number")
        if np.any(low > high):
            raise ValueError(f"found low > high for sensor(s) {np.flatnonzero(low > high).tolist()}, expected low <= "
                             "high")
        if np.any(coef[own_terms(f, self.quadratic)] != 0):
            raise ValueError("found a sensor predicted from its own mean, expected 0 for every term that involves it")
        self._coef, self._low, self._high = coef, low, high
        self._covered = covered(self.outside, f)  # a residual whose range the history does not cover is not scored
        if self.still is not None and (len(self.still) != f or not all(0.0 <= v <= 1.0 for v in self.still)):
            raise ValueError(f"found still={self.still}, expected one share between 0 and 1 per sensor ({f})")
        self._still = np.zeros(f, dtype=bool) if self.still is None else np.asarray(self.still) > STILL_SHARE
        return self

    @property
    def still_by_nature(self) -> np.ndarray:
        """(F,) whether the sensor held one value in more than `STILL_SHARE` of the training windows: a window in
        which it does so again is not a frozen sensor (a server metric flat for an hour, a slow setpoint)."""
        return self._still

    def __eq__(self, other: object) -> bool:  # the private numpy copies would make pydantic's comparison ambiguous
        return isinstance(other, SensorRelations) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]  # mutable list fields: not hashable

    @property
    def n_sensors(self) -> int:
        return len(self.low)

    @classmethod
    def fit(cls, segments: Sequence[np.ndarray], window: int, *, quantile: float = RELATIONS_Q,
            max_windows: int = MAX_FIT_WINDOWS, blocks: int = BLOCKS) -> SensorRelations:
        """Fit on scaled, filled training segments (each (L, F)); windows of ``window`` rows. Each residual's range
        is widened by what held-out parts of the history showed (`pdm.detectors.ranges`; ``blocks`` parts)."""
        usable = [s for s in segments if len(s) >= window]
        total = sum(len(s) - window + 1 for s in usable)
        if total == 0:
            raise DataError(f"no training segment holds a window of {window} rows: expected at least one")
        stride = max(1, math.ceil(total / max_windows))
        parts = time_blocks([window_means(s, window, stride) for s in usable], blocks)
        block_means = [np.concatenate(p) for p in parts if sum(len(x) for x in p)]
        means = np.concatenate(block_means)
        n = means.shape[1]
        quadratic = n <= MAX_QUADRATIC_SENSORS
        coef = _least_squares(means, quadratic)
        held_out = []  # residuals of each part under coefficients fitted without it (overfitting shows here)
        if len(block_means) >= 2:
            for i, part in enumerate(block_means):
                rest = np.concatenate([b for j, b in enumerate(block_means) if j != i])
                c = _least_squares(rest, quadratic)
                held_out.append((part - design(part, quadratic) @ c.T, rest - design(rest, quadratic) @ c.T))
        ranges = HeldOutRanges.from_held_out(means - design(means, quadratic) @ coef.T, held_out, quantile=quantile)
        low, high = ranges.widened()
        logger.info("sensor relations fitted on %d windows (%s): residual ranges %s, held-out margins %s",
                    len(means), "quadratic" if quadratic else "linear", np.round(high - low, 3).tolist(),
                    np.round(ranges.margin, 3).tolist())
        return cls(quantile=quantile, quadratic=quadratic, n_windows=len(means), coef=coef.tolist(),
                   low=low.tolist(), high=high.tolist(), margin=ranges.margin, outside=ranges.outside,
                   still=still_shares(usable, window, stride).tolist())

    def calibrated(self, reference: float) -> SensorRelations:
        """A copy weighed against ``reference`` (validated)."""
        return SensorRelations.model_validate({**self.model_dump(), "reference": reference})

    def residuals(self, windows: np.ndarray) -> np.ndarray:
        """(B, window, F) scaled windows -> (B, F) residual of each sensor's window mean."""
        return self._residuals(np.asarray(np.mean(windows, axis=1, dtype=np.float64)))

    def _residuals(self, means: np.ndarray) -> np.ndarray:
        return np.asarray(means - design(means, self.quadratic) @ self._coef.T)

    def _excess(self, residuals: np.ndarray) -> np.ndarray:
        out = np.maximum(residuals - self._high, 0.0) + np.maximum(self._low - residuals, 0.0)
        return np.asarray(out * out * self._covered)

    def excess(self, windows: np.ndarray) -> np.ndarray:
        """(B, window, F) scaled windows -> (B, F) squared excess of each sensor's residual beyond its range."""
        return self._excess(self.residuals(windows))

    def contributions(self, windows: np.ndarray) -> np.ndarray:
        """(B, window, F) -> (B, F): each window's total excess, shared out by reconstruction-based contribution
        (module docstring). Rows sum to the total excess (0 for a window with a frozen sensor, `frozen`, other than
        one still by nature: `still_by_nature`, which covers sensors constant in training and reference inputs);
        when no single replacement reduces it, the shares are those of `excess`."""
        means = np.asarray(np.mean(windows, axis=1, dtype=np.float64))
        r = self._residuals(means)
        excess = self._excess(r)
        total = excess.sum(axis=1)
        out = np.zeros_like(excess)
        hit = (total > 0) & ~frozen(windows, self.still_by_nature)
        if not hit.any():
            return out
        means, r, excess, total = means[hit], r[hit], excess[hit], total[hit]
        blame = np.empty_like(excess)
        for k in range(self.n_sensors):
            replaced = means.copy()
            replaced[:, k] -= r[:, k]
            blame[:, k] = np.maximum(total - self._excess(self._residuals(replaced)).sum(axis=1), 0.0)
        blamed = blame.sum(axis=1, keepdims=True)
        shares = np.where(blamed > 0, blame / np.where(blamed > 0, blamed, 1.0), excess / total[:, None])
        out[hit] = shares * total[:, None]
        return out


def _least_squares(means: np.ndarray, quadratic: bool) -> np.ndarray:
    """(F, n_terms) coefficients predicting each sensor's mean from the terms that do not involve it."""
    n = means.shape[1]
    x, mask = design(means, quadratic), own_terms(n, quadratic)
    coef = np.zeros((n, x.shape[1]))
    for j in range(n):
        coef[j, ~mask[j]] = np.linalg.lstsq(x[:, ~mask[j]], means[:, j], rcond=None)[0]
    return coef


def still_shares(segments: Sequence[np.ndarray], window: int, stride: int = 1) -> np.ndarray:
    """(F,) per sensor, the share of the ``window``-row windows (every ``stride``-th) in which it held one value.

    >>> seg = np.column_stack([np.arange(8.0), np.repeat([1.0, 2.0], 4)])
    >>> still_shares([seg], 4).tolist()                                 # the second: still in 2 windows of 5
    [0.0, 0.4]
    """
    counts, total = np.zeros(segments[0].shape[1]), 0
    for seg in segments:
        views = np.lib.stride_tricks.sliding_window_view(np.asarray(seg), window, axis=0)[::stride]  # (B, F, window)
        counts += (np.ptp(views, axis=2) == 0).sum(axis=0)
        total += len(views)
    return np.asarray(counts / max(total, 1))


def frozen(windows: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """(B, window, F) -> (B,): whether some sensor holds exactly one value over the whole window; sensors marked
    ``constant`` (F,) are not looked at (they hold one value by nature, not by fault).

    >>> w = np.array([[[1.0, 2.0], [1.0, 2.5]], [[1.0, 2.0], [1.5, 2.5]]])
    >>> frozen(w).tolist(), frozen(w, np.array([True, False])).tolist()
    ([True, False], [False, False])
    """
    still = np.ptp(windows, axis=1) == 0
    if constant is not None:
        still &= ~np.asarray(constant, dtype=bool)
    return np.asarray(still.any(axis=1))


def read_relations(version: VersionDir, n_features: int) -> SensorRelations | None:
    """``relations.json`` of a verified version, validated; ``None`` for a version saved before the term existed
    (its manifest does not list the file). Bad content is a `CorruptModelError` naming the problem."""
    rel = version.read_optional_json(RELATIONS_FILE, SensorRelations)
    if rel is None:
        logger.warning("%s has no %s (saved by an older pdm): scoring without the sensor-relations term; retrain to "
                       "use it", version.directory, RELATIONS_FILE)
        return None
    fix = "restore the version from a backup or retrain"
    if rel.n_sensors != n_features:
        raise CorruptModelError(version.path(RELATIONS_FILE), f"found {rel.n_sensors} sensors, expected {n_features}",
                                fix)
    if rel.reference is None and rel.margin is None:
        raise CorruptModelError(version.path(RELATIONS_FILE), "found reference and margin null, expected one of them",
                                fix)
    return rel
