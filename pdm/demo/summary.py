"""The demo's verdict: the simulator's injected faults (truth events) against the daemon's alerts, judged by the
shared `pdm.evaluation` rules, and the PNG report.

A machine's alarm state at a scored window is "inside an alert episode": from the raising window's end to the
clearing window's end (or to the end of the run for an alert still open).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    top_sensor: str | None  # of the first alert that caught it


@dataclass(frozen=True)
class DemoVerdict:
    report: Report
    faults: list[FaultRow]
    false_alarms: list[str]  # alert ids overlapping no fault

    @property
    def machine_faults_detected(self) -> bool:
        return self.report.detected == self.report.faults

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.report.to_dict(), "faults": [r.__dict__ for r in self.faults],
                "false_alarms": self.false_alarms}

    def print(self) -> None:
        r = self.report
        print("\ninjected faults against raised alerts (rules: pdm.evaluation)")
        print(f"  {'machine':16s} {'fault':14s} {'kind':8s} {'detected':9s} {'delay':>8s}  top sensor")
        for f in self.faults:
            delay = f"{f.delay_s:.0f} s" if f.delay_s is not None else "-"
            print(f"  {f.machine_id:16s} {f.fault:14s} {f.kind:8s} {'yes' if f.detected else 'MISSED':9s} "
                  f"{delay:>8s}  {f.top_sensor or '-'}")
        median = f"{r.median_delay_s:.0f} s" if r.median_delay_s is not None else "-"
        print(f"machine faults detected {r.detected}/{r.faults}, median delay {median}; sensor faults caught "
              f"{r.sensor_detected}/{r.sensor_faults}; false alarms {r.false_alarms} "
              f"({r.false_alarms_per_machine_day:.2f} per machine-day over {r.machine_days:.2f} machine-days)")


def _alarm(m: MachineView, ts: np.ndarray) -> np.ndarray:
    alarm = np.zeros(len(ts), dtype=bool)
    for ep in m.episodes.values():
        alarm |= (ts >= ep.raised) & (ts <= (ep.cleared if ep.cleared is not None else np.inf))
    return alarm


def _spans(m: MachineView, run_end: float) -> list[FaultSpan]:
    return [FaultSpan(f.start, f.end if f.end is not None else run_end, f.fault, m.machine_id,
                      sensor_fault=f.kind == "sensor") for f in sorted(m.faults.values(), key=lambda f: f.start)]


def judge(observer: Observer, grace_s: float) -> DemoVerdict:
    """Evaluate every machine the observer saw; faults come from truth events, alarms from alert events."""
    results: list[MachineResult] = []
    rows: list[FaultRow] = []
    false_alarms: list[str] = []
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
                first = [e for e in m.episodes.values() if e.raised <= ev.fault.end + grace_s
                         and (e.cleared is None or e.cleared >= ev.fault.start)]
                top = min(first, key=lambda e: e.raised).top_sensor if first else None
                rows.append(FaultRow(m.machine_id, ev.fault.kind, "sensor" if ev.fault.sensor_fault else "machine",
                                     ev.detected, ev.delay_s, top))
            for e in m.episodes.values():
                end = e.cleared if e.cleared is not None else float(ts[-1])
                if not any(e.raised <= f.end + grace_s and end >= f.start for f in spans):
                    false_alarms.append(e.alert_id)
    return DemoVerdict(summarise(results), rows, sorted(false_alarms))


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
