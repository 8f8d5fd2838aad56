"""Offline mode: readings with per-row labels to Parquet or CSV, plus a separate fault table.

Readings file columns: ``timestamp`` (epoch s), ``machine_id``, ``machine_type``, ``temperature``, ``vibration``,
``pressure`` (null = dropout), ``fault_id``, ``fault_type``, ``fault_kind`` (empty strings when normal). Rows are in
time order, machines in fleet order within a timestamp. The fault table (``NAME_faults.parquet``/``.csv`` beside
it) has ``fault_id, machine_id, machine_type, type, kind, sensor, start, end, severity, forced``.
Files are written block by block (bounded memory) and renamed into place when complete; the same seed and
arguments give byte-identical files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pdm.contract import SENSORS
from simulators.fleet.config import ConfigError
from simulators.fleet.engine import Block, Simulator

logger = logging.getLogger(__name__)

LABELS = ("fault_id", "fault_type", "fault_kind")


def readings_schema(sensors: tuple[str, ...] = SENSORS) -> pa.Schema:
    """The readings file's columns: time, machine, one per sensor (`Simulator.sensors`), the fault labels."""
    return pa.schema([("timestamp", pa.float64()), ("machine_id", pa.string()), ("machine_type", pa.string()),
                      *((s, pa.float64()) for s in sensors), *((c, pa.string()) for c in LABELS)])


SCHEMA = readings_schema()
FAULT_SCHEMA = pa.schema([("fault_id", pa.string()), ("machine_id", pa.string()), ("machine_type", pa.string()),
                          ("type", pa.string()), ("kind", pa.string()), ("sensor", pa.string()),
                          ("start", pa.float64()), ("end", pa.float64()), ("severity", pa.float64()),
                          ("forced", pa.bool_())])
FORMATS = (".parquet", ".csv")


@dataclass(frozen=True)
class Summary:
    rows: int
    machines: int
    faults: int
    seconds: float
    path: Path
    faults_path: Path


def faults_path_for(path: Path) -> Path:
    return path.with_name(f"{path.stem}_faults{path.suffix}")


def _strings(codes: np.ndarray, names: list[str]) -> pa.Array:
    """Strings for integer codes (-1 -> ''), built as a dictionary array and cast (fast for repeated names)."""
    dictionary = pa.array(["", *names], pa.string())
    indices = pa.array((codes + 1).astype(np.int32, copy=False))
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def block_table(sim: Simulator, block: Block) -> pa.Table:
    n, m = len(block), len(sim.machine_ids)
    machine = np.tile(np.arange(m, dtype=np.int32), n)
    labels = block.labels.ravel()
    faults = sim.faults
    columns = [
        pa.array(np.repeat(block.ts, m)),
        _strings(machine, sim.machine_ids),
        _strings(machine, sim.types),
        *(pa.array(block.values[s].ravel(), from_pandas=True) for s in sim.sensors),  # NaN -> null
        _strings(labels, [f.fault_id for f in faults]),
        _strings(labels, [f.type for f in faults]),
        _strings(labels, [f.kind for f in faults]),
    ]
    return pa.Table.from_arrays(columns, schema=readings_schema(sim.sensors))


def fault_table(sim: Simulator) -> pa.Table:
    end = sim.total_steps if sim.total_steps is not None else np.inf
    faults = [f for f in sim.faults if f.start < end]
    types = dict(zip(sim.machine_ids, sim.types, strict=True))
    cols = {
        "fault_id": [f.fault_id for f in faults], "machine_id": [f.machine_id for f in faults],
        "machine_type": [types[f.machine_id] for f in faults], "type": [f.type for f in faults],
        "kind": [f.kind for f in faults], "sensor": [f.sensor for f in faults],
        "start": [float(sim.ts(f.start)) for f in faults], "end": [float(sim.ts(f.end)) for f in faults],
        "severity": [round(f.severity, 3) for f in faults], "forced": [f.forced for f in faults],
    }
    return pa.Table.from_pydict(cols, schema=FAULT_SCHEMA)


class _Writer:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.tmp = path, path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if path.suffix == ".parquet":
            self.w: pq.ParquetWriter | pacsv.CSVWriter = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        else:
            self.w = pacsv.CSVWriter(self.tmp, schema)

    def write(self, table: pa.Table) -> None:
        self.w.write_table(table)

    def close(self, ok: bool) -> None:
        self.w.close()
        if ok:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write(sim: Simulator, path: Path) -> Summary:
    """Simulate the whole duration into ``path`` (.parquet or .csv) and its fault table."""
    if path.suffix not in FORMATS:
        raise ConfigError(f"--out: found {str(path)!r}, expected a file name ending in .parquet or .csv")
    if sim.total_steps is None:
        raise ConfigError("--duration: found none, expected a duration for --out (e.g. --duration 7d)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create the directory of {str(path)!r} ({exc.strerror})") from None
    started = time.monotonic()
    rows = 0
    writer = _Writer(path, readings_schema(sim.sensors))
    ok = False
    try:
        for block in sim.blocks():
            writer.write(block_table(sim, block))
            rows += block.labels.size
        ok = True
    finally:
        writer.close(ok)
    table = fault_table(sim)
    fpath = faults_path_for(path)
    fw = _Writer(fpath, FAULT_SCHEMA)
    fw.write(table)
    fw.close(True)
    return Summary(rows, len(sim.machine_ids), table.num_rows, time.monotonic() - started, path, fpath)


def iter_tables(sim: Simulator) -> Iterator[pa.Table]:
    for block in sim.blocks():
        yield block_table(sim, block)


def frames(sim: Simulator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The readings and the fault table in memory (small fleets: tests, plots, notebooks)."""
    readings = pa.concat_tables(list(iter_tables(sim))).to_pandas()
    return readings, fault_table(sim).to_pandas()


def read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A readings file written by :func:`write` and its fault table."""
    fpath = faults_path_for(path)
    for p in (path, fpath):
        if not p.is_file():
            raise ConfigError(f"found no file {str(p)!r}, expected the output of `python -m simulators.fleet --out`")
    if path.suffix == ".parquet":
        return pd.read_parquet(path), pd.read_parquet(fpath)
    if path.suffix == ".csv":
        opts = pacsv.ConvertOptions(column_types=SCHEMA, strings_can_be_null=False)
        fopts = pacsv.ConvertOptions(column_types=FAULT_SCHEMA, strings_can_be_null=True)
        return (pacsv.read_csv(path, convert_options=opts).to_pandas(),
                pacsv.read_csv(fpath, convert_options=fopts).to_pandas())
    raise ConfigError(f"found {str(path)!r}, expected a .parquet or .csv file")
