"""Models the daemon scores with, and the routing of machines to them by ``machine_type``.

Each model is a model name directory under ``--models-dir`` (its ``current`` version is loaded, checksums
verified). ``--route pump=pump,compressor=compressor`` maps a machine type to a model name; machines whose type has
no route (or that send single readings without a type) use ``--default-model``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pdm.contract import ModelRef
from pdm.daemon.settings import SettingsError
from pdm.detectors.base import Detector

logger = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    name: str
    detector: Detector
    ref: ModelRef
    features: tuple[str, ...]
    window: int
    max_gap_s: float
    threshold: float
    period_s: float


def load_slot(models_dir: Path, name: str, warm_up: bool) -> ModelSlot:
    det = Detector.load(models_dir / name)
    engine = getattr(det, "engine_", None)
    if warm_up and engine is not None and hasattr(engine, "warm_up"):
        engine.warm_up()
    version = det.version_dir_.name
    slot = ModelSlot(name=name, detector=det, ref=ModelRef(name=name, version=version), features=tuple(det.features_),
                     window=det.window_length, max_gap_s=det.period_s_ * det.max_gap_factor,
                     threshold=float(det.threshold_.value), period_s=det.period_s_)
    logger.info("loaded model %s version %s: window %d, features %s, threshold %.4g, alarm %s", name, version,
                slot.window, ",".join(slot.features), slot.threshold, det.alarm_rule_)
    return slot


class Models:
    """The loaded models and the routing rule."""

    def __init__(self, models_dir: Path, routes: dict[str, str], default: str | None, warm_up: bool = True) -> None:
        if default is None and not routes:
            names = sorted(p.name for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []
            if len(names) != 1:
                raise SettingsError(f"--default-model: found none and {len(names)} models under {models_dir} "
                                    f"({', '.join(names) or 'none'}), expected --default-model NAME or --routes "
                                    "TYPE=NAME (or exactly one model directory)")
            default = names[0]
        names = sorted({*routes.values(), *([default] if default else [])})
        self.slots = {n: load_slot(models_dir, n, warm_up) for n in names}
        self.routes = {t: self.slots[n] for t, n in routes.items()}
        self.default = self.slots[default] if default else None

    def route(self, machine_type: str | None) -> ModelSlot | None:
        if machine_type is not None and machine_type in self.routes:
            return self.routes[machine_type]
        return self.default

    @property
    def features(self) -> tuple[str, ...]:
        """Every sensor any model needs (sorted)."""
        return tuple(sorted({f for s in self.slots.values() for f in s.features}))
