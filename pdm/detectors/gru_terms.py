"""The GRU autoencoder's score, sensor by sensor, and the fitted figures it needs (``envelope.json``).

Each sensor ``j`` of a window gets three terms, all in the units of that sensor's own normal behaviour:

- **dynamics**: the reconstruction error of the window (with each sensor's window mean removed when
  ``center_windows``), divided by that sensor's ``DYNAMICS_LEVEL`` quantile on the training windows
  (``error_scale``), so that a sensor whose error is unusual *for it* stands out (a smooth temperature counts as
  much as a noisy vibration, and a sensor whose errors are heavy-tailed is judged against its own tail).
  The sensors' average of these is then divided by its own ``DYNAMICS_LEVEL`` quantile on the training windows
  (``dynamics_scale``): starts, stops and load steps make reconstruction errors heavy-tailed, and in these units a
  score of 1 is as unusual as the training data's rarest dynamics (one window in a thousand).
- **level**: how far the window leaves the sensor's normal envelope (its training range, widened by what held-out
  parts of the history showed, `pdm.detectors.ranges`): the mean squared excess in scaled units, times
  ``envelope_weight``.
- **relation**: how far the sensor's window mean leaves what the other sensors' means predict
  (`pdm.detectors.relations`, also widened by the held-out margin), times ``relations_weight``.

The window score is the sum over sensors; each sensor's share of it is its contribution, so the blame lands on
the sensor that behaves unusually for itself. A level or relation excess of ``d`` scaled units adds
``weight x d**2``: with the default weight 8, a sensor 0.35 scaled units beyond its widened range counts as much
as the rarest dynamics of the training data.

Models saved before these terms (``envelope.json`` without ``error_scale``) score as they were saved: the mean
over sensors of reconstruction error + envelope excess + relations excess x ``relations_weight`` x the threshold.

>>> import numpy as np
>>> t = LevelTerms(quantile=1e-4, low=[-1.0, -1.0], high=[1.0, 1.0], margin=[0.5, 0.0], outside=[0.0, 0.0],
...                error_scale=[0.01, 0.5], dynamics_scale=1.0)
>>> w = np.zeros((1, 4, 2)); w[0, :, 0] = 2.0                       # sensor 0 sits 1 unit beyond its envelope
>>> t.envelope_excess(w).round(3).tolist()
[[1.0, 0.0]]
>>> t.dynamics(np.array([[0.01, 0.5]])).tolist()                     # each sensor at its normal error level
[[0.5, 0.5]]
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pdm.detectors.ranges import HeldOutRanges, covered
from pdm.errors import CorruptModelError
from pdm.saving import VersionDir

ENVELOPE_FILE = "envelope.json"
ENVELOPE_Q = 1e-4  # the normal envelope: this quantile and its complement of each scaled sensor in training
ERROR_SCALE_FLOOR = 1e-3  # share of the largest sensor's error scale below which a sensor's scale is raised
DYNAMICS_LEVEL = 0.999  # the quantile of the training windows' dynamics that the dynamics term is divided by
LEVEL_CAP = 100.0  # the most the level and relation terms add to a window's score (a bounded score)


class LevelTerms(BaseModel):
    """``envelope.json``: the envelope (already widened by ``margin``) and each sensor's normal error level."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    quantile: float = Field(gt=0, lt=0.5)
    low: list[float]
    high: list[float]
    margin: list[float] | None = Field(None, description="held-out widening included in low/high")
    outside: list[float] | None = Field(None, description="held-out share outside the rest's range, per sensor")
    error_scale: list[float] | None = Field(None, description="DYNAMICS_LEVEL quantile of each sensor's "
                                            "reconstruction error on the training windows; None in models saved "
                                            "before it (legacy score)")
    dynamics_scale: float = Field(1.0, gt=0, description="DYNAMICS_LEVEL quantile of the training windows' "
                                  "normalised dynamics")
    level: bool = Field(True, description="whether the envelope and relations terms score (off for a history too "
                        "short to show the operating range)")
    ignored: list[bool] | None = Field(None, description="sensors constant in training: not scored (the model has "
                                       "never seen them move, so any reading of theirs would be a guess)")

    @model_validator(mode="after")
    def _consistent(self) -> LevelTerms:
        n = len(self.low)
        lists = {"high": self.high, "margin": self.margin, "outside": self.outside, "error_scale": self.error_scale,
                 "ignored": self.ignored}
        for name, values in lists.items():
            if values is not None and len(values) != n:
                raise ValueError(f"found {len(values)} values in {name}, expected {n} (one per sensor)")
        every = [*self.low, *self.high, *(self.margin or []), *(self.error_scale or [])]
        if n < 1 or not np.all(np.isfinite(every)):
            raise ValueError("found no sensors or non-finite values, expected finite values for at least one sensor")
        if self.error_scale is not None and min(self.error_scale) <= 0:
            raise ValueError(f"found error_scale {self.error_scale}, expected positive values")
        return self

    @property
    def legacy(self) -> bool:
        """Saved before per-sensor error levels: scored with the old formula (module docstring)."""
        return self.error_scale is None

    @classmethod
    def fit(cls, blocks: list[np.ndarray], train_errors: np.ndarray, *, level: bool = True) -> LevelTerms:
        """``blocks``: scaled fitting rows in consecutive parts of the history; ``train_errors``: (B, F) per-sensor
        reconstruction errors of training windows."""
        ranges = HeldOutRanges.fit(blocks, quantile=ENVELOPE_Q)
        low, high = ranges.widened()
        rows = np.concatenate([b for b in blocks if len(b)])
        ignored = np.ptp(rows, axis=0) == 0
        errors = np.asarray(train_errors, dtype=np.float64)[:, ~ignored] if (~ignored).any() else train_errors
        scale = np.ones(len(ignored))
        scale[~ignored] = np.quantile(errors, DYNAMICS_LEVEL, axis=0)
        scale = np.maximum(scale, ERROR_SCALE_FLOOR * max(float(scale[~ignored].max(initial=0.0)), 1e-12))
        tail = float(np.quantile((errors / scale[~ignored]).mean(axis=1), DYNAMICS_LEVEL)) if (~ignored).any() else 1.0
        return cls(quantile=ENVELOPE_Q, low=low.tolist(), high=high.tolist(), margin=ranges.margin,
                   outside=ranges.outside, error_scale=scale.tolist(), dynamics_scale=max(tail, 1e-12),
                   ignored=ignored.tolist(), level=level)

    @property
    def scored(self) -> np.ndarray:
        """(F,) 1.0 for a scored sensor, 0.0 for one constant in training."""
        return np.asarray([0.0 if i else 1.0 for i in (self.ignored or [False] * len(self.low))])

    def envelope_excess(self, windows: np.ndarray) -> np.ndarray:
        """(B, T, F) scaled windows -> (B, F) mean squared distance beyond the envelope."""
        low, high = np.asarray(self.low), np.asarray(self.high)
        excess = np.maximum(windows - high, 0.0) + np.maximum(low - windows, 0.0)
        mask = self.scored * covered(self.outside, len(self.low))
        return np.asarray(np.mean(np.square(excess, dtype=np.float64), axis=1) * mask)

    def dynamics(self, errors: np.ndarray) -> np.ndarray:
        """(B, F) reconstruction errors -> each sensor's share of the dynamics term (module docstring)."""
        scale = np.asarray(self.error_scale if self.error_scale is not None else np.ones(len(self.low)))
        scored = self.scored
        return np.asarray(errors * scored / (scale * max(scored.sum(), 1.0) * self.dynamics_scale))

    def level_terms(self, envelope: np.ndarray, relations: np.ndarray) -> np.ndarray:
        """(B, F) weighed envelope and relation excesses -> each sensor's level term; a window's total is at most
        `LEVEL_CAP`, shrunk in proportion so that the sensors keep their ranking."""
        level = (envelope + relations) * self.scored
        total = level.sum(axis=1, keepdims=True)
        return np.asarray(level * np.minimum(1.0, LEVEL_CAP / np.where(total > 0, total, 1.0)))


def read_level_terms(version: VersionDir, n_features: int) -> LevelTerms:
    """``envelope.json`` of a verified version, validated (also the ``{quantile, low, high}`` of older models)."""
    terms = version.read_json(ENVELOPE_FILE, LevelTerms)
    if len(terms.low) != n_features:
        raise CorruptModelError(version.path(ENVELOPE_FILE), f"found bounds for {len(terms.low)} sensors, expected "
                                f"{n_features}", "restore the version from a backup or retrain")
    return terms
