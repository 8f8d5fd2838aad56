"""The live demo: broker, scoring daemon, fleet simulator with injected faults, a live view, then the verdict.

Order: a fresh broker on a free loopback port -> ``python -m pdm serve`` with the shipped models routed by machine
type (its retained ``online`` status is awaited, so its persistent session exists before any telemetry) -> the
simulators (one per machine type: the shipped models' own machines on other days, `pdm.demo.models`) publishing
at ``speed`` x real time with forced faults -> the view until the simulators end -> wait until the daemon has
scored the last readings -> SIGTERM the daemon (it publishes ``offline``; its recorder, ``--record-dir
out/recorded``, compacts what it recorded into Parquet for retraining) -> judge the alerts against the simulators'
truth events with `pdm.evaluation` -> PNG report. Every process gets its own
session, so Ctrl-C reaches only the demo, which then stops them in that order.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pdm.demo.broker import LocalBroker, free_port
from pdm.demo.models import DATA_SEED, MACHINE_TYPES, train_models
from pdm.demo.observer import Observer
from pdm.demo.summary import DemoVerdict, judge, write_report
from pdm.demo.view import LiveView
from pdm.errors import PdmError

logger = logging.getLogger(__name__)
PREFIX = "pdm/v1"


class DemoError(PdmError):
    """A demo process failed to start or died; the message names it and its log file."""


@dataclass(frozen=True)
class DemoPlan:
    out: Path = Path("build/demo")
    models_dir: Path = Path("models")
    mix: tuple[tuple[str, int], ...] = (("pump", 2), ("compressor", 2), ("motor", 2))
    hours: float = 7.0
    speed: float = 240.0
    faults: tuple[str, ...] = (
        "machine=pump-001,type=imbalance,start=2h,duration=3h,severity=1",
        "machine=compressor-001,type=overheating,start=3h,duration=3h,severity=1",
        "machine=motor-001,type=misalignment,start=4h,duration=2h30m,severity=1",
        "machine=pump-002,type=spike,start=1h30m,duration=1h,sensor=temperature",
        "machine=pump-002,type=drift,start=2h30m,duration=4h30m,sensor=vibration,severity=1",
    )
    seed: int = 7
    start_hour_utc: float = 12.0  # the simulated clock starts at this time of day (`demo_start`)
    broker_kind: str = "auto"
    interactive: bool | None = None  # None: when stdout is a terminal
    grace_s: float = 128.0  # 2 x window x period, as `pdm evaluate`
    extra_serve_args: tuple[str, ...] = field(default_factory=tuple)


class Processes:
    """Child processes with their logs; each in its own session (Ctrl-C is the demo's to handle)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        self._logs.append(log)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env,  # noqa: S603
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def check(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None and proc.returncode != 0:
            tail = " | ".join((self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-3:])
            raise DemoError(f"the {name} exited with status {proc.returncode} (see {self.log_dir / name}.log): "
                            f"{tail}")

    def stop(self, name: str, timeout: float = 30.0) -> int | None:
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("the %s did not stop within %g s: killed", name, timeout)
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)
        for log in self._logs:
            log.close()


def _wait(what: str, predicate: object, timeout: float, procs: Processes, names: tuple[str, ...]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        for n in names:
            procs.check(n)
        time.sleep(0.1)
    raise DemoError(f"timed out after {timeout:g} s waiting for {what} (logs in {procs.log_dir})")


def run_demo(plan: DemoPlan) -> DemoVerdict:
    """Run everything; returns the verdict (also written to ``out/summary.json`` with ``out/report.png``)."""
    started = time.monotonic()
    out = plan.out
    for old in ("broker", "recorded"):  # a fresh broker (no sessions or retained states) and a fresh recording
        if (out / old).exists():
            shutil.rmtree(out / old)
    out.mkdir(parents=True, exist_ok=True)
    types = tuple(t for t, _ in plan.mix)
    train_models(plan.models_dir, out / "training-data", tuple(t for t in MACHINE_TYPES if t in types))
    broker = LocalBroker(out / "broker", plan.broker_kind)
    procs = Processes(out)
    observer: Observer | None = None
    try:
        broker.start()
        print(f"broker: {broker.kind} on {broker.url}", flush=True)
        observer = Observer(broker.host, broker.port, PREFIX, mqtt_version=broker.mqtt_version)
        observer.start()
        metrics_port = free_port()
        procs.start("daemon", ["-m", "pdm", "serve", "--broker", broker.url, "--models-dir", str(plan.models_dir),
                               "--routes", ",".join(f"{t}={t}" for t in types), "--publish-scores",
                               "--mqtt-version", str(broker.mqtt_version), "--metrics-port", str(metrics_port),
                               "--client-id", "pdm-demo-scorer", "--record-dir", str(out / "recorded"),
                               "--max-clock-skew", f"{_clock_skew(plan):.0f}", *plan.extra_serve_args])
        print(f"daemon: python -m pdm serve (log {out / 'daemon.log'}; metrics http://127.0.0.1:{metrics_port}"
              "/metrics)", flush=True)
        _wait("the daemon's online status", lambda: observer.snapshot().statuses.get("scorer/scorer-0") == "online",
              120.0, procs, ("daemon",))
        sims = []
        sim_start = demo_start(time.time(), plan.start_hour_utc)
        for machine_type, count in plan.mix:  # one simulator per type: each type's machines are its model's own
            sim_args = ["-m", "simulators.fleet", "--mix", f"{machine_type}={count}", "--broker", broker.url,
                        "--speed", f"{plan.speed:g}", "--duration", f"{plan.hours:g}h", "--fault-rate", "0",
                        "--seed", str(DATA_SEED[machine_type]), "--noise-seed", str(plan.seed),
                        "--start", f"{sim_start:.0f}",
                        "--instance", f"simulator-{machine_type}", "--mqtt-version", str(broker.mqtt_version),
                        "--quiet"]
            for spec in plan.faults:
                if spec.startswith(f"machine={machine_type}-"):
                    sim_args += ["--fault", spec]
            sims.append(procs.start(f"simulator-{machine_type}", sim_args))
        print(f"simulator: {sum(n for _, n in plan.mix)} machines (the shipped models' own, on other days), "
              f"{plan.hours:g} simulated hours at {plan.speed:g}x (about {plan.hours * 3600 / plan.speed:.0f} s); "
              "faults injected:", flush=True)
        for spec in plan.faults:
            print(f"  {spec}", flush=True)
        with LiveView(observer, interactive=plan.interactive) as view:
            while any(sim.poll() is None for sim in sims):
                procs.check("daemon")
                for machine_type, _ in plan.mix:
                    procs.check(f"simulator-{machine_type}")
                view.refresh()
                time.sleep(0.25)
            for machine_type, _ in plan.mix:
                procs.check(f"simulator-{machine_type}")
            _wait("the daemon to score the last readings", lambda: _caught_up(observer), 120.0, procs, ("daemon",))
            view.refresh()
        status = procs.stop("daemon")
        _wait("the daemon's offline status", lambda: observer.snapshot().statuses.get("scorer/scorer-0")
              == "offline", 10.0, procs, ())
        if status != 0:
            raise DemoError(f"the daemon exited with status {status} (see {out / 'daemon.log'})")
        verdict = judge(observer, plan.grace_s)
        write_report(observer, verdict, out)
        (out / "summary.json").write_text(json.dumps(verdict.to_dict(), indent=2), encoding="utf-8")
        verdict.print()
        print(f"\nreport: {out / 'report.png'}   summary: {out / 'summary.json'}   logs: {out}/*.log\n"
              f"recorded for retraining (Parquet, docs/recorder.md): {out / 'recorded'}\n"
              f"took {time.monotonic() - started:.0f} s", flush=True)
        return verdict
    finally:
        procs.close()
        if observer is not None:
            observer.stop()
        broker.stop()


def demo_start(now: float, hour_utc: float) -> float:
    """The simulated clock's start: the latest ``hour_utc`` o'clock (UTC) before ``now``, so that every run sees the
    same time of day (the simulated ambient temperature follows it, and with it how far an overheating stands out)
    whenever the demo is started.

    >>> demo_start(1795442400.0, 12.0)  # 2026-11-23 14:00 UTC -> 12:00 the same day
    1795435200.0
    >>> demo_start(1795399200.0, 12.0)  # 02:00 UTC -> 12:00 the day before
    1795348800.0
    """
    day = now - now % 86_400.0
    start = day + hour_utc * 3600.0
    return start if start <= now else start - 86_400.0


def _clock_skew(plan: DemoPlan) -> float:
    """The daemon's ``--max-clock-skew`` for the demo: the simulators start up to a day before the wall clock (the
    same time of day every run) and run ``speed`` x faster, so their readings lie within a day behind it to
    ``hours`` ahead of it: a day, plus the run's length and an hour."""
    return 86_400.0 + plan.hours * 3600.0 + 3600.0


def _caught_up(observer: Observer) -> bool:
    """Every machine's last score is at its last reading's timestamp (the daemon scores every reading)."""
    with observer.lock:
        machines = list(observer.machines.values())
        return bool(machines) and all(m.score_ts and m.last_ts is not None and m.score_ts[-1] >= m.last_ts
                                      for m in machines)
