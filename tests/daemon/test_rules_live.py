"""Daemon rules against a real mosquitto (`tests.support.broker`): maintenance muting, stale machines, heartbeats,
routing by ``machine_type``, back-pressure with a tiny queue, and ``/healthz`` when scoring stalls or the broker is
unreachable. A slow model is stood in for by `Gate` (the detector's ``score_windows`` waits for the test)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pdm import contract
from pdm.daemon.service import Daemon
from pdm.detectors.zscore import RobustZScoreDetector
from tests.support.broker import Broker, free_port, mosquitto_binary
from tests.support.daemon import (
    LIVE_START,
    MODEL,
    SENSORS,
    TRAIN_START,
    Collector,
    Sender,
    copy_models,
    health,
    machine_arrays,
    metric,
    running,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
WINDOW = 16


def pump(n: int, machine: str = "pump-001") -> tuple[np.ndarray, np.ndarray]:
    frame, _ = simulate(4, n, LIVE_START, fault_rate_per_day=0.0, forced=[])
    return machine_arrays(frame, machine)


def states(collector: Collector, machine: str) -> list[dict[str, Any]]:
    return [s for s in collector.of("state") if s["machine_id"] == machine]


class Gate:
    """Makes the daemon's model wait until ``release()``: a model call that takes as long as the test wants."""

    def __init__(self, daemon: Daemon) -> None:
        self.detector = daemon.models.slots[MODEL].detector
        self.score = self.detector.score_windows
        self.entered = threading.Event()
        self._open = threading.Event()
        self.detector.score_windows = self._call  # type: ignore[method-assign]

    def _call(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.entered.set()
        self._open.wait(60)
        return self.score(windows)

    def release(self) -> None:
        self._open.set()


def test_maintenance_mutes_alerts_until_cleared(mosquitto: Broker) -> None:
    ts, values = pump(1800)
    values[700:1500, 1] += 8.0  # a fault that starts inside the maintenance window and outlasts it
    topic = "pdm/v1/maintenance/pump-001"
    window = contract.Maintenance(machine_id="pump-001", from_=float(ts[600]), until=float(ts[600]) + 86_400.0,
                                  reason="bearing swap", by="tech-7")
    p2, p2_values = pump(300, "pump-002")
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    try:
        # a window published (retained) before the daemon starts applies to pump-002's first readings
        sender.raw("pdm/v1/maintenance/pump-002", contract.Maintenance(
            machine_id="pump-002", from_=float(p2[0]), until=float(p2[-1]) + 1, reason="overhaul", by="tech-7",
        ).encode(), retain=True)
        sender.flush()
        with running(settings(mosquitto)) as daemon:
            sender.batch("pump-002", p2, p2_values)
            sender.batch("pump-001", ts[:600], values[:600])
            sender.raw(topic, window.encode(), retain=True)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_messages_total", kind="maintenance") == 2, 10, "maintenance read")
            sender.batch("pump-001", ts[600:1200], values[600:1200])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 1500, 20, "the readings")
            wait_for(lambda: states(collector, "pump-001")[-1:] != [] and states(collector, "pump-001")[-1]["state"]
                     == "maintenance", 10, "state maintenance")
            assert metric(daemon, "pdm_windows_muted_total") == 600 + 300 - WINDOW + 1
            assert metric(daemon, "pdm_alerts_total", event="raised") == 0  # the fault is muted
            assert states(collector, "pump-002")[-1]["state"] == "maintenance"
            sender.raw(topic, b"", retain=True)  # an empty retained payload clears the window
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_messages_total", kind="maintenance") == 3, 10, "the clearing")
            wait_for(lambda: states(collector, "pump-001")[-1]["state"] == "normal", 10, "state normal")
            sender.batch("pump-001", ts[1200:], values[1200:])
            sender.flush()
            wait_for(lambda: [a["event"] for a in collector.alerts()] == ["raised", "cleared"], 20, "the episode")
            assert metric(daemon, "pdm_windows_scored_total", model=MODEL) == 1800 - WINDOW + 1 - 600
        raised = collector.alerts()[0]
        assert raised["machine_id"] == "pump-001" and raised["window_end"] >= ts[1200]  # after the clearing
        seq = [s["state"] for s in states(collector, "pump-001")]
        assert seq.index("maintenance") < seq.index("alert") and "maintenance" not in seq[seq.index("alert"):]
    finally:
        sender.close()
        collector.close()


def test_stale_machine_and_heartbeats_that_pause_while_the_broker_is_down(mosquitto: Broker) -> None:
    ts, values = pump(200)
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, heartbeat=2.0, stale_timeout=30.0)) as daemon:
            sender.batch("pump-001", ts[:100], values[:100])
            sender.flush()
            wait_for(lambda: len(states(collector, "pump-001")) >= 5, 15, "heartbeats")
            got = states(collector, "pump-001")
            gaps = np.diff([s["ts"] for s in got])
            assert {s["state"] for s in got[1:]} == {"normal"}  # no transitions: these are heartbeats
            assert gaps.max() <= 2.0, gaps  # republished at least every --heartbeat seconds (daemon clock)
            mosquitto.stop()
            wait_for(lambda: not daemon.link.connected.is_set(), 10, "the daemon to notice")
            pending = daemon.link.pending_publications
            threading.Event().wait(4.0)  # two heartbeat intervals without a broker
            assert daemon.link.pending_publications == pending  # nothing queued for later
            mosquitto.start()
            wait_for(daemon.link.connected.is_set, 20, "the reconnection")
        with running(settings(mosquitto, stale_timeout=1.0)) as daemon:
            sender.wait_connected()
            sender.batch("pump-001", ts[100:], values[100:])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_machines", state="stale") == 1, 10, "the machine to go stale")
            wait_for(lambda: states(collector, "pump-001")[-1]["state"] == "stale", 10, "the stale state")
            sender.batch("pump-001", ts[-1:] + 1.0, values[-1:])  # data again: normal at once
            sender.flush()
            wait_for(lambda: states(collector, "pump-001")[-1]["state"] == "normal", 10, "normal again")
    finally:
        sender.close()
        collector.close()


@pytest.fixture(scope="module")
def routed_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``fleet`` (the GRU) and ``zs`` (a robust z-score, window 1) side by side."""
    root = copy_models(tmp_path_factory.mktemp("routes") / "models")
    data, _ = simulate(4, 3600, TRAIN_START, normal_only=True)
    RobustZScoreDetector(features=SENSORS, seed=0).fit(data[["timestamp", "machine_id", *SENSORS]]).save(root / "zs")
    return root


def test_routes_send_machine_types_to_their_models(mosquitto: Broker, routed_models: Path) -> None:
    frame, _ = simulate(4, 300, LIVE_START, fault_rate_per_day=0.0, forced=[])
    sender = Sender(mosquitto)
    collector = Collector(mosquitto)
    try:
        with running(settings(mosquitto, models_dir=routed_models, routes="motor=zs,pump=fleet",
                              default_model=MODEL)) as daemon:
            for machine, mtype in (("pump-001", "pump"), ("motor-001", "motor"), ("compressor-001", "compressor")):
                sender.batch(machine, *machine_arrays(frame, machine), machine_type=mtype)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model="zs") == 300, 20, "zs windows")
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 2 * (300 - WINDOW + 1), 20,
                     "fleet windows (pump by route, compressor by default)")
            assert daemon.scorer is not None
            assert {m: s.slot.name for m, s in daemon.scorer.machines.items()} == {
                "pump-001": MODEL, "motor-001": "zs", "compressor-001": MODEL}
            ts, values = machine_arrays(frame, "pump-002")
            sender.batch("pump-002", ts[:100], values[:100], machine_type="pump")
            sender.batch("pump-002", ts[100:], values[100:], machine_type="motor")  # re-typed: moves to zs
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model="zs") == 500, 20, "the re-routed one")
            assert daemon.scorer.machines["pump-002"].slot.name == "zs"
            wait_for(lambda: {(s["machine_id"], s["model"]["name"]) for s in collector.of("state")} >= {
                ("motor-001", "zs"), ("pump-001", MODEL), ("compressor-001", MODEL)}, 10, "states naming the model")
    finally:
        sender.close()
        collector.close()


@pytest.mark.parametrize(("qos", "kind"), [(0, "queue_full"), (1, "receive_maximum")])
def test_tiny_queue_back_pressure_loses_nothing(mosquitto: Broker, caplog: pytest.LogCaptureFixture, qos: int,
                                               kind: str) -> None:
    ts, values = pump(1000)
    sender = Sender(mosquitto)
    caplog.set_level(logging.WARNING, logger="pdm.daemon")
    try:
        with running(settings(mosquitto, qos=qos, queue_size=4, receive_maximum=4)) as daemon:
            gate = Gate(daemon)
            sender.batch("pump-001", ts, values, size=10)  # 100 messages while the model is held up
            sender.flush()
            assert gate.entered.wait(10)
            wait_for(lambda: metric(daemon, "pdm_backpressure_total", kind=kind) >= 1, 10, f"{kind} back-pressure")
            assert daemon.inbox.qsize() <= 4
            gate.release()
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 1000, 30, "every reading")
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 1000 - WINDOW + 1, 10,
                     "every window")
            assert metric(daemon, "pdm_duplicate_readings_total") == 0
        assert "back-pressure" in caplog.text
        assert ("scoring queue is full" if kind == "queue_full" else "acknowledgements are held back") in caplog.text
    finally:
        sender.close()


def test_healthz_fails_when_scoring_stalls(mosquitto: Broker) -> None:
    ts, values = pump(100)
    port = free_port()
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, metrics_port=port, stall_timeout=1.0)) as daemon:
            assert health(port)[0] == 200
            gate = Gate(daemon)
            sender.batch("pump-001", ts, values)
            sender.flush()
            assert gate.entered.wait(10)
            wait_for(lambda: health(port)[0] == 503, 10, "/healthz to fail")
            code, body = health(port)
            assert code == 503 and body["ok"] is False and body["broker_connected"] is True
            assert any(p.startswith("scoring stalled") for p in body["problems"]), body
            gate.release()
            wait_for(lambda: health(port)[0] == 200, 10, "/healthz to recover")
    finally:
        sender.close()


@contextmanager
def started(daemon: Daemon) -> Iterator[None]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    try:
        yield
    finally:
        daemon.stop()
        thread.join(20)
        assert result == [0]


def test_healthz_fails_while_the_broker_is_unreachable_from_the_start(tmp_path: Path) -> None:
    broker = Broker(mosquitto_binary(), tmp_path / "later")  # its port is chosen; nothing listens yet
    port = free_port()
    daemon = Daemon(settings(broker, metrics_port=port))
    try:
        with started(daemon):
            wait_for(lambda: health(port)[0] == 503, 10, "/healthz to answer")
            code, body = health(port)
            assert code == 503 and body["problems"] == ["broker unreachable"] and body["broker_connected"] is False
            broker.start()
            wait_for(daemon.ready.is_set, 30, "the daemon to connect")
            wait_for(lambda: health(port)[0] == 200, 10, "/healthz to pass")
    finally:
        broker.stop()
