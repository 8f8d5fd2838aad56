"""The zero-setup demo: its broker launcher, its contract observer, its verdict, and the whole run headless."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pdm.contract import Alert, ModelRef, Topics, TruthEvent, alert_id, encode_batch
from pdm.demo.broker import BrokerError, LocalBroker, find_mosquitto
from pdm.demo.observer import Episode, Fault, MachineView, Observer
from pdm.demo.summary import judge

ROOT = Path(__file__).resolve().parents[2]


def _observer_with(*machines: MachineView) -> Observer:
    obs = Observer("127.0.0.1", 1, "pdm/v1")  # never started: judged from hand-made data
    obs.machines = {m.machine_id: m for m in machines}
    return obs


def test_verdict_counts_detections_delays_and_false_alarms_by_hand() -> None:
    m = MachineView("pump-001", score_ts=[float(t) for t in range(1000)], scores=[0.0] * 1000)
    m.faults = {"f1": Fault("f1", "imbalance", "machine", None, 100.0, 300.0),
                "f2": Fault("f2", "stuck", "sensor", "pressure", 800.0, 850.0)}
    m.episodes = {"a1": Episode("a1", 150.0, "vibration", 2.0, cleared=320.0),  # catches f1 after 50 s
                  "a2": Episode("a2", 600.0, "pressure", 1.5, cleared=620.0)}  # overlaps nothing: false alarm
    quiet = MachineView("motor-001", score_ts=[float(t) for t in range(1000)], scores=[0.0] * 1000)
    verdict = judge(_observer_with(m, quiet), grace_s=10.0)
    r = verdict.report
    assert (r.faults, r.detected, r.sensor_faults, r.sensor_detected, r.false_alarms) == (1, 1, 1, 0, 1)
    assert r.delays_s == (50.0,)
    assert verdict.false_alarms == ["a2"]
    rows = {f.fault: f for f in verdict.faults}
    assert rows["imbalance"].detected and rows["imbalance"].top_sensor == "vibration"
    assert not rows["stuck"].detected and rows["stuck"].kind == "sensor"
    assert verdict.machine_faults_detected


def test_a_sensor_fault_is_caught_only_by_a_sensor_alert_naming_its_sensor() -> None:
    m = MachineView("pump-002", score_ts=[float(t) for t in range(1000)], scores=[0.0] * 1000)
    m.faults = {"f1": Fault("f1", "spike", "sensor", "temperature", 100.0, 300.0),
                "f2": Fault("f2", "drift", "sensor", "vibration", 300.0, 900.0)}
    m.sensor_episodes = {  # the spike alert stays open into the drift: it does not catch the drift
        "s1": Episode("s1", 150.0, "temperature", 1.0, cleared=400.0, problem="spikes"),
        "s2": Episode("s2", 700.0, "vibration", 1.0, cleared=None, problem="drift"),
        "s3": Episode("s3", 500.0, "pressure", 1.0, cleared=600.0, problem="stuck")}  # no pressure fault: false
    verdict = judge(_observer_with(m), grace_s=10.0)
    rows = {f.fault: f for f in verdict.faults}
    assert (rows["spike"].detected, rows["spike"].delay_s, rows["spike"].top_sensor) == (True, 50.0, "temperature")
    assert (rows["drift"].detected, rows["drift"].delay_s, rows["drift"].top_sensor) == (True, 400.0, "vibration")
    assert rows["drift"].alerts == 1
    assert verdict.false_sensor_alerts == ["s3"]


def test_two_sensor_faults_of_one_type_at_once_are_told_apart_by_their_sensor() -> None:
    m = MachineView("pump-002", score_ts=[float(t) for t in range(1000)], scores=[0.0] * 1000)
    m.faults = {"f1": Fault("f1", "drift", "sensor", "vibration", 100.0, 900.0),
                "f2": Fault("f2", "drift", "sensor", "pressure", 100.0, 900.0)}
    m.sensor_episodes = {"s1": Episode("s1", 400.0, "pressure", 1.0, cleared=None, problem="drift")}
    verdict = judge(_observer_with(m), grace_s=10.0)
    caught = {(f.top_sensor, f.detected) for f in verdict.faults}
    assert caught == {(None, False), ("pressure", True)} and verdict.false_sensor_alerts == []


def test_an_alert_still_open_at_the_end_counts_until_the_end() -> None:
    m = MachineView("pump-001", score_ts=[float(t) for t in range(100)], scores=[0.0] * 100)
    m.faults = {"f1": Fault("f1", "leak", "machine", None, 90.0)}  # never ended
    m.episodes = {"a1": Episode("a1", 95.0, "pressure", 3.0)}  # never cleared
    verdict = judge(_observer_with(m), grace_s=0.0)
    assert verdict.report.detected == 1 and verdict.report.delays_s == (5.0,)
    assert verdict.false_alarms == []


T0 = 1_795_406_400.0  # telemetry times are epoch seconds from 2000 on (the contract's bounds)


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_local_broker_and_observer_see_contract_traffic(kind: str, tmp_path: Path) -> None:
    if kind == "mosquitto" and find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (make test installs it)")
        pytest.skip("mosquitto is not installed")
    topics = Topics("pdm/v1")
    with LocalBroker(tmp_path / kind, kind) as broker:
        obs = Observer(broker.host, broker.port, "pdm/v1", mqtt_version=broker.mqtt_version)
        obs.start()
        try:
            pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
            pub.connect(broker.host, broker.port)
            pub.loop_start()
            batch = encode_batch("pump-001", 1, [T0 + 10.0, T0 + 11.0], {"temperature": [50.0, 50.5],
                                 "vibration": [1.0, 1.1], "pressure": [3.0, None]}, machine_type="pump")
            truth = TruthEvent(machine_id="pump-001", ts=T0 + 10.0, event="start", fault="leak", kind="machine",
                               fault_id="pump-001-1")
            alert = Alert(alert_id=alert_id("pump-001", T0 + 11.0), machine_id="pump-001", event="raised",
                          ts=T0 + 11.0, window_start=T0 + 1.0, window_end=T0 + 11.0, score=2.0, threshold=1.0,
                          severity="critical",
                          contributions={"pressure": 0.9, "vibration": 0.05, "temperature": 0.05},
                          model=ModelRef(name="pump", version="v1"), instance="scorer-0")
            for topic, payload in ((topics.telemetry("pump-001"), batch), (topics.truth("pump-001"), truth.encode()),
                                   (topics.alerts("pump-001"), alert.encode()),
                                   (topics.telemetry("pump-001"), b"{not json")):
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and obs.bad_messages < 1:
                time.sleep(0.05)
            pub.loop_stop()
            pub.disconnect()
        finally:
            obs.stop()
    m = obs.machines["pump-001"]
    assert m.ts == [T0 + 10.0, T0 + 11.0] and m.values["temperature"] == [50.0, 50.5] and m.machine_type == "pump"
    assert m.faults["pump-001-1"].fault == "leak" and m.faults["pump-001-1"].start == T0 + 10.0
    assert m.episodes[alert.alert_id].top_sensor == "pressure"
    assert obs.bad_messages == 1


def test_an_unknown_broker_kind_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="found broker kind 'rabbit'"):
        LocalBroker(tmp_path, "rabbit").start()


@pytest.mark.slow
def test_quick_demo_detects_every_injected_machine_fault(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "pdm", "demo", "--quick", "--speed", "1200", "--plain", "--out", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    machine_faults = [f for f in summary["faults"] if f["kind"] == "machine"]
    assert len(machine_faults) == 3, summary
    assert all(f["detected"] for f in machine_faults), summary
    # each caught by an alert raised after its onset (not one already open), and no healthy machine paged
    assert all(f["delay_s"] > 0 and f["alerts"] == 1 for f in machine_faults), summary
    assert summary["summary"]["false_alarms"] == 0, summary
    assert summary["summary"]["detected"] == 3
    assert "[alert]" in result.stdout and "RAISED" in result.stdout
    assert (tmp_path / "report.png").stat().st_size > 10_000
