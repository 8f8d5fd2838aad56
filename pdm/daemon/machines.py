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

A model swap (hot reload) moves the machine to the new version with `MachineState.rebase`; its rules are there.
Each message also feeds the machine's drift and data-quality span (`pdm.daemon.quality`).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np

from pdm.contract import Maintenance, Telemetry
from pdm.daemon.episodes import OpenAlert
from pdm.daemon.models import ModelSlot
from pdm.daemon.quality import MachineQuality
from pdm.daemon.ring import Ring
from pdm.detectors.alarm import AlarmTracker
from pdm.detectors.frames import fill_missing, sliding_windows

logger = logging.getLogger(__name__)


def machine_scaling(slot: ModelSlot, machine_id: str, note: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The machine's center and scale under ``slot``'s model: its own statistics (``per_machine``) when the model
    has them, else the fleet's (logged when ``note``)."""
    scaler = slot.detector.scaler_
    stats = scaler.global_stats
    if scaler.mode == "per_machine":
        if machine_id in scaler.machines:
            stats = scaler.machines[machine_id]
        elif note:
            logger.info("machine %r is new to model %s version %s: scaled with the fleet's statistics until the "
                        "model is retrained with it", machine_id, slot.name, slot.ref.version)
    return np.asarray(stats.center, dtype=np.float64), np.asarray(stats.scale, dtype=np.float64)


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
    # per sensor: readings at the segment's start filled with the default (no valid value yet), and whether a
    # valid value has been seen in the segment; a model swap needs them to convert the ring exactly
    lead: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    all_seen: bool = False
    quality: MachineQuality = field(default_factory=lambda: MachineQuality(0, 1, 86_400.0))

    @classmethod
    def create(cls, machine_id: str, slot: ModelSlot, machine_type: str | None,
               drift_window: float = 86_400.0) -> MachineState:
        center, scale = machine_scaling(slot, machine_id)
        n = len(slot.features)
        return cls(machine_id, slot, slot.detector.alarm_rule_.tracker(), Ring(slot.window, n), center, scale,
                   machine_type, lead=np.zeros(n, dtype=np.int64), seen=np.zeros(n, dtype=bool),
                   quality=MachineQuality(n, slot.drift.n_bins, drift_window))

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
        self.lead[:] = 0
        self.seen[:] = False
        self.all_seen = False
        was_active = self.tracker.active
        self.tracker.reset()
        self.tracker.active = was_active

    def _muted_at(self, ts: float) -> bool:
        m = self.maintenance
        return m is not None and m.from_ <= ts < m.until

    def apply(self, msg: Telemetry, stride: int) -> Applied:
        """Apply one parsed telemetry message; returns the windows that became ready and the counts."""
        out = Applied()
        ts, values = self._apply(msg, stride, out)
        self.quality.observe(ts, values, duplicates=out.duplicates, late=out.late, lost=out.seq_gap, gaps=out.gaps)
        return out

    def _apply(self, msg: Telemetry, stride: int, out: Applied) -> tuple[np.ndarray, np.ndarray]:
        """`apply`'s work; returns the readings applied (time order, raw values)."""
        if msg.seq is not None and self.last_seq is not None:
            if msg.seq == self.last_seq:
                out.duplicate_message = True
                out.duplicates = len(msg)
                return msg.ts[:0], msg.values[:0]
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
            return ts, values
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
        return ts, values

    def _append(self, ts: np.ndarray, scaled: np.ndarray, stride: int,
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
        window = self.slot.window
        head = np.full((1, scaled.shape[1]), np.nan, dtype=np.float32) if self.last_filled is None \
            else self.last_filled[None, :]
        if not self.all_seen:  # count the default fills at the segment's start, per sensor
            valid = ~np.isnan(scaled)
            any_valid = valid.any(axis=0)
            leading = np.where(any_valid, valid.argmax(axis=0), len(scaled))
            self.lead[~self.seen] += leading[~self.seen]
            self.seen |= any_valid
            self.all_seen = bool(self.seen.all())
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

    def rebase(self, slot: ModelSlot) -> int:
        """Move the machine to a new version of its model (hot reload, between micro-batches).

        Rules: the segment goes on (no restart, the open alert stays open). The readings the ring holds are
        converted exactly to the new model's features (a subset of the old, checked before the swap) and scaling:
        ``(value x old scale + old center - new center) / new scale``, and a default fill at the segment's start
        stays the default (0, the training median). The alarm look-back is kept when the alarm rule is unchanged;
        otherwise it restarts with the alert's state kept. A new window no longer than the readings held is
        complete at the next reading. A longer one: the ring holds only the newest ``old window - 1`` readings, so
        the segment continues from them and the machine is ``warming_up`` until it holds a full new window; the
        windows ending in those readings are not scored. Returns the number of those windows (0 for a seamless
        swap). With ``--stride`` > 1 the stride counts from the new window's first complete one. The drift counts
        restart in the new version's score bins; the data-quality counts go on (`pdm.daemon.quality`).
        """
        old = self.slot
        idx = [old.features.index(f) for f in slot.features]
        center, scale = machine_scaling(slot, self.machine_id, note=False)
        held = self.ring.last(self.ring.n)[1][:, idx].astype(np.float64)
        values = ((held * self.scale[idx] + self.center[idx] - center) / scale).astype(np.float32)
        first = self.ring.n - self.seg_count  # ring row of the segment's first reading (<= 0 once compacted)
        for j, i in enumerate(idx):
            stop = first + int(self.lead[i])
            if stop > 0:
                values[max(first, 0) : stop, j] = 0.0
        if self.last_filled is not None:
            filled = (self.last_filled[idx] * self.scale[idx] + self.center[idx] - center) / scale
            filled[~self.seen[idx]] = 0.0
            self.last_filled = filled.astype(np.float32)
        self.ring = self.ring.rebuilt(slot.window, values)
        self.lead, self.seen = self.lead[idx].copy(), self.seen[idx].copy()
        self.all_seen = bool(self.seen.all())
        self.center, self.scale = center, scale
        skipped = 0
        if self.seg_count > self.ring.n and self.ring.n < slot.window - 1:
            self.lead = np.maximum(self.lead - (self.seg_count - self.ring.n), 0)
            skipped = min(self.seg_count, slot.window - 1) - self.ring.n
            self.seg_count = self.ring.n
        self.quality.rebase(idx, slot.drift.n_bins, self.last_ts)
        if slot.detector.alarm_rule_ != old.detector.alarm_rule_:
            active = self.tracker.active
            self.tracker = slot.detector.alarm_rule_.tracker()
            self.tracker.active = active
        self.slot = slot
        return skipped
