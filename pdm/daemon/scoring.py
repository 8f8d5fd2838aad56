"""The scoring loop's work: validate messages, apply readings to machines, score the ready windows of a
micro-batch together (one ``score_windows`` call per model), run the alarm rule, publish what the machines build.

Runs on the scoring thread only: machines are not shared with the network thread. Every message is handled in its
own ``try``; a failure is logged (rate-limited), counted and published as a dead letter, and the loop goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections import defaultdict

import numpy as np

from pdm.contract import Maintenance, State, Topics, decode_object, parse_maintenance, parse_telemetry
from pdm.contract.errors import ContractError
from pdm.daemon.machines import MachineState, Ready
from pdm.daemon.metrics import Metrics
from pdm.daemon.models import Models, ModelSlot
from pdm.daemon.mqtt_link import QueuedMessage
from pdm.daemon.publisher import Publisher
from pdm.daemon.quality import DriftSettings
from pdm.daemon.settings import ServeSettings
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)
STATES = ("warming_up", "normal", "alert", "stale", "maintenance")


class Scorer:
    def __init__(self, settings: ServeSettings, models: Models, metrics: Metrics, publisher: Publisher,
                 restored: dict[str, State] | None = None, *, heartbeat_s: float | None = None) -> None:
        """``heartbeat_s``: seconds from a state published to its heartbeat (default ``--heartbeat``)."""
        self.settings, self.models, self.metrics, self.pub = settings, models, metrics, publisher
        self.instance = settings.effective_instance
        self.heartbeat_s = settings.heartbeat if heartbeat_s is None else heartbeat_s
        self.rules = DriftSettings(settings.drift_window, settings.drift_moderate, settings.drift_high)
        self.topics = Topics(settings.prefix)
        self.machines: dict[str, MachineState] = {}
        self.maintenance: dict[str, Maintenance | None] = {}
        self.restored = dict(restored or {})
        self._n_pending = 0
        self._log = RateLimitedLog(logger, every_s=10.0)

    # ------------------------------------------------------------------ one micro-batch
    def process(self, items: list[QueuedMessage]) -> None:
        """Apply every message, score what became ready, publish alerts and state changes."""
        pending: dict[str, list[Ready]] = defaultdict(list)
        touched: dict[str, MachineState] = {}
        self._n_pending = 0
        for item in items:
            try:
                m = self._one(item, pending)
                if m is not None:
                    touched[m.machine_id] = m
            except Exception as exc:  # catch per message, never around the loop
                self.pub.rejected(item.topic, "internal", f"{type(exc).__name__}: {exc}", item.payload)
                self._log.exception("internal", "failed to handle a message on %s", item.topic)
            if self._n_pending >= self.settings.max_batch_windows:
                self._flush(pending)
        self._flush(pending)
        now = time.monotonic()
        for m in touched.values():
            if m.state_due():
                self._publish_state(m, now)
        for item in items:
            self.metrics.latency.observe(now - item.arrived)

    def _flush(self, pending: dict[str, list[Ready]]) -> None:
        """Score every model's ready windows in one call each, in arrival order; empties ``pending``."""
        for name, ready in pending.items():
            try:
                self._score(name, ready)
            except Exception:
                self.metrics.rejected.labels("scoring_error").inc()
                self._log.exception(f"score:{name}", "scoring %d windows with model %s failed; they are skipped",
                                    sum(len(r.windows) for r in ready), name)
        pending.clear()
        self._n_pending = 0

    def _one(self, item: QueuedMessage, pending: dict[str, list[Ready]]) -> MachineState | None:
        kind = item.topic[len(self.settings.prefix) + 1 :].split("/", 1)[0]
        self.metrics.messages.labels(kind).inc()
        if len(item.payload) > self.settings.max_payload_bytes:
            self.pub.rejected(item.topic, "oversized", f"found {len(item.payload)} bytes, expected at most "
                              f"{self.settings.max_payload_bytes} (--max-payload-bytes)", item.payload)
            if kind == "telemetry":
                self._machine_rejected(item.topic)
            return None
        try:
            if kind == "maintenance":
                return self._maintenance(item)
            return self._telemetry(item, pending)
        except ContractError as exc:
            self.pub.rejected(item.topic, exc.reason, str(exc), item.payload)
            if kind == "telemetry":
                self._machine_rejected(item.topic)
            return None

    def _machine_rejected(self, topic: str) -> None:
        """Count a rejected telemetry message in its machine's data quality (machines already scored only: a
        flood of bad topics must not create machines)."""
        try:
            m = self.machines.get(self.topics.machine_of(topic))
        except ContractError:
            return
        if m is not None:
            m.rejected()

    def _telemetry(self, item: QueuedMessage, pending: dict[str, list[Ready]]) -> MachineState | None:
        machine_id = self.topics.machine_of(item.topic)
        obj = decode_object(item.payload, "telemetry")
        mtype = obj.get("machine_type")
        mtype = mtype if isinstance(mtype, str) else None
        m = self.machines.get(machine_id)
        slot = self.models.route(mtype) if m is None or mtype is not None else m.slot
        if slot is None:
            self.pub.rejected(item.topic, "no_model", f"machine_type {mtype!r} has no route and there is no "
                              "--default-model", item.payload)
            if m is not None:
                m.rejected()
            return None
        msg = parse_telemetry(obj, machine_id=machine_id, sensors=slot.features)
        if m is None or m.slot is not slot:
            m = self._new_machine(machine_id, slot, mtype, m)
        applied = m.apply(msg, item.arrived)
        self.metrics.readings.inc(applied.readings)
        for counter, n in ((self.metrics.duplicates, applied.duplicates), (self.metrics.late, applied.late),
                           (self.metrics.seq_gaps, applied.seq_gap), (self.metrics.gaps, applied.gaps),
                           (self.metrics.muted, applied.muted), (self.metrics.extra_fields, msg.extra_fields)):
            if n:
                counter.inc(n)
        if applied.ready is not None:
            pending[slot.name].append(applied.ready)
            self._n_pending += len(applied.ready.windows)
        return m

    def _new_machine(self, machine_id: str, slot: ModelSlot, mtype: str | None, old: MachineState | None,
                     ) -> MachineState:
        m = MachineState.create(machine_id, slot, mtype, self.settings.drift_window, self.settings.stride)
        if old is not None:  # re-routed (its machine_type now maps to another model): keep the episode
            logger.info("machine %s re-routed from model %s to %s", machine_id, old.slot.name, slot.name)
            m.continue_episode(old)
        elif machine_id in self.restored:
            st = self.restored.pop(machine_id)
            if st.alert_id is not None:
                m.restore_alert(st.alert_id, st.since, st.score)
                self.metrics.restored.inc()
                logger.info("machine %s: open alert %s restored from the retained state", machine_id, st.alert_id)
        maint = self.maintenance.get(machine_id)
        if maint is not None:
            m.set_maintenance(maint)
        self.machines[machine_id] = m
        return m

    def _maintenance(self, item: QueuedMessage) -> MachineState | None:
        machine_id = self.topics.machine_of(item.topic, "maintenance")
        window = parse_maintenance(item.payload, machine_id)
        self.maintenance[machine_id] = window
        logger.info("maintenance for %s: %s", machine_id, "cleared" if window is None else
                    f"{window.from_}..{window.until} ({window.reason!r} by {window.by!r})")
        m = self.machines.get(machine_id)
        if m is not None:
            m.set_maintenance(window)
        return m

    def _score(self, name: str, ready: list[Ready]) -> None:
        slot = self.models.slots[name]
        batch = ready[0].windows if len(ready) == 1 else np.concatenate([r.windows for r in ready])
        t0 = time.perf_counter()
        scores, shares = slot.detector.score_windows(batch)
        self.metrics.score_seconds.labels(name).observe(time.perf_counter() - t0)
        self.metrics.windows.labels(name).inc(len(batch))
        self.metrics.batch_size.labels(name).observe(len(batch))
        features = slot.features
        bins = slot.drift.bins(scores) if slot.drift.summary is not None else None
        i = 0
        for r in ready:
            m = r.machine
            if bins is not None and m.slot is slot:
                m.count_scored(bins[i : i + len(r.windows)])
            for j in range(len(r.windows)):
                score = float(scores[i])
                row = shares[i]
                contrib = {f: float(row[k]) for k, f in enumerate(features)}
                end = float(r.end_ts[j])
                event = m.record_score(score, contrib, start=float(r.start_ts[j]), end=end)
                if event is not None:
                    self.pub.alert(m.alert_message(event, self.instance))
                    self._publish_state(m, time.monotonic())
                if self.settings.publish_scores:
                    self.pub.scores(m.machine_id, m.score_message(end, score, contrib, self.instance))
                i += 1

    def _publish_state(self, m: MachineState, now_mono: float) -> None:
        """Publish the machine's retained state (with its quality) and book it."""
        msg, quality = m.state_message(self.instance, self.rules)
        if quality["drift_psi"] is not None:
            self.metrics.drift_psi.labels(m.slot.name).observe(quality["drift_psi"])
        self.pub.state(msg, quality)
        m.mark_published(msg, now_mono + self.heartbeat_s)

    # ------------------------------------------------------------------ hot reload (between micro-batches)
    def swap(self, slot: ModelSlot) -> tuple[ModelSlot, int, int]:
        """Score ``slot.name``'s machines with the new version ``slot`` from now on (`pdm.daemon.reload`); returns
        the old version's slot, the machines moved, and the windows they will not score (a longer window, see
        `MachineState.rebase`)."""
        old = self.models.replace(slot)
        moved = unscored = 0
        for m in self.machines.values():
            if m.slot is old:
                unscored += m.rebase(slot)
                moved += 1
        return old, moved, unscored

    # ------------------------------------------------------------------ housekeeping (about once a second)
    def housekeeping(self, now_mono: float, connected: bool = True) -> None:
        """Stale machines, heartbeats (skipped while the broker is unreachable: a retained state only matters once
        delivered, and queueing one per machine per interval would grow without bound), and the machines-by-state
        and machines-by-quality gauges (each machine's verdict and drift as its last state published them)."""
        tally: Tally[str] = Tally()
        quality: Tally[tuple[str, str, str]] = Tally()
        stale_after = self.settings.stale_timeout
        for m in self.machines.values():
            m.check_stale(now_mono, stale_after)
            tally[m.state] += 1
            if m.state_due(now_mono if connected else None):
                self._publish_state(m, now_mono)
            quality[m.slot.name, m.quality.verdict, m.quality.drift] += 1
        for state in STATES:
            self.metrics.machines.labels(state).set(tally[state])
        self.metrics.set_quality(quality)
