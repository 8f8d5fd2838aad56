"""Fault and fuzz loops against a live scoring daemon (issue 14), each with a real mosquitto started here; prints a
table per part and a summary, and writes the soak's plot to build/daemon_soak.png.

1. **Fuzz**: ``--fuzz`` (20,000) fuzzed payloads (`tests/support/fuzz.py`: random bytes, mutated batches, extreme
   numbers, deep nesting, odd unicode ids) to a `python -m pdm serve` process, a normal machine's batch every 25
   payloads: crashes (the process gone, an ``internal`` rejection, a contained error), the reasons against the
   contract decoder's verdicts, the normal machine's windows scored / expected.
2. **Kills**: the daemon SIGKILLed ``--kills`` (10) times at random moments of a 4-machine stream with a fault
   (``--state-dir``); **broker restarts**: mosquitto restarted ``--restarts`` (10) times under an in-process daemon.
   Windows scored per machine against the readings sent, alert events against the batch path's, copies.
3. **Soak**: ``--soak-machines`` (1,000) simulated machines for ``--soak-hours`` (1) simulated hour at
   ``--soak-speed`` (20) x real time, and ``--junk`` (20,000) one-reading machine ids from another publisher,
   against a daemon with ``--max-machines 5000 --evict-after 60s``: its RSS, queue depth and tracked machines
   sampled every second, plotted; RSS before, at the peak and at the end.
4. **Memory per machine**: tracemalloc over 2,000 machines of a window-16 and a window-64 model, each with one
   message of a window's readings applied, with and without a checkpoint's kept readings.

    .venv/bin/python benchmarks/daemon_faults.py                  # about 10 minutes
    .venv/bin/python benchmarks/daemon_faults.py --fuzz 2000 --kills 3 --restarts 3 --soak-hours 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pdm import contract  # noqa: E402 - after making the repository importable
from tests.support.broker import Broker, find_mosquitto, free_port  # noqa: E402
from tests.support.daemon import MODEL, SENSORS, Sender, models_dir, running, settings  # noqa: E402
from tests.support.faults import Stream, broker_loop, kill_loop, oracle, reasons, rss_mb  # noqa: E402
from tests.support.fuzz import payloads  # noqa: E402

SUMMARY: list[tuple[str, str]] = []


def serve(broker: Broker, port: int, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "pdm", "serve", "--broker", broker.url, "--models-dir", str(models_dir()),
           "--default-model", MODEL, "--metrics-port", str(port), "--no-warm-up", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def wait_healthy(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())["ok"]:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the daemon did not become healthy")


def until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


# ---------------------------------------------------------------------------------------------------------- fuzz
def fuzz(work: Path, n: int) -> None:
    broker = Broker(find_mosquitto() or "mosquitto", work / "fuzz-broker")
    broker.start()
    port = free_port()
    daemon = serve(broker, port, "--max-clock-skew", "0")
    sender = Sender(broker, client_id="fuzz-sender")
    try:
        wait_healthy(port)
        stream = Stream.make(machines=1, seconds=max(600, n // 25 * 20 + 40), size=20)
        normal = iter(stream.batches)
        expected: Counter[str] = Counter()
        t0 = time.perf_counter()
        sent_normal = 0
        for i, payload in enumerate(payloads(n, seed=5)):
            expected[oracle(payload, "pump-007")] += 1
            sender.raw("pdm/v1/telemetry/pump-007", payload)
            if i % 25 == 0:
                item = next(normal, None)
                if item is not None:
                    sender.batch(item[0], item[1], item[2], size=len(item[1]))
                    sent_normal += 1
            if i % 500 == 0:
                sender.flush(120)
        sender.flush(120)
        want = n + sent_normal
        until(lambda: scrape(port).get('pdm_messages_total{kind="telemetry"}', 0) >= want, 300)
        seconds = time.perf_counter() - t0
        alive = daemon.poll() is None
        m = scrape(port)
        got = reasons(port)
        errors = sum(v for k, v in m.items() if k.startswith("pdm_errors_total"))
        windows_normal = int(len(stream.batches[:sent_normal]) * 20 - 15)
        scored = m.get('pdm_windows_scored_total{model="fleet"}', 0)
    finally:
        sender.close()
        daemon.terminate()
        daemon.wait(60)
        broker.stop()
    print(f"\n1. fuzz: {n:,} payloads against a live daemon in {seconds:.0f} s ({n / seconds:,.0f}/s), a normal "
          f"machine's batch every 25")
    print(f"{'reason':<22}{'decoder':>9}{'daemon':>9}")
    for reason in sorted(set(expected) | set(got), key=lambda r: -expected.get(r, got.get(r, 0))):
        print(f"{reason:<22}{expected.get(reason, 0):>9,}{got.get(reason, 0):>9,}")
    mismatch = [r for r in expected if r != "accepted" and expected[r] != got.get(r, 0)]
    crashes = (0 if alive else 1) + int(got.get("internal", 0)) + int(errors)
    print(f"crashes {crashes} (process alive: {alive}; internal rejections {got.get('internal', 0)}; contained "
          f"errors {errors:.0f}); reasons differing from the decoder's: {mismatch or 'none'}; windows scored "
          f"{scored:,.0f} (the normal machine's {windows_normal:,} among them)")
    SUMMARY.append(("fuzzed payloads against the live daemon", f"{n:,}, {crashes} crashes, "
                    f"{'all' if not mismatch else 'not all'} counted by the decoder's reason"))


# ---------------------------------------------------------------------------------------------------------- loops
def loops(work: Path, kills: int, restarts: int) -> None:
    stream = Stream.make(machines=4, seconds=2400, size=20)
    print(f"\n2. fault loops: 4 machines x 2,400 readings in batches of 20 ({len(stream.batches)} messages), "
          f"a vibration step on pump-001; expected alert events {sorted(stream.expected)}")
    print(f"{'loop':<18}{'faults':>7}{'windows scored / expected':>28}{'alert events':>14}{'copies':>8}"
          f"{'seconds':>9}  ok")
    for name, n in (("SIGKILL", kills), ("broker restart", restarts)):
        if not n:
            continue
        broker = Broker(find_mosquitto() or "mosquitto", work / f"loop-{name[:4]}")
        broker.start()
        try:
            if name == "SIGKILL":
                result = kill_loop(broker, work / "state", stream, kills=n, seed=7)
            else:
                with running(settings(broker)) as daemon:
                    result = broker_loop(broker, daemon, stream, restarts=n, seed=7)
        finally:
            broker.stop()
        problems = result.check(stream)
        scored = sum(result.windows.values())
        expected = sum(map(stream.windows, stream.readings))
        verdict = problems or "yes"
        print(f"{name:<18}{result.faults:>7}{f'{scored:,} / {expected:,}':>28}{len(set(result.events)):>14}"
              f"{result.copies:>8}{result.seconds:>9.0f}  {verdict}")
        exact = problems or "every reading scored once, the alerts exactly the batch path's"
        SUMMARY.append((f"{name} loop", f"{result.faults} survived, {exact}, {result.copies} alert copies"))


# ---------------------------------------------------------------------------------------------------------- soak
def junk_publisher(broker: Broker, n: int, seconds: float, stop: threading.Event) -> None:
    sender = Sender(broker, client_id="soak-junk")
    reading = {"temperature": 40.0, "vibration": 2.0, "pressure": 3.0}
    try:
        for i in range(n):
            if stop.is_set():
                break
            sender.raw(f"pdm/v1/telemetry/junk-{i:05d}", contract.encode_reading(f"junk-{i:05d}", time.time(), reading))
            if i % 200 == 199:
                sender.flush(60)
                time.sleep(200 * seconds / n)
    finally:
        sender.close()


def soak(work: Path, machines: int, hours: float, speed: float, *, junk: int, out: Path) -> None:
    broker = Broker(find_mosquitto() or "mosquitto", work / "soak-broker")
    broker.start()
    port = free_port()
    daemon = serve(broker, port, "--max-machines", "5000", "--evict-after", "60s", "--stale-timeout", "30")
    samples: list[tuple[float, float, float, float]] = []  # seconds, RSS MB, queue depth, machines tracked
    stop = threading.Event()
    try:
        wait_healthy(port)
        before = rss_mb(daemon.pid)
        sim = subprocess.Popen([sys.executable, "-m", "simulators.fleet", "--broker", broker.url, "--machines",  # noqa: S603
                                str(machines), "--speed", f"{speed:g}", "--duration", f"{hours * 3600:.0f}s",
                                "--fault-rate", "0", "--seed", "7", "--quiet"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = hours * 3600 / speed
        junk_thread = threading.Thread(target=junk_publisher, args=(broker, junk, wall / 3, stop), daemon=True)
        t0 = time.monotonic()
        junk_thread.start()
        end_at = None
        while True:
            now = time.monotonic() - t0
            m = scrape(port)
            tracked = sum(v for k, v in m.items() if k.startswith("pdm_machines{"))
            samples.append((now, rss_mb(daemon.pid), m.get("pdm_queue_depth", 0.0), tracked))
            if sim.poll() is not None and end_at is None:
                end_at = now
            if end_at is not None and now > end_at + 90:  # the junk's eviction horizon (60 s) has passed
                break
            time.sleep(1.0)
        stop.set()
        m = scrape(port)
    finally:
        daemon.terminate()
        daemon.wait(60)
        broker.stop()
    t, rss, depth, tracked = (np.array(c) for c in zip(*samples, strict=True))
    readings = m.get("pdm_readings_total", 0)
    too_many = m.get('pdm_rejected_total{reason="too_many_machines"}', 0)
    evicted = m.get("pdm_machines_evicted_total", 0)
    print(f"\n3. soak: {machines:,} machines x {hours:g} simulated h at {speed:g}x ({t[-1]:.0f} s) + {junk:,} junk "
          "ids; --max-machines 5000 --evict-after 60s")
    print(f"readings applied {readings:,.0f}; junk refused (too_many_machines) {too_many:,.0f}; evicted "
          f"{evicted:,.0f}; tracked at the peak {tracked.max():,.0f}, at the end {tracked[-1]:,.0f}")
    print(f"RSS MB: before {before:.0f}, peak {rss.max():.0f}, end {rss[-1]:.0f}; queue depth: max {depth.max():,.0f}, "
          f"end {depth[-1]:,.0f}")
    SUMMARY.append(("soak RSS before / peak / end", f"{before:.0f} / {rss.max():.0f} / {rss[-1]:.0f} MB "
                    f"({machines:,} machines + {junk:,} junk ids, at most 5,000 tracked)"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    for ax, y, label in zip(axes, (rss, depth, tracked), ("daemon RSS (MB)", "queue depth (messages)",
                                                         "machines tracked"), strict=True):
        ax.plot(t, y)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(f"soak: {machines:,} machines x {hours:g} h at {speed:g}x + {junk:,} junk ids "
                      "(--max-machines 5000, --evict-after 60s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"plot: {out}")


# ---------------------------------------------------------------------------------------------------------- memory
def memory_per_machine(n: int = 2000) -> None:
    import pandas as pd

    from pdm.daemon.machines import MachineState
    from pdm.daemon.models import Models
    from pdm.detectors.gru import GRUAutoencoderDetector

    big = Path(tempfile.mkdtemp(prefix="pdm-mem-"))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"timestamp": np.arange(4000.0), **{s: rng.normal(0, 1, 4000) for s in SENSORS}})
    GRUAutoencoderDetector(window=64, hidden=8, latent=4, epochs=1, features=list(SENSORS)).fit(frame).save(big / "w64")
    print(f"\n4. memory per machine (tracemalloc, {n:,} machines, one message of a window's readings each)")
    print(f"{'model':<12}{'kept readings':>14}{'KB per machine':>16}")
    for name, root in (("window 16", models_dir() / MODEL), ("window 64", big / "w64")):
        slot = Models(root.parent, {}, root.name, warm_up=False).slots[root.name]
        for tail in (False, True):
            tracemalloc.start()
            base = tracemalloc.take_snapshot()
            kept = []
            for i in range(n):
                m = MachineState.create(f"m-{i}", slot, "pump", keep_tail=tail)
                ts = 1_795_478_400.0 + np.arange(slot.window, dtype=float)
                m.apply(contract.parse_telemetry(contract.encode_batch(
                    f"m-{i}", 0, ts.tolist(), {s: rng.normal(0, 1, slot.window).tolist() for s in SENSORS}),
                    f"m-{i}", SENSORS))
                kept.append(m)
            used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
            tracemalloc.stop()
            per = used / n / 1024
            print(f"{name:<12}{'yes' if tail else 'no':>14}{per:>16.1f}")
            SUMMARY.append((f"memory per machine, {name}{', --state-dir' if tail else ''}", f"{per:.1f} KB"))
            del kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuzz", type=int, default=20_000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--soak-machines", type=int, default=1000)
    ap.add_argument("--soak-hours", type=float, default=1.0)
    ap.add_argument("--soak-speed", type=float, default=20.0)
    ap.add_argument("--junk", type=int, default=20_000)
    ap.add_argument("--plot", type=Path, default=ROOT / "build" / "daemon_soak.png")
    ap.add_argument("--skip", default="", help="parts to skip: fuzz,loops,soak,memory")
    args = ap.parse_args()
    if find_mosquitto() is None:
        sys.exit("mosquitto is required (apt-get install mosquitto)")
    skip = set(args.skip.split(","))
    work = Path(tempfile.mkdtemp(prefix="pdm-bench-faults-"))
    print(f"{os.cpu_count()} CPUs; mosquitto, publishers and daemon on this machine; the test model (GRU, window 16)")
    models_dir()  # trained once, before any timing
    if "fuzz" not in skip:
        fuzz(work, args.fuzz)
    if "loops" not in skip:
        loops(work, args.kills, args.restarts)
    if "soak" not in skip:
        soak(work, args.soak_machines, args.soak_hours, args.soak_speed, junk=args.junk, out=args.plot)
    if "memory" not in skip:
        memory_per_machine()
    print("\nsummary")
    for what, figure in SUMMARY:
        print(f"  {what:<42} {figure}")


if __name__ == "__main__":
    main()
