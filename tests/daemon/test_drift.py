"""Drift and data quality, unit level (no broker): the PSI by hand, the calibration summary (fit, saved, listed in
the manifest, validated, optional for older models), and one machine's span, rates, sensor rules and verdict."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pdm.daemon.quality import DriftSettings, MachineQuality, Reference
from pdm.daemon.settings import SettingsError, load_settings
from pdm.detectors.base import Detector
from pdm.detectors.drift import BinShares, CalibrationSummary, drift_level, psi
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import CorruptModelError, DataError
from tests.support.daemon import edit_json, new_version

FEATURES = ("a", "b")
SUMMARY = CalibrationSummary(edges=[1.0], fleet=BinShares(shares=[0.5, 0.5], n_windows=100), quantiles={},
                             longest_repeat=[2, 2])
REF = Reference.of(SUMMARY, window=4)  # stuck after more than 3 x 2 = 6 equal values; missing after 4 nulls
RULES = DriftSettings(window_s=240.0)  # 24 blocks of 10 s


def test_psi_by_hand() -> None:
    # reference shares (0.2, 0.3, 0.5), observed 30/30/40 of 100: (0.3, 0.3, 0.4)
    by_hand = (0.3 - 0.2) * math.log(0.3 / 0.2) + 0.0 + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert by_hand == pytest.approx(0.0628609, abs=1e-7)
    assert psi([0.2, 0.3, 0.5], np.array([30, 30, 40])) == pytest.approx(by_hand, abs=1e-12)
    assert psi([0.2, 0.3, 0.5], np.array([2, 3, 5])) == 0.0
    # an empty bin counts as 1e-4
    empty = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi([0.5, 0.5], np.array([0, 10])) == pytest.approx(empty, abs=1e-12)
    assert [drift_level(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable", "stable", "moderate", "moderate", "drifted", "drifted"]
    with pytest.raises(DataError, match="no observations"):
        psi([0.5, 0.5], np.array([0, 0]))


def test_calibration_summary_fit_by_hand() -> None:
    # one machine, 1,000 windows scored 0..999 in two segments: deciles 99.9, 199.8, ... (linear), 100 per bin
    scores = {"m1": [np.arange(600.0), np.arange(600.0, 1000.0)]}
    training = [np.array([[1.0, 5.0], [1.0, np.nan], [1.0, np.nan], [2.0, 5.0], [2.0, 5.0]]),
                np.array([[7.0, 3.0]] * 4)]
    s = CalibrationSummary.fit(scores, training)
    assert s.edges == pytest.approx([99.9 * k for k in range(1, 10)])
    assert s.fleet.shares == pytest.approx([0.1] * 10) and s.fleet.n_windows == 1000
    assert list(s.machines) == ["m1"] and s.machines["m1"].shares == pytest.approx([0.1] * 10)
    assert s.quantiles["0.5"] == pytest.approx(499.5)
    assert s.longest_repeat == [4, 4]  # the second frame's 4 equal rows; a null breaks the first frame's runs
    # 999 windows: too few for a machine of its own, it is compared with the fleet's shares
    few = CalibrationSummary.fit({"m1": [np.arange(999.0)], "m2": [np.arange(10.0)]}, training)
    assert few.machines == {} and few.reference("m1").tolist() == few.fleet.shares
    with pytest.raises(ValidationError, match="strictly increasing"):
        CalibrationSummary(edges=[2.0, 1.0], fleet=BinShares(shares=[0.2, 0.3, 0.5], n_windows=3), quantiles={},
                           longest_repeat=[1])
    with pytest.raises(ValidationError, match="one per bin"):
        CalibrationSummary(edges=[1.0], fleet=BinShares(shares=[0.2, 0.3, 0.5], n_windows=3), quantiles={},
                           longest_repeat=[1])
    with pytest.raises(ValidationError, match="sum to 1"):
        BinShares(shares=[0.2, 0.3], n_windows=3)


def test_calibration_json_is_saved_listed_validated_and_optional(zscore: RobustZScoreDetector,
                                                                  tmp_path: Path) -> None:
    name_dir = tmp_path / "pump"
    version = zscore.save(name_dir)
    assert "calibration.json" in json.loads((version / "manifest.json").read_text())["files"]
    summary = Detector.load(name_dir).calibration_summary_
    assert summary is not None and summary == zscore.calibration_summary_
    assert summary.fleet.n_windows == zscore.evaluation_["calibration_windows"]  # every calibration window
    # a version saved before calibration.json existed still loads; drift is then unavailable
    old = new_version(name_dir, lambda d: (d / "calibration.json").unlink())
    assert Detector.load(name_dir).calibration_summary_ is None
    # an invalid one (its checksum right) is refused, naming the file
    new_version(name_dir, lambda d: edit_json(d / "calibration.json", edges=[3.0, 1.0]), source=version.name)
    with pytest.raises(CorruptModelError, match=r"calibration\.json.*edges"):
        Detector.load(name_dir)
    # one put beside an older version after it was saved is not trusted either
    shutil.copy(version / "calibration.json", name_dir / old / "calibration.json")
    with pytest.raises(CorruptModelError, match="not listed in manifest"):
        Detector.load(name_dir / old)


def feed(q: MachineQuality, t0: float, values: list[list[float]], **dropped: int) -> None:
    ts = t0 + np.arange(float(len(values)))
    q.observe(ts, np.array(values, dtype=np.float64), duplicates=dropped.get("duplicates", 0),
              late=dropped.get("late", 0), lost=dropped.get("lost", 0), gaps=dropped.get("gaps", 0))


def distinct(t0: float, n: int) -> list[list[float]]:
    return [[t0 + i, -(t0 + i)] for i in range(n)]


def test_drift_over_the_span_and_the_verdict() -> None:
    q = MachineQuality(2, 2, RULES.window_s)
    # 10 messages of 20 readings (ts 0..199); their windows: 25 in bin 0, 75 in bin 1
    for k in range(10):
        feed(q, 20.0 * k, distinct(20.0 * k, 20))
        q.scored(np.array([0] * 5 + [1] * 5) if k < 5 else np.ones(10, dtype=np.int64))
        if k == 0:  # 10 windows: too few
            assert q.report(REF, "m", FEATURES, False, RULES)["drift"] == "unavailable"
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)  # 0.2747
    r = q.report(REF, "m", FEATURES, False, RULES)
    assert (r["drift"], r["verdict"], r["drift_windows"], r["span_s"]) == ("drifted", "model_stale", 100, 199.0)
    assert r["drift_psi"] == pytest.approx(by_hand, abs=1e-4)
    assert q.report(REF, "m", FEATURES, True, RULES)["verdict"] == "faulty"  # an alert explains the drift
    moderate = q.report(REF, "m", FEATURES, False, DriftSettings(240.0, 0.1, 0.3))
    assert (moderate["drift"], moderate["verdict"]) == ("moderate", "ok")
    assert (q.verdict, q.drift) == ("ok", "moderate")  # the last report's, for the fleet gauges
    # 200 s later: blocks 20..41 replace the oldest; only block 19 (the last message, ts 180..199) is kept
    feed(q, 400.0, distinct(400.0, 20))
    r = q.report(REF, "m", FEATURES, False, RULES)
    assert (r["drift_windows"], r["drift"]) == (10, "unavailable")
    assert q.counts.sum(axis=0)[2] == 40  # readings: 20 kept + 20 new
    # silent for more than a span: everything restarts, the span from the start of the newest reading's block
    feed(q, 705.0, distinct(705.0, 10))  # ts 705..714, block 710..720
    assert q.counts.sum(axis=0)[2] == 10 and q.span_s() == 4.0
    # a model without calibration.json: drift unavailable, the rest as usual
    assert q.report(Reference.of(None, 4), "m", FEATURES, True, RULES)["verdict"] == "faulty"
    # a new version with sensor b only and three bins: the score counts restart, the readings stay
    q.rebase([1], 3, 714.0)
    assert q.hist.shape == (24, 3) and q.counts.shape == (24, 9) and q.counts.sum(axis=0)[2] == 10


def test_rates_missing_and_stuck_sensors() -> None:
    q = MachineQuality(2, 2, RULES.window_s)
    first = distinct(0.0, 100)
    first[5][1] = math.nan
    feed(q, 0.0, first)  # 100 readings, one null on b
    feed(q, 100.0, distinct(100.0, 10), duplicates=2, late=1, lost=1)  # and 2 duplicates, 1 late, 1 lost message
    q.rejected()
    q.rejected()
    r = q.report(REF, "m", FEATURES, False, RULES)
    # 4 messages, 2 rejected; 110 applied + 3 dropped received; 2 accepted + 1 lost sent
    assert r["rejected_rate"] == 0.5 and r["missing_rate"] == round(1 / 110, 4)
    assert r["duplicate_rate"] == round(2 / 113, 4) and r["late_rate"] == round(1 / 113, 4)
    assert r["lost_rate"] == round(1 / 3, 4) and r["sensors"] == {} and r["verdict"] == "data_problem"
    # b null for a whole window (4 readings) now: missing, though only 5 of 114 readings are null
    feed(q, 110.0, [[110.0 + i, math.nan] for i in range(4)])
    r = q.report(REF, "m", FEATURES, False, RULES)
    assert r["sensors"] == {"b": "missing"} and r["verdict"] == "sensor_problem" and r["missing_rate"] < 0.1
    # a repeats 42.0: 6 times is within 3 x its longest training run (2), the 7th is stuck; b is back
    feed(q, 114.0, [[42.0, 1.0 + i] for i in range(6)])
    assert q.report(REF, "m", FEATURES, False, RULES)["sensors"] == {}
    feed(q, 120.0, [[42.0, 9.0]])
    assert q.report(REF, "m", FEATURES, False, RULES)["sensors"] == {"a": "stuck"}
    assert q.report(Reference.of(None, 4), "m", FEATURES, False, RULES)["sensors"] == {}  # no reference: no check


def test_drift_settings() -> None:
    s = load_settings({"drift_window": "3600", "drift_moderate": "0.2", "drift_high": "0.5"})
    assert (s.drift_window, s.drift_moderate, s.drift_high) == (3600.0, 0.2, 0.5)
    with pytest.raises(SettingsError, match="drift-high"):
        load_settings({"drift_high": "0.05"})
