"""``python -m pdm train``: fit the GRU autoencoder (and the z-score baseline) on normal data, save a new version."""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path
from typing import Any

from pdm.commands.common import epoch_progress, load_data, parse_features
from pdm.errors import DataError

# Hyper-parameters exposed as flags; defaults come from GRUAutoencoderDetector's signature (one source of truth).
HYPER: list[tuple[str, Any, str]] = [
    ("window", int, "readings per window"),
    ("stride", str, "stride between training windows, or 'auto'"),
    ("max_train_windows", int, "with stride 'auto': at most this many training windows"),
    ("hidden", int, "recurrent units"),
    ("latent", int, "latent size"),
    ("layers", int, "recurrent layers in encoder and decoder"),
    ("dropout", float, "dropout of the recurrent layers"),
    ("input_noise", float, "Gaussian noise (scaled units) on training inputs: a denoising autoencoder"),
    ("envelope", bool, "also score how far a window leaves the normal range of each sensor"),
    ("cell", ["gru", "lstm"], "recurrent cell"),
    ("score_reduction", ["mean", "max"], "window score: mean or max of the per-sensor errors"),
    ("epochs", int, "maximum epochs"),
    ("batch_size", int, "training batch size"),
    ("learning_rate", float, "Adam learning rate"),
    ("patience", int, "epochs without validation improvement before stopping early (0: never)"),
    ("scaling", ["per_machine", "global"], "scaling statistics per machine or for the whole fleet"),
    ("calibration_fraction", float, "tail of each frame held back to calibrate the threshold"),
    ("threshold_method", ["pot", "quantile"], "label-free threshold method"),
    ("target_false_alarm_rate", float, "target share of normal windows over the threshold"),
    ("alarm_k", int, "raise after k of the last n windows are over the threshold"),
    ("alarm_n", int, "see --alarm-k"),
    ("alarm_m", int, "clear after m consecutive windows under the threshold"),
    ("max_gap_factor", float, "a gap over this many median periods restarts the window"),
    ("seed", int, "random seed"),
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pdm.detectors.gru import GRUAutoencoderDetector

    defaults = {k: p.default for k, p in inspect.signature(GRUAutoencoderDetector.__init__).parameters.items()}
    p = sub.add_parser(
        "train", help="train on normal data and save a new model version",
        description="Train the GRU autoencoder on normal data, calibrate its threshold on the held-back tail of each "
        "file (no labels needed), fit the robust z-score baseline alongside, write a new version under OUT and make "
        "it current.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", type=Path, action="append", required=True, metavar="PATH",
                   help="CSV or Parquet file; repeat for several machines (one file each, named by machine id) or "
                   "give files with a machine column")
    p.add_argument("--out", type=Path, required=True, metavar="MODELS_DIR/NAME", help="model name directory")
    p.add_argument("--features", help="comma-separated sensor columns (default: every numeric column)")
    p.add_argument("--timestamp-column", help="timestamp column (default: detected)")
    p.add_argument("--machine-column", default="machine_id", help="machine id column, if the data has one")
    g = p.add_argument_group("hyper-parameters")
    for name, kind, text in HYPER:
        flag = "--" + name.replace("_", "-")
        if isinstance(kind, list):
            g.add_argument(flag, choices=kind, default=defaults[name], help=text)
        elif kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=defaults[name], help=text)
        else:
            g.add_argument(flag, type=kind, default=defaults[name], help=text)
    p.set_defaults(run=run, needs_tensorflow=True)  # trains a Keras model


def run(args: argparse.Namespace) -> int:
    from pdm.detectors.gru import GRUAutoencoderDetector
    from pdm.detectors.zscore import RobustZScoreDetector

    started = time.monotonic()
    params = {name: getattr(args, name) for name, _, _ in HYPER}
    if params["stride"] != "auto":
        if not str(params["stride"]).isdigit() or int(params["stride"]) < 1:
            raise DataError(f"found --stride {params['stride']!r}, expected 'auto' or a whole number >= 1")
        params["stride"] = int(params["stride"])
    common = {"features": parse_features(args.features), "timestamp_column": args.timestamp_column,
              "machine_column": args.machine_column}
    frames = load_data(args.data, args.machine_column)
    detector = GRUAutoencoderDetector(**params, **common)
    with epoch_progress(detector.epochs) as progress:
        detector.fit(frames, progress=progress)
    baseline_params = {k: params[k] for k in ("scaling", "calibration_fraction", "threshold_method",
                                              "target_false_alarm_rate", "alarm_k", "alarm_n", "alarm_m",
                                              "max_gap_factor", "seed")}
    baseline = RobustZScoreDetector(**baseline_params, **common).fit(frames)
    version_dir = detector.save(args.out, companions={"baseline": baseline})
    s, e, t = detector.training_summary_, detector.evaluation_, detector.threshold_
    print(f"saved     {version_dir} (now current)")
    print(f"data      {s['rows']} rows from {len(s['machines'])} machine(s), period {s['period_s']:g} s, "
          f"features {', '.join(detector.features_)}")
    print(f"training  {e['train_windows']} windows (stride {e['stride']}), {e['epochs_run']} epochs, best "
          f"{e['best_epoch']}: loss {e['train_loss']:.4g}, validation {e['validation_loss'] or float('nan'):.4g}")
    print(f"threshold {t.value:.5g} ({t.method}, target {t.target_rate:g} per window; calibration "
          f"{t.n_calibration} windows, {t.calibration_exceedance_rate:.4f} over)")
    a = detector.alarm_rule_
    print(f"alarm     raise on {a.k} of {a.n} windows over, clear after {a.m} under")
    for w in s["warnings"]:
        print(f"warning   {w}")
    print(f"took      {time.monotonic() - started:.0f} s")
    return 0
