"""The evaluation rules on small labelled examples, against figures worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pdm.evaluation import FaultSpan, evaluate_machine, label_spans, summarise


def test_detection_delay_and_false_alarms_by_hand() -> None:
    ts = np.arange(20.0)
    alarm = np.zeros(20, dtype=bool)
    alarm[[2, 3]] = True  # before any fault: a false alarm
    alarm[[9, 10, 11]] = True  # fault A runs 7..12: detected 2 s after its start
    alarm[[17]] = True  # 2 s after fault B (13..15) ends: inside the 3 s grace, so not false
    faults = [FaultSpan(7.0, 12.0, "leak"), FaultSpan(13.0, 15.0, "overheating")]
    r = evaluate_machine("m", ts, alarm, faults, grace_s=3.0)
    assert [(e.detected, e.delay_s) for e in r.events] == [(True, 2.0), (True, 17.0 - 13.0)]
    assert r.false_alarms == 1 and r.episodes == 3
    # rows 7..15 positive (9 rows); alarmed rows 2,3,9,10,11,17
    assert r.counts == (3, 3, 6, 8)  # tp, fp, fn, tn
    assert r.seconds == 20.0


def test_missed_fault_and_grace_boundary() -> None:
    ts = np.arange(10.0)
    alarm = np.zeros(10, dtype=bool)
    alarm[9] = True  # fault ends at 5, grace 2: 9 is too late -> missed, and a false alarm
    r = evaluate_machine("m", ts, alarm, [FaultSpan(3.0, 5.0, "leak")], grace_s=2.0)
    assert r.events[0].detected is False and r.events[0].delay_s is None
    assert r.false_alarms == 1


def test_alarm_already_on_at_fault_start_has_zero_delay() -> None:
    ts = np.arange(10.0)
    alarm = np.array([False, True, True, True, True, False, False, False, False, False])
    r = evaluate_machine("m", ts, alarm, [FaultSpan(3.0, 6.0)], grace_s=0.0)
    assert r.events[0].delay_s == 0.0 and r.false_alarms == 0


def test_sensor_faults_are_reported_separately() -> None:
    ts = np.arange(30.0)
    alarm = np.zeros(30, dtype=bool)
    alarm[[21, 22]] = True  # during the stuck sensor: caught, and not a false alarm
    faults = [FaultSpan(5.0, 10.0, "bearing_wear"), FaultSpan(20.0, 25.0, "stuck", sensor_fault=True)]
    r = evaluate_machine("m", ts, alarm, faults, grace_s=1.0)
    rep = summarise([r])
    assert (rep.faults, rep.detected) == (1, 0)  # the machine fault was missed
    assert (rep.sensor_faults, rep.sensor_detected) == (1, 1)
    assert rep.false_alarms == 0
    # rows 20..25 are excluded from pointwise figures: 6 machine-fault rows all missed, 18 true negatives
    assert (rep.tp, rep.fp, rep.fn, rep.tn) == (0, 0, 6, 18)
    assert rep.missed_alarm_rate == 1.0 and rep.false_alarm_rate == 0.0


def test_fleet_summary_figures() -> None:
    day = 86_400.0
    ts = np.arange(0.0, day, 60.0)  # one machine-day at 1/min per machine
    a1 = np.zeros(len(ts), dtype=bool)
    a1[100:110] = True  # detects fault at 95..200 -> delay 5 min
    a1[500:503] = True  # false alarm
    a2 = np.zeros(len(ts), dtype=bool)
    a2[900] = True  # false alarm
    f1 = [FaultSpan(ts[95], ts[200], "leak")]
    f2 = [FaultSpan(ts[300], ts[320], "leak"), FaultSpan(ts[600], ts[610], "overheating")]
    rep = summarise([evaluate_machine("a", ts, a1, f1, 0.0), evaluate_machine("b", ts, a2, f2, 0.0)])
    assert rep.machine_days == pytest.approx(2.0)
    assert (rep.faults, rep.detected) == (3, 1) and rep.event_recall == pytest.approx(1 / 3)
    assert rep.delays_s == (300.0,)
    assert rep.false_alarms == 2 and rep.false_alarms_per_machine_day == pytest.approx(1.0)
    assert rep.by_type == {"leak": (1, 2), "overheating": (0, 1)}
    # pointwise: tp 10, fp 3 + 1, fn (106 - 10) + 21 + 11, tn = rest
    assert (rep.tp, rep.fp, rep.fn) == (10, 4, 96 + 21 + 11)
    assert rep.precision == pytest.approx(10 / 14)
    assert rep.f1 == pytest.approx(2 * (10 / 14) * (10 / 138) / (10 / 14 + 10 / 138))
    d = rep.to_dict()
    assert d["by_type"]["leak"] == {"detected": 1, "faults": 2} and d["median_delay_s"] == 300.0


def test_label_spans_from_strings_numbers_and_kinds() -> None:
    ts = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    spans = label_spans(ts, ["", "leak", "leak", None, "stuck", "stuck"], "m",
                        ["", "machine", "machine", "", "sensor", "sensor"])
    assert [(s.start, s.end, s.kind, s.sensor_fault) for s in spans] == [
        (1.0, 2.0, "leak", False), (4.0, 5.0, "stuck", True)]
    assert [(s.start, s.end) for s in label_spans(ts, [0, 1, 1, 0, 0, 1])] == [(1.0, 2.0), (5.0, 5.0)]
    assert label_spans(ts, [math.nan, "normal", "0", 0.0, False, ""]) == []


def test_empty_report_gives_nan_not_errors() -> None:
    rep = summarise([evaluate_machine("m", np.arange(5.0), np.zeros(5, bool), [], 1.0)])
    assert math.isnan(rep.event_recall) and rep.to_dict()["event_recall"] is None


def test_missing_labels_of_any_dtype_are_normal() -> None:
    import pandas as pd

    ts = [0.0, 1.0, 2.0]
    assert [(s.start, s.end) for s in label_spans(ts, np.array([np.nan, np.nan, 1.0], dtype=np.float32))] == [
        (2.0, 2.0)]
    assert label_spans(ts, pd.array([pd.NA, pd.NA, pd.NA], dtype="boolean")) == []


def test_alerts_per_detected_fault_counts_the_episodes_that_overlap_each_one() -> None:
    ts = np.arange(20.0)
    alarm = np.zeros(20, dtype=bool)
    alarm[[2, 3, 6, 7]] = True  # fault A (1..8): two episodes, 2-3 and 6-7
    alarm[[14, 15]] = True  # fault B (12..16): one episode
    faults = [FaultSpan(1.0, 8.0, "leak"), FaultSpan(12.0, 16.0, "imbalance"), FaultSpan(18.0, 19.0, "leak")]
    r = summarise([evaluate_machine("m", ts, alarm, faults, grace_s=0.0)])
    assert r.detected == 2 and r.alerts_per_fault == (2, 1)  # the missed third fault does not count
    assert r.alerts_per_detected_fault == 1.5
