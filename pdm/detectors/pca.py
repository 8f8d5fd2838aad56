"""PCA baseline with Hotelling's T² and the Q statistic (squared prediction error), the standard of process monitoring.

Per reading (window 1) on the shared robust scaling: principal components are fitted on the fitting rows of every
machine, and the first ``k`` are kept: the fewest explaining ``variance`` (0.95) of the total, or ``n_components``.
For a reading ``x`` (scaled, minus the training mean), with ``P`` the retained loadings (F x k) and ``λ`` their
variances:

- ``T² = Σ_i (P_i·x)² / λ_i``: how far the reading lies from normal *inside* the retained subspace (an unusual
  operating point that still follows the usual correlations);
- ``Q = |x - P Pᵀ x|²``: how far it lies *off* that subspace (the correlations broken).

Both get a label-free normal level from the fitting rows at ``confidence`` (0.99): ``T²_lim = k (N² - 1) /
(N (N - k)) F(k, N - k)`` and Box's ``Q_lim = g χ²(h)`` with ``g = θ₂/θ₁``, ``h = θ₁²/θ₂``, ``θ_j`` the sum of the
discarded variances to the power ``j``. The score is the *combined index* ``φ = T²/T²_lim + Q/Q_lim`` (Yue and Qin,
J. Process Control 2001): each statistic counts in units of its own normal level, so either one can raise the score,
and the common calibration (alarm statistic, peaks-over-threshold or quantile threshold on the held-back tail) and
alarm rule of `pdm.detectors.base` apply unchanged. The limits only weigh the two statistics; the threshold is the
calibrated one.

Attribution: each sensor's error is its share of ``φ``: its squared residual ``r_j² / Q_lim`` plus its complete
decomposition of T², ``(D^½ x)_j² / T²_lim`` with ``D^½ = P Λ^-½ Pᵀ`` (Alcala and Qin, Automatica 2009); the errors
of a reading sum to its score.

Two sensors that follow one load; a reading where each is inside its own range but the relation is broken stands out
(a z-score on each sensor would not see it):

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> load = rng.normal(0, 1, 3000)
>>> df = pd.DataFrame({"ts": np.arange(3000.0), "flow": load + rng.normal(0, 0.1, 3000),
...                    "pressure": 2 * load + rng.normal(0, 0.2, 3000)})
>>> det = PCADetector(threshold_method="quantile", target_false_alarm_rate=0.01).fit(df)
>>> det.pca_.n_components
1
>>> broken = df.copy(); broken.loc[2500, ["flow", "pressure"]] = [1.0, -2.0]
>>> bool(det.score(broken).idxmax() == 2500), bool(det.detect(broken)["exceeds"][2500])
(True, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from pdm.detectors.base import Detector, Progress
from pdm.detectors.calibration import ThresholdMethod
from pdm.detectors.scaling import ScalingMode
from pdm.errors import CorruptModelError, DataError
from pdm.saving import VersionDir, write_json

logger = logging.getLogger(__name__)

PCA_FILE = "pca.json"
RANK_TOLERANCE = 1e-9  # a component with less than this share of the largest variance is not kept (no T² on noise)


class PCAModel(BaseModel):
    """The fitted principal components and the normal levels of T² and Q; serialised as ``pca.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mean: list[float] = Field(description="training mean of each scaled sensor")
    components: list[list[float]] = Field(description="(k, sensors) retained loadings, orthonormal rows")
    eigenvalues: list[float] = Field(description="variance along each retained component, > 0")
    residual_variance: list[float] = Field(description="variances of the discarded components")
    confidence: float = Field(gt=0, lt=1, description="level of the normal limits")
    t2_limit: float = Field(gt=0)
    q_limit: float = Field(gt=0)
    n_fit: int = Field(ge=2, description="fitting rows")
    _mean: np.ndarray = PrivateAttr()
    _p: np.ndarray = PrivateAttr()
    _t2_map: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _consistent(self) -> PCAModel:
        f, k = len(self.mean), len(self.eigenvalues)
        if f < 1 or k < 1 or k > f or len(self.components) != k or any(len(r) != f for r in self.components):
            raise ValueError(f"found {len(self.components)} component rows of lengths "
                             f"{sorted({len(r) for r in self.components})}, {k} eigenvalues and {f} means, expected "
                             "k component rows of one length per sensor, 1 <= k <= sensors")
        p = np.asarray(self.components, dtype=np.float64).T
        lam = np.asarray(self.eigenvalues, dtype=np.float64)
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(self.mean)) and np.all(lam > 0)
                and math.isfinite(self.t2_limit) and math.isfinite(self.q_limit)):
            raise ValueError("found non-finite values or an eigenvalue <= 0, expected finite values, eigenvalues > 0")
        if not np.allclose(p.T @ p, np.eye(k), atol=1e-6):
            raise ValueError("found components that are not orthonormal, expected orthonormal rows")
        self._mean = np.asarray(self.mean, dtype=np.float64)
        self._p = p
        self._t2_map = (p / np.sqrt(lam)) @ p.T  # D^½ = P Λ^-½ Pᵀ
        return self

    @property
    def n_components(self) -> int:
        return len(self.eigenvalues)

    @property
    def explained_variance(self) -> float:
        """Share of the training variance in the retained subspace."""
        kept = float(sum(self.eigenvalues))
        return kept / (kept + float(sum(self.residual_variance)))

    @classmethod
    def fit(cls, rows: np.ndarray, *, variance: float, n_components: int | None, confidence: float) -> PCAModel:
        """Fit on scaled readings (N, F); module docstring for the limits."""
        from scipy.stats import chi2, f

        x = np.asarray(rows, dtype=np.float64)
        n, n_sensors = x.shape
        if n < 3:
            raise DataError(f"too few rows: found {n} fitting rows, expected at least 3 for PCA")
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        lam = s**2 / (n - 1)
        if lam[0] <= 0:
            raise DataError("no sensor varies in the training data: expected at least one that does for PCA")
        if n_components is not None:
            if not 1 <= n_components <= max(1, n_sensors - 1):
                raise DataError(f"found n_components={n_components}, expected 1 to {max(1, n_sensors - 1)} for "
                                f"{n_sensors} sensors (a residual must remain for Q)")
            k = n_components
        else:
            k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), variance - 1e-12) + 1)
        limit = min(int(np.sum(lam > RANK_TOLERANCE * lam[0])), n - 2, max(1, n_sensors - 1))
        if k > limit:
            logger.warning("PCA: keeping %d components instead of %d (rank of the training data, or %d rows)",
                           limit, k, n)
            k = limit
        residual = np.concatenate([lam[k:], np.zeros(max(0, n_sensors - len(lam)))])
        t2_limit = k * (n * n - 1) / (n * (n - k)) * float(f.ppf(confidence, k, n - k))
        theta1, theta2 = float(residual.sum()), float(np.square(residual).sum())
        floor = RANK_TOLERANCE * float(lam.sum())  # no residual variance: any departure counts
        q_limit = max(theta2 / theta1 * float(chi2.ppf(confidence, theta1**2 / theta2)), floor) if theta1 > floor \
            else floor
        return cls(mean=mean.tolist(), components=vt[:k].tolist(), eigenvalues=lam[:k].tolist(),
                   residual_variance=residual.tolist(), confidence=confidence, t2_limit=t2_limit, q_limit=q_limit,
                   n_fit=n)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sensor T² and Q contributions (each (B, F), rows summing to T² and to Q) of scaled readings (B, F)."""
        centred = np.asarray(x, dtype=np.float64) - self._mean
        residual = centred - (centred @ self._p) @ self._p.T
        return np.square(centred @ self._t2_map), np.square(residual)

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """T² and Q of scaled readings (B, F)."""
        t2, q = self.contributions(x)
        return t2.sum(axis=1), q.sum(axis=1)


class PCADetector(Detector):
    """PCA T² + Q baseline (module docstring). A high score means anomalous.

    Hyper-parameters (defaults in brackets): ``variance`` [0.95] share of the training variance the retained
    components explain; ``n_components`` [None] a fixed number of components instead; ``confidence`` [0.99] level of
    the normal limits that weigh T² against Q. The common parameters (features, scaling, calibration, alarm rule,
    seed) are documented in `pdm.detectors.base`.
    """

    kind = "pca_t2q"
    required_files = (PCA_FILE,)

    def __init__(
        self,
        *,
        variance: float = 0.95,
        n_components: int | None = None,
        confidence: float = 0.99,
        features: Sequence[str] | None = None,
        timestamp_column: str | None = None,
        machine_column: str | None = "machine_id",
        units: Mapping[str, str] | None = None,
        references: Mapping[str, str] | None = None,
        scaling: ScalingMode = "per_machine",
        max_gap_factor: float = 5.0,
        calibration_fraction: float = 0.2,
        threshold_method: ThresholdMethod = "declustered",
        target_false_alarm_rate: float = 1e-4,
        target_alarms_per_day: float = 0.05,
        alarm_k: int | None = None,
        alarm_n: int | None = None,
        alarm_m: int | None = None,
        alarm_clear: float = 0.5,
        machine_thresholds: bool = False,
        despike: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            features=features, timestamp_column=timestamp_column, machine_column=machine_column, units=units,
            references=references,
            scaling=scaling, max_gap_factor=max_gap_factor, calibration_fraction=calibration_fraction,
            threshold_method=threshold_method, target_false_alarm_rate=target_false_alarm_rate,
            target_alarms_per_day=target_alarms_per_day,
            alarm_k=alarm_k, alarm_n=alarm_n, alarm_m=alarm_m, alarm_clear=alarm_clear,
            machine_thresholds=machine_thresholds,
            despike=despike, seed=seed,
        )
        self.variance = variance
        self.n_components = n_components
        self.confidence = confidence

    @property
    def window_length(self) -> int:
        return 1

    def _check_params(self) -> None:
        super()._check_params()
        if not 0 < self.variance <= 1:
            raise DataError(f"found variance={self.variance}, expected 0 < variance <= 1")
        if self.n_components is not None and int(self.n_components) < 1:
            raise DataError(f"found n_components={self.n_components}, expected None or >= 1")
        if not 0 < self.confidence < 1:
            raise DataError(f"found confidence={self.confidence}, expected between 0 and 1")

    def _fit_core(self, segments: list[np.ndarray], progress: Progress | None) -> dict[str, Any]:
        pca = PCAModel.fit(np.concatenate(segments), variance=self.variance, n_components=self.n_components,
                           confidence=self.confidence)
        self.pca_ = pca
        logger.info("PCA: %d of %d components explain %.3f of the variance; T²_lim %.4g, Q_lim %.4g",
                    pca.n_components, len(pca.mean), pca.explained_variance, pca.t2_limit, pca.q_limit)
        return {"train_rows": pca.n_fit, "n_components": pca.n_components,
                "explained_variance": pca.explained_variance, "t2_limit": pca.t2_limit, "q_limit": pca.q_limit}

    def _window_errors(self, windows: np.ndarray) -> np.ndarray:
        t2, q = self.pca_.contributions(windows[:, -1, :])
        return np.asarray(t2 / self.pca_.t2_limit + q / self.pca_.q_limit)

    @staticmethod
    def _aggregate(errors: np.ndarray) -> np.ndarray:
        return np.asarray(errors.sum(axis=1))

    def _save_core(self, directory: Path) -> None:
        write_json(directory / PCA_FILE, self.pca_)

    def _load_core(self, version: VersionDir, engine: str = "auto") -> None:
        pca = version.read_json(PCA_FILE, PCAModel)
        if len(pca.mean) != len(self.features_):
            raise CorruptModelError(version.path(PCA_FILE), f"found {len(pca.mean)} sensors, expected "
                                    f"{len(self.features_)}", "restore the version from a backup or retrain")
        self.pca_ = pca
