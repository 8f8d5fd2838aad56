"""The recorder: wires settings, the MQTT link, the writer, the compactor and retention together.

Threads: paho's network thread (receives, drops other shards, queues), the writer (parses and validates, buffers,
flushes every ``flush_interval`` into fsynced write-ahead segments, then acknowledges the flushed QoS 1 messages),
and the compactor (closed segments to Parquet, then retention).

- ``start()`` takes the instance's lock, recovers the segments a previous run left (compacting every complete
  batch; a torn last batch is counted), moves to ``ROOT/_quarantine`` what is not data (this instance's unreadable
  segments, ``date=`` directories that are not valid dates; counted as ``quarantined.*``), applies retention, and
  connects. ``stop()`` records what is queued (up
  to ``drain_timeout``), flushes, acknowledges, compacts the open segments, publishes ``offline`` and disconnects.
  Both are for embedding (``serve --record-dir``); ``run()`` is the command's loop.
- Durability: a QoS 1 message is acknowledged only once its rows are fsynced, so a crash loses nothing the broker
  still holds for the session (it redelivers; readers de-duplicate). What can be lost is what was not
  acknowledged *and* not queued by the broker: QoS 0 messages (scores) of the last flush interval.
- A flush is also made as soon as half of ``receive_maximum`` messages wait for their acknowledgement, so the
  broker never waits for the clock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pdm import __version__
from pdm.contract import Status, Topics
from pdm.recorder.compact import Compactor
from pdm.recorder.counters import Counters
from pdm.recorder.handler import Handler
from pdm.recorder.journal import Journal
from pdm.recorder.link import RecorderLink, RecorderMessage
from pdm.recorder.retention import apply_retention, quarantine, quarantine_bad_partitions, remove_leftovers
from pdm.recorder.schema import QUARANTINE_DIR, TABLES, WAL_DIR, RecorderError, table_specs
from pdm.recorder.segments import list_segments
from pdm.recorder.settings import RecordSettings

logger = logging.getLogger(__name__)
MAX_TAKE = 5000
KIND_OF_TABLE = {"telemetry": "telemetry", "scores": "scores", "alerts": "alerts", "states": "state",
                 "maintenance": "maintenance", "truth": "truth"}


class Recorder:
    """Records the contract's topics under ``settings.root``; ``start()``/``stop()``, or ``run()`` until stopped."""

    def __init__(self, settings: RecordSettings) -> None:
        self.settings = s = settings
        self.root = Path(s.root)
        self.instance = s.effective_instance
        self.wal_dir = self.root / WAL_DIR / self.instance
        self.counters = Counters()
        self.specs = table_specs(s.sensors)
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set once connected and recording
        self.inbox: queue.Queue[RecorderMessage] = queue.Queue(maxsize=s.queue_size)
        self.status = Status(state="online", service="recorder", instance=self.instance, version=__version__,
                             started_at=time.time())
        self.compactor = Compactor(self.root, self.specs, s.compression, self.counters, after=self.apply_retention)
        self.journal = Journal(self.wal_dir, self.instance, self.specs, s.tables, roll_interval=s.roll_interval,
                               roll_bytes=s.roll_bytes, on_closed=self.compactor.submit, counters=self.counters)
        topics = Topics(s.prefix)
        self.handler = Handler(topics, self.journal.buffers, s.sensors, s.max_payload_bytes, self.counters,
                               max_clock_skew=s.max_clock_skew)
        subs = [(topics.subscription(kind), 0 if kind == "scores" else s.qos)  # type: ignore[arg-type]
                for table, kind in KIND_OF_TABLE.items() if table in s.tables]
        if "status" in s.tables:
            subs.append((f"{s.prefix}/status/+/+", s.qos))
        self.link = RecorderLink(s, self.status, self.inbox, self.counters, subs)
        self._writer = threading.Thread(target=self._write_loop, name="pdm-recorder-writer", daemon=True)
        self._lock_file: int | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
        self.recover()
        self.quarantine_leftovers()
        self.apply_retention()
        self.compactor.start()
        self._writer.start()
        self.link.start()

    def request_stop(self) -> None:
        """Ask ``run()`` to return (safe from a signal handler)."""
        self.stop_event.set()

    def stop(self) -> None:
        """Record what is queued, flush, acknowledge, compact, publish ``offline``, disconnect (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        timeout = self.settings.drain_timeout
        if self._writer.is_alive():
            self._writer.join(timeout + 30)
        self.compactor.stop(timeout + 30)
        self.link.stop(min(timeout, 10.0))
        self._unlock()
        logger.info("recorder stopped: %s", self.counters.snapshot())

    def run(self) -> int:
        self.start()
        try:
            while not self.stop_event.wait(1.0):
                pass
        finally:
            self.stop()
        return 0

    def stats(self) -> dict[str, int]:
        """Counters (messages, rows, rejections by reason, segments, files) plus the queue depth."""
        return {**self.counters.snapshot(), "queue_depth": self.inbox.qsize()}

    # ------------------------------------------------------------------ start-up
    def _lock(self) -> None:
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.wal_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RecorderError(f"{self.root}: found another recorder running as instance {self.instance!r} "
                                f"(lock {self.wal_dir / 'LOCK'} held), expected one recorder per instance and root "
                                "(give each an --instance or --shard)") from None
        self._lock_file = fd

    def _unlock(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def recover(self) -> int:
        """Compact the segments a previous run of this instance left behind; returns how many."""
        n = 0
        for table in TABLES:
            tdir = self.root / table
            if tdir.is_dir():  # temporary Parquet files of this instance, from a crash during compaction
                for tmp in tdir.glob(f"date=*/.part-*-{self.instance}-*.parquet.tmp"):
                    tmp.unlink(missing_ok=True)
            for segment in list_segments(self.wal_dir / table):
                result = self.compactor.compact(table, segment)
                if result is not None:
                    n += 1
                    self.counters.inc("segments_recovered")
                    logger.warning("recovered %s: %d rows%s", segment.name, result.rows,
                                   " (torn last batch dropped)" if result.torn else "")
        remove_leftovers(self.root)
        return n

    def quarantine_leftovers(self) -> int:
        """Move this instance's unreadable segments (``*.unreadable``, left by older versions after a full disk)
        and the ``date=`` directories that are not valid dates to ``ROOT/_quarantine``; returns how many."""
        segments = []
        for table in TABLES:
            tdir = self.wal_dir / table
            for bad in sorted(tdir.glob("*.unreadable")) if tdir.is_dir() else []:
                segments.append(quarantine(bad, self.root))
        partitions = quarantine_bad_partitions(self.root)
        self.counters.inc("quarantined.segments", len(segments))
        self.counters.inc("quarantined.partitions", len(partitions))
        n = len(segments) + len(partitions)
        if n:
            logger.warning("moved %d unreadable segments and %d invalid date partitions to %s (inspect, then "
                           "delete them)", len(segments), len(partitions), self.root / QUARANTINE_DIR)
        return n

    def apply_retention(self) -> None:
        s = self.settings
        if s.retention_days or s.retention_bytes:
            removed = apply_retention(self.root, s.retention_days, s.retention_bytes, horizon_days=s.horizon_days)
            self.counters.inc("partitions_removed", len(removed))

    # ------------------------------------------------------------------ the writer thread
    def _take(self, pending: list[RecorderMessage], timeout: float, limit: int = MAX_TAKE) -> int:
        try:
            items = [self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()]
        except queue.Empty:
            return 0
        while len(items) < limit:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        for item in items:
            self.handler.handle(item)  # never raises: catches, counts and records per message
        pending.extend(items)
        return len(items)

    def _flush(self, pending: list[RecorderMessage]) -> tuple[list[RecorderMessage], bool]:
        ok = self.journal.flush()
        if not ok:
            return pending, False  # not acknowledged: the broker keeps them
        self.link.ack(pending)
        return [], True

    def _write_loop(self) -> None:
        s = self.settings
        pending: list[RecorderMessage] = []
        ack_at = max(1, s.receive_maximum // 2)
        now = time.monotonic()
        next_flush, next_stats, last_ok = now + s.flush_interval, now + s.stats_interval, True
        while not self.stop_event.is_set():
            self._take(pending, max(0.001, next_flush - time.monotonic()))
            if self.link.connected.is_set():
                self.ready.set()
            now = time.monotonic()
            if now >= next_flush or (last_ok and len(pending) >= ack_at):
                pending, last_ok = self._flush(pending)
                next_flush = now + s.flush_interval
            if now >= next_stats:
                logger.info("recorder: %s", self.stats())
                next_stats = now + s.stats_interval
        deadline = time.monotonic() + s.drain_timeout
        n, queued = 0, self.inbox.qsize()  # what arrives from now on is not acknowledged: redelivered next time
        while n < queued and time.monotonic() < deadline:
            got = self._take(pending, 0, min(MAX_TAKE, queued - n))
            if not got:
                break
            n += got
            if len(pending) >= ack_at:
                pending, _ = self._flush(pending)
        if self.journal.close():
            self.link.ack(pending)
        logger.info("recorded %d queued messages before stopping", n)


CONNECT_S = 10.0  # how long `recording` waits for a recorder's first connection before the block runs


@contextmanager
def recording(recorder: Recorder | None, connect_s: float = CONNECT_S) -> Iterator[Recorder | None]:
    """Run ``recorder`` (when given) around a block, as ``serve --record-dir`` runs it beside the daemon: started
    and given ``connect_s`` to connect first (its persistent session must exist before telemetry flows, or a first
    run records nothing early), stopped (drained, flushed) after the block, whatever ended it."""
    if recorder is None:
        yield None
        return
    try:
        recorder.start()
        if not recorder.link.connected.wait(connect_s):
            logger.warning("the recorder has not connected within %g s; it keeps trying (what the broker sends "
                           "before its first connection is not recorded)", connect_s)
        yield recorder
    finally:
        recorder.stop()
