"""Commissioning: a model trained on a short history, retrained after its first day of live data.

The plant's normal case (docs/real-data.md, "Short histories"): the first model of a machine is trained on what
there is, a few hundred readings that do not show its operating range, and it flags much of the machine's later
healthy running. The product's answer is more history: record the first day and retrain (`pdm retrain`). This
measures whether that works, per machine type and machine (simulated, healthy throughout, ``--seed``):

1. the champion: trained on the first ``--rows`` readings;
2. its first day (the readings after those, to ``--day-hours``): the share under an open alarm;
3. `pdm.retrain.retrain` on the whole first day (files without labels), with ``trust_champion=True`` (the guard as
   it was: the champion's alarms screen the day, as the daemon's alerts would) and with the library defaults (a
   short-history champion's alarms are not taken as faults);
4. the following ``--test-hours``, scored by each retrained model: the share of readings under an alarm and of
   windows over the threshold (every flag is false);
5. with ``--days N``, the daily retrain of ``pdm retrain --every 24h`` goes on: after each further day the model is
   retrained (library defaults) on the whole history recorded so far, with the model of the day before as its
   champion, and the ``--test-hours`` after that day are judged the same way (the ``trust_champion`` run of step 3
   is left out then).

    PYTHONPATH=. .venv/bin/python benchmarks/commissioning.py                      # 3 types x 1 machine
    PYTHONPATH=. .venv/bin/python benchmarks/commissioning.py --machines 2 --types pump
    PYTHONPATH=. .venv/bin/python benchmarks/commissioning.py --days 4          # daily retrains, 4 days
    PYTHONPATH=. .venv/bin/python benchmarks/commissioning.py --ambient         # temperature over an ambient sensor
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

FEATURES = ["temperature", "vibration", "pressure"]
START = 1796990400  # 2026-12-11T12:00:00Z: a day the shipped models never saw


def flagged(det: object, frame: pd.DataFrame) -> tuple[float, float]:
    """Shares of scored readings under an alarm and over the threshold."""
    out = det.detect(frame)  # type: ignore[attr-defined]
    scored = out["score"].notna().to_numpy()
    alarm, exceeds = (out[c].to_numpy(dtype=bool)[scored] for c in ("alarm", "exceeds"))
    return float(alarm.mean()), float(exceeds.mean())


def verdict(out: object) -> str:
    """``True``, or ``False`` with the first reason the challenger was not promoted."""
    if out.promoted:  # type: ignore[attr-defined]
        return "True"
    reasons = out.decision.reasons  # type: ignore[attr-defined]
    return f"False ({reasons[0][:90]})" if reasons else "False"


def daily(machine: str, frame: pd.DataFrame, t: np.ndarray, k: int, *, day_s: float, name_dir: Path,
          test_hours: float) -> None:
    """Retrain ``name_dir`` on the first ``k`` days (its current model the champion) and judge the hours after."""
    from pdm.detectors.base import Detector
    from pdm.errors import PdmError
    from pdm.retrain import RetrainOptions, from_frame, retrain

    history = frame[t < t[0] + k * day_s].reset_index(drop=True)
    test = frame[(t >= t[0] + k * day_s) & (t < t[0] + k * day_s + test_hours * 3600)].reset_index(drop=True)
    champion = Detector.load(name_dir)
    before, _ = flagged(champion, frame[(t >= t[0] + (k - 1) * day_s) & (t < t[0] + k * day_s)].reset_index(drop=True))
    started = time.monotonic()
    label = f"day {k}, defaults"
    try:
        out = retrain(from_frame(history.drop(columns=["machine_type"], errors="ignore")), name_dir, RetrainOptions())
    except PdmError as exc:
        print(f"| {machine} | {before:.1%} (day {k}) | {label}: failed, {str(exc)[:70]} | | | |", flush=True)
        return
    alarm, window = flagged(Detector.load(name_dir), test)
    excluded = out.exclusions.rows_excluded / max(1, out.exclusions.rows_total)
    print(f"| {machine} | {before:.1%} (day {k}) | {label} ({time.monotonic() - started:.0f} s) | {excluded:.1%} | "
          f"{verdict(out)} | {alarm:.1%} / {window:.1%} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--types", default="pump,compressor,motor", help="comma-separated machine types")
    p.add_argument("--machines", type=int, default=1, help="machines per type")
    p.add_argument("--rows", type=int, default=400, help="the champion's training readings")
    p.add_argument("--day-hours", type=float, default=24.0, help="live hours recorded before the retrain")
    p.add_argument("--test-hours", type=float, default=6.0, help="hours scored after the retrain")
    p.add_argument("--seed", type=int, default=7, help="the simulated machines' seed")
    p.add_argument("--days", type=int, default=1, help="days of daily retraining (each on all history so far)")
    p.add_argument("--ambient", action="store_true",
                   help="machines with an ambient sensor; the champion (and so every retrain) scores temperature over "
                   "it (references={'temperature': 'ambient'})")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from pdm.detectors.base import Detector
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.errors import PdmError
    from pdm.retrain import RetrainOptions, from_frame, retrain

    print(f"champion: first {args.rows} readings; retrain on the first {args.day_hours:g} h; judged on the next "
          f"{args.test_hours:g} h (healthy: every flag is false)\n")
    print("| machine | champion, first day: alarm | retrain | excluded from training | promoted | next hours: alarm / "
          "per window |")
    print("|---|---:|---|---:|---|---:|")
    hours = args.days * args.day_hours + args.test_hours
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k.strip() for k in args.types.split(",")]:
            path = Path(tmp) / f"{kind}.parquet"
            subprocess.run([sys.executable, "-m", "simulators.fleet", "--mix", f"{kind}={args.machines}",  # noqa: S603
                            "--duration", f"{hours:g}h", "--normal-only", "--seed", str(args.seed), "--start",
                            str(START), "--out", str(path), "--quiet", *(["--ambient-sensor"] if args.ambient else [])],
                           check=True, stdout=subprocess.DEVNULL)
            data = pd.read_parquet(path)
            for machine, group in data.groupby("machine_id"):
                frame = group.reset_index(drop=True)
                t = frame["timestamp"].astype("int64").to_numpy() / 1e9 if not np.issubdtype(
                    frame["timestamp"].dtype, np.number) else frame["timestamp"].to_numpy(float)
                day_s = args.day_hours * 3600
                day = frame[t < t[0] + day_s].reset_index(drop=True)
                test = frame[(t >= t[0] + day_s) & (t < t[0] + day_s + args.test_hours * 3600)].reset_index(drop=True)
                champion = GRUAutoencoderDetector(features=[*FEATURES, "ambient"], timestamp_column="timestamp",
                                                  references={"temperature": "ambient"}) if args.ambient else \
                    GRUAutoencoderDetector(features=FEATURES, timestamp_column="timestamp")
                champion.fit(frame.iloc[: args.rows])
                first_day, _ = flagged(champion, day.iloc[args.rows :])
                runs = (("defaults", False),) if args.days > 1 else (("trust_champion=True", True), ("defaults", False))
                for label, trust in runs:
                    name_dir = Path(tmp) / f"{machine}-{label}"
                    champion.save(name_dir)
                    started = time.monotonic()
                    try:
                        out = retrain(from_frame(day.drop(columns=["machine_type"], errors="ignore")), name_dir,
                                      RetrainOptions(trust_champion=trust))
                    except PdmError as exc:
                        print(f"| {machine} | {first_day:.1%} | {label}: failed, {str(exc)[:70]} | | | |", flush=True)
                        continue
                    current = Detector.load(name_dir)
                    alarm, window = flagged(current, test)
                    excluded = out.exclusions.rows_excluded / max(1, out.exclusions.rows_total)
                    print(f"| {machine} | {first_day:.1%} | {label} ({time.monotonic() - started:.0f} s) | "
                          f"{excluded:.1%} | {verdict(out)} | {alarm:.1%} / {window:.1%} |", flush=True)
                for k in range(2, args.days + 1):
                    daily(machine, frame, t, k, day_s=day_s, name_dir=Path(tmp) / f"{machine}-defaults",
                          test_hours=args.test_hours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
