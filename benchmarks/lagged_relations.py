"""Would the relations term gain from memory? How well the other channels predict a machine's temperature.

The GRU's relations term predicts each sensor's window mean (64 readings) from the other sensors' window means
(`pdm.detectors.relations`). A temperature that follows the load with a lag of minutes is poorly predicted that way:
the same load now goes with different temperatures depending on the load before. This measures, per machine, the
held-out residual spread of a linear fit of the temperature's window means on the other channels' window means,
without and with those channels smoothed at fixed time constants (5 and 30 minutes, not tuned to either source):

- the fleet of `benchmarks/foreign_fleet.py` (10 machines per type, 26 h, first 24 h to fit, last 2 judged);
- optionally a simulator Parquet (``--sim``), e.g. ``python -m simulators.fleet --mix motor=6 --duration 48h
  --normal-only --seed 5 --out motors.parquet`` (the training data of `benchmarks/evaluate_on_simulator.py`; first
  half to fit, second judged).

A fault that adds a few degrees is hidden in a residual spread of that size and stands out in a smaller one. Only
a measurement: nothing in the product uses smoothed channels (the daemon's window holds 64 readings, no more).

    PYTHONPATH=. .venv/bin/python benchmarks/lagged_relations.py                    # ~1 min
    PYTHONPATH=. .venv/bin/python benchmarks/lagged_relations.py --sim motors.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.foreign_fleet import THIRD, lagged, machine

WINDOW = 64
TAUS = (300.0, 1800.0)


def window_means(x: np.ndarray, ends: np.ndarray) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    return np.asarray((c[ends] - c[ends - WINDOW]) / WINDOW)


def residual_spread(frame: pd.DataFrame, others: list[str], taus: tuple[float, ...], fit_share: float) -> float:
    """Held-out residual standard deviation of the temperature's window means (one a minute)."""
    cols = {c: frame[c].interpolate().bfill().to_numpy(dtype=np.float64) for c in ["temperature", *others]}
    ends = np.arange(WINDOW, len(frame) + 1, 60)
    x = [window_means(cols[c], ends) for c in others]
    x += [lagged(cols[c], tau)[ends - 1] for c in others for tau in taus]
    design = np.column_stack([np.ones(len(ends)), *x])
    y = window_means(cols["temperature"], ends)
    n = int(len(ends) * fit_share)
    beta, *_ = np.linalg.lstsq(design[:n], y[:n], rcond=None)
    return float(np.std(y[n:] - design[n:] @ beta))


def report(name: str, frames: list[pd.DataFrame], others_of: dict[str, list[str]], fit_share: float) -> None:
    plain = [residual_spread(f, others_of[str(f["machine_id"].iloc[0])], (), fit_share) for f in frames]
    memory = [residual_spread(f, others_of[str(f["machine_id"].iloc[0])], TAUS, fit_share) for f in frames]
    spread = float(np.median([f["temperature"].std() for f in frames]))
    print(f"| {name} | {len(frames)} | {spread:.2f} | {np.median(plain):.2f} | {np.median(memory):.2f} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--machines", type=int, default=10, help="foreign machines per type")
    p.add_argument("--seed", type=int, default=1, help="the foreign generator's seed")
    p.add_argument("--sim", type=Path, action="append", default=[], help="a simulator Parquet (repeat)")
    args = p.parse_args()
    print("held-out residual spread (median over machines, degrees) of the temperature's window means predicted from "
          f"the other channels' window means, and also from those channels smoothed at {TAUS} s\n")
    print("| source | machines | temperature spread | window means only | with smoothed channels |")
    print("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(args.seed)
    for kind in ("pump", "motor"):
        frames = [machine(kind, i + 1, 26 * 3600, 600.0, rng)[0] for i in range(args.machines)]
        others = {str(f["machine_id"].iloc[0]): ["vibration", THIRD[kind]] for f in frames}
        report(f"foreign {kind}s", frames, others, 24 / 26)
    for path in args.sim:
        data = pd.read_parquet(path)
        frames = [g.sort_values("timestamp") for _, g in data.groupby("machine_id")]
        others = {str(f["machine_id"].iloc[0]): ["vibration", "pressure"] for f in frames}
        report(f"simulator {path}", frames, others, 0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
