"""Scoring daemon, unit level (no broker): the reading rules of a machine, alert episodes, and the settings'
precedence. (That the streaming windows equal the batch path's is the detector's: tests/detectors/test_stream.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from pdm import contract
from pdm.daemon.episodes import OpenAlert, step
from pdm.daemon.machines import MachineState
from pdm.daemon.models import Models
from pdm.daemon.settings import SettingsError, load_settings
from pdm.detectors.alarm import AlarmRule
from tests.support.daemon import LIVE_START, MODEL, SENSORS, machine_arrays, models_dir, simulate


@pytest.fixture(scope="module")
def models() -> Models:
    return Models(models_dir(), {}, MODEL, warm_up=False)


def message(machine: str, seq: int, ts: np.ndarray, values: np.ndarray) -> contract.Telemetry:
    cols = {s: values[:, j].tolist() for j, s in enumerate(SENSORS)}
    return contract.parse_telemetry(contract.encode_batch(machine, seq, ts.tolist(), cols), machine, SENSORS)


def test_duplicates_late_readings_gaps_and_stride(models: Models) -> None:
    slot = models.slots[MODEL]
    m = MachineState.create("pump-009", slot, None)  # a machine the model has not seen: global scaling
    ts = LIVE_START + np.arange(40.0)
    values = np.tile([40.0, 1.5, 3.0], (40, 1))
    first = m.apply(message("pump-009", 0, ts[:20], values[:20]))
    assert first.readings == 20 and first.ready is not None and len(first.ready.windows) == 20 - slot.window + 1
    again = m.apply(message("pump-009", 0, ts[:20], values[:20]))  # repeated seq
    assert again.duplicate_message and again.duplicates == 20 and again.ready is None
    mixed = message("pump-009", 1, np.r_[ts[19], ts[10], ts[20:25]], values[:7])  # same ts, late, 5 new
    applied = m.apply(mixed)
    assert (applied.duplicates, applied.late, applied.readings) == (1, 1, 5)
    assert applied.ready is not None and applied.ready.end_ts.tolist() == ts[20:25].tolist()
    assert m.state == "normal"
    gap_ts = ts[25:40] + 10 * slot.max_gap_s  # a gap larger than the model allows
    gapped = m.apply(message("pump-009", 2, gap_ts, values[25:40]))
    assert gapped.gaps == 1 and gapped.ready is None and m.state == "warming_up"
    strided = MachineState.create("pump-001", slot, "pump", stride=4)
    got = strided.apply(message("pump-001", 0, ts, values)).ready
    assert got is not None
    assert got.end_ts.tolist() == ts[slot.window - 1 :: 4].tolist()
    assert got.start_ts.tolist() == ts[: 40 - slot.window + 1 : 4].tolist()


def test_one_raised_and_one_cleared_per_episode_with_contract_ids() -> None:
    rule = AlarmRule(k=2, n=3, m=2)
    tracker, alert = rule.tracker(), None
    events = []
    for i, score in enumerate([0.1, 2.0, 3.0, 5.0, 2.5, 0.1, 0.2, 0.1, 2.0]):
        alert, ev = step(tracker, alert, "pump-1", score=score, shares={"a": 0.25, "b": 0.75}, start=i - 15.0,
                         end=float(i), threshold=1.0)
        if ev:
            events.append((ev.kind, ev.alert.alert_id, ev.score, ev.ts))
    assert events == [("raised", "pump-1-2000", 3.0, 2.0), ("cleared", "pump-1-2000", 5.0, 6.0)]
    # a restored alert is not raised again and clears with its own id
    tracker, restored = rule.tracker(), OpenAlert.restored("pump-1", "pump-1-2000", 2.0, 5.0, 15.0)
    tracker.active = True
    kinds = []
    for i, score in enumerate([3.0, 3.0, 0.1, 0.1]):
        restored_or_none, ev = step(tracker, restored, "pump-1", score=score, shares={"a": 1.0}, start=20.0 + i,
                                    end=30.0 + i, threshold=1.0)
        restored = restored_or_none  # type: ignore[assignment]
        if ev:
            kinds.append((ev.kind, ev.alert.alert_id, ev.alert.window_end))
    assert kinds == [("cleared", "pump-1-2000", 2.0)]
    alert_msg = contract.Alert(alert_id="pump-1-2000", machine_id="pump-1", event="cleared", ts=33.0, window_start=0.0,
                               window_end=2.0, score=5.0, threshold=1.0, severity="critical",
                               contributions={"a": 1.0}, model=contract.ModelRef(name="m", version="v"), instance="s-0")
    assert contract.parse_alert(alert_msg.encode()).alert_id == "pump-1-2000"


def test_settings_precedence_cli_env_file_default(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "serve.toml"
    config.write_text('[serve]\nstride = 5\nstale-timeout = 42\nprefix = "plant/v1"\nheartbeat = 20\n')
    monkeypatch.setenv("PDM_STRIDE", "3")
    monkeypatch.setenv("PDM_HEARTBEAT", "10")
    monkeypatch.setenv("PDM_MQTT_PASSWORD", "hunter2")
    s = load_settings({"stride": "2"}, config)
    assert (s.stride, s.heartbeat, s.stale_timeout, s.prefix, s.qos) == (2, 10.0, 42.0, "plant/v1", 1)
    assert s.password() == "hunter2" and "hunter2" not in repr(s) and "hunter2" not in str(s)
    config.write_text("mqtt_password = 'x'\n")
    with pytest.raises(SettingsError, match="mqtt_password"):
        load_settings({}, config)
    with pytest.raises(SettingsError, match="--shard"):
        load_settings({"shard": "2/2"})
    with pytest.raises(SettingsError, match="heartbeat"):
        load_settings({"heartbeat": "90"})



def test_the_engine_setting_chooses_the_engine_and_both_score_alike() -> None:
    slots = {e: Models(models_dir(), {}, MODEL, warm_up=False, engine=e).slots[MODEL]
             for e in ("auto", "onnx", "keras")}
    names = {e: type(s.detector.engine_).__name__ for e, s in slots.items()}  # type: ignore[attr-defined]
    assert names == {"auto": "OnnxEngine", "onnx": "OnnxEngine", "keras": "CompiledKerasEngine"}
    frame, _ = simulate(1, 400, LIVE_START, normal_only=True)
    mid = str(frame["machine_id"].iloc[0])
    _, values = machine_arrays(frame, mid)
    det = slots["keras"].detector
    scaled = det.scaler_.transform(values, mid).astype(np.float32)
    windows = np.stack([scaled[i : i + det.window_length] for i in range(0, 300, 7)])
    onnx_scores, onnx_shares = slots["onnx"].detector.score_windows(windows)
    keras_scores, keras_shares = det.score_windows(windows)
    np.testing.assert_allclose(onnx_scores, keras_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(onnx_shares, keras_shares, atol=1e-4)


def test_a_drifting_pressure_transmitter_is_a_sensor_alert_from_the_machines_rest(models: Models) -> None:
    """`pdm.detectors.rest` in the daemon: the model learned pump-001's rest levels. 16 hours of it, the pressure
    reading 0.5 bar high in the first 8: one ``drift`` sensor alert, raised once the pump has stood still and
    cleared once it stands still again after the transmitter was mended; while it is open the windows get the
    pressure as missing (carried forward: constant), and the data-quality rules keep judging the real readings (no
    ``missing`` alert). The same hours as they were raise none."""
    slot = models.slots[MODEL]
    frame, _ = simulate(4, 16 * 3600, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    half = len(ts) // 2
    rest = values[:, SENSORS.index("vibration")] < 0.3
    assert rest[:half].mean() > 0.1 and rest[half:].mean() > 0.05  # the pump stands still in both halves
    biased = values.copy()
    biased[:half, SENSORS.index("pressure")] += 0.5
    pressure = SENSORS.index("pressure")
    for name, data in (("as it was", values), ("biased", biased)):
        m = MachineState.create("pump-001", slot, "pump")
        alerts: list[contract.Alert] = []
        frozen: list[bool] = []  # per message with windows: is the pressure constant in its last window
        for seq, i in enumerate(range(0, len(ts), 600)):
            ready = m.apply(message("pump-001", seq, ts[i : i + 600], data[i : i + 600])).ready
            if ready is not None:
                frozen.append(bool(np.ptp(ready.windows[-1, :, pressure]) == 0))
            open_before = "pressure" in m.open_sensors
            alerts += m.sensor_alerts("test")
            if ready is not None and open_before and "pressure" in m.open_sensors:
                assert frozen[-1], f"message {seq}: pressure moved in its last window while its drift alert was open"
        if name == "as it was":
            assert alerts == [] and not any(frozen)
            continue
        assert [(a.sensor, a.problem, a.event) for a in alerts] == [("pressure", "drift", "raised"),
                                                                    ("pressure", "drift", "cleared")]
        raised, cleared = alerts
        assert ts[int(np.argmax(rest))] < raised.ts < ts[half] < cleared.ts  # evidence comes when it stands still
        assert raised.alert_id == cleared.alert_id and any(frozen)


def test_a_stuck_vibration_sensor_does_not_fake_a_rest_for_the_drift_watch(models: Models) -> None:
    """pump-001's vibration sensor stuck at a rest reading for 8 hours while the pump keeps running and stopping:
    that is a ``stuck`` alert on vibration, and the running pressure must not be judged as a rest reading (it
    was: a ``drift`` alert on the healthy pressure transmitter)."""
    slot = models.slots[MODEL]
    levels = slot.drift.rest("pump-001")
    vibration = SENSORS.index("vibration")
    assert levels is not None and levels.band_lo[vibration] is not None and levels.band_hi[vibration] is not None
    frame, _ = simulate(4, 12 * 3600, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    stuck = values.copy()
    stuck[2 * 3600 : 10 * 3600, vibration] = round((levels.band_lo[vibration] + levels.band_hi[vibration]) / 2, 3)
    m = MachineState.create("pump-001", slot, "pump")
    alerts: list[tuple[str | None, str | None, str]] = []
    for seq, i in enumerate(range(0, len(ts), 600)):
        m.apply(message("pump-001", seq, ts[i : i + 600], stuck[i : i + 600]))
        alerts += [(a.sensor, a.problem, a.event) for a in m.sensor_alerts("test")]
    assert ("vibration", "stuck", "raised") in alerts
    assert not [a for a in alerts if a[1] == "drift"], alerts
