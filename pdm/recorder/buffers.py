"""In-memory rows of one flush interval, per table, turned into one Arrow record batch per flush.

Telemetry keeps each message's arrays as parsed (no per-reading Python objects); the other tables keep row dicts.
A null sensor value (``NaN`` after parsing) is written as a Parquet null.

>>> import numpy as np, pyarrow as pa
>>> from pdm.contract import Telemetry
>>> from pdm.recorder.schema import telemetry_schema
>>> buf = TelemetryBuffer(telemetry_schema(("t", "p")))
>>> buf.add(Telemetry("m1", np.array([1.0, 2.0]), np.array([[1.5, np.nan], [2.5, 3.0]]), ("t", "p"), seq=7),
...         received_at=10.0)
>>> batch = buf.batch()
>>> batch.column("p").to_pylist(), batch.column("machine_id").to_pylist(), batch.column("seq").to_pylist()
([None, 3.0], ['m1', 'm1'], [7, 7])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pdm.contract import Telemetry
from pdm.recorder.schema import TELEMETRY_FIXED, RecorderError


class RowBuffer:
    """Rows as dicts (keys: the schema's column names; missing keys are nulls)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist(self._rows, schema=self.schema)

    def clear(self) -> None:
        self._rows.clear()


class TelemetryBuffer:
    """Telemetry messages as parsed arrays; the sensor columns are the schema's (after the fixed ones)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.sensors = tuple(schema.names[len(TELEMETRY_FIXED):])
        self._messages: list[tuple[str, str | None, int | None, float, np.ndarray, np.ndarray]] = []
        self._rows = 0

    def add(self, t: Telemetry, received_at: float) -> None:
        if t.sensors != self.sensors:
            raise RecorderError(f"telemetry sensors: found {list(t.sensors)}, expected {list(self.sensors)}")
        self._messages.append((t.machine_id, t.machine_type, t.seq, received_at, t.ts, t.values))
        self._rows += len(t)

    def __len__(self) -> int:
        return self._rows

    def batch(self) -> pa.RecordBatch:
        msgs = self._messages
        lengths = np.array([len(m[4]) for m in msgs], dtype=np.int64)

        def repeat(i: int, kind: pa.DataType) -> pa.Array:
            return pa.array(np.repeat(np.array([m[i] for m in msgs], dtype=object), lengths), type=kind)

        ts = np.concatenate([m[4] for m in msgs]) if msgs else np.empty(0)
        values = np.concatenate([m[5] for m in msgs]) if msgs else np.empty((0, len(self.sensors)))
        columns = [repeat(0, pa.string()), repeat(1, pa.string()), pa.array(ts, type=pa.float64()),
                   repeat(2, pa.int64()), repeat(3, pa.float64())]
        for j in range(len(self.sensors)):
            col = np.ascontiguousarray(values[:, j])
            columns.append(pa.array(col, type=pa.float64(), mask=np.isnan(col)))
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def clear(self) -> None:
        self._messages.clear()
        self._rows = 0


Buffer = RowBuffer | TelemetryBuffer
