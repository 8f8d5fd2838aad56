"""``python -m pdm train``: fit a detector (the GRU autoencoder by default, or PCA T²+Q) and the z-score baseline on
normal data, save a new version."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pdm.commands.common import DefaultsFormatter, load_data, parse_features, parse_references
from pdm.commands.hyper import add_hyper_arguments, hyper_values


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train", help="train on normal data and save a new model version",
        description="Train the GRU autoencoder (or, with --detector pca, PCA with Hotelling's T² and Q) on normal "
        "data, calibrate its threshold on held-back parts of each file (no labels needed), fit the robust z-score "
        "baseline alongside, write a new version under OUT and make it current. GRU-only flags are ignored for pca.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("--data", type=Path, action="append", required=True, metavar="PATH",
                   help="CSV or Parquet file; repeat for several machines (one file each, named by machine id) or "
                   "give files with a machine column")
    p.add_argument("--out", type=Path, required=True, metavar="MODELS_DIR/NAME", help="model name directory")
    p.add_argument("--features", help="comma-separated sensor columns (default: every numeric column)")
    p.add_argument("--reference", action="append", metavar="SENSOR=REFERENCE",
                   help="score SENSOR as its difference to REFERENCE, a sensor column that is an input only, e.g. "
                   "temperature=ambient: the machine's own heating, not the weather's (repeatable; "
                   "docs/detector.md, reference sensors)")
    p.add_argument("--timestamp-column", help="timestamp column (default: detected)")
    p.add_argument("--machine-column", default="machine_id", help="machine id column, if the data has one")
    p.add_argument("--detector", choices=["gru", "pca"], default="gru",
                   help="gru: the GRU autoencoder; pca: PCA T²+Q, better on short histories of many slowly varying "
                   "process variables (docs/real-data.md)")
    p.add_argument("--variance", type=float, default=0.95, help="pca: share of the variance the components keep")
    add_hyper_arguments(p, "hyper-parameters", defaults=True)
    p.set_defaults(run=run)  # TensorFlow is imported (quietly) only when a Keras model is built


def run(args: argparse.Namespace) -> int:
    from pdm.detectors.base import Detector
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.pca import PCADetector
    from pdm.detectors.training import baseline_params, fit_with_baseline
    from pdm.retrain.progress import make_progress

    started = time.monotonic()
    columns = {"features": parse_features(args.features), "timestamp_column": args.timestamp_column,
               "machine_column": args.machine_column, "references": parse_references(args.reference)}
    detector: Detector = GRUAutoencoderDetector(**hyper_values(args), **columns)
    if args.detector == "pca":
        detector = PCADetector(**baseline_params(detector.get_params()), variance=args.variance)
    frames = load_data(args.data, args.machine_column)
    epochs = int(getattr(detector, "epochs", 1))
    with make_progress(sys.stderr.isatty()) as progress, progress.stage("training", total=epochs):
        detector, baseline = fit_with_baseline(detector, frames, progress=progress.epoch)
    version_dir = detector.save(args.out, companions={"baseline": baseline})
    s, e, t = detector.training_summary_, detector.evaluation_, detector.threshold_
    print(f"saved     {version_dir} (now current)")
    print(f"data      {s['rows']} rows from {len(s['machines'])} machine(s), period {s['period_s']:g} s, "
          f"features {', '.join(detector.features_)}")
    for target, ref in (detector.references or {}).items():
        print(f"reference {target} scored as {target} - {ref} ({ref} is an input only)")
    if "epochs_run" in e:
        print(f"training  {e['train_windows']} windows (stride {e['stride']}), {e['epochs_run']} epochs, best "
              f"{e['best_epoch']}: loss {e['train_loss']:.4g}, validation {e['validation_loss'] or float('nan'):.4g}")
    print(f"threshold {t.value:.5g} ({t.method}, target {t.target_rate:g} per window; calibration "
          f"{t.n_calibration} windows, {t.calibration_exceedance_rate:.4f} over)")
    a = detector.alarm_rule_
    print(f"alarm     {a.describe(detector.period_s)}")
    for w in s["warnings"]:
        print(f"warning   {w}")
    print(f"took      {time.monotonic() - started:.0f} s")
    return 0
