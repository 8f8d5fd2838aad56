"""Scaling, threshold calibration and the alarm rule, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from pdm.detectors.alarm import AlarmRule
from pdm.detectors.calibration import Threshold
from pdm.detectors.scaling import Scaler
from pdm.errors import DataError


def test_robust_scale_is_iqr_over_1349() -> None:
    values = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])  # q25=2, q75=4 -> IQR 2
    s = Scaler.fit({"a": values}, mode="global")
    assert s.global_stats.center == [3.0]
    assert s.global_stats.scale[0] == pytest.approx(2 / 1.349)


def test_constant_column_gets_a_small_scale_and_is_flagged() -> None:
    values = np.column_stack([np.arange(10.0), np.full(10, 4.0)])
    s = Scaler.fit({"a": values}, mode="global")
    assert s.global_stats.constant == [False, True]
    assert s.global_stats.scale[1] == pytest.approx(4.0 * 1e-3)
    assert s.constant_columns() == [1]
    assert np.isfinite(s.transform(np.array([[0.0, 4.5]]), "a")).all()


def test_quantised_column_falls_back_to_std() -> None:
    values = np.array([[0.0]] * 18 + [[1.0]] * 2)  # IQR 0, std 0.3
    s = Scaler.fit({"a": values}, mode="global")
    assert s.global_stats.scale[0] == pytest.approx(0.3)


def test_all_missing_column_is_an_error() -> None:
    with pytest.raises(DataError, match="no values at all"):
        Scaler.fit({"a": np.array([[1.0, np.nan], [2.0, np.nan]])}, mode="global")


def test_per_machine_removes_baseline_offset_and_unknown_machine_uses_global() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(50, 2, (1000, 1))
    b = rng.normal(60, 2, (1000, 1))
    s = Scaler.fit({"a": a, "b": b}, mode="per_machine")
    assert abs(float(np.median(s.transform(b, "b")))) < 0.1
    assert s.stats_for("new") is s.global_stats
    s.add_machine("new", b + 5)
    assert abs(float(np.median(s.transform(b + 5, "new")))) < 0.1


def test_per_machine_scale_is_floored_at_half_the_fleet_scale() -> None:
    wide = np.linspace(0, 10, 10_001)[:, None]
    flat = np.linspace(5, 5.01, 101)[:, None]  # a machine that never changed regime
    s = Scaler.fit({"wide": wide, "flat": flat}, mode="per_machine")
    assert s.machines["flat"].scale[0] == pytest.approx(0.5 * s.global_stats.scale[0])


def test_add_machine_needs_per_machine_mode() -> None:
    s = Scaler.fit({"a": np.arange(10.0)[:, None]}, mode="global")
    with pytest.raises(DataError, match="per_machine"):
        s.add_machine("b", np.arange(10.0)[:, None])


def test_quantile_threshold_on_exponential_scores() -> None:
    scores = np.random.default_rng(1).exponential(size=50_000)
    t = Threshold.fit(scores, method="quantile", target_rate=0.01)
    assert t.value == pytest.approx(math.log(100), abs=0.1)  # exponential: P(X > x) = exp(-x)
    assert t.calibration_exceedance_rate == pytest.approx(0.01, abs=0.001)


def test_pot_extrapolates_beyond_the_calibration_set() -> None:
    scores = np.random.default_rng(2).exponential(size=20_000)
    t = Threshold.fit(scores, method="pot", target_rate=1e-4)  # 2 of 20,000 calibration windows expected over
    assert t.value == pytest.approx(math.log(1e4), rel=0.15)
    assert {"u", "xi", "sigma", "n_peaks"} <= set(t.params)


def test_pot_never_puts_an_inside_target_above_every_calibration_score() -> None:
    # 20,000 exponential scores plus 30 odd windows at 50: q * n = 2 lies inside the data, and the heavy-tailed fit
    # (xi near 1) would put the level near 135, above every score; the empirical quantile (the 3rd highest) is used.
    scores = np.concatenate([np.random.default_rng(0).exponential(size=20_000), np.full(30, 50.0)])
    t = Threshold.fit(scores, method="pot", target_rate=1e-4)
    assert t.value == 50.0
    assert t.params["fallback"] == "quantile" and t.params["pot_value"] > 100
    assert "above the largest of 20030 calibration scores" in t.params["reason"]


def test_pot_falls_back_to_quantile_with_too_few_peaks() -> None:
    t = Threshold.fit(np.arange(100.0), method="pot", target_rate=0.02)  # the target lies inside the data
    assert t.params["fallback"] == "quantile"
    assert t.value == 98.0


def test_pot_extrapolates_an_exponential_tail_for_a_target_beyond_few_scores() -> None:
    # 0..99: median 49.5, the 50 values above it exceed it by 25 on average; target 1e-3 of 100 values (0.1 of one):
    # 49.5 + 25 * ln(50 / 0.1)
    t = Threshold.fit(np.arange(100.0), method="pot", target_rate=0.001)
    assert t.params["fallback"] == "exponential_tail"
    assert t.value == pytest.approx(49.5 + 25.0 * np.log(500.0))
    assert t.value > 99.0  # a rare target is never set at the largest of a few calibration scores


def test_threshold_rejects_empty_and_bad_rates() -> None:
    with pytest.raises(DataError, match="no calibration scores"):
        Threshold.fit(np.array([np.nan]), method="quantile", target_rate=0.01)
    with pytest.raises(DataError, match="expected 0 < target_rate < 1"):
        Threshold.fit(np.arange(10.0), method="quantile", target_rate=1.5)
    with pytest.raises(DataError, match=r"expected one of \['quantile', 'pot', 'declustered'\]"):
        Threshold.fit(np.arange(10.0), method="median", target_rate=0.1)  # type: ignore[arg-type]


def test_declustered_on_independent_values_is_pot() -> None:
    # gap 1: every value over the initial level is a cluster of its own, so the target is exceedances per value
    scores = np.random.default_rng(2).exponential(size=20_000)
    t = Threshold.fit([scores], method="declustered", target_rate=1e-4, cluster_gap=1)
    assert t.value == pytest.approx(math.log(1e4), rel=0.15)
    assert t.params["clusters"] == int(np.sum(scores > t.params["u"]))


def test_declustered_counts_a_run_of_high_values_once() -> None:
    # each independent exponential value held for 100 readings (an autocorrelated alarm statistic): the target, one
    # raise per 100,000 readings, is one block in 1,000 over the threshold, exp(-z) = 1e-3. Per value, POT reads the
    # same target as one *reading* in 100,000 (exp(-z) = 1e-5, z = 11.5: beyond the data), and its guard pins it at
    # the largest value instead: wherever the data end, not where the target is.
    blocks = np.random.default_rng(3).exponential(size=4_000)
    held = np.repeat(blocks, 100)
    t = Threshold.fit([held], method="declustered", target_rate=1e-5, cluster_gap=100)
    assert t.value == pytest.approx(math.log(1e3), rel=0.15)
    per_value = Threshold.fit(held, method="pot", target_rate=1e-5)
    assert per_value.value == held.max() and per_value.params["fallback"] == "quantile"
    assert t.params["clusters"] <= int(np.sum(blocks > t.params["u"]))  # adjacent blocks over u merge


def test_declustered_keeps_runs_apart_and_never_sits_below_a_cluster_when_the_target_is_beyond_the_data() -> None:
    # two runs, each ending high: one cluster each (they are not joined across runs); 10 clusters in 1,000 values and
    # a target of 1e-4 (0.1 raise expected in the data): the exponential tail, never below the largest cluster
    runs = [np.r_[np.zeros(99), 5.0 + i] for i in range(10)]
    t = Threshold.fit(runs, method="declustered", target_rate=1e-4, cluster_gap=200)
    assert t.params["clusters"] == 10
    assert t.value >= 14.0
    one = Threshold.fit([np.concatenate(runs)], method="declustered", target_rate=1e-4, cluster_gap=200)
    assert one.params["declustered"]["clusters"] == 1  # one run: 100 values apart is closer than the gap
    # too few clusters to fit: per window, as `pot`, at the target over the extremal index (1 cluster of the 10
    # values over u = 0: theta = 0.1, so 1e-3 per window)
    assert one.params["fallback"] == "pot" and one.params["per_window_target"] == pytest.approx(1e-3)
    assert one.value == Threshold.fit(np.concatenate(runs), method="pot", target_rate=1e-3).value


def test_alarm_needs_k_of_n_and_clears_after_m() -> None:
    rule = AlarmRule(k=3, n=5, m=2)
    seq = [1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1]
    # hits at 0, 2, 6, 7, 9: the last 5 windows first hold 3 hits at index 9 (6, 7, 9); two misses clear at 11;
    # the hit at 12 starts a fresh count.
    expected = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert rule.apply([bool(x) for x in seq]).astype(int).tolist() == expected


def test_alarm_rule_validates() -> None:
    with pytest.raises(ValidationError, match="expected k <= n"):
        AlarmRule(k=4, n=3, m=1)
    with pytest.raises(ValidationError):
        AlarmRule(k=0, n=3, m=1)


def test_tracker_reset_forgets_history() -> None:
    tracker = AlarmRule(k=2, n=2, m=1).tracker()
    tracker.update(True)
    tracker.reset()
    assert tracker.update(True) is False


def test_threshold_is_calibrated_for_the_alarm_rule_not_single_windows() -> None:
    import pandas as pd

    from pdm.detectors.zscore import RobustZScoreDetector

    rng = np.random.default_rng(5)
    n = 20_000
    x = rng.normal(0.0, 1.0, n)
    for start in range(100, n, 400):  # normal 5-reading bursts (a start-up transient, say)
        x[start : start + 5] += 12.0
    frame = pd.DataFrame({"timestamp": np.arange(n, dtype=float), "sensor": x})
    per_window = RobustZScoreDetector(alarm_k=1, alarm_n=1, alarm_m=1, threshold_method="quantile",
                                      target_false_alarm_rate=1e-3).fit(frame)
    rule = RobustZScoreDetector(alarm_k=10, alarm_n=20, alarm_m=20, threshold_method="quantile",
                                target_false_alarm_rate=1e-3).fit(frame)
    assert per_window.threshold_.value > 9.0  # the bursts set a per-window threshold
    assert rule.threshold_.value < 4.5  # 10 of 20 over: bursts of 5 cannot meet the raise condition
    sustained = frame.copy()
    sustained.loc[10_150:10_300, "sensor"] += 6.0  # moderate but lasting, between two bursts
    assert rule.predict(sustained).to_numpy()[10_150:10_301].any()
    assert not per_window.predict(sustained).to_numpy()[10_150:10_301].any()


def test_declustered_detector_targets_alarms_per_machine_day() -> None:
    import pandas as pd

    from pdm.detectors.zscore import RobustZScoreDetector

    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"timestamp": np.arange(0.0, 40_000.0, 2.0), "sensor": rng.normal(0.0, 1.0, 20_000)})
    det = RobustZScoreDetector(threshold_method="declustered", target_alarms_per_day=0.5, alarm_k=3, alarm_n=10,
                               alarm_m=10).fit(frame)
    assert det.threshold_.target_rate == pytest.approx(0.5 * 2.0 / 86_400)  # raises per window at 2 s a window
    assert det.threshold_.params["cluster_gap"] == 10  # the alarm's own window separates two raises
    with pytest.raises(DataError, match="found target_alarms_per_day=0, expected > 0"):
        RobustZScoreDetector(threshold_method="declustered", target_alarms_per_day=0).fit(frame)
    with pytest.raises(DataError, match="found threshold_method='median'"):
        RobustZScoreDetector(threshold_method="median").fit(frame)  # type: ignore[arg-type]


def test_default_alarm_rule_is_set_in_time_at_the_sampling_period() -> None:
    # a minute of the last two over the threshold raises, four quiet hours clear, whatever the sampling rate
    assert AlarmRule.at(1.0).model_dump() == {"k": 60, "n": 120, "m": 14_400, "clear_ratio": 1.0}
    assert AlarmRule.at(10.0).model_dump() == {"k": 6, "n": 12, "m": 1_440, "clear_ratio": 1.0}
    assert AlarmRule.at(180.0, clear_ratio=0.5).model_dump() == {"k": 1, "n": 1, "m": 80, "clear_ratio": 0.5}
    assert AlarmRule.at(60.0, k=2).model_dump() == {"k": 2, "n": 2, "m": 240, "clear_ratio": 1.0}  # given: kept
    with pytest.raises(ValidationError, match="expected k <= n"):
        AlarmRule.at(60.0, k=3)
    with pytest.raises(ValueError, match=r"found period_s=0\.0"):
        AlarmRule.at(0.0)


def test_detector_resolves_its_alarm_rule_at_the_training_period() -> None:
    import pandas as pd

    from pdm.detectors.zscore import RobustZScoreDetector

    rng = np.random.default_rng(7)
    minute = pd.DataFrame({"timestamp": np.arange(0.0, 60.0 * 5_000, 60.0), "sensor": rng.normal(0.0, 1.0, 5_000)})
    det = RobustZScoreDetector().fit(minute)
    assert (det.alarm_rule.k, det.alarm_rule.n, det.alarm_rule.m) == (1, 2, 240)
    assert det.threshold_.params["cluster_gap"] == 2  # the threshold is calibrated for the rule it will run
    assert det.get_params()["alarm_k"] is None  # a retrain at another period derives its own rule again
    given = RobustZScoreDetector(alarm_k=1, alarm_n=3, alarm_m=7).fit(minute)
    assert (given.alarm_rule.k, given.alarm_rule.n, given.alarm_rule.m) == (1, 3, 7)
    with pytest.raises(DataError, match=r"alarm rule at a sampling period of 60 s: .*expected k <= n"):
        RobustZScoreDetector(alarm_k=30).fit(minute)  # 30 of the 2 windows of 120 s
    # at one reading a minute one reading far out raises the default rule, and four quiet hours clear it
    excursion = minute.copy()
    excursion.loc[3_000:3_600, "sensor"] = 0.0
    excursion.loc[3_000, "sensor"] = 50.0
    alarm = det.predict(excursion).to_numpy()
    assert alarm[3_000] and alarm[3_000 + 239] and not alarm[3_000 + 240 : 3_600].any()
