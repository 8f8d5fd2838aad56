"""Compaction: a closed write-ahead segment becomes one Parquet file per UTC date of its rows, then is removed.

Rules:

- Each Parquet file is written to a hidden temporary name (``.part-....parquet.tmp``), fsynced, renamed into place
  (atomic) and its directory fsynced: a reader sees a whole file or none, and a crash never leaves a broken one.
- The file name is derived from the segment's (``part-<segment>.parquet``), so compacting the same segment again
  (after a crash between the rename and the segment's removal) replaces the file with the same rows: no
  duplicates.
- Rows inside a file are sorted by the table's order (machine, then time): small files, and row-group statistics
  that let readers skip what they do not need.
- A segment with no readable batch but some bytes (a disk that was full while its first batch was written) is moved
  to ``ROOT/_quarantine/_wal/<instance>/<table>/`` (logged, counted), never deleted and never left in the WAL.
- Rows that cannot be dated (a time not from 2000 to before 2100: the handler refuses them, so only a segment of an
  older version can hold any) are written to ``ROOT/_quarantine/<table>/`` instead of a partition.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pdm.recorder.counters import Counters
from pdm.recorder.retention import quarantine
from pdm.recorder.schema import NO_DATE, QUARANTINE_DIR, WAL_DIR, TableSpec, day_name, row_dates
from pdm.recorder.segments import read_segment
from pdm.saving.model_dir import fsync_path

logger = logging.getLogger(__name__)


@dataclass
class Compacted:
    rows: int = 0
    files: list[Path] = field(default_factory=list)
    torn: bool = False
    unreadable: bool = False
    quarantined_rows: int = 0


def write_parquet_atomic(table: pa.Table, path: Path, compression: str) -> None:
    """Write ``table`` to ``path`` through a temporary file, fsync, atomic rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression=compression)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def compact_segment(segment: Path, root: Path, spec: TableSpec, compression: str = "zstd") -> Compacted:
    """Turn one closed segment into Parquet files under ``root/<table>/date=.../`` and remove it."""
    batches, torn = read_segment(segment)
    result = Compacted(torn=torn)
    if not batches:
        if torn:
            bad = quarantine(segment, root) if segment.is_relative_to(root / WAL_DIR) else \
                segment.rename(segment.with_name(segment.name + ".unreadable"))
            logger.error("segment %s has no readable batch (a full disk?); moved to %s", segment, bad)
            result.unreadable = True
        else:
            segment.unlink()
        return result
    table = pa.Table.from_batches(batches)
    days = row_dates(table, spec)
    order = [(c, "ascending") for c in spec.order]
    for day in np.unique(days):
        part = table.filter(pa.array(days == day)).sort_by(order)
        if day == NO_DATE:
            path = root / QUARANTINE_DIR / spec.name / f"undated-{segment.stem}.parquet"
            result.quarantined_rows = part.num_rows
            logger.error("segment %s: %d %s rows have no valid date (not from 2000 to before 2100); written to %s",
                         segment.name, part.num_rows, spec.name, path)
        else:
            path = root / spec.name / f"date={day_name(day)}" / f"part-{segment.stem}.parquet"
            result.files.append(path)
        write_parquet_atomic(part, path, compression)
    result.rows = table.num_rows
    segment.unlink()
    if torn:
        logger.warning("segment %s had a torn last batch (a crash while writing it); kept %d complete rows",
                       segment.name, table.num_rows)
    return result


class Compactor:
    """A thread compacting closed segments in order; ``after`` runs after each one (retention)."""

    def __init__(self, root: Path, specs: dict[str, TableSpec], compression: str, counters: Counters,
                 after: Callable[[], None] | None = None) -> None:
        self.root, self.specs, self.compression, self.counters, self.after = root, specs, compression, counters, after
        self._queue: queue.Queue[tuple[str, Path] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pdm-recorder-compactor", daemon=True)

    def submit(self, table: str, segment: Path) -> None:
        self._queue.put((table, segment))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Compact what was submitted, then end; False when that took longer than ``timeout`` (the segments left
        are recovered by the next start)."""
        if self._thread.ident is None:  # never started
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("compaction still running after %.0f s; its segments are recovered at the next start",
                           timeout)
            return False
        return True

    def compact(self, table: str, segment: Path) -> Compacted | None:
        """Compact one segment now, counting the outcome; a failure is logged and counted, the segment kept."""
        try:
            result = compact_segment(segment, self.root, self.specs[table], self.compression)
        except Exception:  # per segment: one bad segment never stops the others
            self.counters.inc("compaction_errors")
            logger.exception("could not compact %s (kept; retried at the next start)", segment)
            return None
        self.counters.inc("segments_compacted")
        self.counters.inc("files_written", len(result.files))
        self.counters.inc(f"compacted_rows.{table}", result.rows)
        self.counters.inc("segments_torn", int(result.torn))
        self.counters.inc("segments_unreadable", int(result.unreadable))
        self.counters.inc("quarantined.rows", result.quarantined_rows)
        return result

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.compact(*item)
            if self.after is not None:
                try:
                    self.after()
                except Exception:  # retention failing must not stop compaction
                    self.counters.inc("retention_errors")
                    logger.exception("retention failed")
