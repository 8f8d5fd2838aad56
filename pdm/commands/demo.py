"""``python -m pdm demo`` (``make demo``): the whole product live on this machine, no setup.

A broker on a free loopback port, the scoring daemon with the models shipped in ``models/``, the fleet simulator
with injected faults at accelerated speed, a live terminal view, then injected faults against raised alerts and a
PNG report. See `pdm.demo.run` for the order of things.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pdm.commands.common import DefaultsFormatter

QUICK_FAULTS = (
    "machine=pump-001,type=imbalance,start=1h,duration=2h,severity=1",
    "machine=compressor-001,type=overheating,start=1h30m,duration=2h,severity=1",
    "machine=motor-001,type=misalignment,start=1h15m,duration=2h,severity=1",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run broker, daemon and simulator with injected faults; show alerts live",
                       description="Start a broker on a free loopback port (mosquitto, or amqtt when mosquitto is "
                       "not installed), the scoring daemon with the models in --models-dir (trained first when "
                       "missing), and the fleet simulator with injected faults at --speed x real time; show "
                       "machines, states, scores and alerts live; then judge the alerts against the injected "
                       "faults and write a PNG report. Ctrl-C stops everything cleanly.",
                       formatter_class=DefaultsFormatter)
    p.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory (logs, report, summary)")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="one model per machine type")
    p.add_argument("--hours", type=float, default=7.0, help="simulated hours")
    p.add_argument("--speed", type=float, default=240.0, help="simulated seconds per wall-clock second")
    p.add_argument("--seed", type=int, default=7, help="the simulated fleet's seed")
    p.add_argument("--broker-kind", choices=("auto", "mosquitto", "amqtt"), default="auto",
                   help="auto: mosquitto when installed, otherwise amqtt")
    p.add_argument("--plain", action="store_true", help="plain event lines instead of the live table")
    p.add_argument("--quick", action="store_true", help="a short run (4 simulated hours, 3 faults; for CI)")
    p.add_argument("--train-models", action="store_true",
                   help="(re)train the shipped models in --models-dir with the documented commands, then exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pdm.demo.models import MACHINE_TYPES, train_models
    from pdm.demo.run import DemoPlan, run_demo

    if args.train_models:
        train_models(args.models_dir, args.out / "training-data", MACHINE_TYPES, only_missing=False)
        return 0
    plan = DemoPlan(out=args.out, models_dir=args.models_dir, hours=args.hours, speed=args.speed, seed=args.seed,
                    broker_kind=args.broker_kind, interactive=False if args.plain else None)
    if args.quick:
        plan = DemoPlan(out=args.out, models_dir=args.models_dir, hours=4.0, speed=max(args.speed, 600.0),
                        seed=args.seed, broker_kind=args.broker_kind, faults=QUICK_FAULTS,
                        interactive=False if args.plain else None)
    verdict = run_demo(plan)
    return 0 if verdict.report.faults else 1
