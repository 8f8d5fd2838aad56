"""Loaders of the public benchmark data sets (`benchmarks/real_data.py` and the tests that use them).

The data are read where they lie, never copied into the repository: the folder named by the environment variable
``PDM_SHARED_DATA``, else ``shared/data`` beside the checkout (``<checkout>/../shared/data``). Two sets:

- ``tep/``: the Tennessee Eastman process (52 variables, a reading every 3 minutes). ``d00`` (500 normal rows) is
  the training data; ``d00_te`` (960 normal rows) and ``dNN_te`` (fault IDV(NN) from row 160 on, column ``fault``)
  are the test data.
- ``smd/``: the Server Machine Dataset (38 metrics a minute per machine): ``MACHINE_train`` (normal),
  ``MACHINE_test`` (column ``label``) and ``MACHINE_interpretation.txt``: each labelled segment as
  ``start-end:dims``, rows ``[start, end)`` of the test file, ``dims`` the 1-based numbers of the truly anomalous
  metrics (see `parse_interpretation`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pdm.errors import DataError

ENV_VAR = "PDM_SHARED_DATA"
TEP_FEATURES = [f"xmeas_{i:02d}" for i in range(1, 42)] + [f"xmv_{i:02d}" for i in range(1, 12)]
TEP_FAULT_START = 160  # the fault is introduced after 8 hours: rows 160 on carry it
TEP_FAULTS = list(range(1, 22))
TEP_HARD_FAULTS = (3, 9, 15)  # widely reported as almost undetectable by any method
SMD_FEATURES = [f"m{i:02d}" for i in range(1, 39)]


def shared_data_dir() -> Path:
    """The benchmark data folder: ``$PDM_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def missing_reason(subset: str, root: Path | None = None) -> str | None:
    """Why the data set ``subset`` ("tep" or "smd") cannot be used, or ``None`` when it is there."""
    folder = (root or shared_data_dir()) / subset
    if not folder.is_dir():
        return (f"benchmark data not found: expected the folder {folder} (set {ENV_VAR} to the folder that holds "
                f"{subset}/)")
    return None


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"benchmark data file not found: expected {path} (set {ENV_VAR} to the data folder)")
    return pd.read_parquet(path)


def tep_frame(name: str, root: Path | None = None) -> pd.DataFrame:
    """One TEP file: ``"d00"`` (training), ``"d00_te"`` or ``"dNN_te"``."""
    return _read((root or shared_data_dir()) / "tep" / f"{name}.parquet")


def tep_test_name(fault: int) -> str:
    """File name of a TEP test run: 0 is the normal one.

    >>> tep_test_name(0), tep_test_name(7)
    ('d00_te', 'd07_te')
    """
    return f"d{fault:02d}_te"


def smd_machines(root: Path | None = None) -> list[str]:
    """The SMD machines present, sorted."""
    folder = (root or shared_data_dir()) / "smd"
    return sorted(p.name.removesuffix("_train.parquet") for p in folder.glob("*_train.parquet"))


@dataclass(frozen=True)
class LabelledSegment:
    """Rows ``[start, end)`` of a test file, with the sensors that are truly anomalous in them."""

    start: int
    end: int
    sensors: frozenset[str]


def parse_interpretation(text: str, features: list[str] = SMD_FEATURES) -> list[LabelledSegment]:
    """Segments of an SMD interpretation file; its 1-based metric numbers become ``features`` names.

    >>> first = parse_interpretation("15-18:1,3\\n40-41:2\\n", ["a", "b", "c"])[0]
    >>> first.start, first.end, sorted(first.sensors)
    (15, 18, ['a', 'c'])
    >>> parse_interpretation("15-18:4", ["a", "b", "c"])
    Traceback (most recent call last):
    ...
    pdm.errors.DataError: line 1: found metric 4, expected 1 to 3
    """
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            span, dims = line.strip().split(":")
            start, end = (int(v) for v in span.split("-"))
            numbers = [int(d) for d in dims.split(",")]
        except ValueError:
            raise DataError(f"line {number}: found {line.strip()!r}, expected 'start-end:dim,dim,...'") from None
        bad = [d for d in numbers if not 1 <= d <= len(features)]
        if bad or end <= start:
            what = f"metric {bad[0]}" if bad else f"the span {start}-{end}"
            raise DataError(f"line {number}: found {what}, expected "
                            + (f"1 to {len(features)}" if bad else "start < end"))
        out.append(LabelledSegment(start, end, frozenset(features[d - 1] for d in numbers)))
    return out


def smd_data(machine: str, root: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[LabelledSegment]]:
    """One SMD machine: training frame, test frame (with ``label``) and the labelled segments."""
    folder = (root or shared_data_dir()) / "smd"
    text_path = folder / f"{machine}_interpretation.txt"
    if not text_path.is_file():
        raise DataError(f"benchmark data file not found: expected {text_path} (set {ENV_VAR} to the data folder)")
    return (_read(folder / f"{machine}_train.parquet"), _read(folder / f"{machine}_test.parquet"),
            parse_interpretation(text_path.read_text(encoding="utf-8")))
