"""Retraining with real (tiny) GRU models: the guard against learning a fault, promotion switching ``current``
atomically under a concurrent reader, the champion kept when the challenger is worse, fine-tuning, pruning."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from pdm.detectors.base import Detector
from pdm.errors import DataError, PdmError
from pdm.retrain import RetrainOptions, from_frame, retrain
from pdm.retrain.catalog import list_versions
from pdm.retrain.report import REPORT_JSON, REPORT_PNG
from pdm.retrain.screen import screen
from pdm.saving import current_version, ordered_versions
from tests.support.retrain import FAULT, SMALL, fleet


def options(**kw: object) -> RetrainOptions:
    base: dict[str, object] = {"overrides": dict(SMALL), "margin_before_s": 60.0, "margin_after_s": 60.0}
    return RetrainOptions(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first version of models/pump, written by a retrain with no champion (promoted: nothing to beat)."""
    name_dir = tmp_path_factory.mktemp("champion") / "pump"
    out = retrain(from_frame(fleet(3000, 1), label_column="fault"), name_dir, options())
    assert out.promoted and out.champion_version is None and "no champion" in out.decision.reasons[0]
    return name_dir


def copy_of(champion_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(champion_dir, tmp_path / "pump"))


@pytest.fixture(scope="module")
def promoted(champion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A retrain on data holding a labelled fault, promoted, while a thread loads the model in a loop."""
    name_dir = copy_of(champion_dir, tmp_path_factory.mktemp("promoted"))
    before = current_version(name_dir)
    seen: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                det = Detector.load(name_dir)
                seen.append(det.version_dir_.name)
            except (PdmError, OSError, ValueError) as exc:
                errors.append(repr(exc))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        out = retrain(from_frame(fleet(4000, 2, FAULT), label_column="fault"), name_dir,
                      options(screen=False, force=True))
        final_loads = len(seen)
        while len(seen) < final_loads + 2 and not errors:  # the reader sees the new version too
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=60)
    return {"name_dir": name_dir, "before": before, "outcome": out, "seen": seen, "errors": errors}


def test_first_retrain_writes_a_current_version_with_its_report(champion_dir: Path) -> None:
    version = champion_dir / str(current_version(champion_dir))
    report = json.loads((version / REPORT_JSON).read_text())
    assert report["champion"] is None and report["decision"]["promote"] is True
    manifest = json.loads((version / "manifest.json").read_text())["files"]
    assert {REPORT_JSON, REPORT_PNG, "model.keras", "baseline/manifest.json"} <= set(manifest)
    assert (version / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_promotion_switches_current_atomically_under_a_concurrent_reader(promoted: dict[str, object]) -> None:
    name_dir, out = promoted["name_dir"], promoted["outcome"]
    assert isinstance(name_dir, Path)
    assert promoted["errors"] == []  # never a half-written model, never a missing current
    new = out.version_dir.name  # type: ignore[attr-defined]
    seen = promoted["seen"]
    assert isinstance(seen, list) and set(seen) == {promoted["before"], new}
    first_new = seen.index(new)
    assert all(v == promoted["before"] for v in seen[:first_new]) and all(v == new for v in seen[first_new:])
    assert current_version(name_dir) == new and out.promoted  # type: ignore[attr-defined]
    assert not [p for p in name_dir.iterdir() if p.name.startswith(".tmp-")]
    report = json.loads((name_dir / new / REPORT_JSON).read_text())
    assert report["decision"]["promote"] is True and report["champion"]["version"] == promoted["before"]


def test_a_labelled_fault_is_not_learned_it_still_scores_above_the_new_threshold(promoted: dict[str, object]) -> None:
    out = promoted["outcome"]
    assert out.exclusions.by_reason["fault"] == {"intervals": 1, "rows": 800 + 60}  # type: ignore[attr-defined]
    det = Detector.load(out.version_dir)  # type: ignore[attr-defined]
    pump = fleet(4000, 2, FAULT).query("machine_id == 'pump-000'").reset_index(drop=True)
    result = det.detect(pump.drop(columns=["fault", "machine_id"]), machine_id="pump-000")
    inside = (pump["fault"] == "vibration_step").to_numpy()
    over = np.nanmean(result["score"].to_numpy()[inside] > det.threshold_.value)
    assert over > 0.6, over
    assert result["alarm"].to_numpy()[inside].mean() > 0.5


@pytest.mark.slow
def test_without_the_guard_the_fault_would_be_learned(champion_dir: Path, tmp_path: Path) -> None:
    """The control for the test above: the same data with its labels ignored and no screening."""
    name_dir = copy_of(champion_dir, tmp_path)
    out = retrain(from_frame(fleet(4000, 2, FAULT)), name_dir, options(screen=False, force=True))
    assert out.exclusions.rows_excluded == 0
    det = Detector.load(out.version_dir)
    pump = fleet(4000, 2, FAULT).query("machine_id == 'pump-000'").reset_index(drop=True)
    score = det.score(pump.drop(columns=["fault", "machine_id"]), machine_id="pump-000").to_numpy()
    inside = (pump["fault"] == "vibration_step").to_numpy()
    assert np.nanmean(score[inside] > det.threshold_.value) < 0.2


def test_champion_kept_when_the_challenger_is_worse(champion_dir: Path, tmp_path: Path) -> None:
    name_dir = copy_of(champion_dir, tmp_path)
    before = current_version(name_dir)
    # a challenger set to raise far more often: a target false-alarm rate of 30 % of windows, one epoch
    out = retrain(from_frame(fleet(4000, 2)), name_dir,
                  options(overrides=SMALL | {"epochs": 1, "threshold_method": "pot", "target_false_alarm_rate": 0.3},
                          holdout_fraction=0.5, screen=False, keep=5))
    assert not out.promoted and current_version(name_dir) == before, out.decision
    assert out.version_dir.name in ordered_versions(name_dir)  # saved for inspection, not current
    check = out.decision.checks[0]
    assert check["check"] == "raise_rate" and not check["ok"] and check["challenger"] > check["champion"]
    assert out.decision.reasons[0].startswith("false alarms") and out.decision.reasons[-1] == "champion kept"
    listed = {v.version: v for v in list_versions(name_dir)}
    assert listed[out.version_dir.name].decision == "not promoted" and listed[str(before)].current


def test_screening_excludes_the_champions_own_alarms(zscore: Detector) -> None:
    frame = fleet(2000, 3)
    frame.loc[(frame.machine_id == "pump-001") & frame.index.isin(range(2500, 2700)), "temperature"] += 40.0
    data = from_frame(frame.drop(columns="fault"))
    exclusions = screen(zscore, data)
    assert exclusions and {e.machine_id for e in exclusions} == {"pump-001"}
    spike = frame.loc[2500:2699, "timestamp"]
    assert any(e.start <= spike.iloc[-1] and e.end >= spike.iloc[0] and e.reason == "screen" for e in exclusions)


def test_finetune_needs_the_champions_architecture(champion_dir: Path, tmp_path: Path) -> None:
    name_dir = copy_of(champion_dir, tmp_path)
    with pytest.raises(DataError, match=r"--init finetune: found window=32, expected the champion's 16"):
        retrain(from_frame(fleet(1000, 4)), name_dir, options(init="finetune", screen=False,
                                                                overrides=SMALL | {"window": 32}))
    assert ordered_versions(name_dir) == ordered_versions(champion_dir)


@pytest.mark.slow
def test_finetune_starts_from_the_champions_weights_and_prunes(champion_dir: Path, tmp_path: Path) -> None:
    first_epoch = {}
    for init in ("scratch", "finetune"):
        name_dir = copy_of(champion_dir, tmp_path / init)
        out = retrain(from_frame(fleet(4000, 2)), name_dir, options(init=init, screen=False, force=True, keep=1))
        fit = json.loads((out.version_dir / "evaluation.json").read_text())
        assert fit["init"] == init
        first_epoch[init] = fit["history"]["val_loss"][0]
        assert ordered_versions(name_dir) == [out.version_dir.name]  # --keep 1: only the new current version
    assert fit["start_loss"] < first_epoch["scratch"]  # before any step, better than a random start after one epoch
    assert first_epoch["finetune"] < first_epoch["scratch"]


@pytest.mark.slow
def test_a_champion_that_cannot_score_the_data_is_kept_unless_forced(champion_dir: Path, tmp_path: Path) -> None:
    name_dir = copy_of(champion_dir, tmp_path)
    renamed = fleet(2000, 5).rename(columns={"pressure": "pressure_bar"})
    out = retrain(from_frame(renamed, label_column="fault"), name_dir, options())
    assert not out.promoted and current_version(name_dir) == current_version(champion_dir)
    assert "cannot be judged on this data (its sensors ['pressure'] are not in the data" in out.decision.reasons[0]
    assert Detector.load(out.version_dir).features_ == ["temperature", "vibration", "pressure_bar"]


def test_a_short_history_champions_alarms_are_not_taken_as_faults(champion_dir: Path, tmp_path: Path) -> None:
    """A champion fitted on 150 readings per pump flags conditions its history never showed as much as faults: by
    default neither its screening nor a recorded machine alert under it excludes readings from the retrain (a
    sensor alert, from the data-quality rules, still does), and the report says so (a plant's first model, on a
    few hundred readings, used to exclude its whole first day and fail). With ``trust_champion`` the machine alert
    is excluded as before. A champion fitted on 3,000 readings per pump is not short."""
    from pdm.contract import alert_id
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.pca import PCADetector
    from pdm.retrain.data import Exclusion
    from pdm.retrain.report import outcome_lines
    from pdm.retrain.run import Outcome

    sensors = ["temperature", "vibration", "pressure"]
    short = fleet(150, 1).drop(columns=["fault"])
    champion = GRUAutoencoderDetector(**SMALL, features=sensors).fit(short)  # type: ignore[arg-type]
    assert champion.short_history and PCADetector(features=sensors).fit(short).short_history
    assert not Detector.load(champion_dir).short_history
    name_dir = tmp_path / "pump"
    champion.save(name_dir)
    data = fleet(4000, 2).drop(columns=["fault"])
    t0 = float(data["timestamp"].min())
    recorded = [Exclusion("pump-001", t0 + 1000, t0 + 1500, "alert", alert_id("pump-001", t0 + 1015)),  # machine
                Exclusion("pump-001", t0 + 2500, t0 + 2700, "alert", alert_id("pump-001", t0 + 2500, "pressure"))]

    def run(**kw: object) -> Outcome:
        d = from_frame(data)
        d.exclusions.extend(recorded)
        return retrain(d, Path(shutil.copytree(name_dir, tmp_path / f"copy-{len(kw)}")), options(**kw))

    out = run()
    assert out.report["champion"]["alarms_taken_as_faults"] is False
    assert not out.report["data"]["screened_with_champion"]
    assert out.exclusions.by_reason["alert"]["intervals"] == 1  # the sensor alert: a data-quality verdict, kept
    assert any(line.startswith("champion  not believed, it was trained on a short history")
               for line in outcome_lines(out))
    trusted = run(trust_champion=True, screen=False)
    assert trusted.report["champion"]["alarms_taken_as_faults"] is True
    assert trusted.exclusions.by_reason["alert"]["intervals"] == 2
    assert trusted.exclusions.rows_excluded > out.exclusions.rows_excluded


def test_a_champion_whose_alarms_cover_most_of_the_history_is_not_believed(champion_dir: Path, tmp_path: Path) -> None:
    """A champion with a long history that alarmed on 70 % of every machine's readings: its alert periods, with
    their margins, would leave too little to learn from (the retrain of a model trained on its first day used to
    fail so), so they stay in training and the report says why; 20 % is believed and left out."""
    from pdm.contract import alert_id
    from pdm.retrain.data import Exclusion
    from pdm.retrain.report import outcome_lines

    data = fleet(4000, 2).drop(columns=["fault"])

    def alerts(share: float) -> list[Exclusion]:
        out = []
        for mid, rows in data.groupby("machine_id"):
            t0, t1 = float(rows["timestamp"].min()), float(rows["timestamp"].max())
            start = t0 + 0.1 * (t1 - t0)
            out.append(Exclusion(str(mid), start, start + share * (t1 - t0), "alert", alert_id(str(mid), start)))
        return out

    def run(share: float, **kw: object):  # type: ignore[no-untyped-def]
        d = from_frame(data)
        d.exclusions.extend(alerts(share))
        copy = Path(shutil.copytree(champion_dir, tmp_path / f"copy-{share}-{len(kw)}"))
        return retrain(d, copy, options(margin_before_s=0, margin_after_s=0, screen=False, **kw))

    doubted = run(0.7)
    assert doubted.report["champion"]["alarms_taken_as_faults"] is False
    assert "cover 70% of the readings" in doubted.report["champion"]["not_believed_because"], doubted.report
    assert "alert" not in doubted.exclusions.by_reason
    assert any(line.startswith("champion  not believed, its alarms") for line in outcome_lines(doubted))
    believed = run(0.2)
    assert believed.report["champion"]["alarms_taken_as_faults"] is True
    assert believed.exclusions.by_reason["alert"]["intervals"] == data["machine_id"].nunique()
    trusted = run(0.7, trust_champion=True)
    assert trusted.report["champion"]["alarms_taken_as_faults"] is True
    assert trusted.exclusions.rows_excluded > 0.6 * len(data) > doubted.exclusions.rows_excluded


def test_a_champion_reading_a_reference_the_data_lacks_fails_before_any_work(tmp_path: Path) -> None:
    from pdm.detectors.pca import PCADetector

    sensors = ["temperature", "vibration", "pressure"]
    data = fleet(3000, 1).drop(columns=["fault"])
    with_air = data.assign(ambient=20.0 + 0.001 * (data["timestamp"] - data["timestamp"].min()))
    PCADetector(features=[*sensors, "ambient"], references={"temperature": "ambient"}).fit(with_air).save(
        tmp_path / "pump")
    with pytest.raises(DataError, match=r"scores temperature over ambient: found no \['ambient'\] among the sensors"):
        retrain(from_frame(data), tmp_path / "pump", options())


def test_a_short_history_champion_is_reported_as_not_believed_even_with_nothing_to_drop() -> None:
    from pdm.retrain.exclusions import Margins
    from pdm.retrain.verdicts import weigh

    frame = fleet(500, 1).drop(columns=["fault"])
    weighed = weigh(frame, [], Margins(0.0, 0.0, 0.0), short_history=True, trust=False)
    assert weighed.exclusions == [] and weighed.doubt is not None and "short history" in weighed.doubt
    assert weigh(frame, [], Margins(0.0, 0.0, 0.0), short_history=True, trust=True).doubt is None


def test_look_back_of_a_champion_with_the_default_rule_follows_the_sampling_period() -> None:
    from pdm.retrain.run import look_back

    assert look_back({"alarm_n": None}, 1.0) == 120  # a minute of the last two at 1 Hz
    assert look_back({}, 60.0) == 2  # at one reading a minute
    assert look_back({"alarm_n": 7}, 60.0) == 7  # given: windows, kept


def test_a_champion_with_the_old_window_default_passes_on_the_rule_set_in_time() -> None:
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.retrain.challenger import challenger_params

    def rule(params: dict[str, object]) -> tuple[object, ...]:
        return tuple(params[k] for k in ("alarm_k", "alarm_n", "alarm_m"))

    old = GRUAutoencoderDetector(alarm_k=60, alarm_n=120, alarm_m=14_400)  # what every model saved before stored
    assert rule(challenger_params(old, {}, ["a"])) == (None, None, None)
    assert rule(challenger_params(old, {"alarm_m": 600}, ["a"])) == (None, None, 600)  # a flag given still wins
    chosen = GRUAutoencoderDetector(alarm_k=30, alarm_n=60, alarm_m=60)  # a rule someone chose is kept
    assert rule(challenger_params(chosen, {}, ["a"])) == (30, 60, 60)
