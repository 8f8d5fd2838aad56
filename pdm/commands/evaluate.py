"""``python -m pdm evaluate``: judge a model (and its baseline) on labelled data with `pdm.evaluation`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.commands.common import MACHINE_COLUMN, add_model_and_data, epoch_seconds, load_data
from pdm.detectors.base import Detector
from pdm.detectors.frames import machine_positions
from pdm.errors import DataError, ModelLoadError
from pdm.evaluation import Report, evaluate_machine, label_spans, summarise
from pdm.evaluation.plots import plot_machines
from pdm.evaluation.table import report_table

logger = logging.getLogger(__name__)
GRU, BASELINE = "GRU autoencoder", "z-score baseline"
NAMES = {"gru_autoencoder": GRU, "pca_t2q": "PCA T²+Q"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate", help="judge a model against labelled data, next to the z-score baseline",
        description="Score labelled data and report event figures (faults detected, delay, false alarms per "
        "machine-day, recall by fault type; sensor faults separately) and pointwise figures (precision, recall, F1, "
        "false- and missed-alarm rates), for the model and for the robust z-score baseline saved with it. Rules: "
        "docs/evaluation.md.",
    )
    add_model_and_data(p)
    p.add_argument("--label-column", required=True,
                   help="fault label per row: empty/0/normal outside faults, else the fault type (or 1)")
    p.add_argument("--kind-column", help="'machine' or 'sensor' per faulty row (default: 'fault_kind' if present)")
    p.add_argument("--grace", type=float, help="seconds after a fault's end in which alarms still count "
                   "(default: 2 windows)")
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write a PNG report")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the figures as JSON")
    p.set_defaults(run=run)


def _baseline(det: Detector) -> Detector | None:
    path = det.version_dir_ / "baseline"
    if not path.is_dir():
        logger.warning("%s has no stored baseline (models trained by `python -m pdm train` have one)", det.version_dir_)
        return None
    try:
        return Detector.load(path)
    except ModelLoadError as exc:
        logger.warning("baseline not used: %s", exc)
        return None


def run(args: argparse.Namespace) -> int:
    det = Detector.load(args.model)
    column = det.machine_column or MACHINE_COLUMN
    frame = load_data(args.data, column, args.machine_id)
    if args.label_column not in frame.columns:
        raise DataError(f"label column {args.label_column!r} not found: found columns {list(map(str, frame.columns))}")
    kind_column = args.kind_column or ("fault_kind" if "fault_kind" in frame.columns else None)
    if kind_column is not None and kind_column not in frame.columns:
        raise DataError(f"kind column {kind_column!r} not found: found columns {list(map(str, frame.columns))}")
    grace = args.grace if args.grace is not None else 2.0 * det.window_length * det.period_s_
    name = NAMES.get(det.kind, det.kind)
    detectors = {name: det}
    baseline = _baseline(det)
    if baseline is not None:
        detectors[BASELINE] = baseline
    ts_all = epoch_seconds(frame, det.timestamp_column)
    orders = {m: pos[np.argsort(ts_all[pos], kind="stable")] for m, pos in machine_positions(frame, column).items()}
    kinds = frame[kind_column].to_numpy() if kind_column else None
    labels = frame[args.label_column].to_numpy()
    spans = {m: label_spans(ts_all[o], labels[o], m, None if kinds is None else kinds[o]) for m, o in orders.items()}
    reports: dict[str, Report] = {}
    outputs: dict[str, pd.DataFrame] = {}
    for name, d in detectors.items():
        out = d.detect(frame)
        if out["score"].notna().sum() == 0:
            raise DataError(f"too few rows: found {len(frame)}, expected at least window={d.window_length} per machine")
        outputs[name] = out
        alarm = out["alarm"].to_numpy()
        results = [evaluate_machine(m, ts_all[o], alarm[o], spans[m], grace) for m, o in orders.items()]
        reports[name] = summarise(results)
    print("\n".join(report_table(reports, grace)))
    if args.json:
        args.json.write_text(json.dumps({k: r.to_dict() for k, r in reports.items()} | {"grace_s": grace}, indent=2))
        print(f"figures -> {args.json}")
    if args.plot:
        chosen = ([m for m in orders if spans[m]] or list(orders))[:4]
        panels = [(m, frame.iloc[orders[m]].assign(timestamp=ts_all[orders[m]]).reset_index(drop=True),
                   outputs[name].iloc[orders[m]].reset_index(drop=True), spans[m]) for m in chosen]
        base = None
        if BASELINE in outputs:
            base = [outputs[BASELINE].iloc[orders[m]].reset_index(drop=True) for m in chosen]
        plot_machines(panels, det.features_, args.plot, baseline=base)
        print(f"plot    -> {args.plot}")
    return 0

