"""The detector contract, shared by every detector. **A high score means anomalous.**

Public methods validate their input and call the subclass's ``_fit_core`` / ``_window_errors``:

- ``fit(frames)``: learn normal behaviour from one or more frames (one per machine or per recording), hold back
  the tail of each frame as a calibration set, and calibrate the threshold on it without labels.
- ``score(frame)``: per-timestamp score; the score at ``t`` is that of the window ending at ``t``. Rows before the
  first full window of a segment have no score (``NaN``) and are not anomalous.
- ``predict(frame)``: the alarm rule applied to ``score > threshold`` (booleans).
- ``explain(frame)``: each sensor's share of the window's error (rows sum to 1).
- ``detect(frame)``: all of the above in one pass.
- ``save(name_dir)`` / ``load(path, engine="auto")``: versioned model directories (`pdm.detectors.persist` on
  `pdm.saving`); ``engine`` picks the scoring engine of detectors that have several (`pdm.engines.choice`), others
  ignore it.
- ``stream(machine_id)``: the same windows one batch of readings at a time (`pdm.detectors.stream`), scored with
  ``score_windows``; ``threshold``, ``new_alarm_tracker()``, ``max_gap_s`` and the other public properties of a
  fitted detector are what a streaming service reads (never the fitted attributes ending in ``_``).

A *segment* is a run of readings with no gap larger than ``max_gap_factor`` times the training data's median
sampling period; no window spans two segments, and the alarm state restarts with each segment.

Size: about 400 lines, most of them the contract itself (the parameters every detector shares, the public
entry points and the accessors a streaming service reads); the fit pipeline is `pdm.detectors.fitting`, saving
and loading `pdm.detectors.persist`, streaming `pdm.detectors.stream`.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from pydantic import ValidationError

from pdm.detectors.alarm import AlarmRule, AlarmTracker
from pdm.detectors.calibration import THRESHOLD_METHODS, Threshold, ThresholdMethod
from pdm.detectors.config import FeatureInfo, feature_infos, runtime_versions
from pdm.detectors.drift import CalibrationSummary
from pdm.detectors.fitting import SHORT_HISTORY_ROWS, fit_detector
from pdm.detectors.frames import (
    PreparedFrame,
    fill_missing,
    machine_positions,
    prepare_frame,
    segment_bounds,
    sliding_windows,
)
from pdm.detectors.persist import load_detector, save_detector
from pdm.detectors.references import References, check_references
from pdm.detectors.scaling import Scaler, ScalingMode
from pdm.detectors.spikes import SpikeFilter
from pdm.detectors.stream import WindowStream
from pdm.errors import DataError, NotFittedError
from pdm.saving import VersionDir, WriteFiles

logger = logging.getLogger(__name__)

Frames = pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame]
Progress = Callable[[int, int, dict[str, float]], None]  # (epoch, epochs, figures) after each epoch


class Detector(ABC):
    """Base class; see the module docstring for the contract."""

    kind: ClassVar[str]
    registry: ClassVar[dict[str, str]] = {
        "gru_autoencoder": "pdm.detectors.gru:GRUAutoencoderDetector",
        "robust_zscore": "pdm.detectors.zscore:RobustZScoreDetector",
        "pca_t2q": "pdm.detectors.pca:PCADetector",
    }
    required_files: ClassVar[tuple[str, ...]] = ()  # files of its own a saved version must hold (`_save_core`)
    version_dir_: Path  # the version directory it was last saved as or loaded from
    # fitted state, set by `pdm.detectors.fitting.fit_detector` or by loading (`pdm.detectors.persist`)
    features_: list[str]
    scaler_: Scaler
    period_s_: float
    threshold_: Threshold
    machine_thresholds_: dict[str, Threshold]
    alarm_rule_: AlarmRule
    spike_limits_: np.ndarray | None
    calibration_summary_: CalibrationSummary | None
    training_summary_: dict[str, Any]
    evaluation_: dict[str, Any]

    def __init__(
        self,
        *,
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
        self.features = features
        self.timestamp_column = timestamp_column
        self.machine_column = machine_column
        self.units = units
        self.references = references
        self.scaling = scaling
        self.max_gap_factor = max_gap_factor
        self.calibration_fraction = calibration_fraction
        self.threshold_method = threshold_method
        self.target_false_alarm_rate = target_false_alarm_rate
        self.target_alarms_per_day = target_alarms_per_day
        self.alarm_k = alarm_k
        self.alarm_n = alarm_n
        self.alarm_m = alarm_m
        self.alarm_clear = alarm_clear
        self.machine_thresholds = machine_thresholds
        self.despike = despike
        self.seed = seed

    # ----------------------------------------------------------------- subclass hooks
    @property
    @abstractmethod
    def window_length(self) -> int:
        """Readings per window."""

    @abstractmethod
    def _fit_core(self, segments: list[np.ndarray], progress: Progress | None) -> dict[str, Any]:
        """Fit on scaled, filled training segments (each (L >= window, F)); returns evaluation figures."""

    @abstractmethod
    def _window_errors(self, windows: np.ndarray) -> np.ndarray:
        """Per-sensor error (B, F) >= 0 of scaled, filled windows (B, window, F) float32."""

    def _sensor_errors(self, segments: list[np.ndarray], chunk: int = 4096) -> list[np.ndarray]:
        """Per-sensor error of every window of each segment: (L - window + 1, F)."""
        out = []
        for seg in segments:
            windows = sliding_windows(seg, self.window_length)
            errs = [self._window_errors(np.ascontiguousarray(windows[i : i + chunk], dtype=np.float32))
                    for i in range(0, len(windows), chunk)]
            out.append(np.concatenate(errs) if errs else np.empty((0, seg.shape[1])))
        return out

    @staticmethod
    def _aggregate(errors: np.ndarray) -> np.ndarray:
        """Window score from per-sensor errors (default: their mean)."""
        return np.asarray(errors.mean(axis=1))

    def _save_core(self, directory: Path) -> None:  # noqa: B027 - optional hook
        """Write subclass files (weights) into ``directory``; list the required ones in ``required_files``."""

    def _load_core(self, version: VersionDir, engine: str = "auto") -> None:  # noqa: B027 - optional hook
        """Read what ``_save_core`` wrote from the verified ``version``; ``engine`` is the scoring-engine setting
        ("auto", "onnx" or "keras"; `pdm.engines.choice`)."""

    def _versions(self) -> dict[str, str]:
        return runtime_versions()

    # ----------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, Any]:
        """Constructor hyper-parameters (scikit-learn style)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        params = {n: getattr(self, n) for n in names}
        for key in ("features",):
            if params[key] is not None:
                params[key] = list(params[key])
        for key in ("units", "references"):
            if params.get(key) is not None:
                params[key] = dict(params[key])
        return params

    def _check_params(self) -> None:
        check_references(self.references)
        if self.scaling not in ("global", "per_machine"):
            raise DataError(f"found scaling={self.scaling!r}, expected 'global' or 'per_machine'")
        if not 0 < self.calibration_fraction < 1:
            raise DataError(f"found calibration_fraction={self.calibration_fraction}, expected between 0 and 1")
        if self.max_gap_factor < 1:
            raise DataError(f"found max_gap_factor={self.max_gap_factor}, expected >= 1")
        if not 0 < self.target_false_alarm_rate < 1:
            raise DataError(f"found target_false_alarm_rate={self.target_false_alarm_rate}, expected between 0 and 1")
        if self.threshold_method not in THRESHOLD_METHODS:
            raise DataError(f"found threshold_method={self.threshold_method!r}, expected one of "
                            f"{list(THRESHOLD_METHODS)}")
        if not self.target_alarms_per_day > 0:
            raise DataError(f"found target_alarms_per_day={self.target_alarms_per_day}, expected > 0")
        self.alarm_rule_at(1.0)

    def alarm_rule_at(self, period_s: float) -> AlarmRule:
        """The alarm rule this detector's parameters give at the sampling period ``period_s`` (`AlarmRule.at`:
        ``alarm_k``, ``alarm_n``, ``alarm_m`` in windows where given, else from the time defaults); a `DataError`
        for an impossible rule."""
        try:
            return AlarmRule.at(period_s, k=self.alarm_k, n=self.alarm_n, m=self.alarm_m,
                                clear_ratio=self.alarm_clear)
        except ValidationError as exc:
            at = "" if period_s == 1.0 else f" at a sampling period of {period_s:g} s"
            raise DataError(f"alarm rule{at}: {exc.errors()[0]['msg']} (found k={self.alarm_k}, n={self.alarm_n}, "
                            f"m={self.alarm_m}, clear={self.alarm_clear})") from None

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            name = type(self).__name__
            raise NotFittedError(f"this {name} is not fitted yet: call fit(frames) or {name}.load(path) first")

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "threshold_")

    # ----------------------------------------------------------------- fit
    def fit(self, frames: Frames, *, progress: Progress | None = None) -> Self:
        """Learn normal behaviour; see the module docstring. ``progress(epoch, epochs, figures)`` is called after
        each training epoch. Returns ``self``."""
        self._check_params()
        fit_detector(self, frames, progress)
        return self

    def _segments(self, p: PreparedFrame, scaler: Scaler, max_gap: float, start: int, end: int) -> list[np.ndarray]:
        """Scaled, despiked, filled segments of rows [start, end) that hold at least one window."""
        scaled = scaler.transform(p.values[start:end], p.machine_id)
        return [self._clean(scaled[s:e]) for s, e in segment_bounds(p.ts[start:end], max_gap)
                if e - s >= self.window_length]

    def _clean(self, scaled: np.ndarray) -> np.ndarray:
        """One segment's scaled readings, spikes held (`pdm.detectors.spikes`, when fitted) and missing values
        filled: what windows are cut from."""
        limits = getattr(self, "spike_limits_", None)
        if limits is not None:
            scaled = SpikeFilter(limits).apply(scaled)[0]
        return fill_missing(scaled)

    def _fit_warnings(self, features: list[str]) -> list[str]:
        """Warnings of the subclass about what it fitted (e.g. a history that does not cover the operating range)."""
        return []

    def threshold_for(self, machine_id: str | None) -> float:
        """The threshold a machine's scores are judged against: its own when its history allowed one, else the
        fleet's."""
        self._check_fitted()
        own = getattr(self, "machine_thresholds_", {}).get(machine_id or "")
        return float(own.value if own is not None else self.threshold_.value)

    # ----------------------------------------------------------------- scoring
    def detect(self, frame: pd.DataFrame, machine_id: str | None = None) -> pd.DataFrame:
        """One row per input row, in input order: ``score``, ``threshold``, ``exceeds``, ``alarm`` and one
        ``contrib_<sensor>`` column per sensor. ``machine_id`` selects per-machine scaling when the frame has no
        machine column."""
        self._check_fitted()
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"found a {type(frame).__name__}, expected a pandas DataFrame")
        n_rows, n_feat = len(frame), len(self.features_)
        scores = np.full(n_rows, np.nan)
        alarms = np.zeros(n_rows, dtype=bool)
        contrib = np.full((n_rows, n_feat), np.nan)
        thresholds = np.full(n_rows, self.threshold_.value)
        groups = self._groups(frame, machine_id)
        for mid, positions, df in groups:
            p = self.reference_columns.prepared(
                prepare_frame(df, self.features_, timestamp_column=self.timestamp_column, machine_id=mid))
            s, a, c = self._score_prepared(p)
            scores[positions] = s[p.inverse]
            alarms[positions] = a[p.inverse]
            contrib[positions] = c[p.inverse]
            thresholds[positions] = self.threshold_for(mid)
        out = pd.DataFrame({"score": scores, "threshold": thresholds}, index=frame.index)
        out["exceeds"] = np.nan_to_num(scores, nan=-np.inf) > thresholds
        out["alarm"] = alarms
        for j, name in enumerate(self.features_):
            out[f"contrib_{name}"] = contrib[:, j]
        return out

    def _groups(self, frame: pd.DataFrame, machine_id: str | None) -> list[tuple[str, np.ndarray, pd.DataFrame]]:
        if machine_id is None and self.machine_column is not None and self.machine_column in frame.columns:
            groups = machine_positions(frame, self.machine_column)
            return [(mid, pos, frame.iloc[pos]) for mid, pos in groups.items()]
        return [(machine_id or "", np.arange(len(frame)), frame)]

    def _score_prepared(self, p: PreparedFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, window = len(p.ts), self.window_length
        scores = np.full(n, np.nan)
        alarms = np.zeros(n, dtype=bool)
        contrib = np.full((n, len(self.features_)), np.nan)
        scaled = self.scaler_.transform(p.values, p.machine_id)
        bounds = [(s, e) for s, e in segment_bounds(p.ts, self.period_s_ * self.max_gap_factor) if e - s >= window]
        errors = self._sensor_errors([self._clean(scaled[s:e]) for s, e in bounds])
        threshold = self.threshold_for(p.machine_id)
        for (s, _e), err in zip(bounds, errors, strict=True):
            rows = slice(s + window - 1, s + window - 1 + len(err))
            seg_scores = self._aggregate(err)
            scores[rows] = seg_scores
            alarms[rows] = self.alarm_rule_.apply_scores(seg_scores, threshold)
            contrib[rows] = shares(err)
        return scores, alarms, contrib

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Streaming entry point: scaled, filled windows (B, window, F) -> scores (B,) and contributions (B, F).

        A machine's `stream` builds the windows; the verdict is ``score > threshold`` and `new_alarm_tracker` keeps
        each machine's alarm state."""
        self._check_fitted()
        windows = np.asarray(windows, dtype=np.float32)
        expected = (self.window_length, len(self.features_))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise DataError(f"found windows of shape {windows.shape}, expected (batch, {expected[0]}, {expected[1]})")
        errors = self._window_errors(windows)
        return self._aggregate(errors), shares(errors)

    def score(self, frame: pd.DataFrame, machine_id: str | None = None) -> pd.Series:
        """Per-timestamp score, higher = more anomalous; ``NaN`` before the first full window."""
        return self.detect(frame, machine_id)["score"]

    def predict(self, frame: pd.DataFrame, machine_id: str | None = None) -> pd.Series:
        """Alarm state per timestamp (the alarm rule applied)."""
        return self.detect(frame, machine_id)["alarm"]

    def explain(self, frame: pd.DataFrame, machine_id: str | None = None) -> pd.DataFrame:
        """Each sensor's share of the window's error; rows sum to 1 (``NaN`` before the first full window)."""
        out = self.detect(frame, machine_id)
        shares = out[[f"contrib_{f}" for f in self.features_]]
        shares.columns = list(self.features_)
        return shares

    def add_machine(self, machine_id: str, frame: pd.DataFrame) -> None:
        """Give a new machine its own scaling from its normal history, without retraining (``per_machine``)."""
        self._check_fitted()
        p = self.reference_columns.prepared(
            prepare_frame(frame, self.features_, timestamp_column=self.timestamp_column, machine_id=machine_id))
        self.scaler_.add_machine(machine_id, p.values)

    # ----------------------------------------------------------------- what a streaming service reads
    def stream(self, machine_id: str, *, stride: int = 1) -> WindowStream:
        """A `pdm.detectors.stream.WindowStream` of machine ``machine_id``: its readings, a batch at a time, in the
        windows `detect` would build (a window ready at every ``stride``-th reading); score them with
        `score_windows`."""
        self._check_fitted()
        return WindowStream(self, machine_id, stride=stride)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The sensors the model reads, in the order of its windows' columns (reference sensors included: they
        are inputs that are never scored, `reference_columns`)."""
        self._check_fitted()
        return tuple(self.features_)

    @property
    def reference_columns(self) -> References:
        """The sensors scored relative to another (`pdm.detectors.references`): what raw readings become before
        scaling, in `detect`, in training and in `stream`."""
        self._check_fitted()
        return References.resolve(self.references, self.features_)

    @property
    def threshold(self) -> float:
        """A window whose score is greater than this is over the threshold."""
        self._check_fitted()
        return float(self.threshold_.value)

    @property
    def alarm_rule(self) -> AlarmRule:
        """The alarm rule (`pdm.detectors.alarm`: k of the last n windows over the threshold raise, m clear)."""
        self._check_fitted()
        return self.alarm_rule_

    def new_alarm_tracker(self, stride: int = 1) -> AlarmTracker:
        """A fresh alarm state for one machine: feed it each window's score in time order
        (``update_score(score, threshold)``, which applies the rule's hysteresis). ``stride``: it is fed every
        ``stride``-th window only (`AlarmRule.every`: the rule's spans kept in time)."""
        return self.alarm_rule.every(stride).tracker()

    @property
    def period_s(self) -> float:
        """The training data's median sampling period, in seconds."""
        self._check_fitted()
        return float(self.period_s_)

    @property
    def spike_limits(self) -> np.ndarray | None:
        """Each sensor's step limit of the spike rule (`pdm.detectors.spikes`), scaled units; ``None``: no rule."""
        self._check_fitted()
        limits = getattr(self, "spike_limits_", None)
        return None if limits is None else np.asarray(limits, dtype=np.float64)

    @property
    def max_gap_s(self) -> float:
        """The longest step between two readings of one segment: ``max_gap_factor`` x `period_s`."""
        return self.period_s * self.max_gap_factor

    @property
    def short_history(self) -> bool:
        """Fitted on fewer than `SHORT_HISTORY_ROWS` rows: too few to show the operating range, so the model's
        alarms flag conditions it never saw as much as faults (`pdm.retrain` does not take them as faults). Models
        saved without a training summary count as not short."""
        self._check_fitted()
        rows = getattr(self, "training_summary_", {}).get("rows_fitting")
        return isinstance(rows, int) and rows < SHORT_HISTORY_ROWS

    @property
    def fit_warnings(self) -> tuple[str, ...]:
        """What fitting warned about (a short history, an operating range the history does not cover, ...), as
        saved with the model; empty for a model saved without any."""
        self._check_fitted()
        return tuple(str(w) for w in getattr(self, "training_summary_", {}).get("warnings", []))

    @property
    def calibration_summary(self) -> CalibrationSummary | None:
        """The calibration score distribution (`pdm.detectors.drift`); ``None`` for a version saved before
        ``calibration.json`` existed."""
        self._check_fitted()
        return getattr(self, "calibration_summary_", None)

    @property
    def version_dir(self) -> Path | None:
        """The version directory the detector was loaded from or last saved to; ``None`` before either."""
        return getattr(self, "version_dir_", None)

    @property
    def engine_name(self) -> str | None:
        """The compiled scoring engine's class name; ``None`` for a detector that scores with NumPy alone."""
        return None

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Compile the scoring path for every batch size, so the first windows are not slow (no-op without one)."""

    # ----------------------------------------------------------------- persistence (`pdm.detectors.persist`)
    def save(self, name_dir: Path | str, *, make_current: bool = True,
             companions: Mapping[str, Detector] | None = None, extra_files: WriteFiles | None = None) -> Path:
        """Write a new version under ``name_dir`` (atomically) and make it current; returns the version dir.

        ``companions`` (e.g. ``{"baseline": zscore}``) are saved in sub-directories of the same version, each a
        loadable, verified model directory of its own (``Detector.load(version_dir / "baseline")``).
        ``extra_files(directory)`` writes further files into the version (a retrain's report) in the same atomic
        step; they are listed in the manifest like the detector's own, which they must not overwrite."""
        return save_detector(self, name_dir, make_current=make_current, companions=companions,
                             extra_files=extra_files)

    @classmethod
    def load(cls, path: Path | str | VersionDir, *, engine: str = "auto") -> Detector:
        """Load a model name directory (its ``current`` version) or a version directory, verifying checksums; or an
        opened `pdm.saving.VersionDir` (a companion: ``VersionDir.open(path).sub("baseline")``).

        ``engine`` ("auto", "onnx" or "keras", `pdm.engines.choice`) picks the scoring engine. Under "auto" a bad
        ``model.onnx`` (checksum mismatch included) is skipped with a warning and the model scores with Keras;
        under "onnx" it is refused with a typed error."""
        return load_detector(cls, path, engine=engine)

    @property
    def feature_infos(self) -> list[FeatureInfo]:
        self._check_fitted()
        return feature_infos(self.features_, dict(self.units or {}))


def shares(errors: np.ndarray) -> np.ndarray:
    """Each sensor's share of a window's error (rows sum to 1; equal shares for a zero error)."""
    total = errors.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, errors / safe, 1.0 / errors.shape[1])
