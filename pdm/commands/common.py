"""Helpers shared by the subcommands: loading data and models, progress output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.detectors.frames import find_timestamp_column, to_epoch_seconds
from pdm.errors import DataError
from pdm.io import read_frames

MACHINE_COLUMN = "machine_id"


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


def parse_features(text: str | None) -> list[str] | None:
    if text is None:
        return None
    features = [f.strip() for f in text.split(",") if f.strip()]
    if not features:
        raise DataError(f"found --features {text!r}, expected comma-separated column names")
    return features


@contextmanager
def epoch_progress(epochs: int) -> Iterator[Callable[[int, int, dict[str, float]], None] | None]:
    """A rich progress bar (one step per epoch) on an interactive terminal; log lines otherwise."""
    if not sys.stderr.isatty():
        import logging

        logging.getLogger("pdm.detectors.gru").setLevel(logging.INFO)
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("training"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
                  TextColumn("{task.fields[figures]}"), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("fit", total=epochs, figures="")

        def update(epoch: int, total: int, figures: dict[str, Any]) -> None:
            text = " ".join(f"{k}={v:.4g}" for k, v in figures.items())
            bar.update(task, completed=epoch, total=total, figures=text)

        yield update
