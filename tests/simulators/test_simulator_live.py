"""Live mode against a real mosquitto (`tests.support.broker`): every message arrives, payloads follow the contract,
simulated time survives a broker restart, SIGTERM and the Last Will behave, and falling behind is reported."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdm import contract
from tests.support.broker import Broker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
START = 1_795_392_000.0
TOPICS = contract.Topics()


class Subscriber:
    """A subscriber that must not lose telemetry: fixed client id, clean start off, session expiry, QoS 1."""

    def __init__(self, broker: Broker, client_id: str = "test-sub") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86_400
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.loop_start()
        assert self.subscribed.wait(5)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe([("pdm/v1/telemetry/+", 1), ("pdm/v1/truth/+", 1), ("pdm/v1/status/#", 1)])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def of(self, kind: str) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].split("/")[2] == kind]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def simulator(broker: Broker, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "simulators.fleet", "--broker", broker.url, "--start", str(START), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def retained_status(broker: Broker) -> dict[str, Any]:
    got: list[bytes] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.connect(broker.host, broker.port)
    c.subscribe(TOPICS.status("simulator", "simulator-0"), qos=1)
    c.loop_start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    assert got, "no retained status"
    return contract.model_dict(contract.parse_status(got[-1], "simulator", "simulator-0"))


def test_live_run_delivers_everything_and_survives_a_broker_restart(mosquitto: Broker) -> None:
    machines, duration, speed, tick = 6, 1200, 150, 0.5  # 8 s of wall time; 75 readings per batch
    batches = duration // round(speed * tick)
    sub = Subscriber(mosquitto)
    proc = simulator(mosquitto, "--machines", str(machines), "--duration", f"{duration}s", "--speed", str(speed),
                     "--tick", str(tick), "--fault-rate", "0",
                     "--fault", "machine=pump-001,type=bearing_wear,start=5m,duration=5m",
                     "--fault", "machine=motor-001,type=dropout,start=12m,duration=3m,sensor=pressure")
    try:
        assert sub.wait_for(lambda: len(sub.of("telemetry")) >= 3 * machines, 30), proc.stderr
        mosquitto.stop()
        time.sleep(1.5)
        mosquitto.start()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"published {machines * batches} telemetry messages ({machines * duration:,} readings), 4 truth" in out
    assert re.search(r"disconnects: [1-9]", out), out
    assert "unacknowledged: 0" in out
    ids = ["pump-001", "compressor-001", "pump-002", "motor-001", "pump-003", "compressor-002"]
    expected = {(m, s) for m in ids for s in range(batches)}
    assert sub.wait_for(lambda: {(m, s) for m, s, _ in _batches(sub)} >= expected, 30)
    got = _batches(sub)
    assert {(m, s) for m, s, _ in got} == expected  # nothing lost (duplicates after a restart are allowed)
    for m in ids:  # every simulated second arrived once the duplicates are dropped: no simulated time skipped
        stamps = sorted({t for mid, _, msg in got if mid == m for t in msg.ts.tolist()})
        assert stamps == [START + k for k in range(duration)]
    assert sub.wait_for(lambda: len({p for _, p, _ in sub.of("truth")}) == 4, 10)
    truth = {(e.fault_id, e.event, e.ts, e.fault, e.kind, e.sensor) for e in
             (contract.parse_truth(p, machine_id=t.rsplit("/", 1)[1]) for t, p, _ in sub.of("truth"))}
    assert truth == {
        ("pump-001-1", "start", START + 300, "bearing_wear", "machine", None),
        ("pump-001-1", "end", START + 600, "bearing_wear", "machine", None),
        ("motor-001-1", "start", START + 720, "dropout", "sensor", "pressure"),
        ("motor-001-1", "end", START + 900, "dropout", "sensor", "pressure"),
    }
    # the dropout is in the data: motor-001's pressure is null exactly during the fault
    motor = [msg for mid, _, msg in got if mid == "motor-001"]
    nulls = {t for msg in motor for t, v in zip(msg.ts.tolist(), msg.values[:, 2].tolist(), strict=True)
             if math.isnan(v)}
    assert nulls == {START + k for k in range(720, 900)}
    states = [contract.parse_status(p).state for _, p, _ in sub.of("status")]
    assert "online" in states
    assert retained_status(mosquitto)["state"] == "offline"
    sub.close()


def _batches(sub: Subscriber) -> list[tuple[str, int, contract.Telemetry]]:
    out = []
    for topic, payload, _ in sub.of("telemetry"):
        msg = contract.parse_telemetry(payload, machine_id=TOPICS.machine_of(topic))
        assert msg.batch and msg.seq is not None
        out.append((msg.machine_id, msg.seq, msg))
    return out


def test_sigterm_ends_cleanly_and_reports_what_was_published(mosquitto: Broker) -> None:
    sub = Subscriber(mosquitto, "test-sigterm")
    proc = simulator(mosquitto, "--machines", "3", "--speed", "100", "--tick", "0.2", "--fault-rate", "0")
    try:
        assert sub.wait_for(lambda: len(sub.of("telemetry")) >= 12, 30)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    n = int(re.search(r"published ([\d,]+) telemetry messages", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert sub.wait_for(lambda: len(sub.of("telemetry")) >= n, 10)
    assert len({(m, s) for m, s, _ in _batches(sub)}) == n
    assert retained_status(mosquitto)["state"] == "offline"
    sub.close()


def test_last_will_marks_a_killed_simulator_offline(mosquitto: Broker) -> None:
    sub = Subscriber(mosquitto, "test-will")
    proc = simulator(mosquitto, "--machines", "2", "--speed", "10", "--fault-rate", "0")
    try:
        assert sub.wait_for(lambda: any(contract.parse_status(p).state == "online" for _, p, _ in sub.of("status")),
                            30)
        proc.kill()  # SIGKILL: no clean exit, so the broker publishes the Last Will
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sub.wait_for(lambda: any(contract.parse_status(p).state == "offline" for _, p, _ in sub.of("status")),
                        10)
    assert retained_status(mosquitto)["state"] == "offline"
    sub.close()


def test_single_readings_follow_the_contract(mosquitto: Broker) -> None:
    sub = Subscriber(mosquitto, "test-single")
    proc = simulator(mosquitto, "--machines", "2", "--duration", "30s", "--speed", "max", "--single",
                     "--fault-rate", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "published 60 telemetry messages (60 readings)" in out
    assert sub.wait_for(lambda: len(sub.of("telemetry")) >= 60, 10)
    msgs = [contract.parse_telemetry(p, machine_id=TOPICS.machine_of(t)) for t, p, _ in sub.of("telemetry")]
    assert all(not m.batch and len(m) == 1 for m in msgs)
    assert sorted((m.machine_id, float(m.ts[0])) for m in msgs) == sorted(
        (mid, START + k) for mid in ("pump-001", "compressor-001") for k in range(30))
    sub.close()


def test_a_rate_it_cannot_keep_up_with_is_reported(mosquitto: Broker) -> None:
    # 500 machines x 1,000 readings/s each as single QoS 1 messages: far beyond one Python publisher
    proc = simulator(mosquitto, "--machines", "500", "--speed", "1000", "--single", "--max-batch", "5",
                     "--fault-rate", "0", "--report-every", "1", "--duration", "1d")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any("cannot keep up" in ln for ln in lines):
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    report = [ln for ln in lines if "cannot keep up" in ln]
    assert report, "".join(lines[-20:])
    assert "needs 500000 readings/s" in report[0]
    assert proc.returncode == 0
