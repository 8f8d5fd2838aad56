"""Recorder ingest rate against a real mosquitto: the broker queues a fleet's telemetry in the recorder's persistent
session while it is down, then the recorder drains it (so the publisher does not compete for the CPU).

Reports messages/s and readings/s until every reading is fsynced in a write-ahead segment, the time to stop
(compacting to Parquet), and bytes per reading on disk. Figures vary with the machine's load (2 shared cores).

    .venv/bin/python benchmarks/recorder_throughput.py --machines 200 --messages 50 --readings 60
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pdm import contract
from pdm.demo.broker import LocalBroker, find_mosquitto
from pdm.recorder import RecordSettings, read_table
from pdm.recorder.service import Recorder

SENSORS = ["temperature", "vibration", "pressure"]


def publish(broker: LocalBroker, machines: int, messages: int, readings: int) -> float:
    rng = np.random.default_rng(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    topics = contract.Topics()
    infos = []
    t0 = time.perf_counter()
    for k in range(messages):
        for m in range(machines):
            mid = f"pump-{m:04d}"
            ts = 1_795_392_000.0 + k * readings + np.arange(readings, dtype=float)
            v = rng.normal([60.0, 2.0, 4.0], [1.0, 0.1, 0.05], size=(readings, 3))
            payload = contract.encode_batch(mid, k, ts.tolist(), {s: v[:, j].tolist() for j, s in enumerate(SENSORS)},
                                            "pump")
            infos.append(client.publish(topics.telemetry(mid), payload, qos=1))
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machines", type=int, default=200)
    ap.add_argument("--messages", type=int, default=50, help="messages per machine")
    ap.add_argument("--readings", type=int, default=60, help="readings per message")
    ap.add_argument("--flush-interval", type=float, default=1.0)
    args = ap.parse_args()
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is not installed")
    work = Path(tempfile.mkdtemp(prefix="pdm-recorder-bench-"))
    broker = LocalBroker(work / "broker", "mosquitto", binary=binary)
    broker.start()
    try:
        s = RecordSettings(root=work / "rec", broker=broker.url, flush_interval=args.flush_interval,
                           tables=("telemetry",), drain_timeout=60.0, max_clock_skew=0)  # 2026-11-23 data
        first = Recorder(s)  # creates the persistent session
        first.start()
        first.ready.wait(20)
        first.stop()
        n_msgs = args.machines * args.messages
        n_rows = n_msgs * args.readings
        pub_s = publish(broker, args.machines, args.messages, args.readings)
        rec = Recorder(s)
        t0 = time.perf_counter()
        rec.start()
        while rec.counters.get("rows.telemetry") < n_rows or rec.counters.get("flushes") == 0:
            time.sleep(0.02)
        flushes_before = rec.counters.get("flushes")
        while rec.counters.get("flushes") == flushes_before:  # the last rows are fsynced
            time.sleep(0.01)
        ingest_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        rec.stop()
        stop_s = time.perf_counter() - t1
        parquet = sum(p.stat().st_size for p in (work / "rec").rglob("*.parquet"))
        got = len(read_table(work / "rec", "telemetry"))
        print(f"fleet: {args.machines} machines x {args.messages} messages x {args.readings} readings = "
              f"{n_msgs} messages, {n_rows} readings (published in {pub_s:.1f} s)")
        print(f"ingest (parse, validate, fsync every {args.flush_interval:g} s, ack): {ingest_s:.2f} s = "
              f"{n_msgs / ingest_s:,.0f} messages/s, {n_rows / ingest_s:,.0f} readings/s")
        print(f"stop (drain, compact to Parquet): {stop_s:.2f} s; Parquet {parquet / 1e6:.1f} MB = "
              f"{parquet / n_rows:.1f} bytes/reading; read back {got} readings")
        print(f"counters: {rec.stats()}")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
