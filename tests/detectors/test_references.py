"""Reference sensors (`pdm.detectors.references`): a temperature scored over the ambient ignores the weather and
still sees the machine's own heating, in `detect`, in `stream` and after a save and load; the reference is an input
that is never scored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.base import Detector
from pdm.detectors.pca import PCADetector
from pdm.detectors.references import References, check_references
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import DataError

FEATURES = ["temperature", "vibration", "pressure", "ambient"]
START = 1_796_000_000.0


def readings(n: int, *, seed: int, weather: float = 0.0, heating: float = 0.0, start: float = START) -> pd.DataFrame:
    """One machine at 1 Hz: the ambient follows a 2-hour cycle (plus ``weather``), the temperature is the ambient
    plus the machine's heat (plus ``heating``)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    ambient = 20.0 + 3.0 * np.sin(2 * np.pi * t / 7200.0) + weather + rng.normal(0, 0.1, n)
    heat = 30.0 + rng.normal(0, 0.3, n) + heating
    return pd.DataFrame({"timestamp": start + t, "temperature": ambient + heat,
                         "vibration": 2.0 + rng.normal(0, 0.1, n), "pressure": 4.0 + rng.normal(0, 0.05, n),
                         "ambient": ambient})


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return readings(8000, seed=1)


def fit(cls: type[Detector], train: pd.DataFrame, **params: object) -> Detector:
    # per reading (a rule of 1 of 1): the threshold is calibrated on single scores, not on the alarm statistic
    return cls(features=FEATURES, timestamp_column="timestamp", threshold_method="quantile",  # type: ignore[call-arg]
               target_false_alarm_rate=1e-3, alarm_k=1, alarm_n=1, alarm_m=1, **params).fit({"pump-1": train})


def flagged(det: Detector, frame: pd.DataFrame) -> float:
    out = det.detect(frame, machine_id="pump-1")
    return float(out["exceeds"][out["score"].notna()].mean())


@pytest.mark.parametrize("cls", [RobustZScoreDetector, PCADetector])
def test_a_warmer_day_is_not_a_fault_when_temperature_is_scored_over_the_ambient(
        cls: type[Detector], train: pd.DataFrame) -> None:
    warm = readings(3000, seed=2, weather=15.0, start=START + 10_000)
    plain = fit(cls, train)
    referred = fit(cls, train, references={"temperature": "ambient"})
    assert flagged(plain, warm) > 0.9  # both temperature and ambient leave the range the history showed
    assert flagged(referred, warm) < 0.02
    overheating = readings(3000, seed=3, weather=15.0, heating=3.0, start=START + 10_000)
    assert flagged(referred, overheating) > 0.9  # the machine's own heating still counts


def test_the_reference_is_never_scored(train: pd.DataFrame) -> None:
    det = fit(RobustZScoreDetector, train, references={"temperature": "ambient"})
    out = det.detect(readings(2000, seed=4, weather=-15.0, start=START + 10_000), machine_id="pump-1")
    assert (out["contrib_ambient"].dropna() == 0.0).all()
    assert det.feature_names == tuple(FEATURES)  # still read: every message must carry it
    assert not any("ambient" in w for w in det.fit_warnings)  # not "constant in training", though it enters as 0
    rest = det.calibration_summary_.rest["pump-1"]  # type: ignore[union-attr]
    assert rest.lo[FEATURES.index("ambient")] is None and rest.band_lo[FEATURES.index("ambient")] is None


def test_stream_scores_as_detect_and_a_save_keeps_the_references(train: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    det = fit(PCADetector, train, references={"temperature": "ambient"})
    det.save(tmp_path / "m")
    loaded = Detector.load(tmp_path / "m")
    assert loaded.references == {"temperature": "ambient"}
    test = readings(600, seed=5, weather=4.0, heating=3.0, start=START + 10_000)
    expected = loaded.detect(test, machine_id="pump-1")["score"].to_numpy()
    stream = loaded.stream("pump-1")
    got = []
    for lo in range(0, 600, 97):
        part = test.iloc[lo : lo + 97]
        windows = stream.append(part["timestamp"].to_numpy(), part[FEATURES].to_numpy()).windows
        got.extend(loaded.score_windows(windows)[0].tolist())
    np.testing.assert_allclose(got, expected[~np.isnan(expected)], rtol=1e-5)
    assert not np.allclose(expected, fit(PCADetector, train).detect(test, machine_id="pump-1")["score"], rtol=1e-2)


def test_a_missing_reference_makes_its_target_missing() -> None:
    refs = References.resolve({"temperature": "ambient"}, FEATURES)
    got = refs.apply(np.array([[55.0, 2.0, 4.0, np.nan], [56.0, 2.1, 4.1, 21.0]]))
    np.testing.assert_array_equal(got, [[np.nan, 2.0, 4.0, 0.0], [35.0, 2.1, 4.1, 0.0]])


@pytest.mark.parametrize(("refs", "message"), [
    ({"temperature": "temperature"}, "other than itself"),
    ({"temperature": "ambient", "ambient": "pressure"}, "both referred and a reference"),
    (["temperature"], "expected a mapping"),
    ({"temperature": ""}, "expected sensor names"),
])
def test_bad_references_are_refused_before_training(refs: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_references(refs)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=message):
        RobustZScoreDetector(references=refs).fit(readings(500, seed=0))  # type: ignore[arg-type]


def test_a_reference_that_is_not_a_sensor_of_the_model_is_named(train: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"found \['outdoor'\], expected sensors of the model"):
        RobustZScoreDetector(features=FEATURES, references={"temperature": "outdoor"}).fit(train)


def test_a_stream_does_not_move_to_a_model_with_other_references(train: pd.DataFrame) -> None:
    referred = fit(RobustZScoreDetector, train, references={"temperature": "ambient"})
    stream = referred.stream("pump-1")
    stream.append(train["timestamp"].to_numpy()[:50], train[FEATURES].to_numpy()[:50])
    with pytest.raises(DataError, match=r"references: found \{\}, expected \{'temperature': 'ambient'\}"):
        stream.rebase(fit(RobustZScoreDetector, train))


def test_the_gru_still_scores_sensor_relations_beside_a_reference_input() -> None:
    """The reference enters the windows as a constant 0, and a window in which a sensor never changes used to lose
    its relations term (a frozen sensor is a data-quality matter): with an ambient reference the relations term
    was silently off. A pressure that leaves its relation to the vibration, inside its own range, is flagged."""
    from pdm.detectors.gru import GRUAutoencoderDetector

    def pump(n: int, seed: int, leak: float = 0.0, start: float = START) -> pd.DataFrame:
        frame = readings(n, seed=seed, start=start)
        rng = np.random.default_rng(seed + 100)
        speed = np.repeat(rng.uniform(0.5, 1.5, n // 600 + 1), 600)[:n]
        frame["vibration"] = 2.0 * speed + rng.normal(0, 0.05, n)
        frame["pressure"] = 4.0 * speed * (1.0 - leak) + rng.normal(0, 0.05, n)
        return frame

    det = GRUAutoencoderDetector(features=FEATURES, timestamp_column="timestamp", references={"temperature": "ambient"},
                                 window=16, hidden=8, latent=4, epochs=3, max_train_windows=3000, seed=0,
                                 alarm_k=1, alarm_n=1, alarm_m=1).fit({"pump-1": pump(12_000, 1)})
    assert det.terms_.level and det.relations_ is not None
    healthy, leaking = pump(3000, 2, start=START + 20_000), pump(3000, 2, leak=0.25, start=START + 20_000)
    assert flagged(det, healthy) < 0.05
    assert flagged(det, leaking) > 0.5  # pressure 25 % low at the same speed: within its range, off its relation


def test_a_saved_reference_that_is_not_a_sensor_of_the_model_is_a_corrupt_model(train: pd.DataFrame,
                                                                                 tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pdm.errors import CorruptModelError
    from tests.support.daemon import edit_json, new_version

    fit(PCADetector, train, references={"temperature": "ambient"}).save(tmp_path / "m")

    def edit(directory) -> None:  # type: ignore[no-untyped-def]
        config = json.loads((directory / "config.json").read_text())
        edit_json(directory / "config.json", params={**config["params"], "references": {"temperature": "outdoor"}})

    new_version(tmp_path / "m", edit)
    with pytest.raises(CorruptModelError, match=r"config.json.*found \['outdoor'\], expected sensors of the model"):
        Detector.load(tmp_path / "m")
