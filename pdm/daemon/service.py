"""The daemon: wires settings, models, the MQTT link, the scoring loop, metrics and health together.

Threads: paho's network thread (receives, filters shards, queues), the scoring thread (``run``: everything else),
and the metrics/health HTTP server. ``stop()`` (SIGTERM/SIGINT in ``python -m pdm serve``) ends the loop; the
daemon then scores what is already queued, acknowledges it, publishes ``offline`` and disconnects. Messages the
broker sent after that are not acknowledged and are redelivered to the next run (persistent session).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from pdm import __version__
from pdm.contract import Status, Topics
from pdm.daemon.metrics import HealthServer, Metrics
from pdm.daemon.models import Models
from pdm.daemon.mqtt_link import Inbound, Link
from pdm.daemon.publisher import Publisher
from pdm.daemon.restore import open_alerts
from pdm.daemon.scoring import Scorer
from pdm.daemon.settings import ServeSettings

logger = logging.getLogger(__name__)
HOUSEKEEPING_S = 1.0
MAX_MESSAGES_PER_BATCH = 5000


class Daemon:
    def __init__(self, settings: ServeSettings, models: Models | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.models = models or Models(settings.models_dir, settings.routes, settings.default_model,
                                       warm_up=settings.warm_up)
        for slot in self.models.slots.values():
            self.metrics.model_info.labels(slot.name, slot.ref.version).set(1)
        main = self.models.default or next(iter(self.models.slots.values()))
        self.status = Status(state="online", service="scorer", instance=settings.effective_instance,
                             version=__version__, model=main.ref, started_at=time.time())
        self.inbox: queue.Queue[Inbound] = queue.Queue(maxsize=settings.queue_size)
        self.link = Link(settings, self.metrics, self.status, self.inbox)
        self.publisher = Publisher(self.link, Topics(settings.prefix), instance=settings.effective_instance,
                                   qos=settings.qos, metrics=self.metrics, heartbeat_s=settings.heartbeat)
        self.scorer: Scorer | None = None
        self.last_progress = time.monotonic()
        self.ready = threading.Event()  # set once connected and scoring
        self.http: HealthServer | None = None
        if settings.metrics_port:
            self.http = HealthServer(self.metrics, self.health, settings.metrics_host, settings.metrics_port)

    def health(self) -> tuple[bool, dict[str, object]]:
        idle = time.monotonic() - self.last_progress
        connected = self.link.connected.is_set()
        stalled = idle > self.settings.stall_timeout
        problems = ([] if connected else ["broker unreachable"]) + ([f"scoring stalled for {idle:.0f} s"]
                                                                     if stalled else [])
        return not problems, {"broker_connected": connected, "queue_depth": self.inbox.qsize(),
                              "seconds_since_progress": round(idle, 3), "problems": problems}

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> int:
        if self.http is not None:
            self.http.start()
        try:
            restored = open_alerts(self.settings, self.stop_event)
            self.scorer = Scorer(self.settings, self.models, self.metrics, self.publisher, restored)
            self.link.start()
            self._loop(self.scorer)
            self._drain(self.scorer)
        finally:
            self.link.stop(self.settings.drain_timeout)
            if self.http is not None:
                self.http.stop()
        logger.info("stopped cleanly")
        return 0

    def _take(self, timeout: float) -> list[Inbound]:
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
        items = self._take(timeout)
        if items:
            scorer.process(items)
            self.link.ack(items)
        self.last_progress = time.monotonic()
        self.metrics.queue_depth.set(self.inbox.qsize())
        return len(items)

    def _loop(self, scorer: Scorer) -> None:
        next_house = 0.0
        while not self.stop_event.is_set():
            self._step(scorer, 0.2)
            if self.link.connected.is_set():
                self.ready.set()
            now = time.monotonic()
            if now >= next_house:
                scorer.housekeeping(now)
                next_house = now + HOUSEKEEPING_S

    def _drain(self, scorer: Scorer) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout
        n = 0
        while time.monotonic() < deadline:
            got = self._step(scorer, 0.0)
            if not got:
                break
            n += got
        logger.info("drained %d queued messages before stopping", n)
