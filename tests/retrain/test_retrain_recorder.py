"""Retraining from the recorder's tables: what the daemon and the simulator recorded (alerts, states, maintenance,
truth) becomes exclusions, and a fault known only through the daemon's alert is not learned.

The tables are written by the real recorder (its handler and compaction, driven without a broker, as in
tests/recorder/test_recorder.py), then read by `pdm.retrain.recorder_source` and by ``pdm retrain --recorder``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pdm import contract
from pdm.detectors.base import Detector
from pdm.errors import DataError
from pdm.recorder.link import RecorderMessage
from pdm.recorder.service import Recorder
from pdm.recorder.settings import RecordSettings
from pdm.retrain.recorder_source import from_recorder
from pdm.saving import current_version
from tests.support.cli import pdm
from tests.support.retrain import FAULT, fleet
from tests.support.synthetic import START_TS

SENSORS = ["temperature", "vibration", "pressure"]
TOPICS = contract.Topics()
ALERT_START, ALERT_END = START_TS + FAULT.start + 40, START_TS + FAULT.end + 30  # the daemon saw the fault late


def feed(rec: Recorder, topic: str, payload: bytes) -> None:
    rec.handler.handle(RecorderMessage(topic, payload, 1, 1, False, time.time()))


def state(machine: str, name: str, since: float, alert_id: str | None = None) -> bytes:
    return contract.State(machine_id=machine, state=name, since=since, alert_id=alert_id,  # type: ignore[arg-type]
                          instance="scorer-0", ts=time.time()).encode()


def alert(event: str, ts: float) -> bytes:
    return contract.Alert(alert_id=contract.alert_id("pump-000", ALERT_START), machine_id="pump-000",
                          event=event, ts=ts, window_start=ALERT_START - 15, window_end=ALERT_START,  # type: ignore[arg-type]
                          score=9.0, threshold=1.0, severity="critical", contributions={"vibration": 1.0},
                          model=contract.ModelRef(name="pump", version="1"), instance="scorer-0").encode()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three pumps x 4000 s: pump-000 has an unlabelled vibration fault the daemon alerted on; pump-001 went stale
    and had a (simulator) sensor fault; pump-002 had a maintenance window; every machine warmed up first."""
    path = tmp_path_factory.mktemp("recorded")
    rec = Recorder(RecordSettings(root=path, broker="mqtt://127.0.0.1:1", instance="unit",  # type: ignore[arg-type]
                                  max_clock_skew=0))  # the fixture's data is days old
    data = fleet(4000, 2, FAULT)
    for m, frame in data.groupby("machine_id"):
        ts = frame["timestamp"].to_numpy()
        values = frame[SENSORS].to_numpy()
        for seq, i in enumerate(range(0, len(ts), 200)):
            feed(rec, TOPICS.telemetry(str(m)), contract.encode_batch(
                str(m), seq, ts[i:i + 200].tolist(), {s: values[i:i + 200, j].tolist() for j, s in enumerate(SENSORS)},
                "pump"))
        feed(rec, TOPICS.state(str(m)), state(str(m), "warming_up", START_TS))
        feed(rec, TOPICS.state(str(m)), state(str(m), "normal", START_TS + 15))
    aid = contract.alert_id("pump-000", ALERT_START)
    feed(rec, TOPICS.state("pump-000"), state("pump-000", "alert", ALERT_START, aid))
    feed(rec, TOPICS.state("pump-000"), state("pump-000", "normal", ALERT_END))
    feed(rec, TOPICS.alerts("pump-000"), alert("raised", ALERT_START))
    feed(rec, TOPICS.alerts("pump-000"), alert("cleared", ALERT_END))
    feed(rec, TOPICS.state("pump-001"), state("pump-001", "stale", START_TS + 500))
    feed(rec, TOPICS.state("pump-001"), state("pump-001", "normal", START_TS + 800))
    for event, at in (("start", 3000), ("end", 3100)):
        feed(rec, TOPICS.truth("pump-001"), contract.TruthEvent(
            machine_id="pump-001", ts=START_TS + at, event=event, fault="stuck", kind="sensor",  # type: ignore[arg-type]
            sensor="temperature", fault_id="pump-001-1").encode())
    feed(rec, TOPICS.maintenance("pump-002"), contract.Maintenance(
        machine_id="pump-002", from_=START_TS + 2000, until=START_TS + 2300, reason="bearing swap", by="op").encode())
    rec.journal.close()
    rec.recover()  # what a clean stop does: segments compacted to Parquet
    return path


def test_recorded_periods_become_exclusions_and_faults(root: Path) -> None:
    data = from_recorder(root, start=None, end=None)
    assert data.machines == ["pump-000", "pump-001", "pump-002"] and len(data.frame) == 12_000
    assert data.features == SENSORS and data.has_alert_history
    assert data.machine_types == dict.fromkeys(data.machines, "pump")
    got = {(e.machine_id, e.reason, e.start - START_TS, e.end - START_TS) for e in data.exclusions}
    assert {("pump-000", "alert", FAULT.start + 25.0, FAULT.end + 30.0),  # alerts table: window start to cleared
            ("pump-000", "alert", FAULT.start + 40.0, FAULT.end + 30.0),  # states table
            ("pump-001", "stale", 500.0, 800.0), ("pump-001", "sensor_fault", 3000.0, 3100.0),
            ("pump-002", "maintenance", 2000.0, 2300.0), ("pump-002", "warming_up", 0.0, 15.0)} <= got
    assert [(f.kind, f.sensor_fault) for f in data.faults["pump-001"]] == [("stuck", True)]
    window = from_recorder(root, start=START_TS + 1000, end=START_TS + 2000, machines=["pump-002"])
    assert window.machines == ["pump-002"] and len(window.frame) == 1000
    with pytest.raises(DataError, match="found no telemetry"):
        from_recorder(root, start=None, end=None, machine_type="compressor")
    with pytest.raises(DataError, match="expected the root directory of a recorder"):
        from_recorder(root / "nope", start=None, end=None)


def test_retrain_from_the_recorder_does_not_learn_a_fault_the_daemon_alerted_on(root: Path, tmp_path: Path) -> None:
    model = tmp_path / "models" / "pump"
    result = pdm("retrain", "--model", model, "--recorder", root, "--until", str(START_TS + 4000), "--last", "2h",
                 "--machine-type", "pump", "--margin-before", "1m", "--margin-after", "1m", "--window", "16",
                 "--hidden", "8", "--latent", "4", "--epochs", "3", "--max-train-windows", "3000",
                 "--threshold-method", "pot",
                 "--target-false-alarm-rate", "0.001", "--alarm-k", "5", "--alarm-n", "10", "--alarm-m", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alert" in result.stdout and "maintenance" in result.stdout and "screened" not in result.stdout
    det = Detector.load(model / str(current_version(model)))
    pump = fleet(4000, 2, FAULT).query("machine_id == 'pump-000'").reset_index(drop=True)
    score = det.score(pump.drop(columns=["fault", "machine_id"]), machine_id="pump-000").to_numpy()
    inside = (pump["fault"] == "vibration_step").to_numpy()
    assert np.nanmean(score[inside] > det.threshold_.value) > 0.6
