"""Detection quality on the fleet simulator's labelled data: the GRU autoencoder against the z-score baseline.

Runs the product's own commands, so the figures are what a user would get:

1. ``simulators.fleet --normal-only`` for the training span (``--train-days``);
2. ``simulators.fleet`` with random faults over training + test span, same seed (same units, same normal
   behaviour); only the rows after the training span are evaluated, so the model is judged on its future;
3. ``pdm train`` on the normal data, ``pdm evaluate`` on the later, labelled data (figures for both detectors).

Example: ``.venv/bin/python benchmarks/evaluate_on_simulator.py --machines 6 --train-days 2 --test-days 2``
Extra arguments after ``--`` go to ``pdm train`` (e.g. ``-- --hidden 32 --scaling global``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

DAY = 86_400.0


def sh(*args: str | Path) -> None:
    cmd = [sys.executable, *map(str, args)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)  # noqa: S603 - our own commands


def make_data(out: Path, *, machine_type: str, machines: int, train_days: float, test_days: float,
              fault_rate: float, seed: int, reuse: bool = False, ambient: bool = False) -> tuple[Path, Path]:
    """Steps 1 and 2: normal training data and the later, labelled test data (``train.parquet``, ``test.parquet``
    under ``out``); also used by ``benchmarks/real_data.py``. ``ambient``: with an ``ambient`` column (the other
    columns are the same readings as without it)."""
    out.mkdir(parents=True, exist_ok=True)
    mix = f"{machine_type}={machines}"
    train, full, test = out / "train.parquet", out / "full.parquet", out / "test.parquet"
    if not (reuse and train.exists() and test.exists()):
        extra = ("--ambient-sensor",) if ambient else ()
        sh("-m", "simulators.fleet", "--mix", mix, "--duration", f"{train_days * 24:g}h", "--normal-only",
           "--seed", seed, "--out", train, *extra)
        sh("-m", "simulators.fleet", "--mix", mix, "--duration", f"{(train_days + test_days) * 24:g}h",
           "--fault-rate", fault_rate, "--seed", seed, "--out", full, *extra)
        data = pd.read_parquet(full)
        start = data["timestamp"].min() + train_days * DAY
        data[data["timestamp"] >= start].reset_index(drop=True).to_parquet(test)
    return train, test


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", default="pump", choices=["pump", "compressor", "motor"])
    p.add_argument("--machines", type=int, default=6)
    p.add_argument("--train-days", type=float, default=2.0)
    p.add_argument("--test-days", type=float, default=2.0)
    p.add_argument("--fault-rate", type=float, default=0.5, help="random faults per machine-day")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("build/eval-sim"))
    p.add_argument("--reuse", action="store_true", help="reuse generated data and the trained model")
    p.add_argument("train_args", nargs="*", help="extra arguments for `pdm train` (after --)")
    args = p.parse_args()
    started = time.monotonic()
    train, test = make_data(args.out, machine_type=args.type, machines=args.machines, train_days=args.train_days,
                            test_days=args.test_days, fault_rate=args.fault_rate, seed=args.seed, reuse=args.reuse)
    model = args.out / "models" / args.type
    if not (args.reuse and (model / "current").exists()):
        sh("-m", "pdm", "train", "--data", train, "--out", model, "--features", "temperature,vibration,pressure",
           *args.train_args)
    figures = args.out / "figures.json"
    sh("-m", "pdm", "evaluate", "--model", model, "--data", test, "--label-column", "fault_type",
       "--kind-column", "fault_kind", "--json", figures, "--plot", args.out / "evaluate.png")
    result = json.loads(figures.read_text())
    gru, base = result["GRU autoencoder"], result["z-score baseline"]
    right, judged, by_type = top_sensor_accuracy(model, test)
    per_fault = gru["alerts_per_detected_fault"] or 0.0
    print(f"\nGRU detected {gru['detected']}/{gru['faults']} machine faults with {gru['false_alarms']} false alarms "
          f"({gru['false_alarms_per_machine_day']:.2f} per machine-day), {per_fault:.2f} alerts per detected fault, "
          f"top sensor right for {right}/{judged} ({by_type}); baseline {base['detected']}/{base['faults']} with "
          f"{base['false_alarms']} ({time.monotonic() - started:.0f} s in all)")
    return 0


def top_sensor_accuracy(model: Path, test: Path) -> tuple[int, int, dict[str, str]]:
    """For each detected machine fault, the sensor with the largest mean contribution over its first alarm
    episode, judged against the sensors the simulator's fault type shows on (``simulators.fleet.faults``)."""
    import numpy as np

    from pdm.detectors.base import Detector
    from simulators.fleet.faults import FAULT_TYPES

    det = Detector.load(model)
    data = pd.read_parquet(test)
    right = judged = 0
    tally: dict[str, list[int]] = {}
    for machine, group in data.groupby("machine_id"):
        rows = group.sort_values("timestamp").reset_index(drop=True)
        out = det.detect(rows, machine_id=str(machine))
        alarm = out["alarm"].to_numpy()
        contrib = out[[f"contrib_{f}" for f in det.feature_names]].to_numpy()
        kinds = rows["fault_kind"].fillna("").to_numpy()
        for _, span in rows[kinds == "machine"].groupby("fault_id"):
            lo, hi = span.index.min(), span.index.max()
            hits = np.flatnonzero(alarm[lo : hi + 1])
            if not len(hits):
                continue
            start = lo + hits[0]
            end = start + int(np.argmin(alarm[start:])) if not alarm[start:].all() else len(alarm)
            top = det.feature_names[int(np.nanmean(contrib[start:end], axis=0).argmax())]
            kind = str(span["fault_type"].iloc[0])
            ok = top in FAULT_TYPES[kind].sensors
            right, judged = right + ok, judged + 1
            tally.setdefault(kind, [0, 0])
            tally[kind][0] += ok
            tally[kind][1] += 1
    return right, judged, {k: f"{a}/{b}" for k, (a, b) in sorted(tally.items())}


if __name__ == "__main__":
    sys.exit(main())
