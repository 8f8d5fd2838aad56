"""Write-ahead segments: one Arrow IPC stream file per table, appended one record batch per flush and fsynced.

Rules:

- A segment is created on the first flush that has rows for its table (idle tables create no files); its
  directory entry is fsynced once, every appended batch is fsynced: what a flush returned from is on disk.
- A segment rolls (is closed and handed to the compactor) when it is ``roll_interval`` seconds old or
  ``roll_bytes`` large, and on a clean stop.
- A write error abandons the segment (its batches written so far stay readable) and the rows stay buffered for the
  next flush, into a new segment.
- Reading a segment keeps every complete batch before a torn one: a crash mid-write loses only the batch being
  written (never acknowledged to the broker, so redelivered).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> schema = pa.schema([("x", pa.float64())])
>>> seg = Segment(d / "s.arrows", schema)
>>> seg.append(pa.record_batch([pa.array([1.0, 2.0])], schema=schema))
>>> with open(d / "s.arrows", "ab") as f:  # a crash in the middle of the next batch
...     _ = f.write(b"\\xff\\xff\\xff\\xff\\x10\\x00")
>>> batches, torn = read_segment(d / "s.arrows")
>>> [b.num_rows for b in batches], torn
([2], True)
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from pdm.recorder.schema import SEGMENT_SUFFIX
from pdm.saving.model_dir import fsync_path

logger = logging.getLogger(__name__)


def segment_name(instance: str, now: float | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-<instance>-<8 hex>``: sortable by creation time, unique across restarts and instances."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{instance}-{uuid.uuid4().hex[:8]}"


class Segment:
    """One open write-ahead segment."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: BinaryIO = open(path, "xb", buffering=0)  # noqa: SIM115 (closed by close())
        fsync_path(path.parent)
        self._writer = pa.ipc.new_stream(self._file, schema)
        self.opened = time.monotonic()
        self.rows = 0
        self.size = 0

    def append(self, batch: pa.RecordBatch) -> None:
        """Write one batch and fsync: on return it survives a crash."""
        self._writer.write_batch(batch)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += batch.num_rows
        self.size = self._file.tell()

    def close(self) -> None:
        """End-of-stream marker, fsync, close."""
        try:
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close after a write error without writing more (the complete batches stay readable)."""
        try:
            self._file.close()
        except OSError as exc:
            logger.warning("closing abandoned segment %s: %s", self.path, exc)


def read_segment(path: Path) -> tuple[list[pa.RecordBatch], bool]:
    """Every complete batch of a segment, and whether its tail was torn (a partial batch or no readable schema)."""
    batches: list[pa.RecordBatch] = []
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return batches, False
    try:
        reader = pa.ipc.open_stream(pa.BufferReader(data))
        while True:
            batches.append(reader.read_next_batch())
    except StopIteration:
        return batches, False
    except (pa.ArrowException, OSError, ValueError):
        return batches, True


def list_segments(directory: Path) -> list[Path]:
    """Segments in a directory, oldest first (names start with their creation time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX) and p.is_file())


class SegmentStore:
    """The open segment of every table of one recorder instance; closed segments go to ``on_closed``."""

    def __init__(self, wal_dir: Path, instance: str, schemas: dict[str, pa.Schema], *, roll_interval: float,
                 roll_bytes: int, on_closed: Callable[[str, Path], None]) -> None:
        self.wal_dir, self.instance, self.schemas = wal_dir, instance, schemas
        self.roll_interval, self.roll_bytes, self.on_closed = roll_interval, roll_bytes, on_closed
        self._open: dict[str, Segment] = {}

    def append(self, table: str, batch: pa.RecordBatch) -> None:
        """Append (and fsync) one batch; on a write error the segment is abandoned and the error re-raised."""
        seg = self._open.get(table)
        if seg is None:
            path = self.wal_dir / table / (segment_name(self.instance) + SEGMENT_SUFFIX)
            seg = self._open[table] = Segment(path, self.schemas[table])
        try:
            seg.append(batch)
        except Exception:
            del self._open[table]
            seg.abandon()
            self.on_closed(table, seg.path)  # the compactor keeps its complete batches
            raise

    def roll_due(self, now: float | None = None) -> None:
        """Close the segments that are old or large enough."""
        now = time.monotonic() if now is None else now
        for table, seg in list(self._open.items()):
            if now - seg.opened >= self.roll_interval or seg.size >= self.roll_bytes:
                self._close(table)

    def close_all(self) -> None:
        for table in list(self._open):
            self._close(table)

    def _close(self, table: str) -> None:
        seg = self._open.pop(table)
        try:
            seg.close()
            logger.debug("rolled %s (%d rows, %d bytes)", seg.path.name, seg.rows, seg.size)
        finally:
            self.on_closed(table, seg.path)  # even after a close error: the compactor keeps the complete batches

