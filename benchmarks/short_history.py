"""Short histories: train on the first few hundred readings of one healthy machine, score the rest of its day.

The case the detection issue opened with: a plant trains on what it has, often a few hundred readings of normal
operation that do not show the machine's whole operating range, and the model must not flag most of the machine's
later healthy readings (or must say plainly that the history does not cover the range). For each machine type this
simulates ``--machines`` healthy machines for ``--hours`` (no faults), trains each detector on the first ``--rows``
readings of each machine and scores the rest: every flagged reading is a false alarm. Prints, per type, machine and
detector, the share of later readings flagged by the alarm rule and by single-window exceedance, and the warnings
the fitted detector gave.

    PYTHONPATH=. .venv/bin/python benchmarks/short_history.py                       # 3 types x 2 machines, ~4 min
    PYTHONPATH=. .venv/bin/python benchmarks/short_history.py --rows 400 --gru-param center_windows=false
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from pdm.detectors.base import Detector

FEATURES = ["temperature", "vibration", "pressure"]
START = 1796990400  # 2026-12-11T12:00:00Z: a day the shipped models never saw


def params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def detectors(gru: dict[str, Any]) -> dict[str, Detector]:
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.pca import PCADetector
    from pdm.detectors.zscore import RobustZScoreDetector

    common: dict[str, Any] = {"features": FEATURES, "timestamp_column": "timestamp", "machine_column": None}
    return {"GRU": GRUAutoencoderDetector(**common, **gru), "PCA T²+Q": PCADetector(**common),
            "z-score": RobustZScoreDetector(**common)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--types", default="pump,compressor,motor", help="comma-separated machine types")
    p.add_argument("--machines", type=int, default=2, help="machines per type")
    p.add_argument("--rows", type=int, default=400, help="training readings (the first of each machine's day)")
    p.add_argument("--hours", type=float, default=6.0, help="simulated hours per machine")
    p.add_argument("--seed", type=int, default=7, help="the simulated machines' seed")
    p.add_argument("--gru-param", action="append", default=[], metavar="NAME=VALUE", help="GRU override (repeat)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    gru = {"epochs": 50, **params(args.gru_param)}
    print(f"train on the first {args.rows} readings, score the next {args.hours:g} h less those; GRU {gru}\n")
    print("| type | machine | detector | flagged by alarm | flagged per window | warnings |")
    print("|---|---|---|---:|---:|---|")
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k.strip() for k in args.types.split(",")]:
            path = Path(tmp) / f"{kind}.parquet"
            subprocess.run([sys.executable, "-m", "simulators.fleet", "--mix", f"{kind}={args.machines}",  # noqa: S603
                            "--duration", f"{args.hours:g}h", "--normal-only", "--seed", str(args.seed),
                            "--start", str(START), "--out", str(path), "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            data = pd.read_parquet(path)
            for machine, group in data.groupby("machine_id"):
                frame = group.drop(columns=["machine_id"]).reset_index(drop=True)
                train, rest = frame.iloc[: args.rows], frame.iloc[args.rows :].reset_index(drop=True)
                for name, det in detectors(gru).items():
                    det.fit(train)
                    out = det.detect(rest)
                    scored = out["score"].notna().to_numpy()
                    alarm = float(out["alarm"].to_numpy(dtype=bool)[scored].mean())
                    exceeds = float(out["exceeds"].to_numpy(dtype=bool)[scored].mean())
                    totals.setdefault(name, []).append(exceeds)
                    warned = "; ".join(w.split(":")[0] for w in det.fit_warnings) or "none"
                    print(f"| {kind} | {machine} | {name} | {alarm:.1%} | {exceeds:.1%} | {warned} |", flush=True)
    print("\nmean share flagged per window: " + ", ".join(f"{n} {np.mean(v):.1%}" for n, v in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
