"""What one retrain reads: CSV/Parquet files or the recorder's tables, selected by machine, machine type and time.

Time (`Selection`): readings before ``until`` (default: now for the recorder, the data's end for files), from
``since`` or, with ``last_s``, from ``last_s`` seconds before ``until``. The recorder without either reads the last
7 days. Files are read with the champion's timestamp column unless one is given (`champion_timestamp_column`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pdm.detectors.config import read_config
from pdm.retrain.data import MID, TS, RetrainData, from_files
from pdm.retrain.recorder_source import from_recorder
from pdm.saving import current_version

DEFAULT_LAST_S = 7 * 86_400.0  # the recorder's default span


@dataclass(frozen=True)
class Selection:
    """Which machines (ids, or a type) and which time span (module docstring); ``None`` selects everything."""

    machines: Sequence[str] | None = None
    machine_type: str | None = None
    since: float | None = None
    until: float | None = None
    last_s: float | None = None


def read_recorder(root: Path, selection: Selection, *, now: float | None = None) -> RetrainData:
    """The recorder's readings, alerts, periods and truth events under ``root``, as selected."""
    end = selection.until if selection.until is not None else (time.time() if now is None else now)
    last = selection.last_s
    if last is None and selection.since is None:
        last = DEFAULT_LAST_S
    start = end - last if last is not None else selection.since
    return from_recorder(root, start=start, end=end, machines=selection.machines,
                         machine_type=selection.machine_type)


def read_files(paths: Sequence[Path], selection: Selection, *, champion: Path, timestamp_column: str | None = None,
               machine_column: str = MID, machine_id: str | None = None, label_column: str | None = "auto",
               kind_column: str | None = None) -> RetrainData:
    """Files as `pdm.retrain.data.from_files` reads them (``label_column`` "auto", a name, or ``None``), as
    selected; the timestamp column defaults to that of the model name directory ``champion``."""
    data = from_files(paths, timestamp_column=timestamp_column or champion_timestamp_column(champion),
                      machine_column=machine_column, machine_id=machine_id, label_column=label_column,
                      kind_column=kind_column)
    since = selection.since
    if selection.last_s is not None:
        end = selection.until if selection.until is not None else float(data.frame[TS].max()) + 1e-6
        since = end - selection.last_s
    return data.select(selection.machines, selection.machine_type, since, selection.until)


def champion_timestamp_column(name_dir: Path) -> str | None:
    """The timestamp column the current version of ``name_dir`` was trained with, read from its config without
    loading it; ``None`` without a current version or when it was detected."""
    if current_version(name_dir) is None:
        return None
    value = read_config(name_dir).params.get("timestamp_column")
    return value if isinstance(value, str) else None
