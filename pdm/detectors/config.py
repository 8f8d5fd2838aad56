"""The validated, version-stamped ``config.json`` of a saved detector."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pdm.saving import open_version

KNOWN_UNITS = {"temperature": "degC", "vibration": "mm/s", "pressure": "bar", "ambient": "degC"}


class FeatureInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    unit: str | None = None


class DetectorConfig(BaseModel):
    """What a detector needs besides its weights and fitted statistics."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = Field(ge=1)
    detector: str = Field(description="registered detector kind, e.g. 'gru_autoencoder'")
    created_at: float = Field(description="Unix epoch seconds")
    versions: dict[str, str] = Field(description="pdm, python, numpy, pandas (+ keras, tensorflow)")
    params: dict[str, Any] = Field(description="constructor hyper-parameters")
    features: list[FeatureInfo]
    window: int = Field(ge=1)
    period_s: float = Field(gt=0, description="median sampling period of the training data")
    max_gap_s: float = Field(gt=0, description="a larger gap between readings restarts the window")


def runtime_versions() -> dict[str, str]:
    import numpy as np
    import pandas as pd

    from pdm import __version__

    return {"pdm": __version__, "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}


def feature_infos(features: list[str], units: dict[str, str] | None) -> list[FeatureInfo]:
    units = {**KNOWN_UNITS, **(units or {})}
    return [FeatureInfo(name=f, unit=units.get(f)) for f in features]


def read_config(path: Path | str) -> DetectorConfig:
    """The validated ``config.json`` of a saved model (a name directory's current version, or a version directory)
    without loading the model: its kind, hyper-parameters (``params``) and sensors. The version is verified first
    (`pdm.saving.VersionDir`); a damaged file is a typed `pdm.errors.CorruptModelError`."""
    return open_version(path).read_json("config.json", DetectorConfig)
