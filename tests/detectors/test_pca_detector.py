"""PCA T²+Q detector: the statistics on data of known structure, attribution, validation and its saved file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.base import Detector
from pdm.detectors.pca import PCA_FILE, PCADetector, PCAModel
from pdm.errors import CorruptModelError, DataError
from pdm.saving import write_manifest

CHI2_99_2DOF = 9.2103  # chi-square 0.99 quantile, 2 degrees of freedom (tables)
CHI2_99_1DOF = 6.6349  # 1 degree of freedom


@pytest.fixture(scope="module")
def planar() -> np.ndarray:
    """Readings on a plane: x (sd 2) and y (sd 1) free, z = 0 up to noise of sd 0.01."""
    rng = np.random.default_rng(0)
    n = 50_000
    return np.column_stack([rng.normal(0, 2, n), rng.normal(0, 1, n), rng.normal(0, 0.01, n)])


@pytest.fixture(scope="module")
def model(planar: np.ndarray) -> PCAModel:
    return PCAModel.fit(planar, variance=0.95, n_components=None, confidence=0.99)


def test_the_plane_is_kept_and_the_limits_match_the_tables(model: PCAModel) -> None:
    assert model.n_components == 2  # x alone explains 0.8 of the variance, x and y all but 2e-5
    np.testing.assert_allclose(np.abs(model.components), [[1, 0, 0], [0, 1, 0]], atol=0.01)
    np.testing.assert_allclose(model.eigenvalues, [4.0, 1.0], rtol=0.03)
    # N is large: the F-based T² limit is the chi-square one; one residual variance (1e-4): Q_lim = 1e-4 x chi2(1)
    assert model.t2_limit == pytest.approx(CHI2_99_2DOF, rel=0.01)
    assert model.q_limit == pytest.approx(1e-4 * CHI2_99_1DOF, rel=0.03)


def test_off_plane_point_has_high_q_and_in_plane_far_point_high_t2(model: PCAModel) -> None:
    t2, q = model.statistics(np.array([[0.0, 0.0, 1.0], [6.0, 0.0, 0.0]]))
    assert q[0] == pytest.approx(1.0, rel=0.02) and t2[0] < 0.01  # one unit off the plane, at its centre
    assert t2[1] == pytest.approx(36 / 4, rel=0.05) and q[1] < 1e-3  # 3 standard deviations along x, on the plane


def test_contributions_name_the_sensor_and_sum_to_the_statistics(model: PCAModel) -> None:
    t2c, qc = model.contributions(np.array([[0.0, 0.0, 1.0], [6.0, 0.0, 0.0], [2.0, -1.0, 0.5]]))
    assert int(np.argmax(qc[0])) == 2 and qc[0, 2] == pytest.approx(1.0, rel=0.02)
    assert int(np.argmax(t2c[1])) == 0 and t2c[1, 0] == pytest.approx(9.0, rel=0.05)
    t2, q = model.statistics(np.array([[2.0, -1.0, 0.5]]))
    assert t2c[2].sum() == pytest.approx(t2[0]) and qc[2].sum() == pytest.approx(q[0])
    assert (t2c >= 0).all() and (qc >= 0).all()


def related_frame(n: int, seed: int) -> pd.DataFrame:
    """Three sensors tied by one relation: c = a + b up to noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10, 2, n), rng.normal(5, 1, n)
    return pd.DataFrame({"timestamp": np.arange(n, dtype=float), "a": a, "b": b, "c": a + b + rng.normal(0, 0.1, n)})


@pytest.fixture(scope="module")
def detector() -> PCADetector:
    return PCADetector(threshold_method="quantile", target_false_alarm_rate=0.01).fit(related_frame(4000, 1))


def test_a_broken_relation_is_flagged_and_blamed_on_its_sensors(detector: PCADetector) -> None:
    frame = related_frame(500, 2)
    frame.loc[300, "c"] = frame.loc[300, "a"] + frame.loc[300, "b"] - 3.0  # c alone is still in its normal range
    out = detector.detect(frame)
    assert out["score"].idxmax() == 300 and out["exceeds"][300]
    shares = detector.explain(frame).loc[300]
    assert shares.idxmax() in ("c", "a", "b") and shares[["a", "b", "c"]].sum() == pytest.approx(1.0)
    assert shares["c"] > 0.2  # the residual lies along c - a - b: c takes a third or more


def test_a_far_operating_point_that_keeps_the_relation_is_flagged_by_t2(detector: PCADetector) -> None:
    frame = related_frame(500, 3)
    frame.loc[200, ["a", "b"]] = [22.0, 5.0]  # a six standard deviations high, c follows
    frame.loc[200, "c"] = 27.0
    out = detector.detect(frame)
    assert out["score"].idxmax() == 200 and out["exceeds"][200]
    assert detector.explain(frame).loc[200].idxmax() == "a"


def test_score_is_the_combined_index(detector: PCADetector) -> None:
    """phi = T²/T²_lim + Q/Q_lim, from the model's own statistics of the scaled reading."""
    frame = related_frame(50, 4)
    scaled = detector.scaler_.transform(frame[["a", "b", "c"]].to_numpy(), "")
    t2, q = detector.pca_.statistics(scaled)
    expected = t2 / detector.pca_.t2_limit + q / detector.pca_.q_limit
    np.testing.assert_allclose(detector.score(frame).to_numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize(("params", "message"), [
    ({"variance": 0.0}, r"found variance=0.0, expected 0 < variance <= 1"),
    ({"confidence": 1.0}, r"found confidence=1.0, expected between 0 and 1"),
    ({"n_components": 0}, r"found n_components=0, expected None or >= 1"),
    ({"n_components": 3}, r"found n_components=3, expected 1 to 2 for 3 sensors"),
])
def test_bad_parameters_are_clear_errors(params: dict[str, float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        PCADetector(**params).fit(related_frame(500, 5))  # type: ignore[arg-type]


def test_duplicated_sensor_keeps_a_valid_model() -> None:
    frame = related_frame(2000, 6).assign(d=lambda f: f["a"])  # d repeats a exactly: a zero-variance direction
    det = PCADetector(n_components=3).fit(frame)
    assert det.pca_.n_components == 3 and all(v > 0 for v in det.pca_.eigenvalues)
    scores = det.score(related_frame(300, 7).assign(d=lambda f: f["a"]))
    assert np.isfinite(scores).all()


def test_saved_as_validated_json_only(detector: PCADetector, tmp_path: Path) -> None:
    version = detector.save(tmp_path / "m")
    assert sorted(p.suffix for p in version.iterdir()) == [".json"] * len(list(version.iterdir()))
    loaded = Detector.load(tmp_path / "m")
    assert isinstance(loaded, PCADetector) and loaded.pca_.model_dump() == detector.pca_.model_dump()


def _tamper(version: Path, change: dict[str, object]) -> None:
    data = json.loads((version / PCA_FILE).read_text())
    (version / PCA_FILE).write_text(json.dumps({**data, **change}))
    write_manifest(version)  # re-signed: the checksum passes, the content must still be refused


def test_components_that_are_not_orthonormal_are_refused(detector: PCADetector, tmp_path: Path) -> None:
    version = detector.save(tmp_path / "m")
    comps = json.loads((version / PCA_FILE).read_text())["components"]
    _tamper(version, {"components": [[2 * v for v in row] for row in comps]})
    with pytest.raises(CorruptModelError, match=r"pca.json: is not valid: .*not orthonormal"):
        Detector.load(version)


def test_a_model_for_other_sensors_is_refused(detector: PCADetector, tmp_path: Path) -> None:
    version = detector.save(tmp_path / "m")
    other = PCAModel.fit(np.random.default_rng(0).normal(size=(100, 2)), variance=0.95, n_components=1,
                         confidence=0.99)
    _tamper(version, other.model_dump(mode="json"))
    with pytest.raises(CorruptModelError, match=r"pca.json: found 2 sensors, expected 3"):
        Detector.load(version)
