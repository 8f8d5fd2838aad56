"""``python -m pdm``: parse, validate, configure logging, run. Errors are one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pdm import __version__
from pdm.errors import PdmError

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pdm",
        description="Predictive-maintenance anomaly detection: a GRU autoencoder learns normal machine telemetry and "
        "flags windows whose reconstruction error crosses a calibrated threshold.",
    )
    parser.add_argument("--version", action="version", version=f"pdm {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="train, save, reload and score on generated data with injected faults",
                          description="Run the detector end to end on generated pump data and report what it found.")
    demo.add_argument("--out", type=Path, default=Path("build/demo"), help="output directory (default: %(default)s)")
    demo.add_argument("--machines", type=int, default=6, help="pumps in the fleet (default: %(default)s)")
    demo.add_argument("--train-hours", type=float, default=3.0,
                      help="normal history per machine (default: %(default)s)")
    demo.add_argument("--test-hours", type=float, default=2.0, help="fresh data per machine (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=20, help="maximum training epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a small, fast run (for CI)")

    info = sub.add_parser("info", help="verify a saved model and print what it holds",
                          description="Verify checksums and print a model's features, threshold, alarm rule and "
                          "training summary. MODEL is a model name directory (uses 'current') or a version.")
    info.add_argument("model", type=Path, metavar="MODEL")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _demo(args: argparse.Namespace) -> int:
    from pdm.demo import DemoConfig, run

    logging.getLogger("pdm.detectors.gru").setLevel(logging.INFO)  # epoch progress
    if args.quick:
        cfg = DemoConfig(out=args.out, machines=4, train_hours=1.0, test_hours=1.0, epochs=6, seed=args.seed,
                         max_train_windows=3000)
    else:
        cfg = DemoConfig(out=args.out, machines=args.machines, train_hours=args.train_hours,
                         test_hours=args.test_hours, epochs=args.epochs, seed=args.seed)
    run(cfg)
    return 0


def _info(args: argparse.Namespace) -> int:
    from pdm.detectors.base import Detector

    det = Detector.load(args.model)
    summary = {
        "version_dir": str(det.version_dir_),
        "detector": det.kind,
        "features": [f.model_dump() for f in det.feature_infos],
        "window": det.window_length,
        "period_s": det.period_s_,
        "threshold": det.threshold_.model_dump(),
        "alarm_rule": det.alarm_rule_.model_dump(),
        "training": det.training_summary_,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    t, a = det.threshold_, det.alarm_rule_
    print(f"model      {det.version_dir_}  (checksums OK)")
    print(f"detector   {det.kind}, window {det.window_length} readings, period {det.period_s_:g} s")
    print("features   " + ", ".join(f"{f.name} [{f.unit or '?'}]" for f in det.feature_infos))
    print(f"threshold  {t.value:.6g} ({t.method}, target {t.target_rate:g} per window, "
          f"{t.n_calibration} calibration windows)")
    print(f"alarm      raise on {a.k} of {a.n} windows over, clear after {a.m} under")
    tr = det.training_summary_
    machines = tr.get("machines")
    print(f"training   {tr.get('rows')} rows from {len(machines) if isinstance(machines, list) else '?'} machine(s); "
          f"warnings: {tr.get('warnings') or 'none'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    handlers = {"demo": _demo, "info": _info}
    try:
        return handlers[args.command](args)
    except PdmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
