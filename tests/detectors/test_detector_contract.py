"""The contract every detector passes (parametrised over all of them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.base import Detector
from pdm.errors import DataError, FeatureMismatchError, NotFittedError
from tests.conftest import SENSORS, normal_fleet

DETECTORS = ["gru", "zscore", "pca"]


@pytest.fixture(params=DETECTORS)
def det(request: pytest.FixtureRequest) -> Detector:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return normal_fleet(1, 600, seed=7)["pump-000"]


@pytest.mark.parametrize("cls_path", ["pdm.detectors.gru:GRUAutoencoderDetector",
                                      "pdm.detectors.zscore:RobustZScoreDetector",
                                      "pdm.detectors.pca:PCADetector"])
def test_unfitted_detector_names_the_fix(cls_path: str, fresh: pd.DataFrame, tmp_path: Path) -> None:
    import importlib

    module, _, name = cls_path.partition(":")
    unfitted = getattr(importlib.import_module(module), name)()
    for call in (unfitted.score, unfitted.predict, unfitted.explain, unfitted.detect):
        with pytest.raises(NotFittedError, match=r"call fit\(frames\) or .*\.load\(path\) first"):
            call(fresh)
    with pytest.raises(NotFittedError):
        unfitted.save(tmp_path / "m")


@pytest.mark.parametrize("cls_path", ["pdm.detectors.gru:GRUAutoencoderDetector",
                                      "pdm.detectors.zscore:RobustZScoreDetector",
                                      "pdm.detectors.pca:PCADetector"])
def test_every_detector_takes_the_shared_parameters_with_the_shared_defaults(cls_path: str) -> None:
    """Each detector repeats the shared keyword parameters (scikit-learn style: `get_params` reads the signature);
    this keeps those copies from drifting apart."""
    import importlib
    import inspect

    module, _, name = cls_path.partition(":")
    own = inspect.signature(getattr(importlib.import_module(module), name).__init__).parameters
    shared = {k: v for k, v in inspect.signature(Detector.__init__).parameters.items() if k != "self"}
    missing = sorted(set(shared) - set(own))
    assert missing == [], f"{name} lacks {missing}"
    drifted = {k: own[k].default for k, v in shared.items() if own[k].default != v.default}
    # the one intended difference: the GRU holds single-reading spikes by default (docs/detector.md), the
    # baselines score every reading as it came
    assert drifted == ({"despike": True} if name == "GRUAutoencoderDetector" else {}), f"{name}: {drifted}"


def test_constructor_stores_hyperparameters_only() -> None:
    from pdm.detectors.gru import GRUAutoencoderDetector

    d = GRUAutoencoderDetector(window=10, hidden=5)
    assert d.get_params()["window"] == 10 and d.get_params()["hidden"] == 5
    assert not d.is_fitted and not [k for k in vars(d) if k.endswith("_")]


def test_scores_start_after_the_first_full_window(det: Detector, fresh: pd.DataFrame) -> None:
    scores = det.score(fresh, machine_id="pump-000")
    w = det.window_length
    assert scores.iloc[: w - 1].isna().all()
    assert np.isfinite(scores.iloc[w - 1 :]).all()
    assert (scores.dropna() >= 0).all()
    assert scores.index.equals(fresh.index)


def test_predict_is_boolean_and_false_before_the_first_window(det: Detector, fresh: pd.DataFrame) -> None:
    alarm = det.predict(fresh, machine_id="pump-000")
    assert alarm.dtype == bool and alarm.index.equals(fresh.index)
    assert not alarm.iloc[: det.window_length - 1].any()


def test_explain_shares_sum_to_one(det: Detector, fresh: pd.DataFrame) -> None:
    shares = det.explain(fresh, machine_id="pump-000").dropna()
    assert list(shares.columns) == SENSORS
    assert len(shares) == len(fresh) - det.window_length + 1
    np.testing.assert_allclose(shares.sum(axis=1).to_numpy(), 1.0, atol=1e-9)
    assert (shares.to_numpy() >= 0).all()


def test_output_follows_input_order(det: Detector, fresh: pd.DataFrame) -> None:
    expected = det.score(fresh, machine_id="pump-000")
    shuffled = fresh.sample(frac=1.0, random_state=0)
    got = det.score(shuffled, machine_id="pump-000")
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), atol=1e-6, rtol=1e-6)


def test_machine_column_scores_each_machine_with_its_own_scaling(det: Detector) -> None:
    frames = normal_fleet(2, 400, seed=8)
    combined = pd.concat([f.assign(machine_id=m) for m, f in frames.items()], ignore_index=True)
    got = det.score(combined)
    for m, f in frames.items():
        expected = det.score(f, machine_id=m).to_numpy()
        np.testing.assert_allclose(got[combined.machine_id == m].to_numpy(), expected, rtol=1e-5, equal_nan=True)


def test_missing_values_never_give_nan_scores(det: Detector, fresh: pd.DataFrame) -> None:
    holey = fresh.copy()
    rng = np.random.default_rng(0)
    for col in SENSORS:
        holey.loc[rng.choice(len(holey), 60, replace=False), col] = np.nan
    holey.loc[:50, "pressure"] = np.nan  # missing from the very start
    holey.loc[100, "vibration"] = np.inf
    scores = det.score(holey, machine_id="pump-000")
    assert np.isfinite(scores.iloc[det.window_length - 1 :]).all()


def test_gap_restarts_the_window(det: Detector, fresh: pd.DataFrame) -> None:
    gapped = fresh.copy()
    gapped.loc[300:, "timestamp"] += 3600.0  # an hour without data
    scores = det.score(gapped, machine_id="pump-000")
    w = det.window_length
    assert scores.iloc[300 : 300 + w - 1].isna().all()
    assert np.isfinite(scores.iloc[300 + w - 1 :]).all()


def test_missing_sensor_column_is_found_x_expected_y(det: Detector, fresh: pd.DataFrame) -> None:
    with pytest.raises(FeatureMismatchError, match=r"found columns .* expected sensor columns .*'pressure'"):
        det.score(fresh.drop(columns="pressure"), machine_id="pump-000")


def test_extra_columns_are_ignored(det: Detector, fresh: pd.DataFrame) -> None:
    expected = det.score(fresh, machine_id="pump-000")
    got = det.score(fresh.assign(humidity=1.0), machine_id="pump-000")
    pd.testing.assert_series_equal(got, expected)


def test_save_load_round_trip_gives_identical_output(det: Detector, fresh: pd.DataFrame, tmp_path: Path) -> None:
    det.save(tmp_path / "m")
    loaded = Detector.load(tmp_path / "m")
    assert type(loaded) is type(det)
    pd.testing.assert_frame_equal(loaded.detect(fresh, machine_id="pump-000"), det.detect(fresh, machine_id="pump-000"))


def test_too_few_rows_is_a_clear_error() -> None:
    from pdm.detectors.gru import GRUAutoencoderDetector

    tiny = normal_fleet(1, 30, seed=3)
    with pytest.raises(DataError, match=r"too few rows: .* expected at least window=64"):
        GRUAutoencoderDetector(epochs=1).fit(tiny)


def test_constant_column_trains_and_scores(fresh: pd.DataFrame) -> None:
    from pdm.detectors.zscore import RobustZScoreDetector

    frames = {m: f.assign(pressure=4.0) for m, f in normal_fleet(2, 800, seed=4).items()}
    det = RobustZScoreDetector().fit(frames)
    assert det.training_summary_["constant_columns"] == ["pressure"]
    scores = det.score(fresh.assign(pressure=4.0), machine_id="pump-000")
    assert np.isfinite(scores).all()
    assert det.explain(fresh.assign(pressure=4.0), machine_id="pump-000")["pressure"].max() < 1e-9


def test_rows_without_a_machine_id_are_a_clear_error(det: Detector) -> None:
    frames = normal_fleet(1, 200, seed=9)
    frame = frames["pump-000"].assign(machine_id="pump-000")
    frame.loc[17, "machine_id"] = None
    with pytest.raises(DataError, match="no machine id at row 17"):
        det.score(frame)
