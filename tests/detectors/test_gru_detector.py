"""The GRU autoencoder with real TensorFlow training on small seeded data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from pdm import saving
from pdm.detectors.base import Detector
from pdm.detectors.frames import sliding_windows
from pdm.detectors.gru import GRUAutoencoderDetector
from pdm.errors import CorruptModelError
from pdm.evaluation import alarm_episodes
from tests.conftest import SENSORS, normal_fleet
from tests.support import synthetic


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_compiled_path_matches_keras_output(cell: str, gru: GRUAutoencoderDetector,
                                            train_fleet: dict[str, pd.DataFrame]) -> None:
    if cell == "gru":
        det = gru
    else:
        det = GRUAutoencoderDetector(cell="lstm", window=16, hidden=8, latent=4, epochs=1).fit(
            {"pump-000": train_fleet["pump-000"].iloc[:1500]})
    x = det.scaler_.transform(train_fleet["pump-001"][SENSORS].to_numpy(), "pump-001")
    windows = np.ascontiguousarray(sliding_windows(x, det.window)[:300])
    reference = det.model_.predict(windows, verbose=0)  # Keras's own output
    for batch in (windows, windows[:1], windows[:37]):  # full, one window, a padded bucket
        got = det.engine_.reconstruct(batch)
        np.testing.assert_allclose(got, reference[: len(batch)], atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "target"), [("quantile", 0.01), ("pot", 0.005)])
def test_calibration_meets_target_rate_on_fresh_normal_data(method: str, target: float,
                                                            train_fleet: dict[str, pd.DataFrame]) -> None:
    # alarm rule 1 of 1: the calibrated statistic is the window score itself. What is checked is the threshold's
    # calibration on the dynamics term. The level terms (envelope, relations) add exceedances of their own on these
    # fresh days, because 3 h of history does not cover the generator's daily cycle: that is the short-history
    # case, judged in tests/detectors/test_robust_detection.py, so they are off here.
    det = GRUAutoencoderDetector(window=32, hidden=24, latent=8, epochs=15, max_train_windows=6000,
                                 threshold_method=method, target_false_alarm_rate=target, alarm_k=1, alarm_n=1,
                                 alarm_m=1, relations_weight=0.0, envelope=False).fit(train_fleet)
    if method == "pot":
        assert "xi" in det.threshold_.params  # the GPD fit was used, not the quantile fallback
    fresh = normal_fleet(4, 6000, seed=11)  # same units, new noise and duty cycles
    exceed = []
    for m, f in fresh.items():
        scores = det.score(f, machine_id=m).to_numpy()[det.window - 1 :: det.window]  # non-overlapping windows
        exceed.append(scores > det.threshold_.value)
    hits = np.concatenate(exceed)
    # Non-overlapping windows are close to independent: the count of exceedances must fall inside the central
    # 99.9% interval of Binomial(n, target).
    low, high = binom.interval(0.999, len(hits), target)
    assert low <= hits.sum() <= high, f"{hits.sum()} of {len(hits)} windows over, expected {low:.0f}..{high:.0f}"


@pytest.mark.parametrize(("kind", "sensor", "severity"), [("vibration_step", "vibration", 1.0),
                                                           ("temperature_drift", "temperature", 1.5)])
def test_clear_fault_is_detected_with_its_sensor_ranked_first(kind: str, sensor: str, severity: float,
                                                              gru: GRUAutoencoderDetector) -> None:
    n, start, end = 4000, 2500, 3700
    frame = synthetic.faulty(kind, n, start, end, severity=severity)
    out = gru.detect(frame, machine_id="pump-000")
    alarm = out["alarm"].to_numpy()
    assert alarm[start:end].any(), f"{kind} not detected"
    first = start + int(np.argmax(alarm[start:end]))
    shares = out.loc[first : end - 1, [f"contrib_{s}" for s in SENSORS]]
    shares = shares[out.loc[first : end - 1, "alarm"]].mean()
    assert shares.idxmax() == f"contrib_{sensor}", shares.to_dict()
    before = alarm_episodes(frame.timestamp.iloc[: start - 5], alarm[: start - 5])
    assert len(before) <= 2, f"{len(before)} false alarms in the normal part before the fault"


def test_per_machine_scaling_keeps_a_shifted_machine_quiet(gru: GRUAutoencoderDetector) -> None:
    frame = normal_fleet(1, 5000, seed=31, unit_seed_offset=77)["pump-000"]
    frame = frame.assign(temperature=frame.temperature + 15.0, vibration=frame.vibration * 1.4 + 0.5)
    history, fresh = frame.iloc[:3000], frame.iloc[3000:]
    unknown = gru.predict(fresh, machine_id="shifted-unit")  # no statistics yet: fleet scaling
    gru.add_machine("shifted-unit", history)
    try:
        own = gru.predict(fresh, machine_id="shifted-unit")
    finally:
        gru.scaler_.machines.pop("shifted-unit")
    assert unknown.mean() > 0.2, "the shift should look anomalous under the fleet's scaling"
    assert len(alarm_episodes(fresh.timestamp, own)) <= 1 and own.mean() < 0.02


def test_short_history_trains_calibrates_and_catches_a_clear_fault() -> None:
    history = normal_fleet(1, 400, seed=41)
    det = GRUAutoencoderDetector(window=16, hidden=16, latent=4, epochs=40, patience=5, seed=1).fit(history)
    assert any("short history" in w for w in det.training_summary_["warnings"])
    assert det.evaluation_["stride"] == 1
    # a short history scores the dynamics only (levels it cannot judge): a pressure that starts to swing
    frame = synthetic.faulty("oscillation", 600, 300, 600, severity=2.0, seed=42)
    alarm = det.predict(frame, machine_id="pump-000").to_numpy()
    assert alarm[300:].mean() > 0.5


def test_keras_file_that_does_not_load_is_a_typed_error(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    (version / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["files"]["model.keras"] = saving.sha256_file(version / "model.keras")  # re-signed on purpose
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptModelError, match=r"model\.keras: cannot be loaded by Keras"):
        Detector.load(version)


def test_truncated_keras_file_fails_its_checksum(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    from pdm.errors import ChecksumMismatchError

    version = gru.save(tmp_path / "m")
    data = (version / "model.keras").read_bytes()
    (version / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ChecksumMismatchError, match=r"model\.keras"):
        Detector.load(version)


def test_saved_config_records_versions_and_hyperparameters(gru: GRUAutoencoderDetector, tmp_path: Path) -> None:
    version = gru.save(tmp_path / "m")
    config = json.loads((version / "config.json").read_text())
    assert {"keras", "tensorflow"} <= set(config["versions"])
    assert config["params"]["window"] == 32 and config["params"]["cell"] == "gru"
    assert config["window"] == 32 and config["period_s"] == pytest.approx(1.0)
    assert not list(version.glob("*.pkl")) and not list(version.glob("*.pickle"))


def test_envelope_counts_readings_beyond_the_training_range(gru: GRUAutoencoderDetector) -> None:
    normal = normal_fleet(1, 1500, seed=51)["pump-000"]
    shifted = normal.assign(vibration=normal.vibration + 6.0)  # far above anything seen in training
    weight = gru.relations_weight
    try:  # the envelope alone (the relations term would also see this shift)
        gru.relations_weight = 0.0
        gru.envelope = False
        off_normal = gru.score(normal, machine_id="pump-000").dropna().to_numpy()
        off_shifted = gru.score(shifted, machine_id="pump-000").dropna().to_numpy()
        gru.envelope = True
        on_normal = gru.score(normal, machine_id="pump-000").dropna().to_numpy()
        on_shifted = gru.explain(shifted, machine_id="pump-000").dropna()
        on_shifted_scores = gru.score(shifted, machine_id="pump-000").dropna().to_numpy()
    finally:
        gru.envelope, gru.relations_weight = True, weight
    assert np.mean(np.isclose(on_normal, off_normal, rtol=1e-3)) > 0.95  # inside the envelope: the same score
    assert np.all(on_shifted_scores >= off_shifted - 1e-9)
    # +6 mm/s is about 8 scaled units: several units beyond the envelope on the vibration sensor, whose squared
    # excess (times envelope_weight) adds well over 5 to the window score
    assert np.median(on_shifted_scores - off_shifted) > 5.0
    assert (on_shifted["vibration"] > 0.5).mean() > 0.95  # and the excess is attributed to the right sensor
