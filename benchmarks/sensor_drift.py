"""Sensor drift at rest (`pdm.detectors.rest`): drifting sensors caught, and what else it flags.

Simulates a fleet (``--mix``) for ``--train-days`` of normal running to learn each machine's rest levels, then
``--test-days`` on other days with one forced drift per machine (sensors in turn, severity ``--severity``, starting
6-9 h in, 12-28 h long) among random machine faults (``--fault-rate``), and ``--healthy-days`` of other healthy
days. Every machine's readings are replayed through `RestWatch` in messages of 60, as the daemon does (a sensor
stuck at the end of a message does not count as at rest in it). Prints, per sensor, the drifts caught (a drift episode
overlapping the fault), the delay from onset and the share of the fault flagged; the drift episodes that overlap a
machine fault (by type) and those on healthy data (false alerts). ``--interval`` samples the fleet more slowly.

    PYTHONPATH=. .venv/bin/python benchmarks/sensor_drift.py                 # 12 machines, ~1 min
    PYTHONPATH=. .venv/bin/python benchmarks/sensor_drift.py --seed 3 --severity 0.5
    PYTHONPATH=. .venv/bin/python benchmarks/sensor_drift.py --interval 10          # readings every 10 s
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.daemon.quality import STUCK_FACTOR
from pdm.detectors.drift import longest_repeats
from pdm.detectors.rest import RestLevels, RestWatch, Spans

FEATURES = ["temperature", "vibration", "pressure"]
START = 1795392000
DAY = 86_400
MESSAGE = 60


def simulate(out: Path, args: argparse.Namespace, *extra: str) -> pd.DataFrame:
    subprocess.run([sys.executable, "-m", "simulators.fleet", "--mix", args.mix, "--seed", str(args.seed),  # noqa: S603
                    "--interval", f"{args.interval:g}s", "--out", str(out), "--quiet", *extra], check=True,
                   stdout=subprocess.DEVNULL)
    return pd.read_parquet(out)


def episodes(ts: np.ndarray, values: np.ndarray, watch: RestWatch,
             stuck_after: np.ndarray) -> list[tuple[int, float, float]]:
    """(sensor, start, end) of each drift episode, replaying ``values`` in messages; as in the daemon, a sensor
    whose run of equal values at the end of a message is longer than ``stuck_after`` does not count as at rest in
    it."""
    out: list[tuple[int, float, float]] = []
    since: dict[int, float] = {}
    same = np.r_[np.zeros((1, values.shape[1]), dtype=bool), values[1:] == values[:-1]]
    idx = np.arange(len(values))[:, None]
    run = idx - np.maximum.accumulate(np.where(same, 0, idx), axis=0) + 1  # equal values ending at each row
    for i in range(0, len(ts), MESSAGE):
        stuck = run[min(i + MESSAGE, len(ts)) - 1] > stuck_after
        watch.update(values[i : i + MESSAGE], stuck if stuck.any() else None)
        now, end = set(watch.drifting), float(ts[min(i + MESSAGE, len(ts)) - 1])
        for j in now - since.keys():
            since[j] = end
        for j in set(since) - now:
            out.append((j, since.pop(j), end))
    out += [(j, t, float(ts[-1])) for j, t in since.items()]
    return out


def epoch(col: pd.Series) -> np.ndarray:
    return col.astype("int64").to_numpy() / 1e9 if not np.issubdtype(col.dtype, np.number) else col.to_numpy(float)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mix", default="pump=4,compressor=4,motor=4", help="machines per type")
    p.add_argument("--seed", type=int, default=11, help="the simulated machines' seed")
    p.add_argument("--train-days", type=float, default=2.0)
    p.add_argument("--test-days", type=float, default=3.0)
    p.add_argument("--healthy-days", type=float, default=4.0)
    p.add_argument("--fault-rate", type=float, default=1.5, help="random faults per machine-day in the test days")
    p.add_argument("--severity", type=float, default=0.8, help="of the forced drifts")
    p.add_argument("--interval", type=float, default=1.0, help="sampling interval in seconds (the machines' rate)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = simulate(Path(tmp) / "train.parquet", args, "--duration", f"{args.train_days:g}d", "--normal-only",
                         "--start", str(START))
        machines = sorted(train["machine_id"].unique())
        forced = []
        for n, m in enumerate(machines):
            sensor = FEATURES[n % 3]
            forced += ["--fault", f"machine={m},type=drift,sensor={sensor},start={(6 + n % 4) * 3600},"
                       f"duration={(12 + 4 * (n % 5)) * 3600},severity={args.severity}"]
        test_start = START + round(args.train_days * DAY)
        test = simulate(Path(tmp) / "test.parquet", args, "--duration", f"{args.test_days:g}d", "--noise-seed",
                        str(args.seed + 1), "--fault-rate", str(args.fault_rate), "--start", str(test_start), *forced)
        faults = pd.read_parquet(Path(tmp) / "test_faults.parquet")
        healthy = simulate(Path(tmp) / "healthy.parquet", args, "--duration", f"{args.healthy_days:g}d",
                           "--noise-seed", str(args.seed + 2), "--normal-only", "--start",
                           str(test_start + round(args.test_days * DAY) + 7 * DAY))
    levels = {m: RestLevels.fit([g[FEATURES].to_numpy(float)], period_s=args.interval)
              for m, g in train.groupby("machine_id")}
    stuck_after = STUCK_FACTOR * np.max([longest_repeats(g[FEATURES].to_numpy(float))
                                         for _, g in train.groupby("machine_id")], axis=0)
    checked = Counter(FEATURES[j] for lv in levels.values() for j, c in enumerate(lv.checked) if c)
    print(f"{len(machines)} machines at {args.interval:g} s; sensors with a rest level (checked): {dict(checked)}; "
          f"spans in readings: {Spans.at(args.interval)}\n")
    caught: dict[str, list[tuple[bool, float | None, float, bool]]] = {f: [] for f in FEATURES}
    during: Counter[str] = Counter()
    for m, g in test.groupby("machine_id"):
        ts = epoch(g["timestamp"])
        eps = episodes(ts, g[FEATURES].to_numpy(float), RestWatch(levels[m]), stuck_after)
        mine = faults[faults["machine_id"] == m]
        for f in mine[mine["type"] == "drift"].itertuples():
            j = FEATURES.index(str(f.sensor))
            hits = [(s, e) for k, s, e in eps if k == j and s <= f.end and e >= f.start]
            inside = (ts >= f.start) & (ts < f.end)
            flagged = sum(((ts >= s) & (ts <= e) & inside).sum() for s, e in hits) / max(1, inside.sum())
            delay = (min(s for s, _ in hits) - f.start) / 3600 if hits else None
            caught[FEATURES[j]].append((bool(hits), delay, float(flagged), levels[m].checked[j]))
        for k, s, e in eps:
            over = mine[(mine["start"] <= e) & (mine["end"] >= s)]
            if not ((over["type"] == "drift") & (over["sensor"] == FEATURES[k])).any():
                same = sorted(set(over.loc[over["sensor"] == FEATURES[k], "type"]))  # another fault of that sensor
                label = "/".join(sorted(set(over["type"]))) or "no fault"
                during[f"{'/'.join(same)} of that sensor" if same else label] += 1
    print("| drifting sensor | checked on | caught | delay from onset (h) | share of the fault flagged |")
    print("|---|---:|---:|---|---:|")
    for f, rows in caught.items():
        got = [r for r in rows if r[0]]
        delays = ", ".join(f"{r[1]:.1f}" for r in got if r[1] is not None) or "-"
        share = f"{np.mean([r[2] for r in got]):.0%}" if got else "-"
        n_checked = sum(r[3] for r in rows)
        print(f"| {f} | {n_checked}/{len(rows)} | {len(got)}/{len(rows)} | {delays} | {share} |")
    print(f"\ndrift episodes not on a drifting sensor, in the test days (by the faults they overlap): {dict(during)}")
    false = 0
    for m, g in healthy.groupby("machine_id"):
        false += len(episodes(epoch(g["timestamp"]), g[FEATURES].to_numpy(float), RestWatch(levels[m]), stuck_after))
    days = len(machines) * args.healthy_days
    print(f"drift episodes on {days:g} healthy machine-days: {false} ({false / days:.2f} per machine-day)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
