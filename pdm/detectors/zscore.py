"""Robust z-score baseline: per-sensor ``|x - median| / scale`` of each reading, the maximum over sensors.

It shares scaling, label-free calibration and the alarm rule with every detector, so comparing it with the GRU
autoencoder on the same data shows what learning the sensors' joint dynamics adds. A high score means anomalous.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"ts": np.arange(2000.0), "temperature": rng.normal(60, 1, 2000)})
>>> det = RobustZScoreDetector(threshold_method="quantile", target_false_alarm_rate=0.01).fit(df)
>>> spike = df.copy(); spike.loc[1500, "temperature"] = 90.0
>>> bool(det.score(spike).idxmax() == 1500)
True
"""

from __future__ import annotations

import numpy as np

from pdm.detectors.base import Detector, Progress


class RobustZScoreDetector(Detector):
    """Baseline detector with no learned dynamics; takes the common parameters of `Detector`."""

    kind = "robust_zscore"

    @property
    def window_length(self) -> int:
        return 1

    def _fit_core(self, segments: list[np.ndarray], progress: Progress | None) -> dict[str, object]:
        return {"train_rows": int(sum(len(s) for s in segments))}

    def _window_errors(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(np.square(windows[:, -1, :], dtype=np.float64))

    @staticmethod
    def _aggregate(errors: np.ndarray) -> np.ndarray:
        return np.asarray(np.sqrt(errors.max(axis=1)))
