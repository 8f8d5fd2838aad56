"""The writer's state: one buffer per table, flushed as one batch per table into the write-ahead segments.

``flush()`` appends and fsyncs every non-empty buffer, then rolls the segments that are due. A table whose append
fails keeps its rows for the next flush (in a new segment) and makes ``flush()`` return False: the writer then
holds back the acknowledgements, so the broker keeps those messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from pdm.recorder.buffers import Buffer, RowBuffer, TelemetryBuffer
from pdm.recorder.counters import Counters
from pdm.recorder.schema import TableSpec
from pdm.recorder.segments import SegmentStore

logger = logging.getLogger(__name__)


class Journal:
    def __init__(self, wal_dir: Path, instance: str, specs: dict[str, TableSpec], tables: Sequence[str], *,
                 roll_interval: float, roll_bytes: int, on_closed: Callable[[str, Path], None],
                 counters: Counters) -> None:
        self.counters = counters
        self.buffers: dict[str, Buffer] = {
            t: TelemetryBuffer(specs[t].schema) if t == "telemetry" else RowBuffer(specs[t].schema) for t in tables}
        self.store = SegmentStore(wal_dir, instance, {t: specs[t].schema for t in tables},
                                  roll_interval=roll_interval, roll_bytes=roll_bytes, on_closed=on_closed)

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def flush(self) -> bool:
        """Append and fsync every buffered row; True when all of them are on disk."""
        ok = True
        for table, buf in self.buffers.items():
            if not len(buf):
                continue
            try:
                self.store.append(table, buf.batch())
            except Exception:  # per table: a full disk must not lose the rows (kept) nor stop the writer
                ok = False
                self.counters.inc("flush_errors")
                logger.exception("could not write %d %s rows to the write-ahead segment; kept for the next flush",
                                 len(buf), table)
                continue
            buf.clear()
        self.counters.inc("flushes")
        try:
            self.store.roll_due()
        except Exception:  # the segment's complete batches stay readable and are compacted (at the next start)
            self.counters.inc("roll_errors")
            logger.exception("could not close a write-ahead segment")
        return ok

    def close(self) -> bool:
        """Flush, then close every segment."""
        ok = self.flush()
        try:
            self.store.close_all()
        except Exception:
            self.counters.inc("roll_errors")
            logger.exception("could not close the write-ahead segments; they are recovered at the next start")
        return ok
