"""Retraining without training: exclusions and their margins, the holdout split, the promotion rule, version
management (current, removal, pruning, rollback) and the lock. Fast: the only models are z-score baselines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.base import Detector
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import DataError, ModelLoadError
from pdm.evaluation import FaultSpan
from pdm.retrain import Exclusion, from_frame
from pdm.retrain.catalog import list_versions, rollback, rollback_target
from pdm.retrain.compare import Figures, decide
from pdm.retrain.exclusions import Margins, exclusion_mask, split
from pdm.retrain.lock import LockedError, model_lock
from pdm.retrain.report import REPORT_JSON
from pdm.saving import current_version, ordered_versions, prune_versions, remove_version, set_current

ROOT = Path(__file__).resolve().parents[2]


def readings(machines: int = 2, n: int = 100) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"timestamp": np.arange(n, dtype=float), "machine_id": f"m{i}",
                                    "x": np.arange(n, dtype=float)}) for i in range(machines)], ignore_index=True)


# ----------------------------------------------------------------------------------------------- exclusions
def test_margins_apply_by_reason_and_widen_short_intervals() -> None:
    frame = readings(1, 100)
    margins = Margins(before=10.0, after=5.0, min_width=7.0)
    cases = {"alert": (40.0, 45.0, range(30, 51)), "screen": (40.0, 45.0, range(30, 51)),
             "fault": (40.0, 45.0, range(40, 51)), "maintenance": (40.0, 50.0, range(40, 51)),
             "stale": (50.0, 50.0, range(47, 54))}  # 0 s wide -> 7 s, centred
    for reason, (start, end, expected) in cases.items():
        mask, summary = exclusion_mask(frame, [Exclusion("m0", start, end, reason)], margins)
        assert np.flatnonzero(mask).tolist() == list(expected), reason
        assert summary.by_reason == {reason: {"intervals": 1, "rows": len(expected)}}


def test_summary_counts_each_reason_and_each_row_once_and_warns_on_mostly_excluded_machines() -> None:
    frame = readings(2, 100)
    exclusions = [Exclusion("m0", 0.0, 59.0, "fault"), Exclusion("m0", 50.0, 69.0, "maintenance"),
                  Exclusion("m1", 10.0, 19.0, "stale"), Exclusion("other", 0.0, 99.0, "alert")]
    mask, summary = exclusion_mask(frame, exclusions, Margins(0.0, 0.0, 0.0))
    assert summary.rows_excluded == int(mask.sum()) == 70 + 10
    assert summary.by_reason["fault"]["rows"] == 60 and summary.by_reason["maintenance"]["rows"] == 20
    assert summary.excluded_fraction == {"m0": 0.7, "m1": 0.1}
    assert len(summary.warnings) == 1 and summary.warnings[0].startswith("m0: 70%")
    assert any("fault" in line and "60 readings" in line for line in summary.lines())


def test_split_holds_out_the_recent_part_and_keeps_alert_periods_in_it() -> None:
    frame = readings(1, 100)
    exclusions = [Exclusion("m0", 10.0, 19.0, "alert"), Exclusion("m0", 85.0, 89.0, "alert"),
                  Exclusion("m0", 90.0, 94.0, "fault")]
    margins = Margins(0.0, 0.0, 0.0)
    mask, _ = exclusion_mask(frame, exclusions, margins)
    holdout_mask, _ = exclusion_mask(frame, [e for e in exclusions if e.reason == "fault"], margins)
    faults = {"m0": [FaultSpan(90.0, 94.0, "leak", "m0")]}
    parts = split(frame, mask, holdout_mask, faults, holdout_fraction=0.2, holdout_s=None, context_s=3.0,
                  grace_s=2.0)
    cut = parts.cuts["m0"]
    assert cut == pytest.approx(79.2)
    train_ts = parts.train["m0"]["timestamp"].to_numpy()
    assert train_ts.max() < cut and not ((train_ts >= 10) & (train_ts <= 19)).any() and len(train_ts) == 70
    held = parts.holdout["m0"]["timestamp"].to_numpy()
    assert held.min() > cut and {85.0, 89.0} <= set(held) and not ((held >= 90) & (held <= 94)).any()
    fault_frame, spans = parts.fault_slices["m0"]
    assert fault_frame["timestamp"].tolist() == list(np.arange(87.0, 97.0)) and spans == faults["m0"]
    by_time = split(frame, mask, holdout_mask, faults, holdout_fraction=None, holdout_s=30.0, context_s=0.0,
                    grace_s=0.0)
    assert by_time.cuts["m0"] == 69.0


def test_labelled_faults_from_a_frame_become_exclusions_and_judged_faults() -> None:
    frame = readings(2, 10).assign(fault="", fault_kind="")
    frame.loc[(frame.machine_id == "m1") & frame.timestamp.between(3, 5), ["fault", "fault_kind"]] = ["leak", "machine"]
    frame.loc[(frame.machine_id == "m0") & (frame.timestamp == 7), ["fault", "fault_kind"]] = ["stuck", "sensor"]
    data = from_frame(frame.sample(frac=1.0, random_state=1), label_column="fault", kind_column="fault_kind")
    assert data.features == ["x"] and data.machines == ["m0", "m1"]
    assert sorted((e.machine_id, e.start, e.end, e.reason) for e in data.exclusions) == [
        ("m0", 7.0, 7.0, "sensor_fault"), ("m1", 3.0, 5.0, "fault")]
    assert data.faults["m1"][0].kind == "leak" and data.faults["m0"][0].sensor_fault
    picked = data.select(machines=["m1"], start=4.0)
    assert picked.machines == ["m1"] and picked.frame["timestamp"].min() == 4.0 and list(picked.faults) == ["m1"]
    later = data.select(start=6.0)  # m1's fault (3-5 s) is before the range: not judged, no empty slice
    assert list(later.faults) == ["m0"]
    parts = split(later.frame, np.zeros(len(later.frame), bool), np.zeros(len(later.frame), bool),
                  data.faults, holdout_fraction=0.2, holdout_s=None, context_s=0.0, grace_s=0.0)
    assert list(parts.fault_slices) == ["m0"]
    with pytest.raises(DataError, match="--machine: found"):
        data.select(machines=["nope"])
    with pytest.raises(DataError, match="machine_type"):
        data.select(machine_type="pump")


# ----------------------------------------------------------------------------------------------- decision
def figs(raise_rate: float, recall: float | None = None, delays: dict[str, float | None] | None = None) -> Figures:
    return Figures(windows=10_000, raise_rate=raise_rate, exceedance_rate=0.01,
                   faults=None if recall is None else {"event_recall": recall}, delays=delays or {})


def test_promotion_rule() -> None:
    rule = {"tolerance": 0.1, "target_rate": 1e-4, "delay_slack_s": 60.0}
    assert decide(None, figs(1.0), **rule).promote  # no champion: first version
    assert decide(figs(5e-4), figs(5.4e-4), **rule).promote  # within 10 %
    assert not decide(figs(5e-4), figs(5.6e-4), **rule).promote
    assert decide(figs(0.0), figs(1.05e-4), **rule).promote  # within the target: never "worse"
    worse_recall = decide(figs(1e-4, recall=1.0), figs(1e-4, recall=0.8), **rule)
    assert not worse_recall.promote and worse_recall.reasons[0].startswith("fault recall")
    assert decide(figs(1e-4, recall=1.0), figs(1e-4, recall=0.95), **rule).promote
    slow = decide(figs(1e-4, delays={"a": 100.0, "b": 100.0, "c": None}),
                  figs(1e-4, delays={"a": 200.0, "b": 200.0, "c": 5.0}), **rule)
    assert not slow.promote and "median delay is 200 s over 2 faults" in slow.reasons[0]
    forced = decide(figs(1e-4), figs(1.0), **rule, force=True)
    assert forced.promote and forced.forced and forced.reasons[-1] == "promoted anyway because --force"
    blind = decide(None, figs(1e-4), **rule, champion_error="its sensors ['x'] are not in the data")
    assert not blind.promote and "cannot be judged" in blind.reasons[0]


# ----------------------------------------------------------------------------------------------- versions
@pytest.fixture
def name_dir(zscore: RobustZScoreDetector, tmp_path: Path) -> Path:
    """Four versions: train (current then), a promoted retrain, a rejected retrain, a promoted retrain."""
    d = tmp_path / "pump"
    for decision in (None, True, False, True):
        def report(tmp: Path, decision: bool | None = decision) -> None:
            (tmp / REPORT_JSON).write_text(json.dumps({"decision": {"promote": decision, "forced": False},
                                                       "challenger": {"init": "scratch"}}))
        zscore.save(d, make_current=decision is not False, extra_files=report if decision is not None else None)
        time.sleep(0.01)
    return d


def test_versions_are_listed_in_order_with_their_decision(name_dir: Path) -> None:
    infos = list_versions(name_dir)
    assert [i.decision for i in infos] == ["", "promoted", "not promoted", "promoted"]
    assert [i.current for i in infos] == [False, False, False, True]
    assert [i.origin for i in infos] == ["train", "retrain", "retrain", "retrain"]
    assert infos[0].figures["threshold"] == pytest.approx(Detector.load(name_dir).threshold_.value)


def test_version_order_counts_suffixes_as_numbers(tmp_path: Path) -> None:
    for v in ("20261123T051200Z-10", "20261123T051200Z-2", "20261123T051200Z"):
        (tmp_path / v).mkdir()
    assert ordered_versions(tmp_path) == ["20261123T051200Z", "20261123T051200Z-2", "20261123T051200Z-10"]


def test_rollback_skips_rejected_challengers_verifies_the_target_and_can_name_one(name_dir: Path) -> None:
    v = ordered_versions(name_dir)
    assert rollback_target(name_dir, v[3]) == v[1]
    assert rollback(name_dir) == (v[3], v[1])
    assert current_version(name_dir) == v[1] and Detector.load(name_dir).version_dir_.name == v[1]
    assert rollback(name_dir) == (v[1], v[0])
    with pytest.raises(ModelLoadError, match="no version before"):
        rollback(name_dir)
    assert rollback(name_dir, v[2]) == (v[0], v[2])  # a rejected challenger, by name
    (name_dir / v[3] / "threshold.json").write_text("{}")  # damaged: refused, current unchanged
    with pytest.raises(ModelLoadError, match=r"threshold\.json"):
        rollback(name_dir, v[3])
    assert current_version(name_dir) == v[2]
    with pytest.raises(ModelLoadError, match="not a saved version"):
        rollback(name_dir, "20200101T000000Z")


def test_prune_keeps_the_newest_and_the_current(name_dir: Path) -> None:
    v = ordered_versions(name_dir)
    set_current(name_dir, v[0])
    assert prune_versions(name_dir, 2) == [v[1]]
    assert ordered_versions(name_dir) == [v[0], v[2], v[3]]
    assert not [p for p in name_dir.iterdir() if p.name.startswith(".tmp-")]
    assert Detector.load(name_dir).version_dir_.name == v[0]
    with pytest.raises(ModelLoadError, match="current version and cannot be removed"):
        remove_version(name_dir, v[0])


# ----------------------------------------------------------------------------------------------- lock
def test_lock_is_exclusive_released_and_names_its_holder(tmp_path: Path) -> None:
    with model_lock(tmp_path / "pump"):
        with pytest.raises(LockedError, match=r"another retrain or rollback holds .*retrain pid \d+"), \
                model_lock(tmp_path / "pump"):
            pass
        with pytest.raises(LockedError):
            rollback(tmp_path / "pump")
    with model_lock(tmp_path / "pump"):  # released
        assert (tmp_path / "pump" / ".retrain.lock").is_file()
    assert ordered_versions(tmp_path / "pump") == []  # the lock file is not a version


def test_lock_held_by_another_process_and_released_when_it_dies(tmp_path: Path) -> None:
    code = ("import sys, time; from pdm.retrain.lock import model_lock\n"
            "with model_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "pump")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {holder.pid}"), model_lock(tmp_path / "pump"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with model_lock(tmp_path / "pump"):  # the kernel released it with the process
        pass
