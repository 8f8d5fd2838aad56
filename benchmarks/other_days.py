"""False alarms of the shipped models (``models/``) on other healthy days of their own machines.

The demo's models are trained on simulated days of the demo fleet's machines (`pdm.demo.models`); this simulates
``--days`` other days of the same machines (other noise seeds, no faults, each starting from machines at rest, as
after a shutdown), scores them in batch with each type's model and counts the alerts the alarm rule raises: every
one is a false alarm. Prints, per type, alerts per machine-day, the share of readings under an open alert, how many
alerts came in the first hour (the cold start) and each alert's day, machine, reading and top sensor.

    PYTHONPATH=. .venv/bin/python benchmarks/other_days.py                    # 3 types x 6 days x 12 h, ~2 min
    PYTHONPATH=. .venv/bin/python benchmarks/other_days.py --models-dir /tmp/m --types pump
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.demo.models import DATA_SEED, TRAIN_MACHINES
from pdm.detectors import Detector

FIRST_DAY = 1796385600  # 2026-12-04T12:00:00Z, after every training day of `pdm.demo.models`


def alerts_of(det: Detector, frame: pd.DataFrame, machine: str) -> tuple[list[tuple[int, str]], np.ndarray]:
    """(reading index, top sensor) of each raise, and the alarm flags."""
    out = det.detect(frame.drop(columns=["machine_id"]).reset_index(drop=True), machine_id=machine)
    alarm = out["alarm"].to_numpy(dtype=bool)
    starts = np.flatnonzero(alarm[1:] & ~alarm[:-1]) + 1
    if len(alarm) and alarm[0]:
        starts = np.r_[0, starts]
    shares = out[[f"contrib_{f}" for f in det.feature_names]].to_numpy()
    return [(int(s), det.feature_names[int(np.nanargmax(shares[s]))]) for s in starts], alarm


def run_type(kind: str, models_dir: Path, days: int, hours: float, work: Path) -> None:
    det = Detector.load(models_dir / kind)
    found: list[tuple[int, str, int, str]] = []
    rows = flagged = 0
    machine_days = 0.0
    for day in range(1, days + 1):
        start = FIRST_DAY + day * 86_400 + (day % 3) * 21_600  # other dates and times of day
        path = work / f"{kind}-{day}.parquet"
        subprocess.run([sys.executable, "-m", "simulators.fleet", "--mix", f"{kind}={TRAIN_MACHINES}",  # noqa: S603
                        "--duration", f"{hours:g}h", "--normal-only", "--seed", str(DATA_SEED[kind]),
                        "--noise-seed", str(day), "--start", str(start), "--out", str(path), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        data = pd.read_parquet(path)
        for machine, frame in data.groupby("machine_id"):
            raised, alarm = alerts_of(det, frame, str(machine))
            found += [(day, str(machine), at, top) for at, top in raised]
            rows += len(alarm)
            flagged += int(alarm.sum())
            machine_days += len(frame) * det.period_s / 86_400
    first_hour = sum(1 for _, _, at, _ in found if at * det.period_s < 3600)
    print(f"{kind:<10} {len(found):>3} alerts in {machine_days:.1f} machine-days = {len(found) / machine_days:.2f} "
          f"per machine-day; readings under an alert {flagged / max(rows, 1):.1%}; in the first hour {first_hour}")
    for day, machine, at, top in found:
        print(f"           day {day} {machine} reading {at} ({at * det.period_s / 3600:.1f} h), top sensor {top}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--types", default="pump,compressor,motor", help="comma-separated machine types")
    p.add_argument("--days", type=int, default=6, help="other days per type")
    p.add_argument("--hours", type=float, default=12.0, help="simulated hours per day")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.types.split(","):
            run_type(kind.strip(), args.models_dir, args.days, args.hours, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
