"""What retraining reads, whatever the source: readings, excluded intervals with reasons, and labelled faults.

Every source (CSV/Parquet files here, the recorder in `pdm.retrain.recorder_source`) returns a `RetrainData`:

- ``frame``: one row per reading with ``timestamp`` (float epoch seconds), ``machine_id`` and the sensor columns,
  sorted by machine then time;
- ``exclusions``: intervals of one machine that must not be learned as normal, each with a reason (``alert``,
  ``stale``, ``warming_up``, ``maintenance``, ``fault``, ``sensor_fault``, ``screen``); margins are added later
  (`pdm.retrain.exclusions`);
- ``faults``: labelled faults per machine (`pdm.evaluation.FaultSpan`), used to judge the models; they are also
  exclusions.

>>> import pandas as pd
>>> df = pd.DataFrame({"timestamp": [0.0, 1.0, 2.0, 3.0], "temperature": [1.0, 2.0, 9.0, 2.0],
...                    "fault": ["", "", "leak", ""]})
>>> data = from_frame(df, machine_id="pump-1", label_column="fault")
>>> data.features, [(e.start, e.end, e.reason) for e in data.exclusions]
(['temperature'], [(2.0, 2.0, 'fault')])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.detectors.frames import find_timestamp_column, machine_positions, numeric_columns, to_epoch_seconds
from pdm.errors import DataError
from pdm.evaluation import FaultSpan, label_spans
from pdm.io import read_frames

logger = logging.getLogger(__name__)

TS, MID, MTYPE = "timestamp", "machine_id", "machine_type"
LABEL_CANDIDATES = ("fault_type", "label", "fault")  # label columns recognised without --label-column
KIND_COLUMN = "fault_kind"
NOT_SENSORS = {MTYPE, "fault_id", "fault_type", "fault_kind", "seq", "received_at"}


@dataclass(frozen=True)
class Exclusion:
    """Readings of ``machine_id`` with ``start <= ts <= end`` are not normal for the reason given."""

    machine_id: str
    start: float
    end: float
    reason: str
    detail: str = ""


@dataclass
class RetrainData:
    frame: pd.DataFrame
    features: list[str]
    exclusions: list[Exclusion] = field(default_factory=list)
    faults: dict[str, list[FaultSpan]] = field(default_factory=dict)
    machine_types: dict[str, str] = field(default_factory=dict)
    source: str = ""
    has_alert_history: bool = False  # the source recorded the daemon's alerts (no need to screen with the champion)
    labelled: bool = False  # faults are labelled (a label column, a truth table): the other readings are normal

    @property
    def machines(self) -> list[str]:
        return list(dict.fromkeys(self.frame[MID].tolist()))

    def machine_frames(self) -> dict[str, pd.DataFrame]:
        """Each machine's rows (sorted by time), without the machine column."""
        return {m: self.frame.iloc[pos].drop(columns=[MID]).reset_index(drop=True)
                for m, pos in machine_positions(self.frame, MID).items()}

    def select(self, machines: Sequence[str] | None = None, machine_type: str | None = None,
               start: float | None = None, end: float | None = None) -> RetrainData:
        """The readings, exclusions and faults of some machines (ids, or a type) within ``[start, end)``."""
        keep = np.ones(len(self.frame), dtype=bool)
        if machines:
            unknown = sorted(set(machines) - set(self.machines))
            if unknown:
                raise DataError(f"--machine: found {unknown}, expected machines of the data "
                                f"({', '.join(self.machines[:5])}{', ...' if len(self.machines) > 5 else ''})")
            keep &= self.frame[MID].isin(list(machines)).to_numpy()
        if machine_type:
            if not self.machine_types:
                raise DataError(f"--machine-type {machine_type}: found no {MTYPE!r} column, expected one to select "
                                "machines by type")
            ids = [m for m, t in self.machine_types.items() if t == machine_type]
            if not ids:
                raise DataError(f"--machine-type: found {machine_type!r}, expected one of "
                                f"{sorted(set(self.machine_types.values()))}")
            keep &= self.frame[MID].isin(ids).to_numpy()
        ts = self.frame[TS].to_numpy()
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts < end
        if not keep.any():
            raise DataError(f"no readings left after selecting machines {list(machines or []) or 'all'}, type "
                            f"{machine_type or 'any'}, time [{start}, {end}): expected at least one")
        frame = self.frame[keep].reset_index(drop=True)
        kept = set(frame[MID].unique().tolist())
        lo, hi = float(frame[TS].min()), float(frame[TS].max())
        faults = {m: [f for f in spans if f.start <= hi and f.end >= lo] for m, spans in self.faults.items()
                  if m in kept}
        return RetrainData(
            frame=frame, features=self.features, source=self.source, has_alert_history=self.has_alert_history,
            labelled=self.labelled,
            exclusions=[e for e in self.exclusions if e.machine_id in kept],  # margins may reach into the range
            faults={m: spans for m, spans in faults.items() if spans},
            machine_types={m: t for m, t in self.machine_types.items() if m in kept},
        )


def normalise(frame: pd.DataFrame, *, timestamp_column: str | None, machine_column: str,
              features: Sequence[str] | None) -> tuple[pd.DataFrame, list[str], np.ndarray]:
    """``timestamp`` as epoch seconds, ``machine_id`` as strings, sorted by machine then time; the sensor list;
    the input row of each output row."""
    ts_col = find_timestamp_column(frame, timestamp_column)
    ts = to_epoch_seconds(frame.index if ts_col is None else frame[ts_col], ts_col or "index")
    if features is None:
        features = [c for c in numeric_columns(frame, [ts_col, machine_column]) if c not in NOT_SENSORS]
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise DataError(f"sensor columns {missing} not found: found columns {list(map(str, frame.columns))}")
    if not features:
        raise DataError(f"no numeric sensor columns in {list(map(str, frame.columns))}: expected at least one")
    out = pd.DataFrame({TS: ts, MID: frame[machine_column].astype(str).to_numpy()})
    for f in features:
        out[f] = pd.to_numeric(frame[f], errors="coerce").to_numpy(dtype=np.float64)
    order = np.lexsort((out[TS].to_numpy(), out[MID].to_numpy()))
    return out.iloc[order].reset_index(drop=True), list(features), order


def from_frame(frame: pd.DataFrame, *, timestamp_column: str | None = None, machine_column: str = MID,
               machine_id: str | None = None, features: Sequence[str] | None = None,
               label_column: str | None = None, kind_column: str | None = None, source: str = "frame") -> RetrainData:
    """A `RetrainData` from one frame; ``label_column`` marks faults (see `pdm.evaluation.label_spans`)."""
    if machine_column not in frame.columns:
        frame = frame.assign(**{machine_column: machine_id or "machine"})
    elif frame[machine_column].isna().any():
        raise DataError(f"column {machine_column!r} has rows without a machine id: expected one on every row")
    for col, what in ((label_column, "label"), (kind_column, "kind")):
        if col is not None and col not in frame.columns:
            raise DataError(f"{what} column {col!r} not found: found columns {list(map(str, frame.columns))}")
    excluded_cols = {label_column, kind_column} - {None}
    if features is None:
        ts_col = find_timestamp_column(frame, timestamp_column)
        features = [c for c in numeric_columns(frame, [ts_col, machine_column])
                    if c not in NOT_SENSORS and c not in excluded_cols]
    norm, feats, order = normalise(frame, timestamp_column=timestamp_column, machine_column=machine_column,
                                   features=features)
    types: dict[str, str] = {}
    if MTYPE in frame.columns:
        pairs = frame[[machine_column, MTYPE]].dropna().astype(str).drop_duplicates(machine_column, keep="last")
        types = dict(zip(pairs[machine_column], pairs[MTYPE], strict=True))
    data = RetrainData(frame=norm, features=feats, machine_types=types, source=source,
                       labelled=label_column is not None)
    if label_column is not None:
        labels = frame[label_column].to_numpy()[order]
        kinds = frame[kind_column].to_numpy()[order] if kind_column else None
        ts = norm[TS].to_numpy()
        for m, pos in machine_positions(norm, MID).items():
            spans = label_spans(ts[pos], labels[pos], m, None if kinds is None else kinds[pos])
            if spans:
                data.faults[m] = spans
            data.exclusions.extend(Exclusion(m, s.start, s.end, "sensor_fault" if s.sensor_fault else "fault",
                                             s.kind) for s in spans)
    return data


def from_files(paths: Sequence[Path], *, timestamp_column: str | None = None, machine_column: str = MID,
               machine_id: str | None = None, features: Sequence[str] | None = None,
               label_column: str | None = None, kind_column: str | None = None) -> RetrainData:
    """CSV/Parquet files as the batch CLI reads them: one per machine (named by machine id, or ``machine_id``) or
    with a machine column. ``label_column`` "auto" picks the first of ``fault_type``, ``label``, ``fault`` that
    is present and not a sensor; ``None`` means no labels. ``kind_column`` defaults to ``fault_kind`` if present."""
    data = read_frames(list(paths), machine_column)
    if isinstance(data, dict):
        if machine_id is not None and len(data) > 1:
            raise DataError(f"--machine-id names one machine, found {len(data)} files: expected one file")
        frame = pd.concat([f if machine_column in f.columns else f.assign(**{machine_column: machine_id or m})
                           for m, f in data.items()], ignore_index=True)
    else:
        frame = data
    if label_column == "auto":
        label_column = next((c for c in LABEL_CANDIDATES if c in frame.columns and c not in (features or [])), None)
        if label_column is not None:
            logger.info("using column %r as fault labels (pass --label-column none to ignore it)", label_column)
    if kind_column is None and label_column is not None and KIND_COLUMN in frame.columns:
        kind_column = KIND_COLUMN
    return from_frame(frame, timestamp_column=timestamp_column, machine_column=machine_column, features=features,
                      label_column=label_column, kind_column=kind_column,
                      source=", ".join(str(p) for p in paths))
