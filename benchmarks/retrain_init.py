"""Retraining from scratch or fine-tuned from the champion: which should be the default? Measured on the fleet
simulator, small models, few machines (cheap on purpose).

Per seed (the same units for every span: the simulator's healthy counterfactual):

1. champion: the first retrain (no champion) on ``--train-days`` of normal-only data;
2. retrain data: the next ``--retrain-days`` with random faults, labelled (excluded from training, judged on);
3. for each ``--init``: a retrain from a copy of the champion, then an independent test on the following
   ``--test-days`` with faults, judged with `pdm.evaluation` (the same rules as ``pdm evaluate``).

Reported per run: wall time, epochs run, the retrain's decision and held-out raise rate, and the test's machine
faults detected, false alarms per machine-day and median detection delay.

Example: ``.venv/bin/python benchmarks/retrain_init.py --seeds 1 2 --machines 4``
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm.detectors.base import Detector  # noqa: E402
from pdm.evaluation import evaluate_machine, label_spans, summarise  # noqa: E402
from pdm.retrain import RetrainOptions, from_frame, retrain  # noqa: E402

DAY = 86_400.0
SMALL = {"window": 32, "hidden": 16, "latent": 8, "epochs": 20, "max_train_windows": 8000}


def simulate(out: Path, machines: int, days: float, seed: int, *, fault_rate: float, normal: bool) -> pd.DataFrame:
    args = [sys.executable, "-m", "simulators.fleet", "--mix", f"pump={machines}", "--duration", f"{days * 24:g}h",
            "--seed", str(seed), "--out", str(out)]
    args += ["--normal-only"] if normal else ["--fault-rate", str(fault_rate)]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)  # noqa: S603 - our own simulator
    return pd.read_parquet(out)


def test_figures(det: Detector, test: pd.DataFrame) -> dict[str, Any]:
    results = []
    grace = 2.0 * det.window_length * det.period_s_
    for m, group in test.groupby("machine_id"):
        frame = group.reset_index(drop=True)
        out = det.detect(frame.drop(columns=["machine_id"]), machine_id=str(m))
        ts = frame["timestamp"].to_numpy()
        spans = label_spans(ts, frame["fault_type"].to_numpy(), str(m), frame["fault_kind"].to_numpy())
        results.append(evaluate_machine(str(m), ts, out["alarm"].to_numpy(), spans, grace))
    r = summarise(results)
    return {"detected": f"{r.detected}/{r.faults}", "fa_per_day": r.false_alarms_per_machine_day,
            "median_delay_s": r.median_delay_s}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--machines", type=int, default=4)
    p.add_argument("--train-days", type=float, default=1.0)
    p.add_argument("--retrain-days", type=float, default=1.0)
    p.add_argument("--test-days", type=float, default=1.0)
    p.add_argument("--fault-rate", type=float, default=1.0)
    p.add_argument("--screen", action=argparse.BooleanOptionalAction, default=None,
                   help="screen the retrain data with the champion (default: retrain's default, on for files)")
    p.add_argument("--margin-before", type=float, default=2 * 3600.0, help="seconds before alerts/screened alarms")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "retrain-init")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for seed in args.seeds:
        work = args.out / f"seed{seed}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        total = args.train_days + args.retrain_days + args.test_days
        normal = simulate(work / "normal.parquet", args.machines, total, seed, fault_rate=0.0, normal=True)
        full = simulate(work / "full.parquet", args.machines, total, seed, fault_rate=args.fault_rate,
                        normal=False)
        t0 = float(full["timestamp"].min())
        cut1, cut2 = t0 + args.train_days * DAY, t0 + (args.train_days + args.retrain_days) * DAY
        history = normal[normal["timestamp"] < cut1].drop(columns=["machine_type"])
        recent = full[(full["timestamp"] >= cut1) & (full["timestamp"] < cut2)]
        test = full[full["timestamp"] >= cut2].drop(columns=["machine_type", "fault_id"])
        champion = work / "champion" / "pump"
        started = time.monotonic()
        retrain(from_frame(history), champion, RetrainOptions(overrides=dict(SMALL)))
        print(f"seed {seed}: champion in {time.monotonic() - started:.0f} s", flush=True)
        rows.append({"seed": seed, "init": "champion", **test_figures(Detector.load(champion), test)})
        data = from_frame(recent, label_column="fault_type", kind_column="fault_kind")
        for init in ("scratch", "finetune"):
            name_dir = work / init / "pump"
            shutil.copytree(champion, name_dir)
            started = time.monotonic()
            out = retrain(data, name_dir, RetrainOptions(init=init, screen=args.screen,  # the champion's params
                                                         margin_before_s=args.margin_before))
            seconds = time.monotonic() - started
            fit = json.loads((out.version_dir / "evaluation.json").read_text())
            ch = out.report["challenger"]["figures"]
            excluded = out.report["data"]["exclusions"]["fraction_excluded"]
            rows.append({"seed": seed, "init": init, "seconds": round(seconds), "epochs": fit["epochs_run"],
                         "excluded": round(excluded, 3),
                         "val_loss": round(fit["validation_loss"], 4), "promoted": out.promoted,
                         "holdout_raise_rate": ch["raise_rate"],
                         "champion_raise_rate": out.decision.checks[0]["champion"] if out.decision.checks else None,
                         **test_figures(Detector.load(out.version_dir), test)})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    for init in ("scratch", "finetune"):
        part = table[table["init"] == init]
        print(f"{init}: mean {part['seconds'].mean():.0f} s, {part['epochs'].mean():.1f} epochs, validation loss "
              f"{part['val_loss'].mean():.4f}, test FA/machine-day {np.nanmean(part['fa_per_day']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
