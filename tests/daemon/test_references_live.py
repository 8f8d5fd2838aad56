"""A model that scores temperature over an ambient sensor, served against a real mosquitto: a warm day is no alert,
the machine's own heating is, the ambient sensor is never blamed, and a message without it is rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pdm.detectors.pca import PCADetector
from tests.support.broker import Broker
from tests.support.daemon import (
    LIVE_START,
    TRAIN_START,
    Collector,
    Sender,
    metric,
    running,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
SENSORS = ["temperature", "vibration", "pressure", "ambient"]


def model(root: Path) -> Path:
    """PCA T²+Q (fast to fit) on 2 machines x 6 h with an ambient sensor, temperature over the ambient, and a short
    alarm rule (30 of 60 raise)."""
    data, _ = simulate(2, 6 * 3600, TRAIN_START, normal_only=True, ambient_sensor=True)
    det = PCADetector(features=SENSORS, references={"temperature": "ambient"}, alarm_k=30, alarm_n=60, alarm_m=60,
                      alarm_clear=1.0)
    det.fit(data[["timestamp", "machine_id", *SENSORS]])
    det.save(root / "air")
    return root


def test_warm_weather_is_no_alert_and_overheating_is(mosquitto: Broker, tmp_path: Path) -> None:
    live, _ = simulate(2, 2 * 3600, LIVE_START, normal_only=True, ambient_sensor=True)
    arrays = {}
    for mid, rows in live.groupby("machine_id"):
        values = rows[SENSORS].to_numpy(dtype=float).copy()
        values[:, [0, 3]] += 12.0  # a day 12 degC warmer than any in training: the machine and its air alike
        arrays[str(mid)] = (rows["timestamp"].to_numpy(dtype=float), values)
    hot_id = "pump-001"
    ts, values = arrays[hot_id]
    half = len(ts) // 2
    values[half:, 0] += np.minimum(np.arange(len(ts) - half) / 30.0, 30.0)  # its own heating: +30 degC in 15 min
    calm_id = next(m for m in arrays if m != hot_id)
    arrays[calm_id] = tuple(a[:3600] for a in arrays[calm_id])  # type: ignore[assignment]  # its warm hour
    collector = Collector(mosquitto, "air-collector")
    try:
        with running(settings(mosquitto, models_dir=model(tmp_path), default_model="air", heartbeat=1.0,
                              reload_interval=0)) as daemon:
            sender = Sender(mosquitto, "air-sender")
            for mid, (t, v) in arrays.items():
                sender.batch(mid, t, v, size=120, sensors=SENSORS)
            sender.batch(calm_id, arrays[calm_id][0][-1:] + 1.0, arrays[calm_id][1][-1:, :3], size=1,
                         sensors=SENSORS[:3])  # no ambient: the model needs it
            sender.close()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model="air") >= 3 * 3600 - 10, 60,
                     "every window scored")
            wait_for(lambda: metric(daemon, "pdm_rejected_total", reason="missing_field") == 1, 20,
                     "the message without ambient rejected")
            wait_for(lambda: any(a["machine_id"] == hot_id for a in collector.alerts()), 20, "the overheating alert")
            rejected = metric(daemon, "pdm_rejected_total", reason="beyond_model_range")
        alerts = [a for a in collector.alerts() if a.get("kind", "machine") == "machine"]
    finally:
        collector.close()
    assert rejected == 0  # the ambient is judged as the model sees it (0), not as 30 degC off a centre of 0
    assert {a["machine_id"] for a in alerts} == {hot_id}
    raised = next(a for a in alerts if a["event"] == "raised")
    assert raised["window_end"] >= ts[half]
    assert max(raised["contributions"], key=raised["contributions"].get) == "temperature"
    assert raised["contributions"]["ambient"] == 0.0
