"""Shared fixtures: small seeded fleets and small trained detectors (trained once per test session)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
import pytest

from tests.support import synthetic

pytest_plugins = ["tests.support.broker"]

SENSORS = ["temperature", "vibration", "pressure"]


def normal_fleet(machines: int, n: int, seed: int, unit_seed_offset: int = 0) -> dict[str, pd.DataFrame]:
    data = synthetic.fleet(machines, n, seed=seed, unit_seed_offset=unit_seed_offset)
    return {m: f.drop(columns="label") for m, (f, _) in data.items()}


@pytest.fixture(scope="session")
def train_fleet() -> dict[str, pd.DataFrame]:
    """4 pumps x 4000 s of normal data."""
    return normal_fleet(4, 4000, seed=1)


@pytest.fixture(scope="session")
def gru(train_fleet: dict[str, pd.DataFrame]):  # type: ignore[no-untyped-def]
    from pdm.detectors.gru import GRUAutoencoderDetector

    return GRUAutoencoderDetector(window=32, hidden=24, latent=8, epochs=15, max_train_windows=6000,
                                  threshold_method="pot", target_false_alarm_rate=1e-3,
                                  seed=0).fit(train_fleet)


@pytest.fixture(scope="session")
def zscore(train_fleet: dict[str, pd.DataFrame]):  # type: ignore[no-untyped-def]
    from pdm.detectors.zscore import RobustZScoreDetector

    return RobustZScoreDetector(threshold_method="pot", seed=0).fit(train_fleet)  # per window, as the gru's


@pytest.fixture(scope="session")
def pca(train_fleet: dict[str, pd.DataFrame]):  # type: ignore[no-untyped-def]
    from pdm.detectors.pca import PCADetector

    return PCADetector(seed=0).fit(train_fleet)
