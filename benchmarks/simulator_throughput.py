"""Fleet simulator throughput: offline generation, and live publishing (batched vs single readings) against one
self-started mosquitto, side by side in one run (the machine is shared and noisy).

    .venv/bin/python benchmarks/simulator_throughput.py [--machines 100] [--repeat 3]

Live runs use ``--speed max`` and count a reading as published when the broker acknowledged its message (QoS 1) or
paho wrote it to the socket (QoS 0). Best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm.demo.broker import LocalBroker, find_mosquitto  # noqa: E402 - after making the repository importable
from simulators.fleet import offline  # noqa: E402
from simulators.fleet.config import SimConfig, fleet_types  # noqa: E402
from simulators.fleet.engine import Simulator  # noqa: E402
from simulators.fleet.live import LiveOptions, Publisher  # noqa: E402


def config(machines: int, seconds: float) -> SimConfig:
    return SimConfig(fleet_types(machines), seed=0, duration_s=seconds, fault_rate_per_day=1.0)


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return max(fn() for _ in range(repeat))


def generate(machines: int, seconds: float) -> float:
    sim = Simulator(config(machines, seconds))
    t = time.perf_counter()
    rows = sum(b.labels.size for b in sim.blocks())
    return rows / (time.perf_counter() - t)


def write(machines: int, seconds: float, out: Path) -> float:
    sim = Simulator(config(machines, seconds))
    t = time.perf_counter()
    s = offline.write(sim, out)
    return s.rows / (time.perf_counter() - t)


def live(broker: LocalBroker, machines: int, seconds: float, *, single: bool, qos: int) -> tuple[float, float]:
    sim = Simulator(config(machines, seconds))
    opts = LiveOptions(broker=broker.url, qos=qos, single=single, speed=None, max_batch=60,
                       instance=f"bench-{'single' if single else 'batch'}-{qos}")
    t = time.perf_counter()
    counts = Publisher(sim, opts).run()
    dt = time.perf_counter() - t
    assert counts.sent == counts.acked, "unacknowledged messages"
    return counts.readings / dt, counts.telemetry / dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--machines", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    m, r = args.machines, args.repeat
    binary = find_mosquitto()
    if binary is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    print(f"fleet of {m} machines (mixed types), 1 s interval; best of {r}")
    gen = best(lambda: generate(m, 6 * 3600), r)
    print(f"offline, generate only:          {gen:12,.0f} readings/s")
    with tempfile.TemporaryDirectory() as tmp:
        pq = best(lambda: write(m, 6 * 3600, Path(tmp) / "f.parquet"), r)
        csv = best(lambda: write(m, 1 * 3600, Path(tmp) / "f.csv"), r)
        print(f"offline, generate + Parquet:     {pq:12,.0f} readings/s")
        print(f"offline, generate + CSV:         {csv:12,.0f} readings/s")
        broker = LocalBroker(Path(tmp) / "mosquitto", "mosquitto", binary=binary)
        broker.start()
        try:
            results = {}
            for qos in (1, 0):
                results[("batch", qos)] = max((live(broker, m, 1800, single=False, qos=qos) for _ in range(r)),
                                              key=lambda x: x[0])
                results[("single", qos)] = max((live(broker, m, 60, single=True, qos=qos) for _ in range(r)),
                                               key=lambda x: x[0])
        finally:
            broker.stop()
    for (mode, qos), (rps, mps) in results.items():
        what = "batches of 60" if mode == "batch" else "single readings"
        print(f"live, {what:16} QoS {qos}:  {rps:12,.0f} readings/s ({mps:,.0f} messages/s)")
    for qos in (1, 0):
        ratio = results[("batch", qos)][0] / results[("single", qos)][0]
        print(f"ratio batched / single, QoS {qos}: {ratio:6.1f}x")
    print(f"ratio offline generation / live batched QoS 1: {gen / results[('batch', 1)][0]:6.1f}x")


if __name__ == "__main__":
    main()
