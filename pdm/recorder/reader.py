"""Reading recorded tables back: what retraining (and any analysis) uses.

``read_table(root, table, start, end, machines, machine_type)`` returns a pandas DataFrame:

- Time bounds apply to the table's date column (``ts`` for telemetry, scores, alerts and truth; ``since`` for
  states; ``from_ts`` for maintenance; ``received_at`` otherwise) in Unix epoch seconds, ``start`` inclusive,
  ``end`` exclusive. They accept epoch seconds, ``datetime``/``Timestamp`` or strings (naive means UTC). Only the
  ``date=`` partitions that can hold rows in range are opened; the rest of the filter is pushed into the Parquet
  scan (row-group statistics).
- ``machine_type`` selects the machines whose telemetry carried that type in the range (single readings carry no
  type: their machine is selected through its batches), then every row of those machines.
- ``dedupe`` (default) keeps the first received of rows equal on the table's key (``machine_id``, ``ts`` for
  telemetry): the copies a crash-and-redelivery can leave.
- ``include_open`` also reads the write-ahead segments of running (or crashed) recorders: data not yet compacted,
  complete batches only.
- Rows come sorted by machine then time. Telemetry values are float64, ``NaN`` where a sensor had no value;
  ``seq`` is a nullable ``Int64`` (``<NA>`` for single readings).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pdm.contract import SENSORS
from pdm.errors import DataError
from pdm.recorder.schema import (
    DAY_S,
    TELEMETRY_FIXED,
    WAL_DIR,
    TableSpec,
    check_table,
    partition_date,
    table_specs,
)
from pdm.recorder.segments import list_segments, read_segment

TimeLike = float | int | str | datetime | pd.Timestamp | np.datetime64 | None
_SPECS = table_specs(SENSORS)  # sensors do not matter for date columns, keys and order


def to_epoch(value: TimeLike) -> float | None:
    """Epoch seconds of a time bound (``None`` stays ``None``; naive times are UTC).

    >>> to_epoch("2026-11-23"), to_epoch(1.5), to_epoch(None)
    (1795392000.0, 1.5, None)
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"time bound: found {value!r}, expected epoch seconds, a datetime or an ISO date ({exc})") \
            from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def available_dates(root: Path | str, table: str) -> list[str]:
    """The ``YYYY-MM-DD`` partitions of a table, oldest first."""
    tdir = Path(root) / check_table(table)
    if not tdir.is_dir():
        return []
    return sorted(d for d in (partition_date(p.name) for p in tdir.iterdir() if p.is_dir()) if d is not None)


def partition_files(root: Path | str, table: str, start: float | None = None, end: float | None = None) -> list[Path]:
    """Parquet files of the partitions that can hold rows with ``start <= date column < end``."""
    files: list[Path] = []
    for date in available_dates(root, table):
        day0 = pd.Timestamp(date, tz="UTC").timestamp()
        if (start is not None and day0 + DAY_S <= start) or (end is not None and day0 >= end):
            continue
        files += sorted(f for f in (Path(root) / table / f"date={date}").glob("*.parquet")
                        if not f.name.startswith((".", "_")))
    return files


def _scan(files: list[Path], columns: list[str] | None, expr: ds.Expression | None) -> pa.Table | None:
    if not files:
        return None
    schema = pa.unify_schemas([pq.read_schema(f) for f in files])
    dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    wanted = None if columns is None else [c for c in columns if c in schema.names]
    return dataset.to_table(columns=wanted, filter=expr)


def _open_segments(root: Path, table: str) -> list[pa.Table]:
    tables = []
    wal = root / WAL_DIR
    for instance in sorted(wal.iterdir()) if wal.is_dir() else []:
        for segment in list_segments(instance / table):
            try:
                batches, _ = read_segment(segment)
            except FileNotFoundError:  # compacted meanwhile: its rows are in a Parquet file now
                continue
            if batches:
                tables.append(pa.Table.from_batches(batches))
    return tables


def _filter(table: pa.Table, spec: TableSpec, start: float | None, end: float | None,
            machines: list[str] | None) -> pa.Table:
    dates = table.column(spec.date_column) if spec.date_column in table.column_names else None
    if dates is not None and spec.date_column != "received_at" and "received_at" in table.column_names:
        dates = pc.coalesce(dates, table.column("received_at"))
    mask = pa.array(np.ones(table.num_rows, dtype=bool))
    if dates is not None and start is not None:
        mask = pc.and_(mask, pc.fill_null(pc.greater_equal(dates, start), False))
    if dates is not None and end is not None:
        mask = pc.and_(mask, pc.fill_null(pc.less(dates, end), False))
    if machines is not None and "machine_id" in table.column_names:
        mask = pc.and_(mask, pc.is_in(table.column("machine_id"), value_set=pa.array(machines, pa.string())))
    return table.filter(mask)


def machines_of_type(root: Path | str, machine_type: str, start: TimeLike = None, end: TimeLike = None, *,
                     include_open: bool = False) -> list[str]:
    """Machines whose recorded telemetry carried ``machine_type`` in the range, sorted."""
    frame = read_table(root, "telemetry", start, end, columns=["machine_id", "machine_type"], dedupe=False,
                       include_open=include_open)
    return sorted(frame.loc[frame["machine_type"] == machine_type, "machine_id"].unique().tolist())


def read_table(root: Path | str, table: str, start: TimeLike = None, end: TimeLike = None,
               machines: Iterable[str] | None = None, *, machine_type: str | None = None,
               columns: list[str] | None = None, dedupe: bool = True, include_open: bool = False) -> pd.DataFrame:
    """One recorded table as a DataFrame (see the module's rules)."""
    root = Path(root)
    spec = _SPECS[check_table(table)]
    lo, hi = to_epoch(start), to_epoch(end)
    if lo is not None and hi is not None and not lo < hi:
        raise DataError(f"time range: found start={start!r} >= end={end!r}, expected start < end")
    wanted = None if machines is None else sorted(set(machines))
    if machine_type is not None:
        typed = machines_of_type(root, machine_type, lo, hi, include_open=include_open)
        wanted = typed if wanted is None else sorted(set(wanted) & set(typed))
    need = None if columns is None else list(dict.fromkeys([*columns, *spec.keys, *spec.order, spec.date_column,
                                                               "received_at"]))
    expr = None
    if spec.name != "maintenance":  # its date column can be null (cleared windows): filtered after the scan
        if lo is not None and not math.isinf(lo):
            expr = ds.field(spec.date_column) >= lo
        if hi is not None and not math.isinf(hi):
            expr = ds.field(spec.date_column) < hi if expr is None else expr & (ds.field(spec.date_column) < hi)
    if wanted is not None and spec.has_machine:
        cond = ds.field("machine_id").isin(wanted)
        expr = cond if expr is None else expr & cond
    parts = [t for t in [_scan(partition_files(root, table, lo, hi), need, expr)] if t is not None]
    if include_open:
        parts = [*(_open_segments(root, table)), *parts]
    if not parts:
        return _empty(spec, columns)
    merged = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
    merged = _filter(merged, spec, lo, hi, wanted if spec.has_machine else None)
    frame: pd.DataFrame = merged.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)  # seq: nullable ints
    if dedupe and spec.keys and len(frame):
        frame = frame.sort_values([*spec.keys, "received_at"], kind="stable").drop_duplicates(list(spec.keys))
    frame = frame.sort_values(list(spec.order), kind="stable").reset_index(drop=True)
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def _empty(spec: TableSpec, columns: list[str] | None) -> pd.DataFrame:
    frame: pd.DataFrame = spec.schema.empty_table().to_pandas()
    if spec.name == "telemetry":
        frame = frame[list(TELEMETRY_FIXED)]  # the sensor columns are whatever the files hold
    return frame if columns is None else frame[[c for c in columns if c in frame.columns]]


def sensor_columns(frame: pd.DataFrame) -> list[str]:
    """The sensor columns of a telemetry frame (everything but the fixed columns), in file order."""
    return [c for c in frame.columns if c not in TELEMETRY_FIXED and c != "date"]
