"""The recorder's tables: Arrow schemas, the column that dates a row, de-duplication keys, and the on-disk layout.

Layout under ``ROOT`` (Hive-style, readable by pandas, pyarrow, DuckDB and Spark):

- ``ROOT/<table>/date=YYYY-MM-DD/part-<segment>.parquet``: finished files, never modified once renamed into place.
- ``ROOT/_wal/<instance>/<table>/<segment>.arrows``: write-ahead segments (Arrow IPC streams) of a running recorder.
- ``ROOT/_quarantine/``: what the recorder set aside instead of deleting: segments it cannot read, partitions whose
  name is not a valid date from 2000 to 2099, rows it could not date (see docs/recorder.md).
- Names starting with ``.`` or ``_`` (temporary files, removed partitions, the WAL, the quarantine) are skipped by
  every reader.

A row's date (its partition) is the UTC day of its ``date_column``, or of ``received_at`` where that is null. Only
dates from 2000-01-01 to 2099-12-31 are partitions: readers and retention ignore any other ``date=`` directory.

>>> spec = table_specs(("temperature",))["telemetry"]
>>> spec.schema.names
['machine_id', 'machine_type', 'ts', 'seq', 'received_at', 'temperature']
>>> day_names(np.array([0.0, 86_399.9, 1_795_392_000.0]))
['1970-01-01', '1970-01-01', '2026-11-23']
>>> partition_date("date=2026-11-23"), partition_date("date=9999-12-31"), partition_date("date=NaT")
('2026-11-23', None, None)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pdm.contract.limits import MAX_TS, MIN_TS
from pdm.errors import PdmError

TABLES: tuple[str, ...] = ("telemetry", "scores", "alerts", "states", "maintenance", "truth", "rejected", "status")
TELEMETRY_FIXED: tuple[str, ...] = ("machine_id", "machine_type", "ts", "seq", "received_at")
WAL_DIR = "_wal"
QUARANTINE_DIR = "_quarantine"
SEGMENT_SUFFIX = ".arrows"
PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
DAY_S = 86_400.0


class RecorderError(PdmError):
    """The recorder cannot do what it was asked: the message says what was found and what was expected."""


@dataclass(frozen=True)
class TableSpec:
    """One table: its schema, the epoch-seconds column that dates a row, its de-duplication key and file order."""

    name: str
    schema: pa.Schema
    date_column: str
    keys: tuple[str, ...]  # rows equal on these are one event (redelivery after a crash); () keeps every row
    order: tuple[str, ...]  # sort order inside a file

    @property
    def has_machine(self) -> bool:
        return "machine_id" in self.schema.names


_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()


def _fields(*pairs: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(pairs))


def telemetry_schema(sensors: Sequence[str]) -> pa.Schema:
    """Wide telemetry: the fixed columns, then one float64 column per sensor (null: no value, a dropout)."""
    clash = sorted(set(sensors) & set(TELEMETRY_FIXED))
    if clash or len(set(sensors)) != len(sensors) or not sensors:
        raise RecorderError(f"sensors: found {list(sensors)}, expected distinct names other than "
                            f"{list(TELEMETRY_FIXED)}")
    return _fields(("machine_id", _S), ("machine_type", _S), ("ts", _F), ("seq", _I), ("received_at", _F),
                   *((s, _F) for s in sensors))


def table_specs(sensors: Sequence[str]) -> dict[str, TableSpec]:
    """Every table, with telemetry's sensor columns from ``sensors``."""
    model = (("model_name", _S), ("model_version", _S))
    specs = [
        TableSpec("telemetry", telemetry_schema(sensors), "ts", ("machine_id", "ts"), ("machine_id", "ts")),
        TableSpec("scores", _fields(("machine_id", _S), ("ts", _F), ("score", _F), ("threshold", _F),
                                    ("contributions", _S), *model, ("instance", _S), ("received_at", _F)),
                  "ts", ("machine_id", "ts", "instance"), ("machine_id", "ts")),
        TableSpec("alerts", _fields(("alert_id", _S), ("machine_id", _S), ("event", _S), ("ts", _F),
                                    ("window_start", _F), ("window_end", _F), ("score", _F), ("threshold", _F),
                                    ("severity", _S), ("contributions", _S), *model, ("instance", _S),
                                    ("received_at", _F)),
                  "ts", ("alert_id", "event"), ("machine_id", "ts")),
        TableSpec("states", _fields(("machine_id", _S), ("state", _S), ("since", _F), ("alert_id", _S),
                                    ("score", _F), ("threshold", _F), *model, ("instance", _S), ("ts", _F),
                                    ("retained", _B), ("received_at", _F)),
                  "since", ("machine_id", "since", "state", "instance", "alert_id"), ("machine_id", "since")),
        TableSpec("maintenance", _fields(("machine_id", _S), ("from_ts", _F), ("until_ts", _F), ("reason", _S),
                                         ("by", _S), ("cleared", _B), ("retained", _B), ("received_at", _F)),
                  "from_ts", ("machine_id", "from_ts", "until_ts", "cleared"), ("machine_id", "received_at")),
        TableSpec("truth", _fields(("machine_id", _S), ("ts", _F), ("event", _S), ("fault", _S), ("kind", _S),
                                   ("sensor", _S), ("fault_id", _S), ("received_at", _F)),
                  "ts", ("fault_id", "event"), ("machine_id", "ts")),
        TableSpec("rejected", _fields(("received_at", _F), ("topic", _S), ("kind", _S), ("machine_id", _S),
                                      ("reason", _S), ("detail", _S), ("payload_excerpt", _S)),
                  "received_at", (), ("received_at",)),
        TableSpec("status", _fields(("service", _S), ("instance", _S), ("state", _S), ("version", _S),
                                    ("started_at", _F), *model, ("retained", _B), ("received_at", _F)),
                  "received_at", ("service", "instance", "state", "started_at"), ("received_at",)),
    ]
    return {s.name: s for s in specs}


def check_table(name: str) -> str:
    if name not in TABLES:
        raise RecorderError(f"table: found {name!r}, expected one of {list(TABLES)}")
    return name


def day_index(epoch: np.ndarray) -> np.ndarray:
    """UTC day numbers (days since 1970-01-01) of epoch seconds."""
    return np.floor(np.asarray(epoch, dtype=np.float64) / DAY_S).astype(np.int64)


def day_name(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def day_names(epoch: np.ndarray) -> list[str]:
    return [day_name(d) for d in day_index(epoch)]


_FIRST_DATE = dt.date(2000, 1, 1)
_END_DATE = dt.date(2100, 1, 1)


def partition_date(dirname: str) -> str | None:
    """``YYYY-MM-DD`` of a ``date=YYYY-MM-DD`` directory name whose date is real and from 2000 to 2099, else
    ``None``."""
    match = PARTITION_RE.match(dirname)
    if not match:
        return None
    try:
        date = dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return match.group(1) if _FIRST_DATE <= date < _END_DATE else None


def is_bad_partition(dirname: str) -> bool:
    """A ``date=`` directory whose name is not a partition (``date=NaT``, ``date=9999-12-31``, ...)."""
    return dirname.startswith("date=") and partition_date(dirname) is None


NO_DATE = -1


def row_dates(table: pa.Table, spec: TableSpec) -> np.ndarray:
    """Each row's UTC day number: ``date_column``, or ``received_at`` where that is null; ``NO_DATE`` for a row
    whose time is not from 2000 to before 2100 (NaN included), which no partition may hold."""
    import pyarrow.compute as pc

    column = table.column(spec.date_column)
    if spec.date_column != "received_at":
        column = pc.coalesce(column, table.column("received_at"))
    epoch = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    ok = (epoch >= MIN_TS) & (epoch < MAX_TS)
    return np.where(ok, day_index(np.where(ok, epoch, MIN_TS)), NO_DATE)
