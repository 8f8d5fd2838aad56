"""The daemon: wires settings, models, the MQTT link, the scoring loop, hot reload, metrics and health together.

Threads: paho's network thread (receives, filters shards, queues), the scoring thread (``run``: everything else,
model swaps included), the model watcher (`pdm.daemon.reload`: loads new versions) and the metrics/health HTTP
server. ``stop()`` (SIGTERM/SIGINT in ``python -m pdm serve``) ends the loop; the
daemon then scores what is already queued, acknowledges it, publishes ``offline`` and disconnects. Messages the
broker sent after that are not acknowledged and are redelivered to the next run (persistent session).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter as Tally

from pdm import __version__
from pdm.contract import Status, Topics, state_key
from pdm.daemon.admission import AllowList
from pdm.daemon.checkpoint import Checkpoint
from pdm.daemon.metrics import HealthServer, Metrics
from pdm.daemon.models import Models
from pdm.daemon.mqtt_link import QueuedMessage, ScorerLink
from pdm.daemon.publisher import Publisher
from pdm.daemon.reload import Loaded, ModelWatcher, Refused
from pdm.daemon.restore import open_alerts
from pdm.daemon.scoring import Scorer
from pdm.daemon.settings import ServeSettings, SettingsError
from pdm.daemon.status import StatusBoard
from pdm.logs import RateLimitedLog

logger = logging.getLogger(__name__)
HOUSEKEEPING_S = 1.0
MAX_MESSAGES_PER_BATCH = 5000


class Daemon:
    def __init__(self, settings: ServeSettings, models: Models | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.models = models or Models(settings.models_dir, settings.routes, settings.default_model,
                                       warm_up=settings.warm_up, engine=settings.engine)
        for slot in self.models.slots.values():
            self.metrics.model_info.labels(slot.name, slot.ref.version).set(1)
        main = self.models.main
        self.status = StatusBoard(Status(state="online", service="scorer", instance=settings.effective_instance,
                                         version=__version__, model=main.ref, started_at=time.time()),
                                  main.name, [s.ref for s in self.models.slots.values()],
                                  {s.name: s.warnings for s in self.models.slots.values()})
        self.inbox: queue.Queue[QueuedMessage] = queue.Queue(maxsize=settings.queue_size)
        self.link = ScorerLink(settings, self.metrics, self.status, self.inbox)
        # a state is due two housekeeping ticks before the heartbeat, so it is never republished later than that
        self.housekeeping_s = min(HOUSEKEEPING_S, settings.heartbeat / 4)
        self.state_key = state_key()  # PDM_STATE_KEY: sign the states, restore only signed ones
        self.publisher = Publisher(self.link, Topics(settings.prefix), qos=settings.qos, metrics=self.metrics,
                                   key=self.state_key)
        self.watcher = ModelWatcher(self.models.models_dir, self.models.slots, settings.reload_interval,
                                    settings.warm_up, settings.engine)
        self.scorer: Scorer | None = None
        self.allowed = AllowList(settings.allow_machines, settings.allow_machines_file)  # a bad file: SettingsError
        self.checkpoint: Checkpoint | None = None  # with --state-dir
        if settings.state_dir is not None:
            try:
                self.checkpoint = Checkpoint(settings.state_dir)
            except OSError as exc:
                raise SettingsError(f"--state-dir: cannot write {settings.state_dir} ({exc.strerror}), expected a "
                                    "writable directory") from None
        self.last_progress = time.monotonic()
        self.ready = threading.Event()  # set once connected and scoring
        self._log = RateLimitedLog(logger, every_s=10.0)
        self._to_ack: list[QueuedMessage] = []  # processed, acknowledged once their commit is written
        self.http: HealthServer | None = None
        if settings.metrics_port:
            self.http = HealthServer(self.metrics, self.health, settings.metrics_host, settings.metrics_port)

    def health(self) -> tuple[bool, dict[str, object]]:
        """Healthy unless the broker is unreachable, the loop stalled for ``--stall-timeout``, every model call
        has failed for ``--stall-timeout`` since the last one that succeeded, or every active machine (not stale,
        not in maintenance) is stuck (`pdm.daemon.upkeep`)."""
        now = time.monotonic()
        idle = now - self.last_progress
        connected = self.link.connected.is_set()
        problems = [] if connected else ["broker unreachable"]
        if idle > self.settings.stall_timeout:
            problems.append(f"scoring stalled for {idle:.0f} s")
        scorer = self.scorer
        if scorer is not None:
            failing = scorer.failing_since
            if failing is not None and now - failing >= self.settings.stall_timeout:
                problems.append(f"scoring failed for {now - failing:.0f} s: every model call since then raised")
            if scorer.active and scorer.stuck >= scorer.active:
                problems.append(f"every machine is stuck: {scorer.stuck} machines receive readings that make no "
                                "window (late, duplicate or gapped)")
        return not problems, {"broker_connected": connected, "queue_depth": self.inbox.qsize(),
                              "seconds_since_progress": round(idle, 3), "problems": problems,
                              "model_errors": self.status.errors()}

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> int:
        if self.http is not None:
            self.http.start()
        try:
            ignored: Tally[str] = Tally()
            restored = open_alerts(self.settings, self.stop_event, key=self.state_key, allowed=self.allowed,
                                   ignored=ignored)
            for reason, n in ignored.items():
                self.metrics.restore_ignored.labels(reason).inc(n)
            self.scorer = Scorer(self.settings, self.models, self.metrics, self.publisher, restored,
                                 heartbeat_s=self.settings.heartbeat - 2 * self.housekeeping_s,
                                 checkpoint=self.checkpoint)
            self.scorer.restore_checkpoint()
            self.watcher.start()
            self.link.start()
            self._loop(self.scorer)
            self._drain(self.scorer)
            self.scorer.compact()
        finally:
            self.watcher.stop()
            self.link.stop(self.settings.drain_timeout)
            if self.checkpoint is not None:
                self.checkpoint.close()
            if self.http is not None:
                self.http.stop()
        logger.info("stopped cleanly")
        return 0

    def _take(self, timeout: float) -> list[QueuedMessage]:
        try:
            items = [self.inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(items) < MAX_MESSAGES_PER_BATCH:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return items

    def _step(self, scorer: Scorer, timeout: float) -> int:
        """One micro-batch: process, commit (checkpoint, publish), then acknowledge. Whatever a message did to the
        processing, it is acknowledged (never redelivered forever); only a commit that could not be written holds
        the acknowledgements back, until a later commit covers them (the broker then redelivers nothing that was
        not checkpointed, and at Receive Maximum it stops sending: the stall shows in /healthz)."""
        items = self._take(timeout)
        if items:
            self._to_ack.extend(i for i in items if i.qos > 0)
            try:
                scorer.process(items)
            except Exception:  # everything in process is contained; this is the last line
                self.metrics.errors.labels("batch").inc()
                self._log.exception("batch", "a micro-batch of %d messages failed; acknowledged, not retried",
                                    len(items))
        try:
            scorer.commit()
        except Exception:
            self.metrics.errors.labels("checkpoint").inc()
            self._log.exception("commit", "committing a micro-batch failed; %d messages wait to be acknowledged "
                                "until a commit succeeds", len(self._to_ack))
        else:
            if self._to_ack:
                self.link.ack(self._to_ack)
                self._to_ack = []
        self.last_progress = time.monotonic()
        self.metrics.queue_depth.set(self.inbox.qsize())
        return len(items)

    def _loop(self, scorer: Scorer) -> None:
        next_house = 0.0
        while not self.stop_event.is_set():
            self._step(scorer, 0.2)
            connected = self.link.connected.is_set()
            if connected:
                self.ready.set()
            now = time.monotonic()
            try:
                self._apply_reloads(scorer)
                if now >= next_house:
                    next_house = now + self.housekeeping_s
                    scorer.housekeeping(now, connected)
            except Exception:
                self.metrics.errors.labels("housekeeping").inc()
                self._log.exception("housekeeping", "housekeeping or a model swap failed; the loop goes on")

    def _apply_reloads(self, scorer: Scorer) -> None:
        """Swap in the versions the watcher prepared, between micro-batches; record refusals."""
        while True:
            try:
                result = self.watcher.results.get_nowait()
            except queue.Empty:
                return
            if isinstance(result, Loaded):
                slot = result.slot
                old, moved, unscored = scorer.swap(slot)
                self.metrics.model_info.remove(old.name, old.ref.version)
                self.metrics.model_info.labels(slot.name, slot.ref.version).set(1)
                self.metrics.reloads.labels(slot.name, "loaded").inc()
                self.metrics.reload_unscored.inc(unscored)
                self.status.loaded(slot.ref, slot.warnings)
                logger.warning("model %s: version %s replaced %s (window %d -> %d); %d machines moved%s", slot.name,
                               slot.ref.version, old.ref.version, old.window, slot.window, moved,
                               f", {unscored} windows not scored while the longer window fills" if unscored else "")
            elif isinstance(result, Refused):
                self.metrics.reloads.labels(result.name, "refused").inc()
                self.status.refused(result.name, result.version, result.reason, result.ts)
            else:
                self.status.resolved(result.name)
            self.metrics.model_errors.set(len(self.status.errors()))
            self.link.status_changed()

    def _drain(self, scorer: Scorer) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout
        n = 0
        while time.monotonic() < deadline:
            got = self._step(scorer, 0.0)
            if not got:
                break
            n += got
        logger.info("drained %d queued messages before stopping", n)
