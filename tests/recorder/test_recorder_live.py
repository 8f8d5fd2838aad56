"""The recorder against a real mosquitto: exact round trip of telemetry (values, timestamps, machine ids) and of
the other tables, malformed messages counted and not recorded, the persistent session, and a SIGKILLed recorder
process whose files stay readable and whose restart recovers its segments and loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pdm import contract
from pdm.recorder import RecordSettings, read_table
from pdm.recorder.service import Recorder
from tests.support.broker import Broker
from tests.support.daemon import wait_for

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
DAY = 1_795_392_000.0  # 2026-11-23T00:00:00Z
SENSORS = ["temperature", "vibration", "pressure"]
TOPICS = contract.Topics()


class Client:
    """Publishes QoS 1 and waits for the broker's acknowledgements; keeps what it receives on ``watch`` topics."""

    def __init__(self, broker: Broker, client_id: str, watch: str | None = None) -> None:
        self.received: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        if watch:
            self.client.on_connect = lambda c, *a: c.subscribe(watch, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.pending: list[mqtt.MQTTMessageInfo] = []

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received[msg.topic] = msg.payload

    def status(self, instance: str) -> str | None:
        with self.lock:
            payload = self.received.get(TOPICS.status("recorder", instance))
        return json.loads(payload)["state"] if payload else None

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.pending.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def flush(self) -> None:
        for info in self.pending:
            info.wait_for_publish(20)
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def fleet(machines: list[str], n: int, start: float, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per machine: timestamps (irregular, sub-second) and full-precision values with a few nulls."""
    rng = np.random.default_rng(seed)
    out = {}
    for m in machines:
        ts = start + np.cumsum(rng.uniform(0.5, 1.5, n))
        values = rng.normal([60.0, 2.0, 4.0], [3.0, 0.3, 0.1], size=(n, 3))
        values[rng.random((n, 3)) < 0.03] = np.nan
        out[m] = (ts, values)
    return out


def publish_fleet(pub: Client, data: dict[str, tuple[np.ndarray, np.ndarray]], size: int, first_seq: int = 0,
                  pause: float = 0.0) -> None:
    """One batch per machine in turn, ``size`` readings each, ``pause`` seconds apart; waits for the broker."""
    n = max(len(ts) for ts, _ in data.values())
    for k, i in enumerate(range(0, n, size)):
        for m, (ts, values) in data.items():
            cols = {s: values[i:i + size, j].tolist() for j, s in enumerate(SENSORS)}
            pub.publish(TOPICS.telemetry(m), contract.encode_batch(m, first_seq + k, ts[i:i + size].tolist(), cols,
                                                                   "pump"))
            time.sleep(pause)
    pub.flush()


def assert_recorded_exactly(frame: pd.DataFrame, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    assert sorted(frame["machine_id"].unique()) == sorted(data)
    for m, (ts, values) in data.items():
        rows = frame[frame["machine_id"] == m]
        np.testing.assert_array_equal(rows["ts"].to_numpy(), ts)  # bit-exact, not approximately
        np.testing.assert_array_equal(rows[SENSORS].to_numpy(), values)  # NaN exactly where null was sent


def settings(broker: Broker, root: Path, **kw: Any) -> RecordSettings:
    base: dict[str, Any] = {"root": root, "broker": broker.url, "flush_interval": 0.2, "instance": "live",
                            "drain_timeout": 5.0, "max_clock_skew": 0}  # the fixtures' data is days old
    return RecordSettings(**{**base, **kw})


def test_recorded_parquet_round_trips_every_table_exactly(mosquitto: Broker, tmp_path: Path) -> None:
    rec = Recorder(settings(mosquitto, tmp_path / "rec"))
    rec.start()
    pub = Client(mosquitto, "pub")
    try:
        assert rec.ready.wait(20), "recorder did not connect"
        data = fleet(["pump-1", "pump-2", "pump-3"], 90, DAY - 45.0, seed=1)  # crosses midnight: two partitions
        publish_fleet(pub, data, size=20)
        single_ts, single = DAY + 0.125, {"temperature": 61.2, "vibration": None, "pressure": 4}
        pub.publish(TOPICS.telemetry("solo"), contract.encode_reading("solo", single_ts, single))
        aid = contract.alert_id("pump-1", DAY + 10)
        pub.publish(TOPICS.alerts("pump-1"), contract.Alert(
            alert_id=aid, machine_id="pump-1", event="raised", ts=DAY + 10, window_start=DAY - 53, window_end=DAY + 10,
            score=0.91, threshold=0.42, severity="critical", contributions={"vibration": 0.7, "temperature": 0.3},
            model=contract.ModelRef(name="pump", version="v1"), instance="scorer-0").encode())
        pub.publish(TOPICS.state("pump-1"), contract.State(
            machine_id="pump-1", state="alert", since=DAY + 10, alert_id=aid, instance="scorer-0",
            ts=DAY + 11).encode(), retain=True)
        pub.publish(TOPICS.maintenance("pump-2"), contract.Maintenance(
            machine_id="pump-2", from_=DAY + 100, until=DAY + 200, reason="bearing swap", by="op").encode(),
            retain=True)
        pub.publish(TOPICS.truth("pump-3"), contract.TruthEvent(
            machine_id="pump-3", ts=DAY + 5, event="start", fault="bearing_wear", kind="machine",
            fault_id="pump-3-1").encode())
        pub.publish(TOPICS.scores("pump-1"), json.dumps({
            "schema": 1, "machine_id": "pump-1", "ts": DAY + 10, "score": 0.91, "threshold": 0.42,
            "contributions": {"vibration": 1.0}, "model": {"name": "pump", "version": "v1"},
            "instance": "scorer-0"}).encode())
        for payload in (b"not json", b'{"machine_id": "pump-1", "ts": 1.0}', b'{"machine_id": "x", "ts": 1.0}'):
            pub.publish(TOPICS.telemetry("pump-1"), payload)
        pub.flush()
        wait_for(lambda: rec.counters.get("messages.telemetry") == 3 * 5 + 1 + 3, 20, "every telemetry message")
        wait_for(lambda: rec.counters.get("messages.scores") == 1, 20, "the score (QoS 0)")
    finally:
        rec.stop()
        pub.close()

    root = tmp_path / "rec"
    tel = read_table(root, "telemetry")
    assert_recorded_exactly(tel[tel["machine_id"] != "solo"], data)
    solo = tel[tel["machine_id"] == "solo"].iloc[0]
    assert (solo["ts"], solo["temperature"], np.isnan(solo["vibration"]), solo["pressure"]) == (single_ts, 61.2,
                                                                                                  True, 4.0)
    assert pd.isna(solo["machine_type"]) and pd.isna(solo["seq"])
    assert tel.loc[tel["machine_id"] == "pump-1", "seq"].tolist() == [k for k in range(5) for _ in range(20)][:90]
    # plain pandas and pyarrow (Hive partitions) read the same files
    plain = pd.read_parquet(root / "telemetry")
    assert len(plain) == len(tel) and sorted(plain["date"].astype(str).unique()) == ["2026-11-22", "2026-11-23"]
    assert ds.dataset(root / "telemetry", format="parquet", partitioning="hive").count_rows() == len(tel)

    alert = read_table(root, "alerts").iloc[0]
    assert (alert["alert_id"], alert["event"], alert["score"], alert["model_version"]) == (aid, "raised", 0.91, "v1")
    assert json.loads(alert["contributions"]) == {"temperature": 0.3, "vibration": 0.7}
    state = read_table(root, "states").iloc[0]
    assert (state["state"], state["since"], state["alert_id"], bool(state["retained"])) == ("alert", DAY + 10, aid,
                                                                                             False)
    maint = read_table(root, "maintenance").iloc[0]
    assert (maint["from_ts"], maint["until_ts"], maint["reason"]) == (DAY + 100, DAY + 200, "bearing swap")
    assert read_table(root, "truth")["fault_id"].tolist() == ["pump-3-1"]
    assert read_table(root, "scores")["score"].tolist() == [0.91]
    assert rec.counters.group("rejected") == {"not_json": 1, "missing_field": 1, "machine_mismatch": 1}
    assert sorted(read_table(root, "rejected")["reason"]) == ["machine_mismatch", "missing_field", "not_json"]
    status = read_table(root, "status")
    assert ((status["service"] == "recorder") & (status["state"] == "online")).any()
    assert not list((root / "_wal").rglob("*.arrows"))  # a clean stop compacts everything


def test_what_is_published_while_the_recorder_is_down_is_recorded(mosquitto: Broker, tmp_path: Path) -> None:
    s = settings(mosquitto, tmp_path / "rec")
    first = Recorder(s)
    first.start()
    assert first.ready.wait(20)
    first.stop()  # the broker keeps the session and queues for it
    pub = Client(mosquitto, "pub")
    data = fleet(["m1", "m2"], 40, DAY, seed=2)
    publish_fleet(pub, data, size=10)
    pub.close()
    second = Recorder(s)
    second.start()
    try:
        wait_for(lambda: second.counters.get("rows.telemetry") == 80, 20, "the queued telemetry")
    finally:
        second.stop()
    assert_recorded_exactly(read_table(tmp_path / "rec", "telemetry"), data)


def _start(broker: Broker, root: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "pdm", "-v", "record", "--root", str(root), "--broker", broker.url, "--instance",
           "proc", "--flush-interval", "0.2", "--roll-interval", "1", "--drain-timeout", "5",
           "--max-clock-skew", "0"]  # the fixtures' data is days old
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _keys(frame: pd.DataFrame) -> set[tuple[str, float]]:
    return set(zip(frame["machine_id"], frame["ts"], strict=True))


def test_a_killed_recorder_leaves_readable_files_and_its_restart_recovers_everything(
        mosquitto: Broker, tmp_path: Path) -> None:
    root, log = tmp_path / "rec", tmp_path / "recorder.log"
    watcher = Client(mosquitto, "watcher", watch=TOPICS.status("recorder", "proc"))
    proc = _start(mosquitto, root, log)
    try:
        wait_for(lambda: watcher.status("proc") == "online", 30, "the recorder's online status")
        part_a = fleet(["m1", "m2", "m3"], 300, DAY, seed=3)
        part_b = {m: (ts + 1000.0, v) for m, (ts, v) in fleet(["m1", "m2", "m3"], 600, DAY, seed=4).items()}
        sent_a = {(m, t) for m, (ts, _) in part_a.items() for t in ts}
        sent_b = {(m, t) for m, (ts, _) in part_b.items() for t in ts}
        pub = Client(mosquitto, "pub")
        publish_fleet(pub, part_a, size=30)
        wait_for(lambda: _keys(read_table(root, "telemetry", include_open=True)) == sent_a, 30, "part A on disk")
        wait_for(lambda: any(root.glob("telemetry/date=*/*.parquet")), 30, "a rolled segment compacted")
        stream = threading.Thread(target=publish_fleet, args=(pub, part_b), kwargs={"size": 10, "first_seq": 10,
                                                                                   "pause": 0.01})
        stream.start()  # part B: 180 messages over about two seconds
        wait_for(lambda: bool(_keys(read_table(root, "telemetry", include_open=True)) & sent_b), 30,
                 "part of part B on disk")
        proc.send_signal(signal.SIGKILL)  # mid-stream: part B is being received, flushed and compacted
        proc.wait(10)
        stream.join(60)
        wait_for(lambda: watcher.status("proc") == "offline", 10, "the Last Will")

        for f in root.rglob("*.parquet"):
            assert pq.read_table(f).num_rows > 0  # every finished file is whole
        on_disk = _keys(read_table(root, "telemetry", include_open=True))
        assert sent_a <= on_disk <= sent_a | sent_b  # nothing flushed is lost; nothing invented
        leftover = list((root / "_wal" / "proc").rglob("*.arrows"))

        proc = _start(mosquitto, root, log)  # recovers the segments; the broker redelivers what was not acked
        wait_for(lambda: watcher.status("proc") == "online", 30, "the restarted recorder")
        assert not [p for p in leftover if p.exists()], "the restart did not recover the old segments"
        wait_for(lambda: _keys(read_table(root, "telemetry", include_open=True)) == sent_a | sent_b, 30,
                 "part B after the restart")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        pub.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watcher.close()
    assert_recorded_exactly(read_table(root, "telemetry"), {m: (np.concatenate([part_a[m][0], part_b[m][0]]),
                                                                np.concatenate([part_a[m][1], part_b[m][1]]))
                                                            for m in part_a})
    assert not list((root / "_wal").rglob("*.arrows"))
    assert watcher.status("proc") == "offline"
    text = log.read_text()
    assert ("recovered" in text) == bool(leftover), text[-2000:]
