"""Drift and data quality in the daemon's retained states, against a real mosquitto (`tests.support.broker`).

Three machines send the readings the model held back to calibrate on (its calibration tail, 4,320 readings each):

- ``pump-002`` as they were: its windows are the calibration windows themselves, so its scores fall in the score
  bins exactly as the calibration's did: drift ``stable`` (PSI 0 up to float rounding), verdict ``ok``;
- ``compressor-001`` with every sensor offset by half its own robust standard deviation (the model's scale for it):
  not enough to raise an alert (no window of it goes over the threshold, checked), enough to move its scores out of
  its calibration bins: drift ``drifted``, verdict ``model_stale``;
- ``motor-001`` with pressure null in every reading, then three malformed messages: verdict ``sensor_problem``,
  pressure ``missing``, and the rejections counted against it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pdm import contract
from pdm.daemon.quality import DRIFTS
from pdm.detectors.base import Detector
from tests.support.broker import Broker
from tests.support.daemon import (
    MODEL,
    SENSORS,
    Collector,
    Sender,
    calibration_tail,
    metric,
    models_dir,
    retained,
    running,
    settings,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
WINDOW = 16
SHIFT = 0.5  # robust standard deviations


def shifted_tail(machine: str) -> tuple[np.ndarray, np.ndarray]:
    ts, values = calibration_tail(machine)
    scale = np.asarray(Detector.load(models_dir() / MODEL).scaler_.machines[machine].scale)
    return ts, values + SHIFT * scale


def test_normal_machine_is_stable_shifted_one_is_drifted_and_a_null_sensor_is_a_sensor_problem(
        mosquitto: Broker) -> None:
    feeds = {"pump-002": calibration_tail("pump-002"), "compressor-001": shifted_tail("compressor-001")}
    ts, values = calibration_tail("motor-001")
    values = values.copy()
    values[:, SENSORS.index("pressure")] = np.nan
    feeds["motor-001"] = (ts, values)
    # the shift is not an alert: the batch path raises no alarm on it
    det = Detector.load(models_dir() / MODEL)
    ts_c, values_c = feeds["compressor-001"]
    batch = det.detect(pd.DataFrame({"timestamp": ts_c, **dict(zip(SENSORS, values_c.T, strict=True))}),
                       machine_id="compressor-001")
    assert not batch["alarm"].any()
    windows = {m: len(t) - WINDOW + 1 for m, (t, _) in feeds.items()}
    collector = Collector(mosquitto, "drift-collector")
    # 7200 s span: the tails (4,319 s) fit in it whole and cover more than half of it
    s = settings(mosquitto, heartbeat=1.0, drift_window=7200.0, reload_interval=0)
    try:
        with running(s) as daemon:
            sender = Sender(mosquitto, "drift-sender")
            for machine, (t, v) in feeds.items():
                sender.batch(machine, t, v, machine_type="pump", size=120)
            bad = {"machine_id": "motor-001", "ts": float(ts[-1]) + 1, "temperature": "hot", "vibration": 1.0,
                   "pressure": 1.0}
            for _ in range(3):  # rejected (bad_field), counted against motor-001: 3 of its 36 + 3 messages
                sender.raw(contract.Topics().telemetry("motor-001"), json.dumps(bad).encode())
            sender.close()
            wait_for(lambda: metric(daemon, "pdm_rejected_total", reason="bad_field") == 3, 20, "the rejections")
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) >= sum(windows.values()), 60,
                     "every window scored")

            def latest() -> dict[str, dict[str, object]]:
                return {st["machine_id"]: st for st in collector.of("state")}

            wait_for(lambda: all(latest().get(m, {}).get("quality", {}).get("drift_windows") == n  # type: ignore[union-attr]
                                 for m, n in windows.items()), 20, "states carrying every window")
            states = latest()
            wait_for(lambda: metric(daemon, "pdm_machines_quality", model=MODEL, verdict="model_stale",
                                    drift="drifted") == 1, 10, "the fleet gauge")
            assert metric(daemon, "pdm_machines_quality", model=MODEL, verdict="ok", drift="stable") == 1
            assert sum(metric(daemon, "pdm_machines_quality", model=MODEL, verdict="sensor_problem", drift=d)
                       for d in DRIFTS) == 1
            assert metric(daemon, "pdm_drift_psi_count", model=MODEL) >= 3
        # no machine alert; the null pressure is the sensor's own problem, as a sensor alert
        alerts = collector.alerts()
        assert [a for a in alerts if a.get("kind", "machine") == "machine"] == []
        raised = {(a["machine_id"], a["sensor"], a["problem"]) for a in alerts if a["event"] == "raised"}
        assert raised == {("motor-001", "pressure", "missing")}
    finally:
        collector.close()
    normal, shifted, broken = (states[m]["quality"] for m in ("pump-002", "compressor-001", "motor-001"))
    assert isinstance(normal, dict) and isinstance(shifted, dict) and isinstance(broken, dict)
    assert normal["drift"] == "stable" and normal["verdict"] == "ok" and normal["drift_psi"] < 0.01
    assert normal["sensors"] == {} and normal["missing_rate"] == 0.0 and normal["rejected_rate"] == 0.0
    assert shifted["drift"] == "drifted" and shifted["verdict"] == "model_stale" and shifted["drift_psi"] >= 0.25
    assert states["compressor-001"]["state"] == "normal" and states["compressor-001"]["alert_id"] is None
    assert broken["verdict"] == "sensor_problem" and broken["sensors"] == {"pressure": "missing"}
    assert broken["missing_rate"] == 1.0 and broken["rejected_rate"] == round(3 / 39, 4)
    # the retained state is still the contract's: parse_state reads it, and a plain client reads quality
    for machine in feeds:
        payload = json.dumps(states[machine]).encode()
        assert contract.parse_state(payload, machine).machine_id == machine
    assert retained(mosquitto, "pdm/v1/state/pump-002")["quality"]["drift"] == "stable"
