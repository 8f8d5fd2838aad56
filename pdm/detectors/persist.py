"""Saving and loading detectors: what a version directory of a detector holds, and how a detector is rebuilt.

Files of a detector version (`pdm.saving` writes it atomically with a manifest covering every file, and verifies
the manifest before anything is read):

- required for every detector (`REQUIRED_FILES`): ``config.json`` (detector kind, hyper-parameters, sensors and
  units, window, period, versions), ``scaler.json``, ``threshold.json``, ``alarm.json``, ``training.json``,
  ``evaluation.json``, plus the detector's own `Detector.required_files` (``model.keras`` and ``envelope.json`` for
  the GRU autoencoder);
- optional (absent only when the manifest does not list them, i.e. saved by an older pdm): ``calibration.json``
  (`pdm.detectors.drift`), ``machine_thresholds.json`` (machines whose history gave them a threshold of their own;
  absent when none did), ``spikes.json`` (the spike rule's step limits; absent: no spike rule), and the detector's
  own (``model.onnx``, ``relations.json`` for the GRU);
- companions (``baseline/``) and extra files (a retrain's ``report.json``, ``report.png``), written in the same
  atomic step by `save_detector`.

Engine files (`ENGINE_FILES`: ``model.onnx``) are a faster copy of the weights: under the ``engine`` setting
"auto" a damaged, changed or unlisted one is skipped with a warning and the model scores with Keras; under "onnx" it
is refused with a typed error. No pickle: JSON validated by its schema, Keras loaded in safe mode.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from pdm.detectors.alarm import AlarmRule
from pdm.detectors.calibration import Threshold
from pdm.detectors.config import DetectorConfig, feature_infos
from pdm.detectors.drift import CalibrationSummary
from pdm.detectors.references import References
from pdm.detectors.scaling import Scaler
from pdm.engines.choice import check_engine_setting
from pdm.engines.onnx_engine import ONNX_FILE
from pdm.errors import CorruptModelError, DataError, ModelLoadError
from pdm.saving import FORMAT_VERSION, VersionDir, WriteFiles, open_version, write_json, write_version

if TYPE_CHECKING:
    from pdm.detectors.base import Detector

logger = logging.getLogger(__name__)

D = TypeVar("D", bound="Detector")

CONFIG_FILE = "config.json"
CALIBRATION_FILE = "calibration.json"  # calibration score distribution (`pdm.detectors.drift`); older versions lack it
MACHINE_THRESHOLDS_FILE = "machine_thresholds.json"  # thresholds of machines whose history allowed their own
SPIKES_FILE = "spikes.json"  # the spike rule's step limits (`pdm.detectors.spikes`)
REQUIRED_FILES = (CONFIG_FILE, "scaler.json", "threshold.json", "alarm.json", "training.json", "evaluation.json")
ENGINE_FILES = (ONNX_FILE,)


def save_detector(det: Detector, name_dir: Path | str, *, make_current: bool = True,
                  companions: Mapping[str, Detector] | None = None, extra_files: WriteFiles | None = None) -> Path:
    """Write a new version of ``det`` under ``name_dir`` (see `Detector.save`); returns the version directory."""
    det._check_fitted()
    for companion in (companions or {}).values():
        companion._check_fitted()

    def write(directory: Path) -> None:
        write_detector_files(det, directory)
        if extra_files is not None:
            extra_files(directory)

    version_dir = write_version(name_dir, write, make_current=make_current,
                                companions={name: functools.partial(write_detector_files, c)
                                            for name, c in (companions or {}).items()})
    det.version_dir_ = version_dir
    return version_dir


def write_detector_files(det: Detector, directory: Path) -> None:
    """The files of a fitted detector (module docstring) into ``directory``."""
    config = DetectorConfig(
        format_version=FORMAT_VERSION, detector=det.kind, created_at=time.time(), versions=det._versions(),
        params=det.get_params(), features=feature_infos(det.features_, dict(det.units or {})),
        window=det.window_length, period_s=det.period_s_, max_gap_s=det.period_s_ * det.max_gap_factor,
    )
    write_json(directory / CONFIG_FILE, config)
    write_json(directory / "scaler.json", det.scaler_)
    write_json(directory / "threshold.json", det.threshold_)
    write_json(directory / "alarm.json", det.alarm_rule_)
    write_json(directory / "training.json", det.training_summary_)
    write_json(directory / "evaluation.json", det.evaluation_)
    summary = getattr(det, "calibration_summary_", None)
    if summary is not None:  # absent in models saved before calibration.json existed
        write_json(directory / CALIBRATION_FILE, summary)
    limits = getattr(det, "spike_limits_", None)
    if limits is not None:  # absent for a detector fitted with despike=False (and models saved before it)
        write_json(directory / SPIKES_FILE, SpikeLimits.of(limits))
    own = getattr(det, "machine_thresholds_", {})
    if own:  # absent when no machine had a threshold of its own (and in models saved before they existed)
        write_json(directory / MACHINE_THRESHOLDS_FILE, MachineThresholds(thresholds=own))
    det._save_core(directory)


def load_detector(cls: type[D], path: Path | str | VersionDir, *, engine: str = "auto") -> D:
    """`Detector.load`: open and verify the version, check its files, rebuild the detector it holds."""
    setting = check_engine_setting(engine)
    version = open_version(path, skippable=ENGINE_FILES if setting == "auto" else ())
    for problem in version.skipped.values():
        logger.warning("engine auto: not using the ONNX engine (%s); scoring with Keras instead", problem)
        setting = "keras"
    version.require(*REQUIRED_FILES)
    config = version.read_json(CONFIG_FILE, DetectorConfig)
    det_cls = detector_class(cls, version, config.detector)
    version.require(*det_cls.required_files)
    try:
        det = det_cls(**config.params)
    except TypeError as exc:
        raise CorruptModelError(version.path(CONFIG_FILE), f"has invalid params ({exc})",
                                "retrain, or load with the pdm version that wrote it") from None
    det.features_ = [f.name for f in config.features]
    try:
        References.resolve(det.references, det.features_)
    except DataError as exc:
        raise CorruptModelError(version.path(CONFIG_FILE), f"has invalid params ({exc})",
                                "retrain, or load with the pdm version that wrote it") from None
    det.period_s_ = config.period_s
    det.scaler_ = version.read_json("scaler.json", Scaler)
    det.threshold_ = version.read_json("threshold.json", Threshold)
    det.alarm_rule_ = version.read_json("alarm.json", AlarmRule)
    det.training_summary_ = version.read_object("training.json")
    det.evaluation_ = version.read_object("evaluation.json")
    if len(det.scaler_.global_stats.center) != len(det.features_):
        raise CorruptModelError(version.path("scaler.json"), f"has {len(det.scaler_.global_stats.center)} sensors, "
                                f"expected {len(det.features_)}", "retrain the model")
    det.calibration_summary_ = read_calibration(version, len(det.features_))
    det.machine_thresholds_ = read_machine_thresholds(version)
    det.spike_limits_ = read_spike_limits(version, len(det.features_))
    det.version_dir_ = version.directory
    det._load_core(version, engine=setting)
    return det


def detector_class(cls: type[D], version: VersionDir, kind: str) -> type[D]:
    """The registered class of ``kind``, which must be ``cls`` or a subclass of it."""
    target = cls.registry.get(kind)
    if target is None:
        raise CorruptModelError(version.path(CONFIG_FILE), f"names unknown detector {kind!r}",
                                f"expected one of {sorted(cls.registry)}")
    module, _, attr = target.partition(":")
    found = getattr(importlib.import_module(module), attr)
    if not issubclass(found, cls):
        raise ModelLoadError(version.directory, f"holds a {found.__name__}, not a {cls.__name__}",
                             f"load it with {found.__name__}.load or Detector.load")
    return found  # type: ignore[no-any-return]


def read_calibration(version: VersionDir, n_sensors: int) -> CalibrationSummary | None:
    """``calibration.json`` (validated), or ``None`` for a version saved before it existed."""
    summary = version.read_optional_json(CALIBRATION_FILE, CalibrationSummary)
    if summary is not None and len(summary.longest_repeat) != n_sensors:
        raise CorruptModelError(version.path(CALIBRATION_FILE), f"has longest_repeat for {len(summary.longest_repeat)}"
                                f" sensors, expected {n_sensors}", "restore the version from a backup or retrain")
    return summary


class MachineThresholds(BaseModel):
    """``machine_thresholds.json``: the machines whose history gave them a threshold of their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    thresholds: dict[str, Threshold]


def read_machine_thresholds(version: VersionDir) -> dict[str, Threshold]:
    """``machine_thresholds.json`` (validated: positive, finite values), or no machine thresholds."""
    found = version.read_optional_json(MACHINE_THRESHOLDS_FILE, MachineThresholds)
    if found is None:
        return {}
    bad = [m for m, t in found.thresholds.items() if not (math.isfinite(t.value) and t.value > 0)]
    if bad:
        raise CorruptModelError(version.path(MACHINE_THRESHOLDS_FILE), f"found non-positive or non-finite thresholds "
                                f"for {bad[:3]}, expected positive finite values",
                                "restore the version from a backup or retrain")
    return dict(found.thresholds)


class SpikeLimits(BaseModel):
    """``spikes.json``: each sensor's step limit in scaled units (null: never moved in training, no limit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    limits: list[float | None]

    @classmethod
    def of(cls, limits: np.ndarray) -> SpikeLimits:
        return cls(limits=[None if not math.isfinite(v) else float(v) for v in limits])


def read_spike_limits(version: VersionDir, n_sensors: int) -> np.ndarray | None:
    """``spikes.json`` as (F,) limits (inf: none), or ``None`` (no spike rule)."""
    found = version.read_optional_json(SPIKES_FILE, SpikeLimits)
    if found is None:
        return None
    if len(found.limits) != n_sensors or any(v is not None and not (math.isfinite(v) and v > 0) for v in found.limits):
        raise CorruptModelError(version.path(SPIKES_FILE), f"found limits {found.limits[:4]} for {len(found.limits)} "
                                f"sensors, expected {n_sensors} positive finite values or null",
                                "restore the version from a backup or retrain")
    return np.asarray([np.inf if v is None else v for v in found.limits], dtype=np.float64)
