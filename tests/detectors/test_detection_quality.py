"""The sensor-relations term of the GRU detector (`pdm.detectors.relations`): what it catches, how it is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pdm import saving
from pdm.detectors.base import Detector
from pdm.detectors.gru import GRUAutoencoderDetector
from pdm.detectors.relations import MAX_QUADRATIC_SENSORS, RELATIONS_FILE, SensorRelations
from pdm.errors import CorruptModelError, DataError
from tests.conftest import normal_fleet
from tests.support import synthetic

RNG = np.random.default_rng(5)


def windows(x: np.ndarray, w: int = 10) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, w, axis=0).transpose(0, 2, 1)


def speed_readings(n_sensors: int, n: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """``n_sensors`` noisy readings that all follow one speed (gains 1, 2, 3, ...), and the speed."""
    speed = np.repeat(RNG.uniform(0, 2, n // 50), 50)
    gains = np.arange(1, n_sensors + 1)
    return speed[:, None] * gains + RNG.normal(0, 0.05, (len(speed), n_sensors)), speed


def test_relations_blame_the_one_reading_that_left_the_others() -> None:
    normal, speed = speed_readings(3)
    rel = SensorRelations.fit([normal], window=10)
    assert rel.quadratic and rel.n_windows == len(normal) - 9
    assert rel.excess(windows(normal)).sum(axis=1).max() < 1e-3  # its own training data stays inside
    off = normal.copy()
    off[:, 2] -= 0.3 * speed * 3  # the third reads 30 % low at every speed, inside its own training range
    low, high = np.quantile(off[:, 2], [0.001, 0.999])
    assert normal[:, 2].min() <= low and high <= normal[:, 2].max()
    total = rel.excess(windows(off)).sum(axis=1)
    share = rel.contributions(windows(off))
    running = speed[9:] > 0.5
    assert np.mean(total[running] > 0) > 0.95
    np.testing.assert_allclose(share.sum(axis=1), total, rtol=1e-9, atol=1e-12)
    assert np.mean(share[running].argmax(axis=1) == 2) > 0.9


def test_a_frozen_sensor_takes_the_relations_term_out_of_its_windows() -> None:
    # a missing sensor carried forward (or a stuck one) breaks every relation it takes part in; that is a data-quality
    # problem, not the machine's: no relations term for those windows, and only those
    normal, speed = speed_readings(3)
    rel = SensorRelations.fit([normal], window=10)
    stuck = normal.copy()
    stuck[2000:, 1] = 0.0  # the second sensor reads one value from row 2000 on
    w = windows(stuck)
    assert rel.excess(w)[2000:][speed[2009:] > 0.5].sum(axis=1).min() > 0  # the relation looks broken
    share = rel.contributions(w)
    assert share[2000:].sum() == 0.0  # every window from row 2000 on holds the frozen sensor
    np.testing.assert_allclose(share[:1990], rel.contributions(windows(normal))[:1990])  # untouched before
    off = normal.copy()
    off[:, 2] -= 0.3 * speed * 3
    assert rel.contributions(windows(off)).sum() > 1.0  # jittering sensors keep the term


def test_a_sensor_still_by_nature_does_not_take_the_term_out() -> None:
    """A setpoint that holds one value for long stretches in training (a server metric flat for an hour) is still
    by nature: a window in which it holds one value keeps the relations term. A model saved before the check
    (``still`` None) treats it as frozen, as before."""
    normal, speed = speed_readings(3)
    setpoint = np.repeat(RNG.choice([0.0, 1.0], len(normal) // 500), 500)  # changes every 500 readings at most
    data = np.column_stack([normal, setpoint])
    rel = SensorRelations.fit([data], window=10)
    assert rel.still is not None and rel.still[3] > 0.9 and max(rel.still[:3]) == 0.0
    assert rel.still_by_nature.tolist() == [False, False, False, True]
    off = data.copy()
    off[:, 2] -= 0.3 * speed * 3  # the third reads 30 % low: a broken relation while the setpoint holds still
    w = windows(off)
    held = np.ptp(w[:, :, 3], axis=1) == 0  # windows in which the setpoint holds one value (most of them)
    assert held.mean() > 0.9
    assert rel.contributions(w)[held, 2].sum() > 1.0
    legacy = SensorRelations.model_validate({**rel.model_dump(), "still": None})
    assert legacy.contributions(w)[held].sum() == 0.0
    with pytest.raises(ValueError, match="expected one share between 0 and 1 per sensor"):
        SensorRelations.model_validate({**rel.model_dump(), "still": [0.0, 2.0]})


def test_many_sensors_use_a_linear_fit() -> None:
    normal, speed = speed_readings(MAX_QUADRATIC_SENSORS + 1, n=5000)
    rel = SensorRelations.fit([normal], window=10)
    assert not rel.quadratic and len(rel.coef[0]) == 1 + normal.shape[1]
    off = normal.copy()
    off[:, 0] += 0.5 * speed
    assert np.mean(rel.excess(windows(off))[speed[9:] > 0.5, 0] > 0) > 0.9


def test_relations_catch_a_leak_that_stays_inside_every_sensor_range(gru: GRUAutoencoderDetector,
                                                                     train_fleet: dict[str, Any]) -> None:
    # tests.support.synthetic's leak: pressure no longer follows the load; here it never leaves its training range
    frame = synthetic.faulty("leak", 4000, 2500, 3700, severity=1.0, seed=21)
    history = train_fleet["pump-000"].pressure
    assert frame.pressure[2500:3700].between(history.min(), history.max()).all()
    weight = gru.relations_weight
    assert weight > 0 and gru.relations_ is not None and gru.relations_.margin is not None
    try:
        gru.relations_weight = 0.0
        without = gru.predict(frame, machine_id="pump-000").to_numpy()
    finally:
        gru.relations_weight = weight
    with_relations = gru.predict(frame, machine_id="pump-000").to_numpy()
    assert without[2500:3700].mean() < 0.05, "reconstruction and envelope alone were expected to miss this leak"
    assert with_relations[2500:3700].mean() > 0.5
    assert with_relations[:2495].mean() < 0.1


def test_relations_are_saved_and_scored_the_same_after_loading(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    assert RELATIONS_FILE in json.loads((version / "manifest.json").read_text())["files"]
    loaded = Detector.load(version)
    assert isinstance(loaded, GRUAutoencoderDetector) and loaded.relations_ == gru.relations_
    frame = synthetic.faulty("leak", 3000, 1500, 3000, seed=22)
    np.testing.assert_allclose(loaded.score(frame, machine_id="pump-000").to_numpy(),
                               gru.score(frame, machine_id="pump-000").to_numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(reference=None, margin=None), "reference and margin null"),
    (lambda d: d["coef"][0].pop(), "coef.*expected 10"),
    (lambda d: d.update(low=d["low"][:2]), "coefficient rows"),
    (lambda d: d["coef"][1].__setitem__(2, 0.5), "predicted from its own mean"),
])
def test_bad_relations_file_is_a_typed_error(change: Any, message: str, gru: GRUAutoencoderDetector,
                                             tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    data = json.loads((version / RELATIONS_FILE).read_text())
    change(data)
    (version / RELATIONS_FILE).write_text(json.dumps(data))
    saving.write_manifest(version)  # as if it had been saved like that
    with pytest.raises(CorruptModelError, match=rf"relations\.json.*{message}"):
        Detector.load(version)


def test_model_saved_before_the_term_existed_loads_without_it(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    (version / RELATIONS_FILE).unlink()
    saving.write_manifest(version)
    loaded = Detector.load(version)
    assert isinstance(loaded, GRUAutoencoderDetector) and loaded.relations_ is None
    frame = synthetic.faulty("leak", 3000, 1500, 3000, seed=22)
    weight = gru.relations_weight
    try:
        gru.relations_weight = 0.0
        expected = gru.score(frame, machine_id="pump-000").to_numpy()
    finally:
        gru.relations_weight = weight
    np.testing.assert_allclose(loaded.score(frame, machine_id="pump-000").to_numpy(), expected, rtol=1e-4, atol=1e-6)


def test_relations_file_added_after_saving_is_refused(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    manifest = json.loads((version / "manifest.json").read_text())
    del manifest["files"][RELATIONS_FILE]
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptModelError, match=r"relations\.json.*not listed in manifest"):
        Detector.load(version)


class _Identity:
    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        return windows


class _NoRelations(GRUAutoencoderDetector):
    """A subclass whose ``_fit_core`` forgets ``_fit_ranges`` (no network: reconstructs its input)."""

    def _fit_core(self, segments: list[np.ndarray], progress: Any) -> dict[str, Any]:
        rows = np.concatenate(segments)
        self.envelope_ = (rows.min(axis=0), rows.max(axis=0))
        self.engine_ = _Identity()
        return {}


def test_a_fit_that_skips_the_relations_is_refused() -> None:
    with pytest.raises(DataError, match=r"_fit_core did not fit the sensor relations.*_fit_ranges"):
        _NoRelations(window=16).fit(normal_fleet(1, 600, seed=3))


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_relations_weight_is_validated(weight: float) -> None:
    with pytest.raises(DataError, match=r"found relations_weight=.*expected a finite number >= 0"):
        GRUAutoencoderDetector(relations_weight=weight).fit(normal_fleet(1, 600, seed=3))
