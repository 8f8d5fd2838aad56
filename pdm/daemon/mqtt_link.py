"""The MQTT side: one paho-mqtt 2.x client (`pdm.mqtt.client.SessionLink`: ``CallbackAPIVersion.VERSION2``, MQTT 5 by
default).

- Persistent session (contract, "Sessions and scale"): fixed client id including the shard, clean start off, a
  session expiry interval (1 day by default), QoS 1: telemetry published while the daemon is down is queued by the
  broker and scored when it returns.
- Subscriptions are made in ``on_connect`` (so every reconnection has them); paho reconnects with backoff (1 s
  doubling to 30 s) forever.
- Retained ``online`` status on every connection; the Last Will is the same status with ``offline``.
- The network thread never runs a model: ``on_message`` drops other shards' telemetry by topic (before any JSON),
  and puts everything else on a bounded queue. QoS 1 messages are acknowledged manually, only after the scoring
  loop has applied and scored them; the broker is asked to send at most ``receive_maximum`` unacknowledged
  messages, so a slow scorer holds the broker back instead of dropping anything. Brokers do not always keep to it
  (mosquitto 2.0.11 exceeds it once acknowledgements flow), and QoS 0 has no such limit: if the queue is full, the
  network thread waits for room, which stops reading the socket (TCP back-pressure). Both are counted and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from pdm.contract import Topics
from pdm.contract.topics import owns
from pdm.daemon.metrics import Metrics
from pdm.daemon.settings import ServeSettings
from pdm.daemon.status import StatusBoard
from pdm.logs import RateLimitedLog
from pdm.mqtt.client import Received, SessionLink

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueuedMessage(Received):
    arrived: float  # time.monotonic() when the network thread received it
    dup: bool = False  # the broker sent it before (MQTT DUP flag: a redelivery)


class ScorerLink(SessionLink[ServeSettings]):
    """The daemon's connection; thread-safe ``publish`` and ``ack``."""

    def __init__(self, settings: ServeSettings, metrics: Metrics, status: StatusBoard,
                 inbox: queue.Queue[QueuedMessage]) -> None:
        self.metrics, self.status, self.inbox = metrics, status, inbox
        self.topics = Topics(settings.prefix)
        super().__init__(settings, self.topics.status(status.service, status.instance), status.payload(online=False))
        self._telemetry_head = f"{settings.prefix}/telemetry/"
        self._shard, self._shards = settings.shard_index, settings.shard_count
        self._lock = threading.Lock()
        self._unacked = 0
        self._held_back = False
        self._sent = 0
        self._published = 0
        self._log = RateLimitedLog(logger, every_s=10.0)
        self.client.max_inflight_messages_set(100)
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # ------------------------------------------------------------------ lifecycle (main thread)
    def stop(self, timeout: float) -> None:
        """Publish ``offline`` (retained), wait for outstanding publishes, disconnect."""
        self.closing.set()
        if self.connected.is_set():
            self.publish(self.status_topic, self.status.payload(online=False), 1, retain=True)
            self.wait_flushed(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_flushed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._published >= self._sent:
                    return True
            if not self.connected.is_set():
                time.sleep(0.1)
                continue
            time.sleep(0.02)
        with self._lock:
            left = self._sent - self._published
        logger.warning("%d publications not acknowledged by the broker after %.0f s", left, timeout)
        return False

    # ------------------------------------------------------------------ thread-safe calls
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> mqtt.MQTTMessageInfo:
        with self._lock:
            self._sent += 1
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and qos == 0:
            with self._lock:
                self._published += 1  # a QoS 0 message without a connection is gone: do not wait for it
        return info

    def status_changed(self) -> None:
        """Publish the (changed) retained status now and make its offline form the Last Will of the next
        connection."""
        self.client.will_set(self.status_topic, self.status.payload(online=False), qos=1, retain=True)
        if self.connected.is_set():
            self.publish(self.status_topic, self.status.payload(), 1, retain=True)

    @property
    def pending_publications(self) -> int:
        """QoS 1 publications not yet acknowledged by the broker (queued while disconnected, or in flight)."""
        with self._lock:
            return self._sent - self._published

    def ack(self, items: Iterable[Received]) -> int:
        n = super().ack(items)
        with self._lock:
            self._unacked -= n
            self.metrics.unacked.set(self._unacked)
            if self._held_back and self._unacked < self.settings.receive_maximum:
                self._held_back = False
        return n

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_session(self, client: mqtt.Client) -> None:
        client.subscribe([(self.topics.subscription("telemetry"), SubscribeOptions(qos=self.settings.qos)),
                          (self.topics.subscription("maintenance"), SubscribeOptions(qos=1))])
        self.publish(self.status_topic, self.status.payload(), 1, retain=True)

    def _note(self, event: str) -> None:
        if event == "reconnected":
            self.metrics.reconnects.inc()
        self.metrics.connected.set(0 if event == "disconnected" else 1)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._published += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
            if (self._shards > 1 and topic.startswith(self._telemetry_head)
                    and not owns(topic[len(self._telemetry_head):], self._shard, self._shards)):
                self.metrics.other_shard.inc()
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
                return
            item = QueuedMessage(topic, bytes(msg.payload), msg.qos, msg.mid, time.monotonic(), bool(msg.dup))
            if msg.qos > 0:
                with self._lock:
                    self._unacked += 1
                    self.metrics.unacked.set(self._unacked)
                    if self._unacked >= self.settings.receive_maximum and not self._held_back:
                        self._held_back = True
                        self.metrics.backpressure.labels("receive_maximum").inc()
                        self._log.warning("receive_maximum", "back-pressure: %d messages wait to be scored; "
                                          "acknowledgements are held back, so the broker queues telemetry",
                                          self._unacked)
            self._put(item)
        except Exception:  # catch per message: a raise here would end paho's network loop
            self.metrics.rejected.labels("internal").inc()
            self._log.exception("on_message", "could not queue a message on %s", msg.topic)

    def _put(self, item: QueuedMessage) -> None:
        if not self._enqueue(self.inbox, item):
            self._log.warning("closing", "stopping: a message on %s was not queued (QoS %d: %s)", item.topic,
                              item.qos, "not acknowledged, the broker redelivers it to the next run" if item.qos
                              else "dropped")

    def _on_queue_full(self) -> None:
        self.metrics.backpressure.labels("queue_full").inc()
        with self._lock:
            unacked = self._unacked
        self._log.warning("queue_full", "back-pressure: the scoring queue is full (%d messages, %d of them QoS 1 "
                          "not yet acknowledged); not reading from the broker until there is room",
                          self.inbox.maxsize, unacked)
