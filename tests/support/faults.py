"""Fault loops against a live daemon, shared by `tests/daemon/test_faults_live.py` (bounded) and
`benchmarks/daemon_faults.py` (longer, with a table): a fleet stream with a fault in it, published in batches with
the daemon killed (SIGKILL, ``--state-dir``) or the broker restarted in the middle; and a stream of fuzzed payloads
with a normal machine in between.

What a loop checks: every machine's windows scored exactly once (the daemon's checkpoint counts them across kills;
an in-process daemon's metric across broker restarts), the alerts raised and cleared are exactly the ones the batch
path finds in the same data (``(alert_id, event)`` pairs: none lost, none extra; identical copies are counted), and
every raised alert cleared once with its id.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm import contract
from pdm.contract.errors import ContractError
from pdm.daemon.checkpoint import read
from tests.support.broker import Broker
from tests.support.daemon import (
    LIVE_START,
    SENSORS,
    Collector,
    Sender,
    expected_alerts,
    machine_arrays,
    metric,
    serve_process,
    simulate,
    wait_for,
)

WINDOW = 16  # the test model's window (tests.support.daemon.models_dir)


@dataclass
class Stream:
    """A fleet's readings with a vibration step on pump-001, cut into batches of ``size`` readings, round robin."""

    frame: pd.DataFrame
    batches: list[tuple[str, np.ndarray, np.ndarray]]
    expected: set[tuple[str, str]]
    readings: dict[str, int]

    @classmethod
    def make(cls, machines: int = 4, seconds: int = 2400, size: int = 20, step: tuple[int, int] = (600, 1500),
             ) -> Stream:
        frame, _ = simulate(machines, seconds, LIVE_START, fault_rate_per_day=0.0, forced=[])
        lo, hi = frame["timestamp"].min() + step[0], frame["timestamp"].min() + step[1]
        fault = (frame["machine_id"] == "pump-001") & (frame["timestamp"] >= lo) & (frame["timestamp"] < hi)
        frame = frame.assign(vibration=np.where(fault, frame["vibration"] + 8.0, frame["vibration"]))
        per = {m: machine_arrays(frame, m) for m in sorted(frame["machine_id"].unique())}
        batches = [(m, ts[i : i + size], v[i : i + size]) for i in range(0, seconds, size) for m, (ts, v) in
                   per.items() if i < len(ts)]
        return cls(frame, batches, expected_alerts(frame), {m: len(ts) for m, (ts, _) in per.items()})

    def windows(self, machine: str) -> int:
        return self.readings[machine] - WINDOW + 1


@dataclass
class LoopResult:
    """What a loop saw: faults survived, windows per machine, alert events (with copies), seconds."""

    faults: int = 0
    windows: dict[str, int] = field(default_factory=dict)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0

    def check(self, stream: Stream) -> list[str]:
        """What is wrong (empty: every reading scored once, the alerts exactly the batch path's)."""
        problems = [f"{m}: {self.windows.get(m)} windows scored, expected {stream.windows(m)}"
                    for m in stream.readings if self.windows.get(m) != stream.windows(m)]
        got = set(self.events)
        if got != stream.expected:
            problems.append(f"alerts: missing {sorted(stream.expected - got)}, extra {sorted(got - stream.expected)}")
        return problems

    @property
    def copies(self) -> int:
        """Alert events delivered more than once (identical copies)."""
        return sum(n - 1 for n in self.events.values())


def started(collector: Collector, n: int) -> bool:
    return sum(1 for s in collector.of("status") if s["service"] == "scorer" and s["state"] == "online") >= n


def kill_loop(broker: Broker, state_dir: Path, stream: Stream, kills: int, *, seed: int = 0,
              log: Callable[[str], None] = lambda _: None) -> LoopResult:
    """Publish ``stream`` while SIGKILLing `python -m pdm serve --state-dir` ``kills`` times at random moments
    (each restarted at once; the broker queues what comes meanwhile); then a clean stop and the checkpoint's
    counts."""
    rng = random.Random(seed)  # noqa: S311 - test timing, not cryptography
    t0 = time.monotonic()
    result = LoopResult()
    collector = Collector(broker, client_id="faults-collector")
    sender = Sender(broker, client_id="faults-sender")
    args = ("--state-dir", str(state_dir))
    proc = serve_process(broker, *args)
    try:
        wait_for(lambda: started(collector, 1), 60, "the daemon's online status")
        n = len(stream.batches)
        at = sorted(rng.sample(range(n // (kills + 2), n - n // (kills + 2)), kills))
        for i, (machine, ts, values) in enumerate(stream.batches):
            sender.batch(machine, ts, values, size=len(ts))
            if at and i == at[0]:
                at.pop(0)
                sender.flush()
                time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the middle of scoring, committing, acknowledging
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                result.faults += 1
                log(f"kill {result.faults}: after message {i + 1} of {n}")
                proc = serve_process(broker, *args)
                wait_for(lambda: started(collector, result.faults + 1), 60, "the restarted daemon")
        sender.flush(60)
        def done() -> bool:
            records = read(state_dir).records
            return all(m in records and records[m]["scored"] >= stream.windows(m) for m in stream.readings)

        wait_for(done, 120, "every machine's last window checkpointed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, output(proc)
        records = read(state_dir).records
        result.windows = {m: int(records[m]["scored"]) for m in records}
        wait_for(lambda: {(a["alert_id"], a["event"]) for a in collector.alerts()} >= stream.expected, 30,
                 "every expected alert event")
        time.sleep(0.5)  # copies still on their way
        result.events = Counter((a["alert_id"], a["event"]) for a in collector.alerts())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sender.close()
        collector.close()
    result.seconds = time.monotonic() - t0
    return result


def output(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=30)
    return out[-3000:]


def broker_loop(broker: Broker, daemon: Any, stream: Stream, restarts: int, *, seed: int = 0,
                log: Callable[[str], None] = lambda _: None) -> LoopResult:
    """Publish ``stream`` to the in-process ``daemon`` while the broker is restarted ``restarts`` times (stop,
    start: its persistence keeps the sessions and their queues)."""
    rng = random.Random(seed)  # noqa: S311
    t0 = time.monotonic()
    result = LoopResult()
    collector = Collector(broker, client_id="faults-collector")
    sender = Sender(broker, client_id="faults-sender")
    try:
        n = len(stream.batches)
        at = sorted(rng.sample(range(n // (restarts + 2), n - n // (restarts + 2)), restarts))
        for i, (machine, ts, values) in enumerate(stream.batches):
            sender.batch(machine, ts, values, size=len(ts))
            if at and i == at[0]:
                at.pop(0)
                sender.flush(60)
                time.sleep(rng.uniform(0.0, 0.3))
                broker.stop()
                time.sleep(rng.uniform(0.1, 0.5))
                broker.start()
                result.faults += 1
                log(f"broker restart {result.faults}: after message {i + 1} of {n}")
                sender.wait_connected(30)
                wait_for(lambda: metric(daemon, "pdm_reconnects_total") >= result.faults, 30,
                         "the daemon to reconnect")
        sender.flush(60)
        total = sum(stream.windows(m) for m in stream.readings)
        wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model="fleet") >= total, 120, "every window")
        time.sleep(0.5)
        scored = daemon.scorer.machines
        result.windows = {m: scored[m].scored for m in scored}
        wait_for(lambda: {(a["alert_id"], a["event"]) for a in collector.alerts()} >= stream.expected, 30,
                 "every expected alert event")
        time.sleep(0.5)
        result.events = Counter((a["alert_id"], a["event"]) for a in collector.alerts())
    finally:
        sender.close()
        collector.close()
    result.seconds = time.monotonic() - t0
    return result


def oracle(payload: bytes, machine: str) -> str:
    """The contract decoder's verdict on a telemetry payload: ``accepted`` or the reason it rejects it."""
    try:
        contract.parse_telemetry(payload, machine, SENSORS)
    except ContractError as exc:
        return exc.reason
    return "accepted"


def reasons(port: int) -> Counter[str]:
    """The daemon's ``pdm_rejected_total`` by reason, read from its /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("pdm_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = int(float(line.rsplit(" ", 1)[1]))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")
