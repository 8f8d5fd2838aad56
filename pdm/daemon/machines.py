"""Per-machine streaming state: a ring buffer of scaled, filled readings, and the reading rules.

Rules (the same as the batch path's, applied one reading at a time):

- Readings are applied in timestamp order: a message's readings are sorted first.
- Duplicates are dropped and counted: a batch repeating the machine's last ``seq``, or a reading whose ``ts`` equals
  the newest applied one.
- **Late readings** (``ts`` older than the newest applied reading of that machine) are dropped and counted: the
  window has moved on, and re-scoring the past would re-order alerts. MQTT keeps one publisher's QoS 1 messages in
  order, so this only happens with several publishers for one machine or a device clock stepping back.
- Maintenance (a retained window ``from``..``until`` on the reading clock): windows ending inside it are not
  scored and raise or clear nothing (counted as muted); the state is ``maintenance``; scoring resumes after it.
- A gap larger than the model's ``max_gap_factor`` x training period restarts the window (``warming_up``) and the
  alarm rule's look-back; an open alert stays open.
- Missing values (``null``) follow the model's rule: the last valid scaled value of the same sensor since the
  segment's start, else 0 (the training median). Values are scaled with the machine's own statistics, or the
  fleet's for a machine the model has not seen (logged once).

>>> ring = Ring(window=3, n_features=1, capacity=4)
>>> for t in range(6):
...     _ = ring.extend(np.array([float(t)]), np.array([[float(t)]], dtype=np.float32))
>>> ring.last(3)[1][:, 0].tolist()
[3.0, 4.0, 5.0]
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from pdm.alarm import AlarmTracker
from pdm.contract import Maintenance, Telemetry
from pdm.daemon.episodes import OpenAlert
from pdm.daemon.models import ModelSlot
from pdm.data.frames import fill_missing, sliding_windows

logger = logging.getLogger(__name__)


class Ring:
    """The newest readings of one machine, contiguous, so windows are views (copied when batched)."""

    def __init__(self, window: int, n_features: int, capacity: int | None = None) -> None:
        self.window = window
        cap = capacity or max(4 * window, 256)
        self.ts = np.zeros(cap, dtype=np.float64)
        self.values = np.zeros((cap, n_features), dtype=np.float32)
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def extend(self, ts: np.ndarray, values: np.ndarray) -> int:
        """Append rows; returns the row index of the first appended row."""
        k = len(ts)
        if self.n + k > len(self.ts):
            keep = min(self.n, self.window - 1)
            if keep + k > len(self.ts):  # a huge batch: grow
                cap = keep + k + self.window
                self.ts = np.concatenate([self.ts[self.n - keep : self.n], np.zeros(cap - keep)])
                self.values = np.concatenate([self.values[self.n - keep : self.n],
                                              np.zeros((cap - keep, self.values.shape[1]), dtype=np.float32)])
            else:
                self.ts[:keep] = self.ts[self.n - keep : self.n]
                self.values[:keep] = self.values[self.n - keep : self.n]
            self.n = keep
        start = self.n
        self.ts[start : start + k] = ts
        self.values[start : start + k] = values
        self.n += k
        return start

    def last(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.ts[self.n - k : self.n], self.values[self.n - k : self.n]


@dataclass
class Ready:
    """Windows of one machine that became ready in one message (copied out of the ring)."""

    machine: MachineState
    windows: np.ndarray  # (k, window, F) float32
    start_ts: np.ndarray  # (k,)
    end_ts: np.ndarray  # (k,)


@dataclass
class Applied:
    """What one telemetry message did to a machine."""

    ready: Ready | None = None
    readings: int = 0
    duplicates: int = 0
    late: int = 0
    muted: int = 0  # windows not scored because of maintenance
    gaps: int = 0
    seq_gap: int = 0  # messages missing upstream (seq jumped)
    duplicate_message: bool = False


@dataclass
class MachineState:
    machine_id: str
    slot: ModelSlot
    tracker: AlarmTracker
    ring: Ring
    center: np.ndarray
    scale: np.ndarray
    machine_type: str | None = None
    last_ts: float | None = None
    last_seq: int | None = None
    last_filled: np.ndarray | None = None  # (F,) the newest scaled, filled reading of the segment
    seg_count: int = 0  # readings since the segment started
    last_arrival: float = 0.0  # monotonic time of the newest message
    stale: bool = False
    maintenance: Maintenance | None = None
    in_maintenance: bool = False
    open_alert: OpenAlert | None = None
    last_score: float | None = None
    published_state: str | None = None
    state_since: float = 0.0
    next_heartbeat: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, machine_id: str, slot: ModelSlot, machine_type: str | None) -> MachineState:
        det = slot.detector
        if det.scaler_.mode == "per_machine" and machine_id not in det.scaler_.machines:
            logger.info("machine %r is new to model %r: scaled with the fleet's statistics until the model is "
                        "retrained with it", machine_id, slot.name)
        stats = det.scaler_.global_stats if machine_id not in det.scaler_.machines else det.scaler_.machines[
            machine_id] if det.scaler_.mode == "per_machine" else det.scaler_.global_stats
        return cls(machine_id, slot, det.alarm_rule_.tracker(), Ring(slot.window, len(slot.features)),
                   np.asarray(stats.center), np.asarray(stats.scale), machine_type)

    @property
    def state(self) -> str:
        """The contract state: maintenance > stale > warming_up > alert > normal."""
        if self.in_maintenance:
            return "maintenance"
        if self.stale:
            return "stale"
        if self.seg_count < self.slot.window:
            return "warming_up"
        return "alert" if self.open_alert is not None else "normal"

    def restart_segment(self) -> None:
        """A gap (or the end of maintenance): new window, alarm look-back restarts, an open alert stays open."""
        self.ring.clear()
        self.last_filled = None
        self.seg_count = 0
        was_active = self.tracker.active
        self.tracker.reset()
        self.tracker.active = was_active

    def _muted_at(self, ts: float) -> bool:
        m = self.maintenance
        return m is not None and m.from_ <= ts < m.until

    def apply(self, msg: Telemetry, stride: int) -> Applied:
        """Apply one parsed telemetry message; returns the windows that became ready and the counts."""
        out = Applied()
        if msg.seq is not None and self.last_seq is not None:
            if msg.seq == self.last_seq:
                out.duplicate_message = True
                out.duplicates = len(msg)
                return out
            if msg.seq > self.last_seq + 1:
                out.seq_gap = msg.seq - self.last_seq - 1
        if msg.seq is not None:
            self.last_seq = msg.seq
        ts, values = msg.ts, msg.values
        if len(ts) > 1 and np.any(np.diff(ts) <= 0):
            order = np.argsort(ts, kind="stable")
            ts, values = ts[order], values[order]
            repeat = np.concatenate([[False], np.diff(ts) == 0])
            out.duplicates += int(repeat.sum())
            ts, values = ts[~repeat], values[~repeat]
        if self.last_ts is not None:
            old = ts <= self.last_ts
            if old.any():
                out.duplicates += int((ts == self.last_ts).sum())
                out.late += int((ts < self.last_ts).sum())
                ts, values = ts[~old], values[~old]
        if len(ts) == 0:
            return out
        out.readings = len(ts)
        scaled = ((values - self.center) / self.scale).astype(np.float32)
        prev = self.last_ts
        max_gap = self.slot.max_gap_s
        steps = np.diff(ts, prepend=ts[0] if prev is None else prev)
        cuts = np.flatnonzero(steps > max_gap).tolist()
        bounds = [0, *cuts, len(ts)]
        windows, starts, ends = [], [], []
        for s, e in itertools.pairwise(bounds):
            if e <= s:
                continue
            if s in cuts:
                out.gaps += 1
                self.restart_segment()
            w, st, en, muted = self._append(ts[s:e], scaled[s:e], stride)
            out.muted += muted
            if w is not None:
                windows.append(w)
                starts.append(st)
                ends.append(en)
        self.last_ts = float(ts[-1])
        if windows:
            out.ready = Ready(self, np.concatenate(windows), np.concatenate(starts), np.concatenate(ends))
        return out

    def _append(self, ts: np.ndarray, scaled: np.ndarray, stride: int,
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
        window = self.slot.window
        head = np.full((1, scaled.shape[1]), np.nan, dtype=np.float32) if self.last_filled is None \
            else self.last_filled[None, :]
        filled = fill_missing(np.concatenate([head, scaled]))[1:]
        self.last_filled = filled[-1].copy()
        first = self.ring.extend(ts, filled)
        counts = self.seg_count + 1 + np.arange(len(ts))  # readings in the segment after each new row
        self.seg_count += len(ts)
        ready = (counts >= window) & ((counts - window) % stride == 0)
        if self.maintenance is not None:
            muted = (ts >= self.maintenance.from_) & (ts < self.maintenance.until)
            self.in_maintenance = bool(muted[-1])
            n_muted = int((ready & muted).sum())
            ready &= ~muted
        else:
            n_muted = 0
        if not ready.any():
            return None, ts[:0], ts[:0], n_muted
        rows = first + np.flatnonzero(ready)  # ring row of each ready window's last reading
        lo = int(rows[0]) - window + 1
        all_w = sliding_windows(self.ring.values[lo : int(rows[-1]) + 1], window)
        picked = np.ascontiguousarray(all_w[rows - rows[0]])
        return picked, self.ring.ts[rows - window + 1].copy(), self.ring.ts[rows].copy(), n_muted

    def set_maintenance(self, m: Maintenance | None) -> None:
        """A retained maintenance window (``None``: cleared). Takes effect now if the newest reading is inside."""
        self.maintenance = m
        self.in_maintenance = m is not None and self.last_ts is not None and self._muted_at(self.last_ts)
