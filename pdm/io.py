"""Reading tables from disk: CSV (comma or semicolon, detected; decimal commas too) and Parquet.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "export.csv"
>>> _ = path.write_text("Time;Bearing Temp\\n2026-11-23 00:00:00;61,5\\n2026-11-23 00:00:01;61,7\\n")
>>> read_table(path)["Bearing Temp"].tolist()
[61.5, 61.7]
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pdm.errors import DataError

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


def sniff_csv(sample: str) -> tuple[str, str]:
    """(separator, decimal mark) of a CSV sample.

    >>> sniff_csv("a;b\\n1,5;2,5\\n")
    (';', ',')
    >>> sniff_csv("a,b\\n1.5,2.5\\n")
    (',', '.')
    """
    lines = [ln for ln in sample.splitlines() if ln.strip()][:20]
    if not lines:
        return ",", "."
    try:
        sep = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t").delimiter
    except csv.Error:
        sep = ";" if lines[0].count(";") > lines[0].count(",") else ","
    decimal = "," if sep != "," and any(re.search(r"\d,\d", ln) for ln in lines[1:]) else "."
    return sep, decimal


def read_table(path: Path | str) -> pd.DataFrame:
    """One file as a DataFrame; any failure is a `DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        if suffix in CSV_SUFFIXES:
            with path.open(encoding="utf-8-sig", errors="replace") as fh:
                sample = fh.read(16_384)
            sep, decimal = sniff_csv(sample)
            frame = pd.read_csv(path, sep=sep, decimal=decimal, encoding="utf-8-sig")
            frame.columns = [str(c).strip() for c in frame.columns]
            return frame
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    raise DataError(f"{path}: found suffix {suffix or '(none)'!r}, expected .csv or .parquet")


def read_frames(paths: Sequence[Path | str], machine_column: str | None) -> dict[str, pd.DataFrame] | pd.DataFrame:
    """Several files: one machine each (named by the file's stem) unless they carry a machine column, in which
    case they are concatenated and the column identifies the machines."""
    frames = [read_table(p) for p in paths]
    for p, f in zip(paths, frames, strict=True):
        if f.empty:
            raise DataError(f"{p}: the file has no rows")
    if machine_column is not None and all(machine_column in f.columns for f in frames):
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    names = [Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise DataError(f"files {list(map(str, paths))} share a name: expected one file per machine, named by machine"
                        f" id, or a {machine_column!r} column")
    return dict(zip(names, frames, strict=True))
