"""Scoring daemon throughput (the Scale section of issue 6): how large a fleet one `python -m pdm serve` keeps up
with on this machine, with the broker and the publisher running beside it.

Load shape: N machines at 1 reading per second, every reading scored (stride 1). Batched: each machine publishes a
batch of 10 readings every 10 s (staggered: N/10 messages per second). Single: one message per reading (N
messages per second). Each machine first sends one batch of history (window - 1 readings) so its windows are full
when the paced phase starts; only the paced phase is measured.

The publisher is a separate process started with ``spawn``: a child forked from this process (which has trained
a Keras model, so TensorFlow's threads and state exist) crashed with SIGSEGV in its garbage collector after a few
seconds of publishing, and its readings stopped; the benchmark then compared the daemon's windows with a count the
child never reported. A publisher that does not exit cleanly now stops the benchmark, and the daemon's applied
readings are checked against what was sent.

Per fleet size: messages and windows expected vs scored (keeps up = nothing missing at the end, queue drained),
p50/p99 latency from a message's arrival at the daemon to its windows scored and alerts published (the daemon's
own histogram, so p99 is a bucket bound), daemon CPU (% of one core) and RSS. The ceiling: a bare paho subscriber
(QoS 1, json.loads) receiving from a publisher at full speed, measured in the same run.

    .venv/bin/python benchmarks/daemon_throughput.py                       # about 10 minutes
    .venv/bin/python benchmarks/daemon_throughput.py --batched 2000,5000 --single 1000 --seconds 20
    .venv/bin/python benchmarks/daemon_throughput.py --checkpoint both   # the cost of --state-dir, same run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm import contract  # noqa: E402
from pdm.demo.broker import LocalBroker, find_mosquitto, free_port  # noqa: E402

SENSORS = ("temperature", "vibration", "pressure")
SPAWN = mp.get_context("spawn")  # never fork a process that has TensorFlow loaded


def train_model(out: Path, window: int) -> None:
    """The production architecture (GRU 64 units, window 64) trained for one epoch: speed does not depend on the
    weights, and this takes seconds instead of minutes."""
    import pandas as pd

    from pdm.detectors.gru import GRUAutoencoderDetector

    rng = np.random.default_rng(0)
    n = 6000
    t = np.arange(n, dtype=float)
    frame = pd.DataFrame({"timestamp": t, "temperature": 40 + np.sin(t / 300) + rng.normal(0, 0.2, n),
                          "vibration": 2 + rng.normal(0, 0.1, n), "pressure": 3 + rng.normal(0, 0.05, n)})
    GRUAutoencoderDetector(window=window, epochs=1, features=list(SENSORS)).fit(frame).save(out / "bench")


def publisher(url_port: int, prefix: str, machines: int, seconds: float, single: bool, window: int,  # noqa: PLR0917
              t0: float, sent: Any) -> None:
    """Prefill then pace: every machine 1 reading/s; batched: 10 readings every 10 s; single: 1 message/s."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{prefix}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    topics = contract.Topics()
    ids = [f"{prefix}-{i:05d}" for i in range(machines)]
    rng = np.random.default_rng(1)
    base = np.array([40.0, 2.0, 3.0])
    noise = np.array([0.2, 0.1, 0.05])  # as in training: normal data, (almost) no alerts

    def payload(mid: str, seq: int, ts: list[float]) -> bytes:
        vals = base + rng.normal(0, 1, (len(ts), 3)) * noise
        return contract.encode_batch(mid, seq, ts, {s: vals[:, j].tolist() for j, s in enumerate(SENSORS)}, "pump")

    for mid in ids:  # history: the windows are full when pacing starts
        client.publish(topics.telemetry(mid), payload(mid, 0, [t0 - window + 1 + k for k in range(window - 1)]), 1)
    time.sleep(max(0.0, t0 - time.time()))
    seq = dict.fromkeys(ids, 1)
    last = dict.fromkeys(ids, t0 - 1)
    readings = 0
    start = time.monotonic()
    for sec in range(int(seconds)):
        due = start + sec
        time.sleep(max(0.0, due - time.monotonic()))
        ts_now = t0 + sec
        if single:
            for mid in ids:
                vals = base + rng.normal(0, 1, 3) * noise
                client.publish(topics.telemetry(mid), contract.encode_reading(mid, ts_now, dict(zip(SENSORS, vals,
                                                                                              strict=True))), 1)
            readings += machines
        else:  # the machines whose 10-second batch closes this second: readings since their last batch
            for i in range(sec % 10, machines, 10):
                mid = ids[i]
                ts = [last[mid] + 1 + k for k in range(int(ts_now - last[mid]))]
                client.publish(topics.telemetry(mid), payload(mid, seq[mid], ts), 1)
                seq[mid] += 1
                last[mid] = ts_now
                readings += len(ts)
    sent.value = readings
    last_info = client.publish(f"{topics.prefix}/bench/end", b"", 1)
    last_info.wait_for_publish(120)  # QoS 1 in order: everything before it has been sent and acknowledged too
    client.disconnect()
    client.loop_stop()


def scrape(ports: list[int]) -> dict[str, float]:
    """Every daemon's metrics, summed over the shards (counters and histogram buckets add up)."""
    out: dict[str, float] = {}
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = out.get(name, 0.0) + float(value)
    return out


def proc_cpu_rss(pids: list[int]) -> tuple[float, float]:
    """CPU seconds and RSS (MB), summed over the daemon processes."""
    cpu = rss = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")) / 1024
    return cpu, rss


def latency_quantile(before: dict[str, float], after: dict[str, float], q: float) -> float:
    key = "pdm_scoring_latency_seconds_bucket"
    buckets = sorted((float(k.split('le="')[1].rstrip('"}').replace("+Inf", "inf")), after[k] - before.get(k, 0.0))
                     for k in after if k.startswith(key))
    total = buckets[-1][1]
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return float("nan")


def run_fleet(broker: LocalBroker, mport: list[int], pid: list[int], machines: int, single: bool, seconds: float,  # noqa: PLR0917
              window: int) -> dict[str, float]:
    prefix = f"{'s' if single else 'b'}{machines}"
    key_w = 'pdm_windows_scored_total{model="bench"}'
    key_r = "pdm_readings_total"
    before = scrape(mport)
    t0 = time.time() + 3.0 + machines / 4000
    sent = SPAWN.Value("q", -1)
    proc = SPAWN.Process(target=publisher, args=(broker.port, prefix, machines, seconds, single, window, t0, sent))
    proc.start()
    while time.time() < t0:  # prefill scored before the measured phase
        time.sleep(0.2)
    time.sleep(1.0)
    mid = scrape(mport)
    cpu0, _ = proc_cpu_rss(pid)
    w0 = time.monotonic()
    proc.join()
    if proc.exitcode != 0 or sent.value < 0:
        raise RuntimeError(f"the publisher process failed (exit code {proc.exitcode}): no figures for this size")
    expected_windows = sent.value  # the history holds window - 1 readings: each paced reading completes a window
    expected_readings = sent.value + machines * (window - 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scrape(mport).get(key_w, 0.0) - before.get(key_w, 0.0) < expected_windows:
        time.sleep(0.5)
    wall = time.monotonic() - w0
    after = scrape(mport)
    cpu1, rss = proc_cpu_rss(pid)
    scored = after.get(key_w, 0.0) - before.get(key_w, 0.0)
    applied = after.get(key_r, 0.0) - before.get(key_r, 0.0)
    if applied > expected_readings or scored > expected_windows:  # more than was sent: an accounting error
        raise RuntimeError(f"accounting: the daemon applied {applied:.0f} readings and scored {scored:.0f} windows; "
                           f"{expected_readings} readings were sent and {expected_windows} windows expected")
    lag_after_publish = wall - seconds
    return {"machines": machines, "msgs_per_s": machines / (1 if single else 10), "windows_expected": expected_windows,
            "windows_scored": scored, "missing": expected_windows - scored, "p50": latency_quantile(mid, after, 0.5),
            "p99": latency_quantile(mid, after, 0.99), "cpu_pct": 100 * (cpu1 - cpu0) / wall, "rss_mb": rss,
            "drain_s": max(0.0, lag_after_publish)}


def raw_paho_ceiling(broker: LocalBroker, n: int = 20_000, batch: int = 10) -> tuple[float, float]:
    """A bare paho subscriber (QoS 1, json.loads) with a publisher at full speed: messages/s for single readings
    and for batches of ``batch`` readings."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    rates = []
    for size in (1, batch):
        got = [0]
        done = threading.Event()

        def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage, got: list[int] = got,
                       done: threading.Event = done) -> None:
            json.loads(msg.payload)
            got[0] += 1
            if got[0] == n:
                done.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{size}", protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(f"raw{size}/#", qos=1)
        sub.loop_start()
        time.sleep(0.5)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-rawpub-{size}", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        payload = contract.encode_batch("m-1", 0, [float(k) for k in range(size)],
                                        {s: [1.0] * size for s in SENSORS})
        t = time.perf_counter()
        for i in range(n):
            pub.publish(f"raw{size}/m-{i % 1000}", payload, qos=1)
        done.wait(120)
        rates.append(got[0] / (time.perf_counter() - t))
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
    return rates[0], rates[1]


def start_daemons(broker: LocalBroker, work: Path, args: argparse.Namespace, state_dir: Path | None,
                  ) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """``--shards`` daemon processes (with ``--state-dir`` when given), once healthy; and their metrics ports."""
    mports = [free_port() for _ in range(args.shards)]
    daemons = []
    for i, mport in enumerate(mports):
        cmd = [sys.executable, "-m", "pdm", "serve", "--broker", broker.url, "--models-dir", str(work / "models"),
               "--metrics-port", str(mport), "--receive-maximum", "5000", "--engine", args.engine,
               "--shard", f"{i}/{args.shards}", "--client-id", f"bench-{state_dir is not None}",
               "--session-expiry", "0"]  # the next mode's daemons have their own session; nothing queued for these
        if state_dir is not None:
            cmd += ["--state-dir", str(state_dir / str(i))]
        daemons.append(subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}))  # noqa: S603
    print(f"{args.shards} daemon process(es) (--shard i/{args.shards}), engine {args.engine}"
          f"{', --state-dir' if state_dir else ''}")
    deadline = time.monotonic() + 120
    for mport in mports:
        while True:
            try:
                if json.loads(urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=2).read())["ok"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("daemon did not become healthy")
            time.sleep(0.5)
    return daemons, mports


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batched", default="2000,5000,10000,15000", help="fleet sizes, batched payloads")
    ap.add_argument("--single", default="1000,2500,5000", help="fleet sizes, single-reading payloads")
    ap.add_argument("--seconds", type=float, default=30, help="measured (paced) seconds per fleet size")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--engine", choices=("auto", "onnx", "keras"), default="auto", help="the daemon's --engine")
    ap.add_argument("--shards", type=int, default=1, help="daemon processes, each --shard i/N")
    ap.add_argument("--checkpoint", choices=("off", "on", "both"), default="off",
                    help="run the daemons with --state-dir (on), without (off), or both in turn for the ratio")
    args = ap.parse_args()
    if find_mosquitto() is None:
        sys.exit("mosquitto is required (apt-get install mosquitto)")
    work = Path(tempfile.mkdtemp(prefix="pdm-bench-daemon-"))
    broker = LocalBroker(work / "broker", "mosquitto")
    broker.start()
    print(f"{os.cpu_count()} CPUs; mosquitto, publisher and daemon on this machine; {args.seconds:g} s per size")
    try:
        single_rate, batch_rate = raw_paho_ceiling(broker)
        print(f"ceiling, bare paho subscriber QoS 1 + json.loads: {single_rate:,.0f} msg/s single readings; "
              f"{batch_rate:,.0f} msg/s = {10 * batch_rate:,.0f} readings/s in batches of 10")
        train_model(work / "models", args.window)
        print(f"{'payload':8} {'machines':>8} {'msg/s':>7} {'windows/s':>9} {'missing':>7} {'p50 s':>6} "
              f"{'p99 s':>6} {'drain s':>7} {'CPU %':>6} {'RSS MB':>6}  keeps up  checkpoint")
        modes = {"off": [False], "on": [True], "both": [False, True]}[args.checkpoint]
        cpu: dict[bool, float] = {}
        for checkpoint in modes:
            daemons, mports = start_daemons(broker, work, args, work / f"state-{len(cpu)}" if checkpoint else None)
            pids = [d.pid for d in daemons]
            cpu_s = windows = 0.0
            for single, sizes in ((False, args.batched), (True, args.single)):
                for machines in (int(x) for x in sizes.split(",") if x):
                    r = run_fleet(broker, mports, pids, machines, single, args.seconds, args.window)
                    ok = r["missing"] == 0 and r["p99"] <= 1.0
                    cpu_s += r["cpu_pct"] * r["windows_scored"]
                    windows += r["windows_scored"]
                    print(f"{'single' if single else 'batch10':8} {machines:>8} {r['msgs_per_s']:>7,.0f} "
                          f"{machines:>9,} {r['missing']:>7,.0f} {r['p50']:>6.3g} {r['p99']:>6.3g} "
                          f"{r['drain_s']:>7.1f} {r['cpu_pct']:>6.0f} {r['rss_mb']:>6.0f}  {'yes' if ok else 'NO':8}  "
                          f"{'on' if checkpoint else 'off'}", flush=True)
            cpu[checkpoint] = cpu_s / max(windows, 1.0)
            for d in daemons:
                d.terminate()
            for d in daemons:
                d.wait(60)
        if len(cpu) == 2:
            print(f"--state-dir: window-weighted CPU {cpu[True]:.0f} % vs {cpu[False]:.0f} % without "
                  f"(ratio {cpu[True] / max(cpu[False], 1e-9):.2f})")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
