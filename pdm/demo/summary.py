"""The demo's verdict: the simulator's injected faults (truth events) against the daemon's alerts, judged by the
shared `pdm.evaluation` rules, and the PNG report.

A machine's alarm state at a scored window is "inside an alert episode": from the raising window's end to the
clearing window's end (or to the end of the run for an alert still open).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.contract import SENSORS
from pdm.demo.observer import MachineView, Observer
from pdm.evaluation import FaultSpan, MachineResult, Report, evaluate_machine, summarise


@dataclass(frozen=True)
class FaultRow:
    machine_id: str
    fault: str
    kind: str  # machine | sensor
    detected: bool
    delay_s: float | None
    top_sensor: str | None  # of the first alert that caught it (a sensor fault: the sensor its alert named)
    alerts: int = 0  # alerts raised during it (machine alerts for a machine fault, sensor alerts for a sensor fault)


@dataclass(frozen=True)
class DemoVerdict:
    report: Report
    faults: list[FaultRow]
    false_alarms: list[str]  # machine alert ids overlapping no fault
    false_sensor_alerts: list[str] = field(default_factory=list)  # sensor alert ids overlapping no sensor fault

    @property
    def machine_faults_detected(self) -> bool:
        return self.report.detected == self.report.faults

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.report.to_dict(), "faults": [r.__dict__ for r in self.faults],
                "false_alarms": self.false_alarms, "false_sensor_alerts": self.false_sensor_alerts}

    def print(self) -> None:
        r = self.report
        print("\ninjected faults against raised alerts (rules: pdm.evaluation)")
        print(f"  {'machine':16s} {'fault':14s} {'kind':8s} {'detected':9s} {'delay':>8s} {'alerts':>6s}  top sensor")
        for f in self.faults:
            delay = f"{f.delay_s:.0f} s" if f.delay_s is not None else "-"
            print(f"  {f.machine_id:16s} {f.fault:14s} {f.kind:8s} {'yes' if f.detected else 'MISSED':9s} "
                  f"{delay:>8s} {f.alerts:6d}  {f.top_sensor or '-'}")
        median = f"{r.median_delay_s:.0f} s" if r.median_delay_s is not None else "-"
        sensor = [f for f in self.faults if f.kind == "sensor"]
        print(f"machine faults detected {r.detected}/{r.faults}, median delay {median}; sensor faults caught by "
              f"sensor alerts {sum(f.detected for f in sensor)}/{len(sensor)}; false alarms {r.false_alarms} "
              f"({r.false_alarms_per_machine_day:.2f} per machine-day over {r.machine_days:.2f} machine-days); "
              f"false sensor alerts {len(self.false_sensor_alerts)}")


def _alarm(m: MachineView, ts: np.ndarray) -> np.ndarray:
    alarm = np.zeros(len(ts), dtype=bool)
    for ep in m.episodes.values():
        alarm |= (ts >= ep.raised) & (ts <= (ep.cleared if ep.cleared is not None else np.inf))
    return alarm


def _spans(m: MachineView, run_end: float) -> list[FaultSpan]:
    return [FaultSpan(f.start, f.end if f.end is not None else run_end, f.fault, m.machine_id,
                      sensor_fault=f.kind == "sensor", sensor=f.sensor)
            for f in sorted(m.faults.values(), key=lambda f: f.start)]


def judge(observer: Observer, grace_s: float) -> DemoVerdict:
    """Evaluate every machine the observer saw; faults come from truth events, alarms from alert events."""
    results: list[MachineResult] = []
    rows: list[FaultRow] = []
    false_alarms: list[str] = []
    false_sensor: list[str] = []
    with observer.lock:
        machines = sorted(observer.machines.values(), key=lambda m: m.machine_id)
        for m in machines:
            ts = np.asarray(m.score_ts, dtype=np.float64)
            if len(ts) == 0:
                continue
            order = np.argsort(ts, kind="stable")
            ts = ts[order]
            spans = _spans(m, float(ts[-1]))
            res = evaluate_machine(m.machine_id, ts, _alarm(m, ts), spans, grace_s)
            results.append(res)
            for ev in res.events:
                f = ev.fault
                episodes = m.sensor_episodes if f.sensor_fault else m.episodes
                first = [e for e in episodes.values() if e.raised <= f.end + grace_s
                         and (e.cleared is None or e.cleared >= f.start)
                         and (not f.sensor_fault or e.top_sensor == f.sensor)]
                top = min(first, key=lambda e: e.raised).top_sensor if first else None
                if f.sensor_fault:  # caught by a sensor alert, not by a machine alert
                    delay = max(0.0, min(e.raised for e in first) - f.start) if first else None
                    rows.append(FaultRow(m.machine_id, f.kind, "sensor", bool(first), delay, top, len(first)))
                else:
                    rows.append(FaultRow(m.machine_id, f.kind, "machine", ev.detected, ev.delay_s, top, len(first)))
            end_of_run = float(ts[-1])
            for e in m.episodes.values():
                end = e.cleared if e.cleared is not None else end_of_run
                if not any(e.raised <= f.end + grace_s and end >= f.start for f in spans):
                    false_alarms.append(e.alert_id)
            for e in m.sensor_episodes.values():  # false: overlapping no sensor fault of the sensor it names
                end = e.cleared if e.cleared is not None else end_of_run
                if not any(e.raised <= f.end + grace_s and end >= f.start and e.top_sensor == f.sensor
                           for f in spans if f.sensor_fault):
                    false_sensor.append(e.alert_id)
    return DemoVerdict(summarise(results), rows, sorted(false_alarms), sorted(false_sensor))


def _frames(m: MachineView, threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame({"timestamp": m.ts, **{s: m.values[s] for s in SENSORS}})
    frame = frame.drop_duplicates("timestamp").sort_values("timestamp", ignore_index=True)
    scores = pd.Series(m.scores, index=m.score_ts, dtype=np.float64)
    scores = scores[~scores.index.duplicated(keep="last")]
    out = pd.DataFrame({"score": scores.reindex(frame["timestamp"]).to_numpy(), "threshold": threshold})
    out["alarm"] = _alarm(m, frame["timestamp"].to_numpy())
    return frame, out


def write_report(observer: Observer, verdict: DemoVerdict, out_dir: Path) -> Path:
    """``report.png``: one column per machine with a fault or an alert (at least one), sensors and score."""
    from pdm.evaluation.plots import plot_machines

    with observer.lock:
        machines = sorted(observer.machines.values(), key=lambda m: m.machine_id)
        chosen = [m for m in machines if (m.faults or m.episodes) and m.ts and m.threshold] or \
            [m for m in machines if m.ts and m.threshold][:1]
        panels = []
        for m in chosen:
            frame, out = _frames(m, float(m.threshold or 1.0))
            end = float(frame["timestamp"].iloc[-1])
            panels.append((m.machine_id, frame, out, [s for s in _spans(m, end)]))
    return plot_machines(panels, SENSORS, out_dir / "report.png")
