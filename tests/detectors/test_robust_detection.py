"""Detection that holds on short and unrepresentative histories: the level terms back off and say so, spikes are
a sensor's problem and not a machine alarm, machines get their own threshold where their history allows, a
threshold for a rare target is extrapolated, and the batch path and the stream agree on all of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.alarm import AlarmRule
from pdm.detectors.base import Detector
from pdm.detectors.gru import MIN_LEVEL_ROWS, GRUAutoencoderDetector
from pdm.detectors.pca import PCADetector
from pdm.detectors.spikes import SpikeFilter
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import CorruptModelError
from pdm.evaluation import alarm_episodes
from pdm.saving import write_manifest
from tests.conftest import SENSORS, normal_fleet
from tests.support.synthetic import machine_frame

MACHINE = "pump-000"
SMALL = {"window": 16, "hidden": 16, "latent": 4, "epochs": 10, "seed": 0}


def drifting_machine(n: int, seed: int = 3) -> pd.DataFrame:
    """One healthy machine whose temperature keeps rising slowly (a warming day): 0.5 degC per 100 readings."""
    frame, _ = machine_frame(n, seed=seed, mean_regime_s=120.0)
    frame["temperature"] += 0.005 * np.arange(n)
    return frame[["timestamp", *SENSORS]]


def test_a_few_hundred_rows_do_not_flag_most_later_healthy_rows() -> None:
    frame = drifting_machine(4400)
    det = GRUAutoencoderDetector(machine_column=None, **SMALL).fit(frame.iloc[:400])
    assert not det.terms_.level  # 320 fitting rows cannot show the operating range
    assert any("short history" in w and str(MIN_LEVEL_ROWS) in w for w in det.fit_warnings)
    assert det.short_history and any("pdm retrain" in w for w in det.fit_warnings)
    later = det.detect(frame.iloc[400:])
    # by 4,000 readings later the temperature is 20 degC above anything in the history
    assert frame.temperature.iloc[-1] > frame.temperature.iloc[:400].max() + 15
    assert later["alarm"].mean() < 0.5, f"{later['alarm'].mean():.0%} of later healthy rows in alarm"
    # too few clusters for the declustered default: per-window POT, which extrapolates an exponential tail from few
    # calibration windows for a rare target
    assert det.threshold_.params.get("fallback") == "pot"
    assert det.threshold_.params.get("pot_fallback") == "exponential_tail"


def test_a_history_that_covers_its_range_scores_leaving_it(gru: GRUAutoencoderDetector) -> None:
    # the session model: 4 pumps x 4,000 readings of a stationary process
    assert gru.terms_.level and not any("does not cover" in w for w in gru.training_summary_["warnings"])
    normal = normal_fleet(1, 1500, seed=51)[MACHINE]
    shifted = normal.assign(pressure=normal.pressure + 2.0)
    out = gru.detect(shifted, machine_id=MACHINE)
    assert out["alarm"].iloc[200:].mean() > 0.9
    top = out[[f"contrib_{s}" for s in SENSORS]].iloc[200:].idxmax(axis=1)
    assert (top == "contrib_pressure").mean() > 0.5


def test_spikes_are_held_so_a_broken_sensor_raises_no_machine_alarm(gru: GRUAutoencoderDetector) -> None:
    frame = normal_fleet(1, 3000, seed=61)[MACHINE]
    rng = np.random.default_rng(5)
    hits = rng.choice(np.arange(100, 3000), size=30, replace=False)  # 1 % of readings, one at a time
    spiky = frame.copy()
    spiky.loc[hits, "temperature"] += rng.choice([-25.0, 25.0], size=len(hits))
    with_rule = gru.detect(spiky, machine_id=MACHINE)
    assert gru.spike_limits is not None
    assert not with_rule["alarm"].any()
    try:
        limits, gru.spike_limits_ = gru.spike_limits_, None
        without_rule = gru.detect(spiky, machine_id=MACHINE)
    finally:
        gru.spike_limits_ = limits
    assert without_rule["alarm"].mean() > 0.2, "without the rule the spikes were expected to raise alarms"
    # the stream holds the same readings, counts them, and builds the same windows
    stream = gru.stream(MACHINE)
    values = spiky[list(gru.feature_names)].to_numpy(np.float64)
    got = [stream.append(spiky.timestamp.to_numpy()[i : i + 50], values[i : i + 50]) for i in range(0, 3000, 50)]
    assert sum(int(g.spikes[0]) for g in got if g.spikes is not None) == len(hits)
    scores, _ = gru.score_windows(np.concatenate([g.windows for g in got]))
    np.testing.assert_allclose(scores, with_rule["score"].dropna().to_numpy(), rtol=1e-4, atol=1e-6)


def test_a_step_is_accepted_after_one_held_reading() -> None:
    f = SpikeFilter(np.array([1.0, np.inf]))
    x = np.array([[0.0, 0.0], [0.2, 50.0], [6.0, 0.0], [6.1, 0.0], [6.0, 0.0]])
    cleaned, spikes = f.apply(x)
    assert np.isnan(cleaned[2, 0]) and cleaned[3, 0] == pytest.approx(6.1) and spikes.tolist() == [0, 0]
    assert cleaned[1, 1] == 50.0  # a sensor without a limit (constant in training) is never held


def fleet_with_a_noisy_unit(n: int) -> dict[str, pd.DataFrame]:
    fleet = normal_fleet(3, n, seed=9)
    rng = np.random.default_rng(1)
    noisy = fleet["pump-002"].copy()
    noisy["vibration"] += rng.normal(0, 0.6, n)
    fleet["pump-002"] = noisy
    return fleet


def test_machines_with_enough_history_get_their_own_threshold(tmp_path: Path) -> None:
    fleet = fleet_with_a_noisy_unit(15_000)
    det = RobustZScoreDetector(scaling="global", threshold_method="pot",
                               target_false_alarm_rate=1e-3, machine_thresholds=True).fit(fleet)
    own = det.machine_thresholds_
    assert set(own) == set(fleet)  # 15,000 rows each: 2,405 alarm-statistic values, enough for a threshold of its own
    assert own["pump-002"].value > own["pump-000"].value  # the noisy unit no longer sets everyone's threshold
    assert det.threshold_for("pump-000") == own["pump-000"].value
    assert det.threshold_for("pump-new") == det.threshold_.value  # unknown machine: the fleet's
    assert min(t.value for t in own.values()) >= 0.5 * det.threshold_.value
    out = det.detect(fleet["pump-000"], machine_id="pump-000")
    assert (out["threshold"] == own["pump-000"].value).all()
    version = det.save(tmp_path / "m")
    loaded = Detector.load(version)
    assert loaded.threshold_for("pump-002") == own["pump-002"].value
    bad = json.loads((version / "machine_thresholds.json").read_text())
    bad["thresholds"]["pump-000"]["value"] = -1.0
    (version / "machine_thresholds.json").write_text(json.dumps(bad))
    write_manifest(version)
    with pytest.raises(CorruptModelError, match=r"machine_thresholds\.json.*non-positive"):
        Detector.load(version)


def test_short_histories_share_the_fleet_threshold() -> None:
    det = RobustZScoreDetector(threshold_method="pot", target_false_alarm_rate=1e-3,
                               machine_thresholds=True).fit(normal_fleet(3, 3000, seed=9))
    assert det.machine_thresholds_ == {}
    off = RobustZScoreDetector(threshold_method="pot",
                               target_false_alarm_rate=1e-3).fit(fleet_with_a_noisy_unit(12_000))
    assert off.machine_thresholds_ == {}  # off by default (docs/detector.md: measured, more false alarms)
    assert det.threshold_for("pump-001") == det.threshold_.value


def test_hysteresis_and_the_quiet_span_keep_one_fault_one_alarm() -> None:
    ts = np.arange(400.0)
    scores = np.full(400, 0.2)
    scores[100:300] = 1.5
    scores[150:170] = 0.8  # dips below the threshold but stays above the clear level
    scores[220:240] = 0.3  # quiet, but for fewer windows than m
    merged = AlarmRule(k=5, n=10, m=30, clear_ratio=0.5).apply_scores(scores, 1.0)
    assert len(alarm_episodes(ts, merged)) == 1
    split = AlarmRule(k=5, n=10, m=5).apply_scores(scores, 1.0)
    assert len(alarm_episodes(ts, split)) == 3


def test_a_model_saved_before_the_new_score_loads_and_scores_as_it_was_saved() -> None:
    # models/pump keeps its first version (2026-11-23), saved before per-sensor error levels and centred windows
    root = Path(__file__).resolve().parents[2] / "models" / "pump"
    legacy = Detector.load(root / "20261123T115141Z")
    assert isinstance(legacy, GRUAutoencoderDetector)
    assert legacy.terms_.legacy and not legacy.center_windows and legacy.relations_ is not None
    assert legacy.relations_.reference is not None and legacy.alarm_rule.clear_ratio == 1.0
    frame = normal_fleet(1, 600, seed=5)[MACHINE]
    scores = legacy.score(frame.assign(temperature=frame.temperature - 20.0), machine_id="pump-001").dropna()
    assert len(scores) == 600 - legacy.window_length + 1 and np.isfinite(scores).all()
    # the old score: the mean over sensors of reconstruction error + envelope excess + relations_weight x reference
    # x relations excess, all >= 0; a window at -50 scaled units is (low + 50)^2 beyond each sensor's envelope
    errors = legacy._window_errors(np.full((1, legacy.window_length, 3), -50.0, dtype=np.float32))
    envelope_only = float(np.mean((np.asarray(legacy.terms_.low) + 50.0) ** 2))
    assert float(legacy._aggregate(errors)[0]) >= envelope_only > 1000.0


@pytest.mark.parametrize("detector", [PCADetector, RobustZScoreDetector])
def test_every_detector_says_when_its_history_is_short(detector: type[Detector]) -> None:
    """The baselines have no level terms to switch off, but their alarms on a few hundred readings are as little
    evidence of a fault: they warn "short history" too (in `info` and the daemon's status), and a history of
    3,000 readings does not."""
    frame = drifting_machine(3400)
    short = detector(machine_column=None, features=SENSORS).fit(frame.iloc[:400])
    assert short.short_history
    assert [w for w in short.fit_warnings if w.startswith("short history (320 fitting rows")]
    long = detector(machine_column=None, features=SENSORS).fit(frame)
    assert not long.short_history and not [w for w in long.fit_warnings if w.startswith("short history")]


@pytest.mark.parametrize("detector", [PCADetector, RobustZScoreDetector])
def test_a_history_of_thousands_of_rows_but_hours_long_says_it_spans_less_than_a_day(
        detector: type[Detector], tmp_path: Path) -> None:
    """3,400 readings at 1 Hz pass the row count but are 57 minutes of one day: the model says in its warnings
    (`info`, the daemon's status) that the history spans less than a day; the same readings a minute apart (2.4
    days) do not. It is a warning only: the retrain still believes such a champion (`short_history` is by rows)."""
    frame = drifting_machine(3400)
    hours = detector(machine_column=None, features=SENSORS).fit(frame)
    said = [w for w in hours.fit_warnings if w.startswith("the history spans ")]
    assert len(said) == 1 and said[0].startswith("the history spans 0.9 h, less than a day")
    assert "pdm retrain" in said[0] and "does not take" not in said[0]  # the retrain believes this model
    assert not hours.short_history
    hours.save(tmp_path / "model")
    assert said[0] in Detector.load(tmp_path / "model").fit_warnings  # what `info` and the daemon's status show
    t0 = float(frame["timestamp"].iloc[0])
    days = detector(machine_column=None, features=SENSORS).fit(
        frame.assign(timestamp=t0 + 60.0 * np.arange(len(frame))))
    assert not [w for w in days.fit_warnings if w.startswith("the history spans ")]
    day = drifting_machine(2880).assign(timestamp=t0 + 30.0 * np.arange(2880))  # exactly a day of 30 s readings
    assert not [w for w in detector(machine_column=None, features=SENSORS).fit(day).fit_warnings
                if w.startswith("the history spans ")]
