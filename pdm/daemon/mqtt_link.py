"""The MQTT side: one paho-mqtt 2.x client (``CallbackAPIVersion.VERSION2``, MQTT 5 by default).

- Persistent session (contract, "Sessions and scale"): fixed client id including the shard, clean start off, a
  session expiry interval (1 day by default), QoS 1: telemetry published while the daemon is down is queued by the
  broker and scored when it returns.
- Subscriptions are made in ``on_connect`` (so every reconnection has them); paho reconnects with backoff (1 s
  doubling to 30 s) forever.
- Retained ``online`` status on every connection; the Last Will is the same status with ``offline``.
- The network thread never runs a model: ``on_message`` drops other shards' telemetry by topic (before any JSON),
  and puts everything else on a bounded queue. QoS 1 messages are acknowledged manually, only after the scoring
  loop has applied and scored them; the broker sends at most ``receive_maximum`` unacknowledged messages, so a slow
  scorer holds the broker back instead of dropping anything. If the queue is ever full (QoS 0 telemetry), the
  network thread waits for room, which stops reading the socket (TCP back-pressure). Both are counted and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pdm.contract import Status, Topics
from pdm.contract.topics import parse_broker_url
from pdm.daemon.metrics import Metrics
from pdm.daemon.ratelimit import RateLimitedLog
from pdm.daemon.settings import ServeSettings, SettingsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    qos: int
    mid: int
    arrived: float  # time.monotonic() when the network thread received it


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` (``mqtts://`` for TLS) -> (host, port, tls); a bad URL is a `SettingsError`."""
    try:
        return parse_broker_url(url)
    except ValueError as exc:
        raise SettingsError(f"--broker: {exc}") from None


class Link:
    """The daemon's connection; thread-safe ``publish`` and ``ack``."""

    def __init__(self, settings: ServeSettings, metrics: Metrics, status: Status, inbox: queue.Queue[Inbound]) -> None:
        self.settings, self.metrics, self.status, self.inbox = settings, metrics, status, inbox
        self.topics = Topics(settings.prefix)
        self.host, self.port, tls = parse_broker(settings.broker)
        self.status_topic = self.topics.status(status.service, status.instance)
        self._telemetry_head = f"{settings.prefix}/telemetry/"
        self._shard, self._shards = settings.shard_index, settings.shard_count
        self.connected = threading.Event()
        self.closing = threading.Event()
        self._connections = 0
        self._lock = threading.Lock()
        self._unacked = 0
        self._held_back = False
        self._sent = 0
        self._published = 0
        self._log = RateLimitedLog(logger, every_s=10.0)
        v5 = settings.mqtt_version == 5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.effective_client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                  clean_session=None if v5 else False)
        self.client.manual_ack_set(True)
        self.client.will_set(self.status_topic, status.offline().encode(), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # alerts and states wait for a reconnection, never dropped
        if settings.username:
            self.client.username_pw_set(settings.username, settings.password())
        if tls:
            self.client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None,
                                certfile=str(settings.cert_file) if settings.cert_file else None,
                                keyfile=str(settings.key_file) if settings.key_file else None)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # ------------------------------------------------------------------ lifecycle (main thread)
    def start(self) -> None:
        s = self.settings
        if s.mqtt_version == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = s.session_expiry
            props.ReceiveMaximum = s.receive_maximum
            self.client.connect_async(self.host, self.port, keepalive=s.keepalive, clean_start=False,
                                      properties=props)
        else:
            self.client.connect_async(self.host, self.port, keepalive=s.keepalive)
        self.client.loop_start()
        logger.info("connecting to %s:%d as %s (persistent session, expiry %d s)", self.host, self.port,
                    s.effective_client_id, s.session_expiry)

    def stop(self, timeout: float) -> None:
        """Publish ``offline`` (retained), wait for outstanding publishes, disconnect."""
        self.closing.set()
        if self.connected.is_set():
            self.publish(self.status_topic, self.status.offline().encode(), 1, retain=True)
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
    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        with self._lock:
            self._sent += 1
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and qos == 0:
            with self._lock:
                self._published += 1  # a QoS 0 message without a connection is gone: do not wait for it

    def ack(self, items: list[Inbound]) -> None:
        n = 0
        for item in items:
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)
                n += 1
        with self._lock:
            self._unacked -= n
            self.metrics.unacked.set(self._unacked)
            if self._held_back and self._unacked < self.settings.receive_maximum:
                self._held_back = False

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        try:
            if reason.is_failure:
                logger.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason)
                return
            qos = self.settings.qos
            client.subscribe([(self.topics.subscription("telemetry"), SubscribeOptions(qos=qos)),
                              (self.topics.subscription("maintenance"), SubscribeOptions(qos=1))])
            self.publish(self.status_topic, self.status.encode(), 1, retain=True)
            self._connections += 1
            if self._connections > 1:
                self.metrics.reconnects.inc()
            self.metrics.connected.set(1)
            self.connected.set()
            level = logging.WARNING if self._connections > 1 else logging.INFO
            logger.log(level, "connected to %s:%d (session present: %s)", self.host, self.port,
                       getattr(flags, "session_present", "?"))
        except Exception:  # a raise here would end paho's network loop
            logger.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.metrics.connected.set(0)
        if not self.closing.is_set():
            logger.warning("disconnected from %s:%d (%s); reconnecting with backoff", self.host, self.port, reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._published += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
            if self._shards > 1 and topic.startswith(self._telemetry_head):
                machine = topic[len(self._telemetry_head):].encode()
                if zlib.crc32(machine) % self._shards != self._shard:
                    self.metrics.other_shard.inc()
                    if msg.qos > 0:
                        client.ack(msg.mid, msg.qos)
                    return
            item = Inbound(topic, bytes(msg.payload), msg.qos, msg.mid, time.monotonic())
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

    def _put(self, item: Inbound) -> None:
        try:
            self.inbox.put_nowait(item)
            return
        except queue.Full:
            self.metrics.backpressure.labels("queue_full").inc()
            self._log.warning("queue_full", "back-pressure: the scoring queue is full (%d); not reading from the "
                              "broker until there is room", self.inbox.maxsize)
        while not self.closing.is_set():
            try:
                self.inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
