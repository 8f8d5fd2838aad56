"""``python -m pdm score``: one output row per input row, in input order."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pdm.commands.common import MACHINE_COLUMN, add_model_and_data, load_data
from pdm.detectors.base import Detector
from pdm.detectors.frames import find_timestamp_column
from pdm.errors import DataError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "score", help="score a CSV/Parquet file with a saved model",
        description="Write one row per input row, in input order: timestamp, score, threshold, is_anomaly (the "
        "model's alarm rule applied), and contrib_<sensor>, each sensor's share of the window's error. Rows before "
        "the first full window have an empty score and is_anomaly false. MODEL is a model name directory (its "
        "current version) or a version directory.",
    )
    add_model_and_data(p)
    p.add_argument("--out", type=Path, required=True, metavar="SCORES.csv", help="output CSV")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    det = Detector.load(args.model)
    column = det.machine_column or MACHINE_COLUMN
    frame = load_data(args.data, column, args.machine_id)
    out = score_frame(det, frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    alarms = int(out["is_anomaly"].sum())
    print(f"scored {len(out)} rows ({out['score'].notna().sum()} with a full window) with {det.version_dir_}; "
          f"{alarms} rows in alarm -> {args.out}")
    return 0


def score_frame(det: Detector, frame: pd.DataFrame) -> pd.DataFrame:
    """The score table of ``frame`` (rows in input order); too few rows for one window is a `DataError`."""
    result = det.detect(frame)
    if result["score"].notna().sum() == 0:
        raise DataError(f"too few rows: found {len(frame)} rows, expected at least window={det.window_length} "
                        "consecutive readings per machine")
    ts_col = find_timestamp_column(frame, det.timestamp_column)
    out = pd.DataFrame(index=frame.index)
    out["timestamp"] = frame.index if ts_col is None else frame[ts_col]
    column = det.machine_column or MACHINE_COLUMN
    if column in frame.columns:
        out[column] = frame[column]
    out["score"] = result["score"]
    out["threshold"] = result["threshold"]
    out["is_anomaly"] = result["alarm"]
    for c in result.columns:
        if c.startswith("contrib_"):
            out[c] = result[c]
    return out.reset_index(drop=True)
