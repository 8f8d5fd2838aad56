"""What a retrain costs: wall time and peak memory of ``python -m pdm retrain`` for one machine-week and for a
100-machine day of data (1 Hz, simulated with ``simulators.fleet``, random labelled faults).

Each run is its own child process; peak memory is that child's ``ru_maxrss`` (``os.wait4``), which counts
TensorFlow's native allocations (``tracemalloc`` sees only Python objects). Runs per data set:

- ``first``: no champion yet (train, calibrate, judge the challenger alone, save);
- ``champion``: a second retrain against the first version, without screening (as from the recorder, whose alert
  history already is the champion's verdict): both models judged;
- ``screened``: the same with ``--screen`` (files without alert history): one more scoring pass over every reading.

Subsampling, where it is sound (and the detector's or retraining's own rule, not the benchmark's):

- training windows: at most ``max_train_windows`` (20,000) with a stride (``stride="auto"``); consecutive 1 Hz
  windows overlap almost entirely, so a stride keeps every machine, regime and hour while bounding the epoch cost;
  this is why training costs the same for a machine-week and a 100-machine day;
- judging: at most ``--max-eval-rows`` (500,000) held-out readings, the most recent contiguous ones per machine (the
  alarm rule needs real sequences);
- not subsampled: the calibration windows (the threshold is a tail estimate: every window counts) and screening
  (every reading must be looked at to exclude a fault).

Hyper-parameters are the detector's defaults except ``--epochs`` (default 10 here; early stopping usually ends
before the default 50: the per-epoch time is reported so the full cost can be extrapolated).

Example: ``.venv/bin/python benchmarks/retrain_cost.py`` (about 30-60 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"machine-week": ("pump=1", "7d", 11), "fleet-day": ("pump=100", "1d", 12)}
EPOCH = re.compile(r"epoch (\d+)/\d+ .*\(([\d.]+) s\)")


def child(args: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``args``; (exit code, wall seconds, peak RSS in MB of that process)."""
    started = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,  # noqa: S603 - our commands
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - started, usage.ru_maxrss / 1024.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    p.add_argument("--runs", nargs="+", choices=["first", "champion", "screened"],
                   default=["first", "champion", "screened"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", type=Path, default=ROOT / "build" / "retrain-cost")
    args = p.parse_args()
    rows = []
    for name in args.datasets:
        mix, duration, seed = DATASETS[name]
        work = args.out / name
        data = work / "data.parquet"
        if not data.exists():
            work.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "simulators.fleet", "--mix", mix, "--duration", duration,  # noqa: S603
                            "--seed", str(seed), "--out", str(data)], cwd=ROOT, check=True)
        model = work / "models" / "pump"
        shutil.rmtree(model, ignore_errors=True)
        for run in args.runs:
            extra = {"first": [], "champion": ["--no-screen"], "screened": ["--screen"]}[run]
            cmd = [sys.executable, "-m", "pdm", "retrain", "--model", str(model), "--data", str(data),
                   "--epochs", str(args.epochs), "--force", *extra]
            log = work / f"{run}.log"
            code, wall, rss = child(cmd, log)
            if code not in (0, 3):
                print(log.read_text()[-3000:])
                return 1
            text = log.read_text()
            epochs = [float(s) for _, s in EPOCH.findall(text)]
            current = (model / "current").read_text().strip()
            newest = sorted(p.name for p in model.iterdir() if p.is_dir() and not p.name.startswith("."))[-1]
            report = json.loads((model / newest / "report.json").read_text())
            fit = report["challenger"]["fit"]
            rows.append({
                "data": name, "run": run, "rows": report["data"]["rows"], "machines": report["data"]["machines"],
                "wall_s": round(wall, 1), "peak_rss_mb": round(rss), **report["timings_s"],
                "epochs": len(epochs), "epoch_s_median": round(sorted(epochs)[len(epochs) // 2], 1) if epochs else None,
                "train_windows": fit["train_windows"], "stride": fit["stride"],
                "calibration_windows": fit["calibration_windows"],
                "holdout_windows": report["challenger"]["figures"]["windows"], "current": current == newest})
            print(json.dumps(rows[-1]), flush=True)
    print()
    keys = ["data", "run", "rows", "wall_s", "peak_rss_mb", "load_and_screen", "fit", "judge", "epochs",
            "epoch_s_median", "train_windows", "stride", "calibration_windows", "holdout_windows"]
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(str(r.get(k)) for k in keys))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
