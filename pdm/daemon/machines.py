"""Per-machine state of the daemon: the machine's window stream, its alert episode and its publishing bookkeeping.

The windows come from the model (`pdm.detectors.stream.WindowStream`, ``Detector.stream``): scaling, the order,
duplicate and late rules, missing values, gaps and the stride are the detector's, so the streaming scores equal the
batch path's. The daemon's own rules are here:

- A message whose ``seq`` repeats the machine's last one is a duplicate: all its readings are dropped and counted;
  a jump in ``seq`` counts the messages missing upstream.
- Maintenance (a retained window ``from``..``until`` on the reading clock): windows ending inside it are not
  scored and raise or clear nothing (counted as muted); the state is ``maintenance``; scoring resumes after it.
- A gap (the stream restarts its segment: ``warming_up``) also restarts the alarm rule's look-back; an open alert
  stays open.
- Stale: no message for ``--stale-timeout`` seconds (wall clock); the next message ends it.

Each message also feeds the machine's drift and data-quality span (`pdm.daemon.quality`). The machine changes
itself: the scoring loop calls its methods and hands the messages it builds (alerts, states, scores) to the
publisher. A model swap (hot reload) moves it to the new version with `MachineState.rebase`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pdm.contract import Alert, Maintenance, State, Telemetry
from pdm.daemon.episodes import Event, OpenAlert, severity, step
from pdm.daemon.models import ModelSlot
from pdm.daemon.quality import DriftSettings, MachineQuality
from pdm.detectors.alarm import AlarmTracker
from pdm.detectors.stream import WindowStream


@dataclass
class Ready:
    """Windows of one machine that became ready in one message (and are not muted)."""

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
    stream: WindowStream
    tracker: AlarmTracker
    quality: MachineQuality
    machine_type: str | None = None
    last_seq: int | None = None
    last_arrival: float = 0.0  # monotonic time of the newest message
    stale: bool = False
    maintenance: Maintenance | None = None
    open_alert: OpenAlert | None = None
    last_score: float | None = None
    published_state: str | None = None
    state_since: float = 0.0
    next_heartbeat: float = 0.0

    @classmethod
    def create(cls, machine_id: str, slot: ModelSlot, machine_type: str | None, drift_window: float = 86_400.0,
               stride: int = 1) -> MachineState:
        det = slot.detector
        return cls(machine_id, slot, det.stream(machine_id, stride=stride), det.new_alarm_tracker(),
                   MachineQuality(len(slot.features), slot.drift.n_bins, drift_window), machine_type)

    # ------------------------------------------------------------------ what the machine is
    @property
    def last_ts(self) -> float | None:
        """The newest applied reading's time (the machine's reading clock)."""
        return self.stream.last_ts

    @property
    def in_maintenance(self) -> bool:
        """The newest reading lies in the maintenance window."""
        m, ts = self.maintenance, self.stream.last_ts
        return m is not None and ts is not None and m.from_ <= ts < m.until

    @property
    def state(self) -> str:
        """The contract state: maintenance > stale > warming_up > alert > normal."""
        if self.in_maintenance:
            return "maintenance"
        if self.stale:
            return "stale"
        if self.stream.warming_up:
            return "warming_up"
        return "alert" if self.open_alert is not None else "normal"

    # ------------------------------------------------------------------ input
    def apply(self, msg: Telemetry, arrived: float | None = None) -> Applied:
        """Apply one parsed telemetry message that arrived at monotonic time ``arrived`` (default: now); returns the
        windows that became ready (maintenance muted) and the counts."""
        out = Applied()
        if msg.seq is not None and self.last_seq is not None and msg.seq == self.last_seq:
            out.duplicate_message = True
            out.duplicates = len(msg)
            self.quality.observe(msg.ts[:0], msg.values[:0], duplicates=out.duplicates, late=0, lost=0, gaps=0)
        else:
            if msg.seq is not None and self.last_seq is not None and msg.seq > self.last_seq + 1:
                out.seq_gap = msg.seq - self.last_seq - 1
            if msg.seq is not None:
                self.last_seq = msg.seq
            got = self.stream.append(msg.ts, msg.values)
            out.readings, out.duplicates, out.late, out.gaps = got.readings, got.duplicates, got.late, got.gaps
            if got.gaps:
                self._restart_look_back()
            keep = np.ones(len(got.end_ts), dtype=bool)
            if self.maintenance is not None:
                keep = ~((got.end_ts >= self.maintenance.from_) & (got.end_ts < self.maintenance.until))
                out.muted = int((~keep).sum())
            if keep.all() and len(keep):
                out.ready = Ready(self, got.windows, got.start_ts, got.end_ts)
            elif keep.any():
                out.ready = Ready(self, got.windows[keep], got.start_ts[keep], got.end_ts[keep])
            self.quality.observe(got.ts, got.values, duplicates=out.duplicates, late=out.late, lost=out.seq_gap,
                                 gaps=out.gaps)
        self.last_arrival = time.monotonic() if arrived is None else arrived
        self.stale = False
        return out

    def rejected(self) -> None:
        """A telemetry message for this machine was rejected (counted in its data quality)."""
        self.quality.rejected()

    def set_maintenance(self, m: Maintenance | None) -> None:
        """A retained maintenance window (``None``: cleared). Takes effect now if the newest reading is inside."""
        self.maintenance = m

    def check_stale(self, now_mono: float, timeout: float) -> None:
        """Stale once no message arrived for ``timeout`` seconds."""
        if not self.stale and now_mono - self.last_arrival > timeout:
            self.stale = True

    # ------------------------------------------------------------------ the alert episode
    def _restart_look_back(self, tracker: AlarmTracker | None = None) -> None:
        """The alarm look-back restarts (a gap, or another alarm rule: ``tracker``); an open alert stays open."""
        active = self.tracker.active
        if tracker is None:
            self.tracker.reset()
        else:
            self.tracker = tracker
        self.tracker.active = active

    def continue_episode(self, old: MachineState) -> None:
        """This machine replaces ``old`` (re-routed to another model): its alert episode and maintenance go on."""
        self.open_alert, self.tracker.active, self.maintenance = old.open_alert, old.open_alert is not None, \
            old.maintenance

    def restore_alert(self, alert_id: str, since: float, score: float | None) -> None:
        """An open alert read back from the daemon's own retained state: open, not raised again."""
        self.open_alert = OpenAlert.restored(self.machine_id, alert_id, since, score,
                                             (self.slot.window - 1) * self.slot.period_s)
        self.tracker.active = True

    def count_scored(self, bins: np.ndarray) -> None:
        """The score bins of windows of this machine just scored (drift)."""
        self.quality.scored(bins)

    def record_score(self, score: float, shares: dict[str, float], start: float, end: float) -> Event | None:
        """One scored window (in time order): the alarm rule and the episode; returns the event, if any."""
        self.open_alert, event = step(self.tracker, self.open_alert, self.machine_id, score=score, shares=shares,
                                      start=start, end=end, threshold=self.slot.threshold)
        self.last_score = score
        return event

    # ------------------------------------------------------------------ what it publishes
    def alert_message(self, event: Event, instance: str) -> Alert:
        a, threshold = event.alert, self.slot.threshold
        return Alert(alert_id=a.alert_id, machine_id=self.machine_id, event=event.kind,  # type: ignore[arg-type]
                     ts=event.ts, window_start=a.window_start, window_end=a.window_end, score=event.score,
                     threshold=threshold, severity=severity(event.score, threshold),
                     contributions=event.contributions, model=self.slot.ref, instance=instance)

    def score_message(self, end_ts: float, score: float, shares: dict[str, float], instance: str) -> dict[str, Any]:
        """The ``PREFIX/scores/MACHINE`` payload of one scored window."""
        return {"schema": 1, "machine_id": self.machine_id, "ts": end_ts, "score": score,
                "threshold": self.slot.threshold, "contributions": shares, "model": self.slot.ref.model_dump(),
                "instance": instance}

    def state_due(self, now_mono: float | None = None) -> bool:
        """The state changed since it was last published, or (given ``now_mono``) its heartbeat is due."""
        return self.state != self.published_state or (now_mono is not None and now_mono >= self.next_heartbeat)

    def state_message(self, instance: str, rules: DriftSettings) -> tuple[State, dict[str, Any]]:
        """The retained state now and its ``quality`` object (`pdm.daemon.quality`: remembers the verdict)."""
        state = self.state
        since = self.state_since if state == self.published_state else \
            (self.last_ts if self.last_ts is not None else time.time())
        a = self.open_alert
        msg = State(machine_id=self.machine_id, state=state, since=since,  # type: ignore[arg-type]
                    alert_id=a.alert_id if a else None, score=self.last_score, threshold=self.slot.threshold,
                    model=self.slot.ref, instance=instance, ts=time.time())
        quality = self.quality.report(self.slot.drift, self.machine_id, self.slot.features, a is not None, rules)
        return msg, quality

    def mark_published(self, msg: State, next_heartbeat: float) -> None:
        """``msg`` (from `state_message`) was handed to the publisher; the next heartbeat falls due then."""
        self.published_state, self.state_since, self.next_heartbeat = msg.state, msg.since, next_heartbeat

    # ------------------------------------------------------------------ model swap
    def rebase(self, slot: ModelSlot) -> int:
        """Move the machine to a new version of its model (hot reload, between micro-batches).

        The window stream continues by `pdm.detectors.stream.WindowStream.rebase` (no restart; a longer window
        leaves some windows unscored: their number is returned, 0 for a seamless swap). The open alert stays open.
        The alarm look-back is kept when the alarm rule is unchanged; otherwise it restarts with the alert's state
        kept. The drift counts restart in the new version's score bins; the data-quality counts go on
        (`pdm.daemon.quality`).
        """
        old = self.slot
        idx = [old.features.index(f) for f in slot.features]
        skipped = self.stream.rebase(slot.detector)
        self.quality.rebase(idx, slot.drift.n_bins, self.last_ts)
        if slot.detector.alarm_rule != old.detector.alarm_rule:
            self._restart_look_back(slot.detector.new_alarm_tracker())
        self.slot = slot
        return skipped
