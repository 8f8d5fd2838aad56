"""The recorder's tables (`pdm.recorder`, docs/recorder.md) as a retraining source.

- Readings: the ``telemetry`` table in ``[start, end)`` for the machines asked for (ids, a type, or all), including
  rows still in the write-ahead segments of a running recorder.
- Exclusions (reasons): ``alert`` (alert episodes from the ``alerts`` table, raising window start to clearing time,
  and the daemon's ``alert`` states), ``stale``, ``warming_up`` and ``maintenance`` states (``states`` table),
  announced maintenance windows (``maintenance`` table), and labelled faults (``truth`` table: ``fault`` or
  ``sensor_fault``), which also become the faults both models are judged on. Margins are added later
  (`pdm.retrain.exclusions`). Rejected readings are never recorded: they are gaps, which the detector's gap rule
  handles.
- The alert history counts as the champion's screening when the ``states`` table holds rows for these machines
  (a daemon was scoring them); otherwise `pdm.retrain.run` screens with the champion as it does for files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.errors import DataError
from pdm.evaluation import FaultSpan
from pdm.retrain.data import MID, MTYPE, TS, Exclusion, RetrainData

logger = logging.getLogger(__name__)
STATE_REASONS = ("alert", "stale", "warming_up", "maintenance")


def from_recorder(root: Path | str, *, start: float | None, end: float | None,
                  machines: Sequence[str] | None = None, machine_type: str | None = None) -> RetrainData:
    """A `RetrainData` from the recorder under ``root`` (see the module docstring)."""
    from pdm.recorder import (
        alert_periods,
        fault_periods,
        machines_of_type,
        maintenance_periods,
        read_table,
        sensor_columns,
        state_periods,
    )

    root = Path(root)
    if not (root / "telemetry").is_dir() and not (root / "_wal").is_dir():  # _wal: a running recorder's segments
        raise DataError(f"{root}: found no telemetry table and no write-ahead log, expected the root directory of a "
                        "recorder (python -m pdm record, or serve --record-dir)")
    wanted = list(machines) if machines else None
    if machine_type is not None:  # resolved here: read_table cannot filter on an empty list of machines
        typed = machines_of_type(root, machine_type, start, end, include_open=True)
        wanted = typed if wanted is None else [m for m in wanted if m in typed]
    tele = read_table(root, "telemetry", start, end, wanted, include_open=True) if wanted != [] else None
    if tele is None or tele.empty:
        raise DataError(f"{root}: found no telemetry for machines {list(machines or []) or 'all'}, type "
                        f"{machine_type or 'any'} in [{start}, {end}), expected some readings")
    sensors = sensor_columns(tele)
    frame = pd.DataFrame({TS: tele["ts"].to_numpy(dtype=np.float64), MID: tele["machine_id"].astype(str).to_numpy()})
    for s in sensors:
        frame[s] = pd.to_numeric(tele[s], errors="coerce").to_numpy(dtype=np.float64)
    order = np.lexsort((frame[TS].to_numpy(), frame[MID].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    ids = sorted(frame[MID].unique().tolist())
    types: dict[str, str] = {}
    if MTYPE in tele.columns:
        pairs = tele[[MID, MTYPE]].dropna().drop_duplicates(MID, keep="last")
        types = dict(zip(pairs[MID].astype(str), pairs[MTYPE].astype(str), strict=True))
    data = RetrainData(frame=frame, features=sensors, machine_types=types,
                       source=f"recorder {root} [{start}, {end})")
    states = state_periods(root, start, end, ids, include_open=True)
    data.has_alert_history = not states.empty
    for row in _rows(states[states["state"].isin(STATE_REASONS)]):
        data.exclusions.append(Exclusion(str(row["machine_id"]), float(row["start"]), float(row["end"]),
                                         str(row["state"]), "states"))
    for row in _rows(alert_periods(root, start, end, ids, margin_s=0.0, include_open=True)):
        data.exclusions.append(Exclusion(str(row["machine_id"]), float(row["start"]), float(row["end"]), "alert",
                                         str(row["alert_id"])))
    for row in _rows(maintenance_periods(root, start, end, ids, include_open=True)):
        data.exclusions.append(Exclusion(str(row["machine_id"]), float(row["start"]), float(row["end"]),
                                         "maintenance", str(row["reason"])))
    for row in _rows(fault_periods(root, start, end, ids, include_open=True)):
        sensor_fault = str(row["kind"]) == "sensor"
        span = FaultSpan(float(row["start"]), float(row["end"]), str(row["fault"]), str(row["machine_id"]),
                         sensor_fault)
        data.faults.setdefault(span.machine_id, []).append(span)
        data.exclusions.append(Exclusion(span.machine_id, span.start, span.end,
                                         "sensor_fault" if sensor_fault else "fault", str(row["fault_id"])))
    data.labelled = bool(data.faults)
    logger.info("recorder: %d readings of %d machine(s), %d exclusion period(s), %d labelled fault(s), alert "
                "history %s", len(frame), len(ids), len(data.exclusions), sum(len(v) for v in data.faults.values()),
                "yes" if data.has_alert_history else "no")
    return data


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
