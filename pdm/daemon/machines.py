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
- Bounded: a batch longer than the ring buffer's room is applied in chunks that fit it, so the ring never grows.
- Clock jump: readings more than the model's gap limit behind the newest applied one are late. When a machine's
  fresh messages (not an MQTT redelivery, and with a ``seq`` above the last one when they carry one) bring
  nothing but such readings, ``window`` of them in a row, its clock is taken to have jumped back: the stream
  restarts at the new clock with the message that reached the count (the readings of the messages before it are
  dropped as late; the alarm look-back restarts, an open alert stays open). A clock that jumps ahead by less than
  ``--max-clock-skew`` is a gap; further ahead, its messages are rejected (``clock_skew``) and nothing changes.

- A sensor with an open ``drift`` sensor alert enters the windows as missing (the stream carries its last value
  forward): a biased sensor is its own alert and does not page the machine as well. The data-quality rules on its
  values (missing, stuck, drift) still see what it reports, so the drift alert clears when it reads its rest level
  again; the spike rule, which works inside the stream, does not count its spikes meanwhile.

Each message also feeds the machine's drift and data-quality span (`pdm.daemon.quality`). The machine changes
itself: the scoring loop calls its methods and hands the messages it builds (alerts, states, scores) to the
publisher. A model swap (hot reload) moves it to the new version with `MachineState.rebase`.

Size: about 350 lines, one machine's whole state machine (stream, alarm episode, sensor alerts, publishing
bookkeeping) kept together so that every change to it is in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pdm.contract import Alert, State, Telemetry, alert_id
from pdm.daemon.episodes import Event, LookBack, OpenAlert, severity, step
from pdm.daemon.models import ModelSlot
from pdm.daemon.quality import DriftSettings, MachineQuality, hold_s
from pdm.detectors.alarm import AlarmTracker
from pdm.detectors.stream import Appended, WindowStream


@dataclass(frozen=True, slots=True)
class Mute:
    """A maintenance window on the reading clock, ``from_ <= ts < until`` (only the times are kept)."""

    from_: float
    until: float


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
    clock_restart: bool = False  # the stream restarted at a clock that jumped back


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
    maintenance: Mute | None = None
    open_alert: OpenAlert | None = None
    open_sensors: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # sensor -> id, raised at, problem
    held: dict[str, float] = field(default_factory=dict)  # restored sensor alerts held open until these reading times
    last_score: float | None = None
    published_state: str | None = None
    state_since: float = 0.0
    next_heartbeat: float = 0.0
    look: LookBack | None = None  # the alarm tracker's state, mirrored (`pdm.daemon.episodes.LookBack`)
    scored: int = 0  # windows scored (fed to the alarm rule), kept across restarts by a checkpoint
    since_window: int = 0  # readings received since a window was last ready: a machine stuck when large
    behind: int = 0  # late readings in a row, each more than the gap limit behind (the clock-jump rule)
    tail: tuple[np.ndarray, np.ndarray] | None = None  # with a checkpoint: the newest window - 1 applied readings

    @classmethod
    def create(cls, machine_id: str, slot: ModelSlot, machine_type: str | None, drift_window: float = 86_400.0,
               stride: int = 1, *, keep_tail: bool = False) -> MachineState:
        det = slot.detector
        m = cls(machine_id, slot, det.stream(machine_id, stride=stride), det.new_alarm_tracker(stride),
                MachineQuality(len(slot.features), slot.drift.n_bins, drift_window), machine_type)
        m.look = LookBack(m.tracker.rule.n)
        m.quality.watch_rest(slot.drift.rest(machine_id))
        if keep_tail:
            m.tail = (np.empty(0), np.empty((0, len(slot.features))))
        return m

    # ------------------------------------------------------------------ what the machine is
    @property
    def last_ts(self) -> float | None:
        """The newest applied reading's time (the machine's reading clock)."""
        return self.stream.last_ts

    @property
    def threshold(self) -> float:
        """The threshold this machine's windows are judged by (the one place it is looked up): its own when the
        model gave it one (`Detector.threshold_for`), else the model's."""
        return self.slot.detector.threshold_for(self.machine_id)

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
    def apply(self, msg: Telemetry, arrived: float | None = None, *, redelivered: bool = False) -> Applied:
        """Apply one parsed telemetry message that arrived at monotonic time ``arrived`` (default: now); returns the
        windows that became ready (maintenance muted) and the counts. ``redelivered``: the broker sent it before
        (MQTT DUP flag); it never counts towards a clock jump."""
        out = Applied()
        if msg.seq is not None and self.last_seq is not None and msg.seq == self.last_seq:
            out.duplicate_message = True
            out.duplicates = len(msg)
            self.since_window += len(msg)
            self.quality.observe(msg.ts[:0], msg.values[:0], duplicates=out.duplicates, late=0, lost=0, gaps=0)
        else:
            fresh = not redelivered and (msg.seq is None or self.last_seq is None or msg.seq > self.last_seq)
            if msg.seq is not None and self.last_seq is not None and msg.seq > self.last_seq + 1:
                out.seq_gap = msg.seq - self.last_seq - 1
            if msg.seq is not None:
                self.last_seq = msg.seq
            out.clock_restart = self._clock_jumped(msg, fresh)
            distrusted = [self.slot.features.index(s) for s, (_, _, p) in self.open_sensors.items()
                          if p == "drift" and s in self.slot.features]
            values = msg.values
            if distrusted:  # a sensor known to be biased enters the windows as missing (carried forward)
                values = values.copy()
                values[:, distrusted] = np.nan
            got = self._append(msg.ts, values)
            out.readings, out.duplicates, out.late, out.gaps = got.readings, got.duplicates, got.late, got.gaps
            if got.gaps or out.clock_restart:
                self._restart_look_back()
            keep = np.ones(len(got.end_ts), dtype=bool)
            if self.maintenance is not None:
                keep = ~((got.end_ts >= self.maintenance.from_) & (got.end_ts < self.maintenance.until))
                out.muted = int((~keep).sum())
            if keep.all() and len(keep):
                out.ready = Ready(self, got.windows, got.start_ts, got.end_ts)
            elif keep.any():
                out.ready = Ready(self, got.windows[keep], got.start_ts[keep], got.end_ts[keep])
            self.since_window = 0 if len(keep) else self.since_window + len(msg)
            observed = got.values
            if distrusted and len(got.ts):  # the data-quality rules judge what the sensor really reports
                order = np.argsort(msg.ts, kind="stable")
                at = order[np.minimum(np.searchsorted(msg.ts[order], got.ts), len(order) - 1)]
                observed = got.values.copy()
                observed[:, distrusted] = msg.values[at][:, distrusted]
            self.quality.observe(got.ts, observed, duplicates=out.duplicates, late=out.late, lost=out.seq_gap,
                                 gaps=out.gaps, spikes=got.spikes, stuck_after=self.slot.drift.stuck_after)
            if self.tail is not None and got.readings:
                keep_n = max(self.slot.window - 1, 1)
                self.tail = (np.concatenate([self.tail[0], got.ts])[-keep_n:],
                             np.concatenate([self.tail[1], got.values])[-keep_n:])
        self.last_arrival = time.monotonic() if arrived is None else arrived
        self.stale = False
        return out

    def _clock_jumped(self, msg: Telemetry, fresh: bool) -> bool:
        """The clock-jump rule (module docstring): counts fresh readings that are all far behind; when they reach a
        window, restarts the stream (this message's readings go to the new one) and returns True."""
        last = self.stream.last_ts
        if last is None or not len(msg):
            return False
        far = msg.ts < last - self.slot.max_gap_s
        if not (fresh and far.all()):
            self.behind = 0
            return False
        self.behind += len(msg)
        if self.behind < self.slot.window:
            return False
        self.behind = 0
        self.stream = self.slot.detector.stream(self.machine_id, stride=self.stream.stride)
        if self.tail is not None:
            self.tail = (self.tail[0][:0], self.tail[1][:0])
        return True

    def _append(self, ts: np.ndarray, values: np.ndarray) -> Appended:
        """``stream.append`` in chunks that fit the ring buffer's room (sorted first, so the rules are unchanged)."""
        chunk = len(self.stream.ring.ts) - self.stream.window + 1
        if len(ts) <= chunk:
            return self.stream.append(ts, values)
        order = np.argsort(ts, kind="stable")
        parts = [self.stream.append(ts[order[i : i + chunk]], values[order[i : i + chunk]])
                 for i in range(0, len(ts), chunk)]
        return Appended(np.concatenate([p.windows for p in parts]), np.concatenate([p.start_ts for p in parts]),
                        np.concatenate([p.end_ts for p in parts]), np.concatenate([p.ts for p in parts]),
                        np.concatenate([p.values for p in parts]), duplicates=sum(p.duplicates for p in parts),
                        late=sum(p.late for p in parts), gaps=sum(p.gaps for p in parts),
                        spikes=sum((p.spikes for p in parts if p.spikes is not None), np.zeros(len(self.slot.features),
                                                                                                  dtype=np.int64)))

    def rejected(self) -> None:
        """A telemetry message for this machine was rejected (counted in its data quality)."""
        self.quality.rejected()

    def set_maintenance(self, m: Mute | None) -> None:
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
            self.look = LookBack(tracker.rule.n)
        self.tracker.active = active
        if self.look is not None:
            self.look.restart()

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
        threshold = self.threshold
        self.open_alert, event = step(self.tracker, self.open_alert, self.machine_id, score=score, shares=shares,
                                      start=start, end=end, threshold=threshold)
        if self.look is not None:
            quiet = score < self.tracker.rule.clear_ratio * threshold
            self.look.update(score > threshold, event is not None and event.kind == "cleared", quiet)
        self.last_score = score
        self.scored += 1
        return event

    # ------------------------------------------------------------------ what it publishes
    def alert_message(self, event: Event, instance: str) -> Alert:
        a, threshold = event.alert, self.threshold
        return Alert(alert_id=a.alert_id, machine_id=self.machine_id, event=event.kind,  # type: ignore[arg-type]
                     ts=event.ts, window_start=a.window_start, window_end=a.window_end, score=event.score,
                     threshold=threshold, severity=severity(event.score, threshold),
                     contributions=event.contributions, model=self.slot.ref, instance=instance)

    def sensor_alerts(self, instance: str) -> list[Alert]:
        """``kind: sensor`` alerts for the sensors whose problem (`pdm.daemon.quality`: missing, stuck, spikes,
        drift) began or ended since the last call: a broken sensor is its own alert, not the machine's. One open
        alert per sensor; its id is ``MACHINE-SENSOR-`` + the reading time it was raised at in ms."""
        if self.last_ts is None:
            return []
        now = self.quality.sensor_problems(self.slot.drift, self.slot.features)
        out = []
        for sensor, problem in now.items():
            if sensor not in self.open_sensors:
                self.open_sensors[sensor] = (alert_id(self.machine_id, self.last_ts, sensor), self.last_ts, problem)
                out.append(self._sensor_alert(sensor, "raised", instance))
        last = self.last_ts
        self.held = {s: until for s, until in self.held.items() if last < until and s in self.open_sensors}
        for sensor in [s for s in self.open_sensors if s not in now and s not in self.held]:
            out.append(self._sensor_alert(sensor, "cleared", instance))
            del self.open_sensors[sensor]
        return out

    def restore_sensors(self, opened: dict[str, tuple[str, float, str]]) -> None:
        """Open sensor alerts read back from a checkpoint: open, not raised again. The data-quality span starts
        afresh after a restart, so a restored alert whose problem is not seen at once is held open for
        `pdm.daemon.quality.hold_s` of the reading clock (long enough for the spike and stuck rules to see it
        again) and cleared with its own id after that, once its problem is gone; a restored drift alert is taken
        as drifting by the new watch (`_assume_drift`), so it clears only on evidence at rest."""
        self.open_sensors = dict(opened)
        if opened and self.last_ts is not None:
            until = self.last_ts + hold_s(self.slot.drift, self.slot.period_s)
            self.held = dict.fromkeys(opened, until)
        self._assume_drift()

    def _assume_drift(self) -> None:
        """The drift watch (new after a restore or a model swap) takes the open drift alerts' sensors as drifting."""
        rest = self.quality.rest
        if rest is None:
            return
        for sensor, (_, _, problem) in self.open_sensors.items():
            if problem == "drift" and sensor in self.slot.features:
                rest.assume(self.slot.features.index(sensor))

    def _sensor_alert(self, sensor: str, event: str, instance: str) -> Alert:
        aid, raised_at, problem = self.open_sensors[sensor]
        ts = self.last_ts if self.last_ts is not None else raised_at
        return Alert(alert_id=aid, machine_id=self.machine_id, event=event, ts=max(ts, raised_at),  # type: ignore[arg-type]
                     window_start=raised_at, window_end=raised_at, score=1.0, threshold=1.0, severity="warning",
                     contributions={sensor: 1.0}, model=self.slot.ref, instance=instance, kind="sensor",
                     sensor=sensor, problem=problem)  # type: ignore[arg-type]

    def score_message(self, end_ts: float, score: float, shares: dict[str, float], instance: str) -> dict[str, Any]:
        """The ``PREFIX/scores/MACHINE`` payload of one scored window."""
        return {"schema": 1, "machine_id": self.machine_id, "ts": end_ts, "score": score,
                "threshold": self.threshold, "contributions": shares, "model": self.slot.ref.model_dump(),
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
                    alert_id=a.alert_id if a else None, score=self.last_score, threshold=self.threshold,
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
        if slot.features != old.features or slot.drift.rest(self.machine_id) != old.drift.rest(self.machine_id):
            self.quality.watch_rest(slot.drift.rest(self.machine_id))  # the new version's rest levels, from now
        if slot.detector.alarm_rule != old.detector.alarm_rule:
            self._restart_look_back(slot.detector.new_alarm_tracker(self.stream.stride))
        self.slot = slot
        self._assume_drift()  # an open drift alert stays open under the new levels until evidence clears it
        # a sensor the new version does not have: its open alert clears at the next message (no rule sees it)
        return skipped
