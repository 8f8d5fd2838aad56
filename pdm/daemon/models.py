"""Models the daemon scores with, and the routing of machines to them by ``machine_type``.

Each model is a model name directory under ``--models-dir`` (its ``current`` version is loaded, checksums
verified). ``--routes pump=pump,compressor=compressor`` maps a machine type to a model name; machines whose type has
no route (or that send single readings without a type) use ``--default-model``. A hot reload replaces one name's
slot with a new version (`Models.replace`, on the scoring thread) once `misfit` found nothing against the old one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdm.contract import ModelRef
from pdm.daemon.quality import Reference
from pdm.daemon.settings import SettingsError
from pdm.detectors.base import Detector
from pdm.errors import CorruptModelError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSlot:
    """One loaded version of one model name (replaced, never changed, by a hot reload)."""

    name: str
    detector: Detector
    ref: ModelRef
    features: tuple[str, ...]
    window: int
    max_gap_s: float
    threshold: float
    period_s: float
    drift: Reference  # score bins, calibration shares and stuck limits (`pdm.daemon.quality`)
    warnings: tuple[str, ...] = ()  # what fitting warned about (`Detector.fit_warnings`), shown in the status


def version_path(models_dir: Path, name: str, version: str) -> Path:
    """``models_dir/name/version``; a version that is not a plain directory name is a `CorruptModelError`."""
    if not version or version != Path(version).name or version.startswith(".") or "\\" in version:
        raise CorruptModelError(models_dir / name / "current", f"names version {version!r}",
                                "expected the name of a version directory beside it")
    return models_dir / name / version


def load_slot(models_dir: Path, name: str, warm_up: bool, version: str | None = None,
              engine: str = "auto") -> ModelSlot:
    """Load model ``name`` (its ``current`` version, or ``version``), checksums verified, with the scoring
    ``engine`` (`pdm.engines.choice`: auto prefers ONNX); ``warm_up`` compiles the scoring path for every batch
    size."""
    det = Detector.load(models_dir / name if version is None else version_path(models_dir, name, version),
                        engine=engine)
    if warm_up:
        det.warm_up()
    where = det.version_dir  # always set by Detector.load
    loaded = where.name if where is not None else "unknown"
    slot = ModelSlot(name=name, detector=det, ref=ModelRef(name=name, version=loaded), features=det.feature_names,
                     window=det.window_length, max_gap_s=det.max_gap_s, threshold=det.threshold, period_s=det.period_s,
                     drift=Reference.of(det.calibration_summary, det.window_length), warnings=det.fit_warnings)
    logger.info("loaded model %s version %s (%s engine): window %d, features %s, threshold %.4g, alarm %s", name,
                loaded, det.engine_name or "no", slot.window, ",".join(slot.features), slot.threshold, det.alarm_rule)
    for w in slot.warnings:
        logger.warning("model %s version %s was fitted with a warning: %s", name, loaded, w)
    if slot.drift.summary is None:
        logger.warning("model %s version %s has no calibration.json (saved before it existed): drift is "
                       "'unavailable' and stuck sensors are not checked until it is retrained", name, loaded)
    return slot


def misfit(old: ModelSlot, new: ModelSlot) -> str | None:
    """Why ``new`` cannot replace ``old`` for the machines ``old`` scores, or ``None`` when it fits.

    It fits when it needs no sensor the old version did not (the machines are known to send those: a message
    lacking one was rejected), scores the same sensors relative to the same references, its threshold is a
    positive finite number, and its scoring path returns a finite score and contributions for a window of training
    medians (zeros after scaling). Another window length is allowed (`pdm.detectors.stream.WindowStream.rebase`
    says how the windows continue).
    """
    extra = [f for f in new.features if f not in old.features]
    if extra:
        return (f"features: found {list(new.features)}, expected a subset of {list(old.features)} (the machines "
                f"of model {old.name} are not known to send {extra})")
    if dict(new.detector.references or {}) != dict(old.detector.references or {}):
        return (f"references: found {new.detector.references or {}}, expected {old.detector.references or {}} (the "
                "windows held are in the old version's terms)")
    if not math.isfinite(new.threshold) or new.threshold <= 0:
        return f"threshold: found {new.threshold}, expected a positive finite number"
    probe = np.zeros((1, new.window, len(new.features)), dtype=np.float32)
    scores, shares = new.detector.score_windows(probe)
    if np.shape(scores) != (1,) or np.shape(shares) != (1, len(new.features)) \
            or not (np.all(np.isfinite(scores)) and np.all(np.isfinite(shares))):
        return (f"scoring a window of medians: found scores {np.asarray(scores).ravel()[:3].tolist()} of shape "
                f"{np.shape(scores)}, expected one finite score and {len(new.features)} finite contributions")
    return None


class Models:
    """The loaded models and the routing rule."""

    def __init__(self, models_dir: Path, routes: dict[str, str], default: str | None, warm_up: bool = True,
                 engine: str = "auto") -> None:
        if default is None and not routes:
            names = sorted(p.name for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []
            if len(names) != 1:
                raise SettingsError(f"--default-model: found none and {len(names)} models under {models_dir} "
                                    f"({', '.join(names) or 'none'}), expected --default-model NAME or --routes "
                                    "TYPE=NAME (or exactly one model directory)")
            default = names[0]
        self.models_dir = models_dir
        self.route_names = dict(routes)
        self.default_name = default
        used = set(routes.values()) | ({default} if default else set())
        self.slots = {n: load_slot(models_dir, n, warm_up, engine=engine) for n in sorted(used)}
        self.routes: dict[str, ModelSlot] = {}
        self.default: ModelSlot | None = None
        self._reroute()

    def _reroute(self) -> None:
        self.routes = {t: self.slots[n] for t, n in self.route_names.items()}
        self.default = self.slots[self.default_name] if self.default_name else None

    def route(self, machine_type: str | None) -> ModelSlot | None:
        if machine_type is not None and machine_type in self.routes:
            return self.routes[machine_type]
        return self.default

    @property
    def main(self) -> ModelSlot:
        """The model the status names: the default model, else the first by name."""
        return self.default or next(iter(self.slots.values()))

    def replace(self, slot: ModelSlot) -> ModelSlot:
        """Put a new version of ``slot.name`` in place of the loaded one (scoring thread only); returns the old."""
        old = self.slots[slot.name]
        self.slots[slot.name] = slot
        self._reroute()
        return old

    @property
    def features(self) -> tuple[str, ...]:
        """Every sensor any model needs (sorted)."""
        return tuple(sorted({f for s in self.slots.values() for f in s.features}))
