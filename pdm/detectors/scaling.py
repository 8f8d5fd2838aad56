"""Robust per-sensor scaling, fitted on training data only: one global scaling, or one per machine.

``scaled = (x - center) / scale`` with ``center`` the median and ``scale`` the interquartile range / 1.349 (the
standard deviation for normal data, robust to spikes), but at least ``STD_FLOOR`` (0.25) times the standard
deviation: a metric that is flat most of the time with large normal excursions (server counters, a valve that
opens now and then) has a tiny IQR, and its normal excursions would otherwise be thousands of "deviations" (seen:
40,000). When a sensor's IQR is 0 its standard deviation is used; when that is 0 too (a constant column),
``scale`` is ``1e-3 * max(|center|, 1)``, so any later change of a sensor that never moved in training stands out.
Such columns are listed in the training summary.

With ``mode="per_machine"`` each machine seen in training gets statistics from its own normal history, which
removes unit-to-unit baseline differences; a machine never seen falls back to the global statistics (and is
logged) until `Scaler.add_machine` gives it its own. A machine's scale is floored at ``min_scale_ratio`` (0.5) times
the fleet's: a machine that sat in one operating regime through its whole history has a tiny spread, and its next
load change would otherwise look like a fault.

>>> import numpy as np
>>> s = Scaler.fit({"a": np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])}, mode="global")
>>> s.global_stats.center, round(s.global_stats.scale[0], 4)
([3.0], 1.4826)
>>> s.transform(np.array([[3.0]]), "a").tolist()
[[0.0]]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pdm.errors import DataError

logger = logging.getLogger(__name__)

ScalingMode = Literal["global", "per_machine"]
IQR_TO_STD = 1.349
STD_FLOOR = 0.25  # the scale is at least this share of the standard deviation


class SensorStats(BaseModel):
    """Per-sensor center and scale, in the order of the model's features."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    center: list[float]
    scale: list[float] = Field(description="always > 0")
    n_rows: int
    constant: list[bool]

    @classmethod
    def from_values(cls, values: np.ndarray, label: str) -> SensorStats:
        if values.ndim != 2 or values.shape[0] == 0:
            raise DataError(f"{label}: no rows to fit scaling on")
        all_missing = np.all(np.isnan(values), axis=0)
        if all_missing.any():
            raise DataError(f"{label}: sensor column(s) at position {np.flatnonzero(all_missing).tolist()} have no "
                            "values at all: expected at least one reading per sensor")
        center = np.nanmedian(values, axis=0)
        q75, q25 = np.nanpercentile(values, [75, 25], axis=0)
        scale = (q75 - q25) / IQR_TO_STD
        std = np.nanstd(values, axis=0)
        scale = np.where(scale > 1e-12, np.maximum(scale, STD_FLOOR * std), std)
        constant = scale <= 1e-12
        scale = np.where(constant, 1e-3 * np.maximum(np.abs(center), 1.0), scale)
        return cls(center=center.tolist(), scale=scale.tolist(), n_rows=int(values.shape[0]),
                   constant=constant.tolist())


class Scaler(BaseModel):
    """Fitted scaling; serialised as ``scaler.json``."""

    model_config = ConfigDict(extra="forbid")
    mode: ScalingMode
    global_stats: SensorStats
    machines: dict[str, SensorStats] = Field(default_factory=dict)
    min_scale_ratio: float = Field(0.5, ge=0, description="per-machine scale >= this x the global scale")

    @classmethod
    def fit(cls, values_by_machine: Mapping[str, np.ndarray], mode: ScalingMode) -> Scaler:
        """Fit from each machine's training readings (rows x sensors, NaN allowed)."""
        if not values_by_machine:
            raise DataError("no training rows to fit scaling on")
        stacked = np.concatenate(list(values_by_machine.values()), axis=0)
        global_stats = SensorStats.from_values(stacked, "training data")
        machines: dict[str, SensorStats] = {}
        if mode == "per_machine":
            machines = {mid: SensorStats.from_values(v, f"machine {mid!r}") for mid, v in values_by_machine.items()}
        scaler = cls(mode=mode, global_stats=global_stats)
        for mid, stats in machines.items():
            scaler.machines[mid] = scaler._floored(stats)
        return scaler

    def _floored(self, stats: SensorStats) -> SensorStats:
        floor = np.asarray(self.global_stats.scale) * self.min_scale_ratio
        scale = np.maximum(np.asarray(stats.scale), floor)
        return stats.model_copy(update={"scale": scale.tolist()})

    def add_machine(self, machine_id: str, values: np.ndarray) -> None:
        """Give a machine its own statistics from its normal history (``per_machine`` mode only)."""
        if self.mode != "per_machine":
            raise DataError(f"scaling mode is {self.mode!r}: per-machine statistics need mode 'per_machine'")
        self.machines[machine_id] = self._floored(SensorStats.from_values(values, f"machine {machine_id!r}"))

    def stats_for(self, machine_id: str) -> SensorStats:
        if self.mode == "per_machine":
            stats = self.machines.get(machine_id)
            if stats is not None:
                return stats
            logger.warning("machine %r has no per-machine scaling yet: using the fleet's global scaling", machine_id)
        return self.global_stats

    def transform(self, values: np.ndarray, machine_id: str) -> np.ndarray:
        """Scaled float32 copy; NaN stays NaN (see `pdm.detectors.frames.fill_missing`)."""
        stats = self.stats_for(machine_id)
        center = np.asarray(stats.center)
        scale = np.asarray(stats.scale)
        return np.asarray((values - center) / scale, dtype=np.float32)

    def constant_columns(self) -> list[int]:
        return [i for i, c in enumerate(self.global_stats.constant) if c]
