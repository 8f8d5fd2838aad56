"""The alarm rule: raise after ``k`` of the last ``n`` windows exceed the threshold, clear after ``m`` consecutive
windows under it. One `AlarmTracker` holds the state of one machine; the batch path and the daemon share it.

>>> rule = AlarmRule(k=2, n=3, m=2)
>>> rule.apply([True, False, True, True, False, False, True]).tolist()
[False, False, True, True, True, False, False]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class AlarmRule(BaseModel):
    """Serialised as ``alarm.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    k: int = Field(30, ge=1, description="windows over the threshold, among the last n, that raise an alarm")
    n: int = Field(60, ge=1, description="length of the raise look-back")
    m: int = Field(60, ge=1, description="consecutive windows under the threshold that clear an alarm")

    @model_validator(mode="after")
    def _k_le_n(self) -> AlarmRule:
        if self.k > self.n:
            raise ValueError(f"found k={self.k} > n={self.n}, expected k <= n")
        return self

    def tracker(self) -> AlarmTracker:
        return AlarmTracker(self)

    def apply(self, exceeded: Iterable[bool]) -> np.ndarray:
        """Alarm state after each window of one uninterrupted sequence."""
        tracker = self.tracker()
        return np.fromiter((tracker.update(bool(e)) for e in exceeded), dtype=bool)


class AlarmTracker:
    """Incremental alarm state of one machine."""

    def __init__(self, rule: AlarmRule) -> None:
        self.rule = rule
        self.active = False
        self._recent: deque[bool] = deque(maxlen=rule.n)
        self._under = 0

    def update(self, exceeded: bool) -> bool:
        """Feed one window's verdict; returns whether the alarm is active after it."""
        self._recent.append(exceeded)
        self._under = 0 if exceeded else self._under + 1
        if not self.active and sum(self._recent) >= self.rule.k:
            self.active = True
        elif self.active and self._under >= self.rule.m:
            self.active = False
            self._recent.clear()
        return self.active

    def reset(self) -> None:
        """Forget history (after a gap restarts the window)."""
        self.active = False
        self._recent.clear()
        self._under = 0
