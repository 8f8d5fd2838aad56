"""Helpers shared by the subcommands: the model and data options, loading data files, column lists."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.detectors.frames import find_timestamp_column, to_epoch_seconds
from pdm.errors import DataError
from pdm.io import read_frames

MACHINE_COLUMN = "machine_id"


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to a flag's help only where it says something: not for a default of None, nor where
    the help already names its default.

    >>> p = argparse.ArgumentParser(prog="x", formatter_class=DefaultsFormatter)
    >>> _ = p.add_argument("--a", default=None, help="first (default: detected)")
    >>> _ = p.add_argument("--b", default=3, help="second")
    >>> _ = p.add_argument("--c", help="third")
    >>> text = p.format_help()
    >>> "detected) (default" in text, "(default: 3)" in text, "(default: None)" in text
    (False, True, False)
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


def add_model_and_data(p: argparse.ArgumentParser) -> None:
    """The --model, --data and --machine-id options of the commands that read a saved model and data."""
    p.add_argument("--model", type=Path, required=True, help="model name directory or version directory")
    p.add_argument("--data", type=Path, action="append", required=True, metavar="PATH",
                   help="CSV or Parquet; repeatable (one file per machine, named by machine id)")
    p.add_argument("--machine-id", help="machine id of a single file without a machine column (default: file name)")


def load_data(paths: Sequence[Path], machine_column: str | None, machine_id: str | None = None) -> pd.DataFrame:
    """All files as one frame with a machine column: from the data, from ``machine_id``, or from file names."""
    column = machine_column or MACHINE_COLUMN
    data = read_frames(paths, column)
    if isinstance(data, pd.DataFrame):
        return data
    if machine_id is not None:
        if len(data) > 1:
            raise DataError(f"--machine-id names one machine, found {len(data)} files: expected one file")
        return next(iter(data.values())).assign(**{column: machine_id})
    return pd.concat([f if column in f.columns else f.assign(**{column: m}) for m, f in data.items()],
                     ignore_index=True)


def epoch_seconds(frame: pd.DataFrame, timestamp_column: str | None) -> np.ndarray:
    col = find_timestamp_column(frame, timestamp_column)
    return to_epoch_seconds(frame.index if col is None else frame[col], col or "index")


def parse_references(specs: list[str] | None) -> dict[str, str] | None:
    """``--reference SENSOR=REFERENCE`` flags -> the detector's ``references`` (`pdm.detectors.references`)."""
    if not specs:
        return None
    out: dict[str, str] = {}
    for spec in specs:
        target, sep, ref = (part.strip() for part in spec.partition("="))
        if not sep or not target or not ref:
            raise DataError(f"found --reference {spec!r}, expected SENSOR=REFERENCE, e.g. temperature=ambient")
        out[target] = ref
    return out


def parse_features(text: str | None) -> list[str] | None:
    if text is None:
        return None
    features = [f.strip() for f in text.split(",") if f.strip()]
    if not features:
        raise DataError(f"found --features {text!r}, expected comma-separated column names")
    return features

