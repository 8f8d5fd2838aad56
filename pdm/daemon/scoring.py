"""The scoring loop's work: validate messages, apply readings to machines, score the ready windows of a
micro-batch together (one ``score_windows`` call per model), run the alarm rule, publish what the machines build.

Runs on the scoring thread only: machines are not shared with the network thread. Containment (nothing that comes
in ends the process): every message is handled in its own ``try`` (a failure is dead-lettered as ``internal``),
every model call in its own (its windows are counted as failed, ``scoring_error``), every machine's windows of a
call in their own (``machine_error``: the other machines' windows are scored), and a window whose score or
contributions are not finite is never fed to the alarm rule (``non_finite_score``). Each failure is counted
(``pdm_errors_total{where}``, ``pdm_windows_failed_total{reason}``) and logged rate-limited; the loop goes on and
the messages are acknowledged. Housekeeping (`pdm.daemon.upkeep`) contains its own.

Size: a little over 300 lines, because every failure path of the loop is written out where it is contained.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

import numpy as np

from pdm.contract import State, Topics, decode_object, parse_maintenance, parse_telemetry
from pdm.contract.errors import ContractError
from pdm.daemon.admission import (
    AllowList,
    MaintenanceTooLongError,
    TooManyMachinesError,
    UnknownMachineError,
    check_model_range,
)
from pdm.daemon.checkpoint import Checkpoint, machine_record
from pdm.daemon.machines import MachineState, Mute, Ready
from pdm.daemon.metrics import Metrics
from pdm.daemon.models import Models, ModelSlot
from pdm.daemon.mqtt_link import QueuedMessage
from pdm.daemon.publisher import Publisher
from pdm.daemon.quality import DriftSettings
from pdm.daemon.settings import ServeSettings
from pdm.daemon.upkeep import Upkeep
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)


class Scorer(Upkeep):
    def __init__(self, settings: ServeSettings, models: Models, metrics: Metrics, publisher: Publisher,
                 restored: dict[str, State] | None = None, *, heartbeat_s: float | None = None,
                 checkpoint: Checkpoint | None = None) -> None:
        """``heartbeat_s``: seconds from a state published to its heartbeat (default ``--heartbeat``);
        ``checkpoint``: the state directory (``--state-dir``), if any."""
        self.settings, self.models, self.metrics, self.pub = settings, models, metrics, publisher
        self.instance = settings.effective_instance
        self.heartbeat_s = settings.heartbeat if heartbeat_s is None else heartbeat_s
        self.rules = DriftSettings(settings.drift_window, settings.drift_moderate, settings.drift_high)
        self.topics = Topics(settings.prefix)
        self.allowed = AllowList(settings.allow_machines, settings.allow_machines_file)
        self.machines: dict[str, MachineState] = {}
        self.maintenance: dict[str, Mute] = {}
        self.restored = dict(restored or {})
        self.checkpoint = checkpoint
        self.republish: dict[int, list[tuple[str, bytes]]] = {}  # a checkpoint's undelivered alerts, by commit
        self.dirty: set[str] = set()  # machines changed since the last commit
        self.gone: set[str] = set()  # machines evicted since the last commit
        self.failing_since: float | None = None  # monotonic time of the first model call failing since a success
        self.stuck = self.active = 0  # machines stuck / not stale and not in maintenance (housekeeping)
        self._n_pending = 0
        self._log = RateLimitedLog(logger, every_s=10.0)

    # ------------------------------------------------------------------ one micro-batch
    def process(self, items: list[QueuedMessage]) -> None:
        """Apply every message, score what became ready, queue alerts and state changes (`commit` sends them)."""
        pending: dict[str, list[Ready]] = defaultdict(list)
        touched: dict[str, MachineState] = {}
        self._n_pending = 0
        for item in items:
            try:
                m = self._one(item, pending)
                if m is not None:
                    touched[m.machine_id] = m
            except Exception as exc:  # catch per message, never around the loop
                self.metrics.errors.labels("message").inc()
                self.pub.rejected(item.topic, "internal", f"{type(exc).__name__}: {exc}", item.payload)
                self._log.exception("internal", "failed to handle a message on %s", item.topic[:200])
            if self._n_pending >= self.settings.max_batch_windows:
                self._flush(pending)
        self._flush(pending)
        now = time.monotonic()
        self.dirty.update(touched)
        for m in touched.values():
            if m.state_due():
                self.publish_state(m, now)
        for item in items:
            self.metrics.latency.observe(now - item.arrived)

    def commit(self) -> None:
        """The end of a micro-batch: with a checkpoint, append the changed machines and the alerts raised or
        cleared (fsynced), then publish; the caller acknowledges the messages after this returns."""
        cp = self.checkpoint
        if cp is not None:
            cp.confirm()
        if cp is None or not (self.dirty or self.gone):
            self.pub.flush()
            return
        t0 = time.perf_counter()
        records = {mid: machine_record(self.machines[mid]) for mid in self.dirty if mid in self.machines}
        commit = cp.write(records, self.gone, self.pub.pending_alerts())
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - t0)
        self.dirty.clear()
        self.gone.clear()
        cp.sent(commit, self.pub.flush())

    def _flush(self, pending: dict[str, list[Ready]]) -> None:
        """Score every model's ready windows in one call each, in arrival order; empties ``pending``."""
        for name, ready in pending.items():
            try:
                self._score(name, ready)
            except Exception:
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.metrics.errors.labels("batch").inc()
                self.metrics.rejected.labels("scoring_error").inc()
                self.metrics.windows_failed.labels("scoring_error").inc(sum(len(r.windows) for r in ready))
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

    def _admit(self, machine_id: str) -> None:
        """A new machine: allowed by the allow-list and within ``--max-machines``, or a `ContractError`."""
        if not self.allowed(machine_id):
            raise UnknownMachineError(f"machine {machine_id!r}: not in the allowed machines (--allow-machines)")
        if len(self.machines) >= self.settings.max_machines:
            raise TooManyMachinesError(f"machine {machine_id!r}: found {len(self.machines)} machines tracked, "
                                       f"expected at most {self.settings.max_machines} (--max-machines; stale "
                                       "machines are evicted after --evict-after)")

    def _telemetry(self, item: QueuedMessage, pending: dict[str, list[Ready]]) -> MachineState | None:
        machine_id = self.topics.machine_of(item.topic)
        m = self.machines.get(machine_id)
        if m is None:
            self._admit(machine_id)
        obj = decode_object(item.payload, "telemetry")
        mtype = obj.get("machine_type")
        mtype = mtype if isinstance(mtype, str) else None
        slot = self.models.route(mtype) if m is None or mtype is not None else m.slot
        if slot is None:
            self.pub.rejected(item.topic, "no_model", f"machine_type {mtype!r} has no route and there is no "
                              "--default-model", item.payload)
            if m is not None:
                m.rejected()
            return None
        skew = self.settings.max_clock_skew
        msg = parse_telemetry(obj, machine_id=machine_id, sensors=slot.features, now=time.time() if skew else None,
                              max_clock_skew_s=skew or None)
        if m is None or m.slot is not slot:
            m = self._new_machine(machine_id, slot, mtype, m)
        if self.settings.model_range:
            check_model_range(m.stream.references.apply(msg.values), *m.stream.envelope(self.settings.model_range),
                              slot.features, self.settings.model_range)
        applied = m.apply(msg, item.arrived, redelivered=item.dup)
        self.metrics.readings.inc(applied.readings)
        for counter, n in ((self.metrics.duplicates, applied.duplicates), (self.metrics.late, applied.late),
                           (self.metrics.seq_gaps, applied.seq_gap), (self.metrics.gaps, applied.gaps),
                           (self.metrics.muted, applied.muted), (self.metrics.extra_fields, msg.extra_fields),
                           (self.metrics.clock_restarts, int(applied.clock_restart))):
            if n:
                counter.inc(n)
        if applied.clock_restart:
            logger.warning("machine %s: its clock jumped back to %s; its stream restarts there", machine_id,
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(msg.ts[0]))))
        for alert in m.sensor_alerts(self.instance):
            self.pub.alert(alert)
        if applied.ready is not None:
            pending[slot.name].append(applied.ready)
            self._n_pending += len(applied.ready.windows)
        return m

    def _new_machine(self, machine_id: str, slot: ModelSlot, mtype: str | None, old: MachineState | None,
                     ) -> MachineState:
        m = MachineState.create(machine_id, slot, mtype, self.settings.drift_window, self.settings.stride,
                                keep_tail=self.checkpoint is not None)
        if old is not None:  # re-routed (its machine_type now maps to another model): keep the episode
            logger.info("machine %s re-routed from model %s to %s", machine_id, old.slot.name, slot.name)
            m.continue_episode(old)
        elif machine_id in self.restored:
            st = self.restored.pop(machine_id)
            if st.alert_id is not None:
                m.restore_alert(st.alert_id, st.since, st.score)
                self.metrics.restored.inc()
                logger.info("machine %s: open alert %s restored from the retained state", machine_id, st.alert_id)
        mute = self.maintenance.get(machine_id)
        if mute is not None:
            m.set_maintenance(mute)
        self.machines[machine_id] = m
        return m

    def _maintenance(self, item: QueuedMessage) -> MachineState | None:
        machine_id = self.topics.machine_of(item.topic, "maintenance")
        window = parse_maintenance(item.payload, machine_id)
        m = self.machines.get(machine_id)
        if window is None:
            self.maintenance.pop(machine_id, None)
        else:
            if not self.allowed(machine_id):
                raise UnknownMachineError(f"machine {machine_id!r}: not in the allowed machines (--allow-machines)")
            span = window.until - window.from_
            if span > self.settings.max_maintenance:
                raise MaintenanceTooLongError(f"maintenance: found a window of {span / 86_400:.1f} days, expected "
                                              f"at most {self.settings.max_maintenance / 86_400:g} (--max-maintenance)")
            if machine_id not in self.maintenance and len(self.maintenance) >= self.settings.max_machines:
                raise TooManyMachinesError(f"maintenance for {machine_id!r}: found {len(self.maintenance)} windows "
                                           f"kept, expected at most {self.settings.max_machines} (--max-machines)")
            self.maintenance[machine_id] = Mute(window.from_, window.until)
        logger.info("maintenance for %s: %s", machine_id, "cleared" if window is None else
                    f"{window.from_}..{window.until} ({window.reason[:80]!r} by {window.by[:80]!r})")
        if m is not None:
            m.set_maintenance(self.maintenance.get(machine_id))
        return m

    def _score(self, name: str, ready: list[Ready]) -> None:
        slot = self.models.slots[name]
        batch = ready[0].windows if len(ready) == 1 else np.concatenate([r.windows for r in ready])
        t0 = time.perf_counter()
        scores, shares = slot.detector.score_windows(batch)
        self.metrics.score_seconds.labels(name).observe(time.perf_counter() - t0)
        self.metrics.batch_size.labels(name).observe(len(batch))
        self.failing_since = None
        scores, shares = np.asarray(scores, dtype=np.float64), np.asarray(shares, dtype=np.float64)
        usable = np.isfinite(scores) & np.isfinite(shares).all(axis=1)
        bins = slot.drift.bins(np.where(usable, scores, 0.0)) if slot.drift.summary is not None else None
        i = 0
        for r in ready:
            k = len(r.windows)
            try:
                self._score_machine(r, scores[i : i + k], shares[i : i + k], usable[i : i + k],
                                    bins=None if bins is None else bins[i : i + k], slot=slot)
            except Exception:
                self.metrics.errors.labels("machine").inc()
                self.metrics.windows_failed.labels("machine_error").inc(k)
                self._log.exception("machine", "machine %s: %d windows failed; the other machines' are scored",
                                    r.machine.machine_id, k)
            i += k

    def _score_machine(self, r: Ready, scores: np.ndarray, shares: np.ndarray, usable: np.ndarray, *,
                       bins: np.ndarray | None, slot: ModelSlot) -> None:
        """One machine's scored windows (in time order) through its alarm rule; non-finite ones are dropped."""
        m = r.machine
        self.metrics.windows.labels(slot.name).inc(int(usable.sum()))
        if not usable.all():
            bad = int((~usable).sum())
            self.metrics.windows_failed.labels("non_finite_score").inc(bad)
            self._log.warning("non_finite_score", "machine %s: %d windows scored to a non-finite score or "
                              "contribution; they are not fed to the alarm rule", m.machine_id, bad)
        if bins is not None and m.slot is slot:
            m.count_scored(bins[usable])
        features = slot.features
        for j in np.flatnonzero(usable):
            score = float(scores[j])
            row = shares[j]
            contrib = {f: float(row[k]) for k, f in enumerate(features)}
            end = float(r.end_ts[j])
            event = m.record_score(score, contrib, start=float(r.start_ts[j]), end=end)
            if event is not None:
                self.pub.alert(m.alert_message(event, self.instance))
                self.publish_state(m, time.monotonic())
            if self.settings.publish_scores:
                self.pub.scores(m.machine_id, m.score_message(end, score, contrib, self.instance))

    def publish_state(self, m: MachineState, now_mono: float) -> None:
        """Queue the machine's retained state (with its quality) and book it; a failure is contained here."""
        try:
            msg, quality = m.state_message(self.instance, self.rules)
            if quality["drift_psi"] is not None:
                self.metrics.drift_psi.labels(m.slot.name).observe(quality["drift_psi"])
            self.pub.state(msg, quality)
            m.mark_published(msg, now_mono + self.heartbeat_s)
        except Exception:
            self.metrics.errors.labels("state").inc()
            m.next_heartbeat = now_mono + self.heartbeat_s  # not again at once: the next heartbeat retries
            self._log.exception("state", "machine %s: its state could not be built or published", m.machine_id)

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
                self.dirty.add(m.machine_id)
        return old, moved, unscored
