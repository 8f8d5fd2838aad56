"""Detectors share one contract (`pdm.detectors.base.Detector`); a high score means anomalous.

Imported lazily so that ``import pdm.detectors`` does not import TensorFlow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Detector", "GRUAutoencoderDetector", "PCADetector", "RobustZScoreDetector"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from pdm.detectors.base import Detector

        return Detector
    if name == "GRUAutoencoderDetector":
        from pdm.detectors.gru import GRUAutoencoderDetector

        return GRUAutoencoderDetector
    if name == "PCADetector":
        from pdm.detectors.pca import PCADetector

        return PCADetector
    if name == "RobustZScoreDetector":
        from pdm.detectors.zscore import RobustZScoreDetector

        return RobustZScoreDetector
    raise AttributeError(f"module 'pdm.detectors' has no attribute {name!r}")
