"""How the daemon's drift PSI behaves on normal and on shifted simulator data, per span length, and what tracking
drift and data quality costs per message. The figures behind ``--drift-window``'s default (docs/daemon.md).

1. A small GRU (the test model: window 16, 8 units, 3 epochs) is fitted on ``--days`` of normal data of 4 machines
   (a compressor, a motor, two pumps); its ``calibration.json`` comes from that fit, as in production.
2. ``--live-days`` of later normal data are scored per machine (the batch path; the daemon's streaming scores equal
   it), with every sensor offset by 0, 0.5 and 1 robust standard deviations of that machine. The PSI the daemon
   would publish (the machine's own calibration shares, `pdm.detectors.drift`) is taken over sliding spans of 1, 6,
   12 and 24 h, every 10 minutes; the table gives its median and 90th percentile per machine, and the share of windows
   over the threshold (an offset that raises alerts is a fault, not drift).
3. Cost: one machine's `MachineState.apply` over 2,000 messages of 10 readings with and without the quality
   tracking (`MachineQuality.observe` and `.scored`), and one `MachineQuality.report` (run per state published).

Example: ``.venv/bin/python benchmarks/drift_noise.py`` (about 3 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPANS_H = (1, 6, 12, 24)
SHIFTS = (0.0, 0.5, 1.0)


def psi_table(days: float, live_days: float) -> None:
    from pdm.detectors.drift import psi, score_bins
    from pdm.detectors.gru import GRUAutoencoderDetector
    from tests.support.daemon import SENSORS, TRAIN_START, simulate

    data, _ = simulate(4, days * 86_400, TRAIN_START, normal_only=True)
    det = GRUAutoencoderDetector(window=16, hidden=8, latent=4, epochs=3, features=SENSORS, seed=0)
    det.fit(data[["timestamp", "machine_id", *SENSORS]])
    summary = det.calibration_summary
    assert summary is not None
    edges = np.asarray(summary.edges)
    live, _ = simulate(4, live_days * 86_400, TRAIN_START + days * 86_400, normal_only=True)
    print(f"\nPSI per span (machine's own calibration shares; {days:g} d training, {live_days:g} d later data)\n")
    print("| offset | machine | over threshold | " + " | ".join(f"{h} h p50 / p90" for h in SPANS_H) + " |")
    print("|---|---|---|" + "---|" * len(SPANS_H))
    for shift in SHIFTS:
        for machine, df in live.groupby("machine_id"):
            frame = df[["timestamp", *SENSORS]].copy()
            frame[SENSORS] = frame[SENSORS].to_numpy() + shift * np.asarray(det.scaler_.machines[machine].scale)
            out = det.detect(frame, machine_id=str(machine))
            bins = score_bins(edges, out["score"].dropna().to_numpy())
            ref = summary.reference(str(machine))
            cells = []
            for hours in SPANS_H:
                w = hours * 3600  # 1 Hz readings, stride 1: one window per second
                values = [psi(ref, np.bincount(bins[end - w : end], minlength=len(ref)))
                          for end in range(w, len(bins) + 1, 600)]
                cells.append(f"{np.median(values):.2f} / {np.quantile(values, 0.9):.2f}")
            print(f"| {shift:g} | {machine} | {out['exceeds'].mean():.2%} | " + " | ".join(cells) + " |")


def cost() -> None:
    from pdm import contract
    from pdm.daemon.machines import MachineState
    from pdm.daemon.models import Models
    from pdm.daemon.quality import DriftSettings, MachineQuality
    from tests.support.daemon import LIVE_START, MODEL, SENSORS, machine_arrays, models_dir, simulate

    slot = Models(models_dir(), {}, MODEL, warm_up=False).slots[MODEL]
    frame, _ = simulate(1, 20_000, LIVE_START, normal_only=True)
    ts, values = machine_arrays(frame, str(frame["machine_id"].iloc[0]))
    msgs = [contract.parse_telemetry(contract.encode_batch("m", k, ts[i : i + 10].tolist(),
                                                           {s: values[i : i + 10, j].tolist()
                                                            for j, s in enumerate(SENSORS)}), "m", SENSORS)
            for k, i in enumerate(range(0, 20_000, 10))]

    def run(track: bool) -> float:
        m = MachineState.create("m", slot, None)
        observe, scored = MachineQuality.observe, MachineQuality.scored
        if not track:
            MachineQuality.observe = lambda *a, **k: None  # type: ignore[method-assign]
            MachineQuality.scored = lambda *a, **k: None  # type: ignore[method-assign]
        try:
            t0 = time.perf_counter()
            for msg in msgs:
                ready = m.apply(msg).ready
                if ready is not None:
                    m.count_scored(slot.drift.bins(np.zeros(len(ready.windows))))
            return (time.perf_counter() - t0) / len(msgs) * 1e6
        finally:
            MachineQuality.observe, MachineQuality.scored = observe, scored

    pairs = [(run(False), run(True)) for _ in range(3)]
    without, with_ = min(p[0] for p in pairs), min(p[1] for p in pairs)
    m = MachineState.create("m", slot, None)
    for msg in msgs:
        m.apply(msg)
    t0 = time.perf_counter()
    for _ in range(2000):
        m.quality.report(slot.drift, "m", slot.features, False, DriftSettings())
    report_us = (time.perf_counter() - t0) / 2000 * 1e6
    print(f"\nper message of 10 readings: apply {without:.1f} us without quality tracking, {with_:.1f} us with "
          f"(x{with_ / without:.2f}; the model call, not timed here, is most of a message's cost); "
          f"report {report_us:.1f} us per state published")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=3.0, help="days of training data (default 3)")
    parser.add_argument("--live-days", type=float, default=2.0, help="days of later normal data (default 2)")
    parser.add_argument("--cost-only", action="store_true", help="only the cost figures")
    args = parser.parse_args()
    if not args.cost_only:
        psi_table(args.days, args.live_days)
    cost()


if __name__ == "__main__":
    main()
