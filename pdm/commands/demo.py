"""``python -m pdm demo``: train, save, reload, score fresh data with injected faults, judge, plot.

Until the scoring daemon exists this is the main job of ``make demo``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pdm import synthetic
from pdm.evaluation import FaultSpan, MachineResult, evaluate_machine, summarise

FEATURES = ["temperature", "vibration", "pressure"]
GRU, BASELINE = "GRU autoencoder", "z-score baseline"


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("build/demo")
    machines: int = 6
    train_hours: float = 3.0
    test_hours: float = 2.0
    epochs: int = 20
    seed: int = 0
    max_train_windows: int = 8000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="train, save, reload and score on generated data with injected faults",
                       description="Run the detector end to end on generated pump data and report what it found.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory")
    p.add_argument("--machines", type=int, default=6, help="pumps in the fleet")
    p.add_argument("--train-hours", type=float, default=3.0, help="normal history per machine")
    p.add_argument("--test-hours", type=float, default=2.0, help="fresh data per machine")
    p.add_argument("--epochs", type=int, default=20, help="maximum training epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--quick", action="store_true", help="a small, fast run (for CI)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    logging.getLogger("pdm.detectors.gru").setLevel(logging.INFO)  # one line per epoch
    if args.quick:
        cfg = DemoConfig(out=args.out, machines=4, train_hours=1.0, test_hours=1.0, epochs=6, seed=args.seed,
                         max_train_windows=3000)
    else:
        cfg = DemoConfig(out=args.out, machines=args.machines, train_hours=args.train_hours,
                         test_hours=args.test_hours, epochs=args.epochs, seed=args.seed)
    demo(cfg)
    return 0


def demo(cfg: DemoConfig) -> dict[str, float]:
    """Run the demo, print what it did, return headline figures."""
    from pdm.detectors.base import Detector
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.zscore import RobustZScoreDetector
    from pdm.report import plot_machines

    started = time.monotonic()
    n_train, n_test = int(cfg.train_hours * 3600), int(cfg.test_hours * 3600)
    fault_kinds = synthetic.FAULT_KINDS[: max(1, cfg.machines - 2)]
    print(f"1. Generating normal history: {cfg.machines} pumps x {cfg.train_hours:g} h at 1 Hz "
          "(duty cycles, load regimes, daily ambient cycle, unit-to-unit variation)")
    train = {m: f.drop(columns="label") for m, (f, _) in
             synthetic.fleet(cfg.machines, n_train, seed=cfg.seed + 1, unit_seed_offset=cfg.seed).items()}

    print("2. Training the GRU autoencoder on normal data (the held-back tail calibrates the threshold)")
    trained = GRUAutoencoderDetector(window=64, hidden=32, latent=8, epochs=cfg.epochs,
                                     max_train_windows=cfg.max_train_windows, seed=cfg.seed).fit(train)
    fitted_baseline = RobustZScoreDetector(seed=cfg.seed).fit(train)
    version_dir = trained.save(cfg.out / "models" / "pump", companions={"baseline": fitted_baseline})
    print(f"   saved {version_dir} (threshold {trained.threshold_.value:.4g}, {trained.threshold_.method}, "
          f"target false-alarm rate {trained.threshold_.target_rate:g} per window)")
    gru = Detector.load(cfg.out / "models" / "pump")
    baseline = Detector.load(version_dir / "baseline")
    print("   reloaded both from disk, checksums verified")

    print(f"3. Scoring {cfg.test_hours:g} h of fresh data per machine; faults injected: {', '.join(fault_kinds)}")
    test = synthetic.fleet(cfg.machines, n_test, seed=cfg.seed + 2, unit_seed_offset=cfg.seed,
                           fault_kinds=fault_kinds)
    grace = 2.0 * gru.window_length * gru.period_s_
    results: dict[str, list[MachineResult]] = {GRU: [], BASELINE: []}
    panels: list[tuple[str, pd.DataFrame, pd.DataFrame, list[FaultSpan]]] = []
    base_panels: list[pd.DataFrame] = []
    rows: list[str] = []
    for mid, (frame, faults) in test.items():
        ts = frame.timestamp.to_numpy()
        spans = [FaultSpan(float(ts[f.start]), float(ts[f.end - 1]), f.kind, mid) for f in faults]
        data = frame.drop(columns="label")
        outs = {GRU: gru.detect(data, machine_id=mid), BASELINE: baseline.detect(data, machine_id=mid)}
        for name, out in outs.items():
            results[name].append(evaluate_machine(mid, ts, out["alarm"].to_numpy(), spans, grace))
        rows.append(_row(mid, outs[GRU], results[GRU][-1], faults))
        if faults or not panels:
            panels.append((mid, data, outs[GRU], spans))
            base_panels.append(outs[BASELINE])

    print("\n   machine   injected fault      detected  delay   top sensor    false alarms")
    for r in rows:
        print("   " + r)
    print(f"\n4. Summary (rules: pdm.evaluation; alarms up to {grace:g} s after a fault's end still count)")
    figures: dict[str, float] = {}
    for name, machine_results in results.items():
        s = summarise(machine_results)
        delay = f"{s.mean_delay_s:.0f} s" if s.mean_delay_s is not None else "-"
        print(f"   {name:18s} detected {s.detected}/{s.faults} faults, mean delay {delay}, "
              f"{s.false_alarms} false alarms ({s.false_alarms_per_machine_day:.1f} per machine-day)")
        key = "gru" if name == GRU else "baseline"
        figures[f"{key}_detected"] = s.detected
        figures[f"{key}_false_alarms"] = s.false_alarms
        figures["faults"] = s.faults
    png = plot_machines(panels, FEATURES, cfg.out / "demo_report.png", baseline=base_panels)
    print(f"\n5. Report: {png}\n   Model:  {version_dir}\n   Took {time.monotonic() - started:.0f} s")
    return figures


def _row(mid: str, out: pd.DataFrame, res: MachineResult, faults: list[synthetic.Fault]) -> str:
    if not res.events:
        return f"{mid:9s} {'-':19s} {'-':9s} {'-':7s} {'-':13s} {res.false_alarms}"
    ev = res.events[0]
    in_alarm = out["alarm"].to_numpy() & (np.arange(len(out)) >= faults[0].start)
    contrib = out.loc[in_alarm, [f"contrib_{f}" for f in FEATURES]].mean()
    top = str(contrib.idxmax()).removeprefix("contrib_") if in_alarm.any() and np.isfinite(contrib).all() else "-"
    delay = f"{ev.delay_s:.0f} s" if ev.delay_s is not None else "-"
    detected = "yes" if ev.detected else "MISSED"
    return f"{mid:9s} {ev.fault.kind:19s} {detected:9s} {delay:7s} {top:13s} {res.false_alarms}"
