"""Fit a detector and its robust z-score baseline on the same frames: what ``python -m pdm train`` saves, and what a
retrain's challenger is (`pdm.retrain.challenger`).

The baseline shares the detector's common parameters (those of `Detector.__init__`: sensors, columns, units,
scaling, calibration, threshold method and target, alarm rule, gap factor, seed), so the two are judged under the
same rules and comparing them shows what the learned dynamics add.
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from pdm.detectors.base import Detector, Frames, Progress
from pdm.detectors.zscore import RobustZScoreDetector

D = TypeVar("D", bound=Detector)


def baseline_params(params: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` the z-score baseline takes (the common `Detector` parameters)."""
    common = inspect.signature(RobustZScoreDetector.__init__).parameters
    return {k: v for k, v in params.items() if k in common and k != "self"}


def fit_with_baseline(detector: D, frames: Frames, *,
                      progress: Progress | None = None) -> tuple[D, RobustZScoreDetector]:
    """Fit ``detector`` (``progress`` is called after each epoch) and a baseline with its common parameters."""
    detector.fit(frames, progress=progress)
    baseline = RobustZScoreDetector(**baseline_params(detector.get_params())).fit(frames)
    return detector, baseline
