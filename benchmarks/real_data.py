"""GRU autoencoder, PCA T²+Q and robust z-score side by side on data nobody here generated, in one run.

Every detector is built with the library defaults (only the sensor columns are named) and thresholded without labels
by its own calibration; overrides: ``--gru-param``, ``--pca-param``, ``--common-param`` (all three), ``--epochs``.

- **TEP** (Tennessee Eastman; train on ``d00``, test on ``d00_te`` and ``d01_te``..``d21_te``, fault from row 160):
  per fault the detection rate (share of rows 160+ flagged) by the alarm output and by ``exceeds`` (score over the
  threshold, per sample: what TEP papers report), the false-alarm rate on ``d00_te`` and on rows 0-159 of every
  fault file (rows with a score), the mean detection rate over faults without 3, 9 and 15, and the ROC AUC of the
  score (rows 160+ of the fault files against ``d00_te``). Two settings: the library ``defaults`` (alarm rule 60 of
  120, declustered threshold at 0.05 false alarms per machine-day, which 500 readings turn into per-window POT),
  and ``per-sample`` (alarm rule 1 of 1, per-window POT at 0.01: the usual TEP protocol).
- **SMD** (Server Machine Dataset, per machine: train on ``_train``, score ``_test``): pointwise precision, recall
  and F1 without and with point adjustment, false-alarm rate (flagged share of label-0 rows), for the alarm output
  and for ``exceeds`` (precision and F1 are 0 when nothing is flagged); ROC AUC of the score; attribution hit rate
  (share of labelled segments whose top sensor by the summed contributions is a true one). Means over the machines.
- **sim**: the fleet simulator's labelled faults as in ``benchmarks/evaluate_on_simulator.py`` (same data
  generation, same `pdm.evaluation` rules and grace as ``pdm evaluate``), for the three detectors.

    PYTHONPATH=. .venv/bin/python benchmarks/real_data.py --smd-epochs 5 --json build/real-data.json   # full
    PYTHONPATH=. .venv/bin/python benchmarks/real_data.py --quick                                      # smoke
    PYTHONPATH=. .venv/bin/python benchmarks/real_data.py --datasets tep --gru-param window=16

Data: ``$PDM_SHARED_DATA`` or ``../shared/data`` beside the checkout (`pdm.evaluation.datasets`); a missing data set
is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_on_simulator import make_data  # the benchmark beside this one

from pdm.detectors.base import Detector
from pdm.detectors.frames import find_timestamp_column, to_epoch_seconds
from pdm.evaluation import datasets as ds
from pdm.evaluation import judge_rows
from pdm.evaluation.pointwise import attribution_hit_rate, point_adjust, pointwise_report, roc_auc

NAMES = ("GRU", "PCA T²+Q", "z-score")
TEP_SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "per-sample": {"alarm_k": 1, "alarm_n": 1, "alarm_m": 1, "threshold_method": "pot",
                   "target_false_alarm_rate": 0.01},
}
SIM_FEATURES = ["temperature", "vibration", "pressure"]
Figures = dict[str, Any]


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["window=16", "envelope=false"]`` -> ``{"window": 16, "envelope": False}`` (JSON values, else text)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: found parameter {item!r}, expected NAME=VALUE")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


class Factory:
    """Builds the three detectors with the library defaults plus the command line's overrides."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.common = parse_params(args.common_param)
        self.own = {"GRU": parse_params(args.gru_param), "PCA T²+Q": parse_params(args.pca_param), "z-score": {}}
        if args.epochs is not None:
            self.own["GRU"]["epochs"] = args.epochs
        elif args.quick:
            self.own["GRU"].setdefault("epochs", 2)

    def make(self, name: str, features: list[str], *, gru_epochs: int | None = None, **extra: Any) -> Detector:
        """``gru_epochs`` (a data set's own budget) wins over ``--epochs``."""
        from pdm.detectors.gru import GRUAutoencoderDetector
        from pdm.detectors.pca import PCADetector
        from pdm.detectors.zscore import RobustZScoreDetector

        cls = {"GRU": GRUAutoencoderDetector, "PCA T²+Q": PCADetector, "z-score": RobustZScoreDetector}[name]
        own = {**self.own[name], **({"epochs": gru_epochs} if name == "GRU" and gru_epochs else {})}
        return cls(features=features, **{**self.common, **extra, **own})  # type: ignore[abstract]

    def changed(self) -> dict[str, Any]:
        return {"common": self.common, **{k: v for k, v in self.own.items() if v}}


def fitted(det: Detector, frames: Any, timing: Figures, name: str) -> Detector:
    started = time.monotonic()
    det.fit(frames)
    timing[f"{name} fit s"] = round(time.monotonic() - started, 1)
    return det


def about(det: Detector) -> Figures:
    """What the detector settled on: threshold, window, warnings."""
    t = det.threshold_
    training = {k: det.evaluation_[k] for k in ("epochs_run", "best_epoch", "train_loss", "validation_loss",
                                                  "train_windows", "n_components", "explained_variance")
                if k in det.evaluation_}
    return {"window": det.window_length, "threshold": t.value, "threshold_method": t.method,
            "pot_fallback": t.params.get("reason"), "calibration_windows": t.n_calibration,
            "warnings": det.training_summary_["warnings"], "training": training}


def rate(flags: pd.Series | np.ndarray, mask: pd.Series | np.ndarray) -> float:
    m = np.asarray(mask, dtype=bool)
    return float(np.asarray(flags, dtype=bool)[m].mean()) if m.any() else float("nan")


# ----------------------------------------------------------------- TEP
def run_tep(factory: Factory, quick: bool) -> Figures:
    faults = [1, 2, 5, 11] if quick else ds.TEP_FAULTS
    train = ds.tep_frame("d00")
    tests = {f: ds.tep_frame(ds.tep_test_name(f)) for f in [0, *faults]}
    result: Figures = {"faults": faults, "settings": {}}
    for setting, extra in TEP_SETTINGS.items():
        per: Figures = {}
        for name in NAMES:
            timing: Figures = {}
            det = fitted(factory.make(name, ds.TEP_FEATURES, **extra), {"tep": train}, timing, "train")
            started = time.monotonic()
            outs = {f: det.detect(df, machine_id="tep") for f, df in tests.items()}
            timing["score s"] = round(time.monotonic() - started, 1)
            normal = outs[0]
            scored0 = normal["score"].notna()
            rows: Figures = {}
            pre_alarm, pre_exceeds, pre_n = 0.0, 0.0, 0
            for f in faults:
                out = outs[f]
                late = np.arange(len(out)) >= ds.TEP_FAULT_START
                pre = ~late & out["score"].notna().to_numpy()
                pre_alarm += float(out["alarm"][pre].sum())
                pre_exceeds += float(out["exceeds"][pre].sum())
                pre_n += int(pre.sum())
                fault_scores = out["score"][late].to_numpy()
                auc_scores = np.concatenate([fault_scores, normal["score"][scored0].to_numpy()])
                auc_labels = np.concatenate([np.ones(len(fault_scores)), np.zeros(int(scored0.sum()))])
                rows[str(f)] = {"alarm": rate(out["alarm"], late), "exceeds": rate(out["exceeds"], late),
                                "auc": roc_auc(auc_scores, auc_labels)}
            easy = [str(f) for f in faults if f not in ds.TEP_HARD_FAULTS]
            per[name] = {
                "per_fault": rows,
                "mean_alarm": float(np.mean([rows[f]["alarm"] for f in easy])),
                "mean_exceeds": float(np.mean([rows[f]["exceeds"] for f in easy])),
                "mean_auc": float(np.mean([rows[f]["auc"] for f in easy])),
                "far_d00_te_alarm": rate(normal["alarm"], scored0),
                "far_d00_te_exceeds": rate(normal["exceeds"], scored0),
                "far_pre_alarm": pre_alarm / pre_n, "far_pre_exceeds": pre_exceeds / pre_n,
                "detector": about(det), "timing": timing,
            }
        result["settings"][setting] = {"params": extra, "detectors": per}
    return result


def print_tep(res: Figures) -> None:
    for setting, block in res["settings"].items():
        det = block["detectors"]
        print(f"\n### TEP, {setting} {block['params'] or '(library defaults)'}\n")
        print("| fault | " + " | ".join(f"{n} alarm | {n} exceeds | {n} AUC" for n in NAMES) + " |")
        print("|---|" + "---:|" * (3 * len(NAMES)))
        for f in res["faults"]:
            cells = [f"{det[n]['per_fault'][str(f)][k]:.3f}" for n in NAMES for k in ("alarm", "exceeds", "auc")]
            mark = " (hard)" if f in ds.TEP_HARD_FAULTS else ""
            print(f"| IDV{f}{mark} | " + " | ".join(cells) + " |")
        for label, keys in (("**mean without 3, 9, 15**", ("mean_alarm", "mean_exceeds", "mean_auc")),
                            ("false alarms, d00_te", ("far_d00_te_alarm", "far_d00_te_exceeds", None)),
                            ("false alarms, rows 0-159", ("far_pre_alarm", "far_pre_exceeds", None))):
            cells = [f"{det[n][k]:.3f}" if k else "" for n in NAMES for k in keys]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
        for n in NAMES:
            d = det[n]["detector"]
            print(f"- {n}: window {d['window']}, threshold {d['threshold']:.4g} ({d['threshold_method']}"
                  f"{', fell back: ' + d['pot_fallback'] if d['pot_fallback'] else ''}), {d['training']}, "
                  f"{det[n]['timing']}")


# ----------------------------------------------------------------- SMD
def run_smd(factory: Factory, quick: bool, epochs: int | None) -> Figures:
    machines = ds.smd_machines()[: 2 if quick else None]
    result: Figures = {"machines": {}}
    for machine in machines:
        train, test, segments = ds.smd_data(machine)
        labels = test["label"].to_numpy()
        per: Figures = {}
        for name in NAMES:
            timing: Figures = {}
            det = fitted(factory.make(name, ds.SMD_FEATURES, gru_epochs=epochs), {machine: train}, timing, "train")
            started = time.monotonic()
            out = det.detect(test, machine_id=machine)
            timing["score s"] = round(time.monotonic() - started, 1)
            figures: Figures = {}
            for output in ("alarm", "exceeds"):
                flags = out[output].to_numpy()
                plain = pointwise_report(flags, labels)
                adjusted = pointwise_report(point_adjust(flags, labels), labels)
                figures[output] = {"precision": zero_if_nan(plain.precision), "recall": plain.recall,
                                   "f1": zero_if_nan(plain.f1), "f1_adjusted": zero_if_nan(adjusted.f1),
                                   "false_alarm_rate": plain.false_alarm_rate,
                                   "segments_touched": plain.detected, "segments": plain.faults}
            contrib = out[[f"contrib_{s}" for s in ds.SMD_FEATURES]].to_numpy()
            figures["attribution_hit_rate"] = attribution_hit_rate(contrib, ds.SMD_FEATURES, segments)
            figures["auc"] = roc_auc(out["score"].to_numpy(), labels)
            figures["detector"], figures["timing"] = about(det), timing
            per[name] = figures
            print(f"  {machine} {name}: F1 alarm {figures['alarm']['f1']:.3f}, exceeds {figures['exceeds']['f1']:.3f}"
                  f", AUC {figures['auc']:.3f} {timing}", flush=True)
        result["machines"][machine] = per
    result["mean"] = {n: smd_mean([result["machines"][m][n] for m in machines]) for n in NAMES}
    return result


def zero_if_nan(value: float) -> float:
    """Precision and F1 of a detector that flags nothing: 0 (not undefined), so that averages count it."""
    return 0.0 if np.isnan(value) else value


def smd_mean(items: list[Figures]) -> Figures:
    def avg(get: Callable[[Figures], float]) -> float:
        values = np.array([np.nan if get(i) is None else get(i) for i in items], dtype=np.float64)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    out: Figures = {o: {k: avg(lambda i, o=o, k=k: i[o][k])  # type: ignore[misc]
                        for k in ("precision", "recall", "f1", "f1_adjusted", "false_alarm_rate")}
                    for o in ("alarm", "exceeds")}
    out["attribution_hit_rate"] = avg(lambda i: i["attribution_hit_rate"])
    out["auc"] = avg(lambda i: i["auc"])
    return out


def print_smd(res: Figures) -> None:
    mean = res["mean"]
    print(f"\n### SMD, mean over {len(res['machines'])} machines (library defaults)\n")
    print("| figure | " + " | ".join(NAMES) + " |")
    print("|---|" + "---:|" * len(NAMES))
    for output in ("exceeds", "alarm"):
        for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
                           ("f1_adjusted", "F1, point-adjusted"), ("false_alarm_rate", "false-alarm rate")):
            print(f"| {output}: {label} | " + " | ".join(f"{mean[n][output][key]:.3f}" for n in NAMES) + " |")
    print("| ROC AUC of the score | " + " | ".join(f"{mean[n]['auc']:.3f}" for n in NAMES) + " |")
    print("| attribution hit rate | " + " | ".join(f"{mean[n]['attribution_hit_rate']:.3f}" for n in NAMES) + " |")
    print("\n| machine | " + " | ".join(f"{n} F1 exceeds / PA / alarm" for n in NAMES) + " |")
    print("|---|" + "---:|" * len(NAMES))
    for machine, per in res["machines"].items():
        cells = [f"{per[n]['exceeds']['f1']:.3f} / {per[n]['exceeds']['f1_adjusted']:.3f} / {per[n]['alarm']['f1']:.3f}"
                 for n in NAMES]
        print(f"| {machine} | " + " | ".join(cells) + " |")


# ----------------------------------------------------------------- simulator
def run_sim(factory: Factory, quick: bool, out_dir: Path, ambient: bool = False) -> Figures:
    size = {"machines": 2, "train_days": 0.5, "test_days": 0.5} if quick else \
        {"machines": 6, "train_days": 2.0, "test_days": 2.0}
    name = "pump-{machines}-{train_days:g}d-{test_days:g}d".format(**size) + ("-ambient" if ambient else "")
    folder = out_dir / name
    train_path, test_path = make_data(folder, machine_type="pump", fault_rate=2.0, seed=5, reuse=True,
                                      ambient=ambient, **size)
    features, extra = ([*SIM_FEATURES, "ambient"], {"references": {"temperature": "ambient"}}) if ambient else \
        (SIM_FEATURES, {})
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    ts = to_epoch_seconds(test[find_timestamp_column(test, None)], "timestamp")
    result: Figures = {"data": {**size, "ambient": ambient}, "detectors": {}}
    grace = None
    for name in NAMES:
        timing: Figures = {}
        det = fitted(factory.make(name, features, **extra), train, timing, "train")
        if grace is None:  # as `pdm evaluate`: two of the main model's (the GRU's) windows, for every detector
            grace = 2.0 * det.window_length * det.period_s_
        started = time.monotonic()
        out = det.detect(test)
        timing["score s"] = round(time.monotonic() - started, 1)
        report = judge_rows(ts, test["machine_id"], out["alarm"], test["fault_type"], test["fault_kind"],
                            grace_s=grace)
        result["detectors"][name] = {**report.to_dict(), "detector": about(det), "timing": timing}
    result["grace_s"] = grace
    return result


def print_sim(res: Figures) -> None:
    det = res["detectors"]
    d = res["data"]
    with_ambient = ", temperature scored over the ambient sensor" if d.get("ambient") else ""
    print(f"\n### Simulator: {d['machines']} pumps, {d['train_days']:g} days to train, {d['test_days']:g} days judged "
          f"(fault rate 2 per machine-day; grace {res['grace_s']:g} s{with_ambient})\n")
    print("| figure | " + " | ".join(NAMES) + " |")
    print("|---|" + "---:|" * len(NAMES))

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    rows: list[tuple[str, Callable[[Figures], str]]] = [
        ("machine faults detected", lambda r: f"{r['detected']}/{r['faults']}"),
        ("false alarms per machine-day", lambda r: fmt(r["false_alarms_per_machine_day"], ".2f")),
        ("median detection delay (min)", lambda r: fmt(r["median_delay_s"] and r["median_delay_s"] / 60, ".0f")),
        ("sensor faults caught", lambda r: f"{r['sensor_detected']}/{r['sensor_faults']}"),
        ("pointwise F1", lambda r: fmt(r["f1"], ".3f")),
        ("false-alarm rate (rows)", lambda r: fmt(r["false_alarm_rate"], ".4f")),
    ]
    for label, fn in rows:
        print(f"| {label} | " + " | ".join(fn(det[n]) for n in NAMES) + " |")
    kinds = sorted({k for n in NAMES for k in det[n]["by_type"]})
    for k in kinds:
        cells = [f"{det[n]['by_type'].get(k, {}).get('detected', 0)}/{det[n]['by_type'].get(k, {}).get('faults', 0)}"
                 for n in NAMES]
        print(f"| recall: {k} | " + " | ".join(cells) + " |")


# ----------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="tep,smd,sim", help="comma-separated: tep, smd, sim")
    p.add_argument("--quick", action="store_true", help="smoke run: 4 TEP faults, 2 SMD machines, a small "
                   "simulated fleet, 2 GRU epochs")
    p.add_argument("--epochs", type=int, help="GRU epochs (default: the library's)")
    p.add_argument("--smd-epochs", type=int, help="GRU epochs on SMD only (8 machines x 38 sensors: the costly part)")
    p.add_argument("--gru-param", action="append", default=[], metavar="NAME=VALUE", help="GRU override (repeat)")
    p.add_argument("--pca-param", action="append", default=[], metavar="NAME=VALUE", help="PCA override (repeat)")
    p.add_argument("--common-param", action="append", default=[], metavar="NAME=VALUE",
                   help="override for all three detectors (repeat), e.g. target_false_alarm_rate=0.01")
    p.add_argument("--sim-out", type=Path, default=Path("build/real-data-sim"), help="simulated data (reused)")
    p.add_argument("--sim-ambient", action="store_true",
                   help="sim: the same readings plus an ambient sensor; every detector scores temperature - ambient")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write every figure as JSON")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pdm.detectors.gru").setLevel(logging.INFO)  # one line per epoch, on stderr
    chosen = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(chosen) - {"tep", "smd", "sim"})
    if unknown:
        raise SystemExit(f"error: found data set(s) {unknown}, expected tep, smd or sim")
    factory = Factory(args)
    started = time.monotonic()
    results: Figures = {"overrides": factory.changed(), "smd_epochs": args.smd_epochs, "quick": args.quick,
                        "command": " ".join(sys.argv[1:])}
    runners: dict[str, tuple[Callable[[], Figures], Callable[[Figures], None]]] = {
        "tep": (lambda: run_tep(factory, args.quick), print_tep),
        "smd": (lambda: run_smd(factory, args.quick, args.smd_epochs), print_smd),
        "sim": (lambda: run_sim(factory, args.quick, args.sim_out, args.sim_ambient), print_sim),
    }
    for name in chosen:
        reason = ds.missing_reason(name) if name != "sim" else None
        if reason:
            print(f"skipping {name}: {reason}")
            results[name] = {"skipped": reason}
            continue
        t0 = time.monotonic()
        print(f"== {name} ==", flush=True)
        run, show = runners[name]
        results[name] = run()
        results[name]["seconds"] = round(time.monotonic() - t0, 1)
        show(results[name])
        print(f"\n({name}: {results[name]['seconds']:.0f} s)", flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    print(f"\ntotal {results['seconds']:.0f} s; overrides {factory.changed()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"figures -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
