"""The alarm rule: raise after ``k`` of the last ``n`` windows exceed the threshold, clear after ``m`` consecutive
quiet windows. One `AlarmTracker` holds the state of one machine; the batch path and the daemon share it.

A window is *quiet* when its score is under ``clear_ratio`` x the threshold (hysteresis: with ``clear_ratio`` < 1 a
score hovering around the threshold does not clear and raise again). ``m`` is also the merge gap: an alarm whose
score dips for fewer than ``m`` windows stays one alarm, so one fault is one alert.

The rule counts windows; a detector's default is set in time (`AlarmRule.at`): over the threshold for a minute of
the last two, quiet for four hours, converted at the training data's sampling period, so that the same default
means the same at 1 Hz and at one reading a minute.

>>> rule = AlarmRule(k=2, n=3, m=2)
>>> rule.apply([True, False, True, True, False, False, True]).tolist()
[False, False, True, True, True, False, False]
>>> AlarmRule.at(1.0).model_dump()
{'k': 60, 'n': 120, 'm': 14400, 'clear_ratio': 1.0}
>>> AlarmRule.at(60.0, clear_ratio=0.5).model_dump()
{'k': 1, 'n': 2, 'm': 240, 'clear_ratio': 0.5}
>>> hysteresis = AlarmRule(k=1, n=1, m=2, clear_ratio=0.5)
>>> hysteresis.apply_scores(np.array([2.0, 0.9, 0.8, 0.4, 0.3]), threshold=1.0).tolist()
[True, True, True, True, False]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

RAISE_S = 60.0  # default: over the threshold this long ...
LOOK_S = 120.0  # ... of the last LOOK_S seconds raises
CLEAR_S = 14_400.0  # default: quiet this long clears (and merges two raises into one alarm)


class AlarmRule(BaseModel):
    """Serialised as ``alarm.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    k: int = Field(30, ge=1, description="windows over the threshold, among the last n, that raise an alarm")
    n: int = Field(60, ge=1, description="length of the raise look-back")
    m: int = Field(60, ge=1, description="consecutive quiet windows that clear an alarm")
    clear_ratio: float = Field(1.0, gt=0, le=1, description="a window is quiet when its score is under this share "
                               "of the threshold (1: under the threshold, the rule of models saved before it)")

    @model_validator(mode="after")
    def _k_le_n(self) -> AlarmRule:
        if self.k > self.n:
            raise ValueError(f"found k={self.k} > n={self.n}, expected k <= n")
        return self

    @classmethod
    def at(cls, period_s: float, *, k: int | None = None, n: int | None = None, m: int | None = None,
           clear_ratio: float = 1.0) -> AlarmRule:
        """The rule at the sampling period ``period_s``: ``k``, ``n`` and ``m`` as given (windows), those not given
        from the time defaults (`RAISE_S` of the last `LOOK_S` seconds raise, `CLEAR_S` quiet seconds clear), at
        least one window each. A `pydantic.ValidationError` for an impossible rule (k > n, a count under 1)."""
        if not (math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"found period_s={period_s!r}, expected a positive number of seconds")
        n = n if n is not None else max(1, round(LOOK_S / period_s))
        k = k if k is not None else max(1, math.ceil(n * RAISE_S / LOOK_S))
        m = m if m is not None else max(1, round(CLEAR_S / period_s))
        return cls(k=k, n=n, m=m, clear_ratio=clear_ratio)

    def every(self, stride: int) -> AlarmRule:
        """The rule for a tracker fed only every ``stride``-th window (a service scoring with a stride): the same
        spans in time, each count divided by ``stride`` and rounded up.

        >>> AlarmRule(k=60, n=120, m=14_400, clear_ratio=0.5).every(10).model_dump()
        {'k': 6, 'n': 12, 'm': 1440, 'clear_ratio': 0.5}
        """
        if stride < 1:
            raise ValueError(f"found stride={stride}, expected >= 1")
        if stride == 1:
            return self
        return AlarmRule(k=math.ceil(self.k / stride), n=math.ceil(self.n / stride), m=math.ceil(self.m / stride),
                         clear_ratio=self.clear_ratio)

    def describe(self, period_s: float | None = None) -> str:
        """The rule in one line, as ``train`` and ``info`` print it; with the sampling period ``period_s``, also in
        time.

        >>> AlarmRule.at(1.0, clear_ratio=0.5).describe()
        'raise on 60 of 120 windows over, clear after 14400 under 0.5 x threshold'
        >>> AlarmRule.at(60.0, clear_ratio=0.5).describe(60.0)
        'raise on 1 of 2 windows over, clear after 240 under 0.5 x threshold (at 60 s a window: 1 min of 2 min, 4 h)'
        """
        text = (f"raise on {self.k} of {self.n} windows over, clear after {self.m} under {self.clear_ratio:g} x "
                "threshold")
        if period_s is None or not (math.isfinite(period_s) and period_s > 0):
            return text
        k, n, m = (span(count * period_s) for count in (self.k, self.n, self.m))
        return f"{text} (at {period_s:g} s a window: {k} of {n}, {m})"

    def tracker(self) -> AlarmTracker:
        return AlarmTracker(self)

    def apply(self, exceeded: Iterable[bool], quiet: Iterable[bool] | None = None) -> np.ndarray:
        """Alarm state after each window of one uninterrupted sequence (``quiet``: default not ``exceeded``)."""
        tracker = self.tracker()
        flags = list(exceeded)
        calm = [not e for e in flags] if quiet is None else list(quiet)
        return np.fromiter((tracker.update(bool(e), bool(q)) for e, q in zip(flags, calm, strict=True)), dtype=bool)

    def apply_scores(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """`apply` to window scores judged against ``threshold`` (with the rule's hysteresis)."""
        scores = np.asarray(scores, dtype=np.float64)
        return self.apply(scores > threshold, scores < self.clear_ratio * threshold)


def span(seconds: float) -> str:
    """A duration for people: ``90 s``, ``2 min``, ``4 h``, ``10 d`` (the largest unit it is at least one of).

    >>> span(45.0), span(120.0), span(14_400.0), span(864_000.0), span(5400.0)
    ('45 s', '2 min', '4 h', '10 d', '1.5 h')
    """
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


class AlarmTracker:
    """Incremental alarm state of one machine."""

    def __init__(self, rule: AlarmRule) -> None:
        self.rule = rule
        self.active = False
        self._recent: deque[bool] = deque(maxlen=rule.n)
        self._under = 0

    def update(self, exceeded: bool, quiet: bool | None = None) -> bool:
        """Feed one window's verdict (``quiet``: its score is under the clear level; default not ``exceeded``);
        returns whether the alarm is active after it."""
        self._recent.append(exceeded)
        calm = not exceeded if quiet is None else quiet
        self._under = self._under + 1 if calm else 0
        if not self.active and sum(self._recent) >= self.rule.k:
            self.active = True
        elif self.active and self._under >= self.rule.m:
            self.active = False
            self._recent.clear()
        return self.active

    def update_score(self, score: float, threshold: float) -> bool:
        """`update` with a window score judged against ``threshold`` (with the rule's hysteresis)."""
        return self.update(score > threshold, score < self.rule.clear_ratio * threshold)

    def reset(self) -> None:
        """Forget history (after a gap restarts the window)."""
        self.active = False
        self._recent.clear()
        self._under = 0
