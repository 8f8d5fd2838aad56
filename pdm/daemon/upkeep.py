"""Housekeeping of the scorer's machines (about once a second, on the scoring thread), and its checkpoint's start:
the part of `pdm.daemon.scoring.Scorer` that is not a message.

Each tick: machines go stale after ``--stale-timeout``; heartbeats are published (paused while the broker is
unreachable); a machine without a message for ``--evict-after`` is forgotten unless an alert of it is open
(``pdm_machines_evicted_total``; its retained state stays as last published, ``stale``); maintenance windows that
have ended are dropped (a known machine's once its reading clock is past ``until``; another's once ``until`` is
further in the past than ``--max-clock-skew``, when that rule is on); a machine is **stuck** when it received
three windows' worth of readings since it last had a window ready (late, duplicate, or gapped readings: it scores
nothing) and is neither stale nor in maintenance; the gauges are set. Every machine's part is contained (counted
in ``pdm_errors_total{where="housekeeping"}``, logged rate-limited): one machine never stops another's heartbeat.
With ``--state-dir``, deliveries are recorded and the journal is compacted when it has grown.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from typing import TYPE_CHECKING

from pdm.contract import State
from pdm.daemon.checkpoint import Checkpoint, machine_record, restore_machine
from pdm.daemon.machines import MachineState, Mute
from pdm.daemon.metrics import Metrics
from pdm.daemon.models import Models
from pdm.daemon.publisher import Publisher
from pdm.daemon.settings import ServeSettings
from pdm.logs import RateLimitedLog

if TYPE_CHECKING:
    from pdm.daemon.admission import AllowList

logger = logging.getLogger(__name__)
STATES = ("warming_up", "normal", "alert", "stale", "maintenance")
STUCK_WINDOWS = 3
PRUNE_EVERY_S = 60.0


class Upkeep:
    """Housekeeping and the checkpoint's start; mixed into `pdm.daemon.scoring.Scorer`, whose state it shares."""

    settings: ServeSettings
    models: Models
    metrics: Metrics
    pub: Publisher
    allowed: AllowList
    machines: dict[str, MachineState]
    maintenance: dict[str, Mute]
    restored: dict[str, State]
    checkpoint: Checkpoint | None
    dirty: set[str]
    gone: set[str]
    stuck: int
    active: int
    republish: dict[int, list[tuple[str, bytes]]]
    _log: RateLimitedLog
    _next_prune: float = 0.0

    def publish_state(self, m: MachineState, now_mono: float) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def housekeeping(self, now_mono: float, connected: bool = True) -> None:
        """One tick (see the module); ends with `commit` (the states it queued are sent)."""
        tally: Tally[str] = Tally()
        quality: Tally[tuple[str, str, str]] = Tally()
        stale_after, evict_after = self.settings.stale_timeout, self.settings.evict_after
        evict: list[str] = []
        stuck = active = 0
        for m in self.machines.values():
            try:
                m.check_stale(now_mono, stale_after)
                state = m.state
                tally[state] += 1
                if state not in ("stale", "maintenance"):
                    active += 1
                    stuck += m.since_window >= STUCK_WINDOWS * m.slot.window
                if evict_after and m.open_alert is None and now_mono - m.last_arrival > evict_after:
                    evict.append(m.machine_id)
                elif m.state_due(now_mono if connected else None):
                    self.publish_state(m, now_mono)
                quality[m.slot.name, m.quality.verdict, m.quality.drift] += 1
            except Exception:
                self.metrics.errors.labels("housekeeping").inc()
                self._log.exception("housekeeping", "housekeeping of machine %s failed", m.machine_id)
        for machine_id in evict:
            del self.machines[machine_id]
            self.gone.add(machine_id)
            self.dirty.discard(machine_id)
        if evict:
            self.metrics.evicted.inc(len(evict))
            logger.info("evicted %d machines without a message for %g s (--evict-after)", len(evict), evict_after)
        self.stuck, self.active = stuck, active
        self.metrics.stuck.set(stuck)
        for name in STATES:
            self.metrics.machines.labels(name).set(tally[name])
        self.metrics.set_quality(quality)
        if now_mono >= self._next_prune:
            self._next_prune = now_mono + PRUNE_EVERY_S
            self.prune_maintenance(time.time())
        self.commit()
        cp = self.checkpoint
        if cp is not None:
            if connected and self.republish:
                for commit, alerts in self.republish.items():
                    cp.sent(commit, self.pub.republish(alerts))
                self.republish = {}
            cp.confirm()
            if cp.due():
                self.compact()

    def prune_maintenance(self, now_wall: float) -> int:
        """Drop the maintenance windows that have ended (see the module); returns how many."""
        skew = self.settings.max_clock_skew
        ended = []
        for machine_id, mute in self.maintenance.items():
            m = self.machines.get(machine_id)
            last = m.last_ts if m is not None else None
            if (last is not None and last >= mute.until) or (m is None and skew and mute.until < now_wall - skew):
                ended.append(machine_id)
        for machine_id in ended:
            del self.maintenance[machine_id]
            m = self.machines.get(machine_id)
            if m is not None:
                m.set_maintenance(None)
        return len(ended)

    # ------------------------------------------------------------------ the checkpoint
    def restore_checkpoint(self) -> int:
        """Machines from the state directory (before any message): each rebuilt by its model's loaded version, or
        ignored and counted (``pdm_restore_ignored_total``); the alerts not known to be delivered are published
        again; then a fresh snapshot. Returns the machines restored."""
        cp = self.checkpoint
        if cp is None:
            return 0
        loaded = cp.load()
        for machine_id, rec in loaded.records.items():
            try:
                slot = self.models.slots.get(str(rec.get("model")))
                if slot is None:
                    self.metrics.restore_ignored.labels("no_model").inc()
                    continue
                if not self.allowed(machine_id) or len(self.machines) >= self.settings.max_machines:
                    self.metrics.restore_ignored.labels("not_allowed").inc()
                    continue
                m = restore_machine(machine_id, rec, slot, self.settings.drift_window, self.settings.stride)
                m.set_maintenance(self.maintenance.get(machine_id))
                m.last_arrival = time.monotonic()  # stale and evicted by the wall clock from now, as if it had sent
                self.machines[machine_id] = m
                self.restored.pop(machine_id, None)  # the checkpoint comes first
            except Exception as exc:
                self.metrics.restore_ignored.labels("bad_checkpoint").inc()
                self.metrics.errors.labels("restore").inc()
                self._log.warning("restore", "checkpoint record of machine %s ignored: %s: %s", machine_id[:80],
                                  type(exc).__name__, exc)
        self.republish = dict(loaded.undelivered)  # once connected (`housekeeping`): paho can then report them
        logger.info("checkpoint: %d machines restored (of %d records), %d alerts to publish again",
                    len(self.machines), len(loaded.records), sum(len(a) for a in loaded.undelivered.values()))
        self.compact()
        return len(self.machines)

    def compact(self) -> None:
        """A snapshot of every machine (contained: a failure leaves the journal growing, logged)."""
        if self.checkpoint is None:
            return
        try:
            self.checkpoint.compact((mid, machine_record(m)) for mid, m in list(self.machines.items()))
        except Exception:
            self.metrics.errors.labels("checkpoint").inc()
            self._log.exception("compact", "writing the checkpoint snapshot failed")
