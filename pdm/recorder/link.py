"""The recorder's MQTT connection: one paho-mqtt 2.x client (`pdm.mqtt.client.SessionLink`:
``CallbackAPIVersion.VERSION2``, MQTT 5 by default).

- Persistent session (contract, "Sessions and scale"): fixed client id including the shard, clean start off,
  session expiry (1 day by default), QoS 1: what is published while the recorder is down is queued by the broker
  and recorded when it returns.
- Subscriptions are made in ``on_connect``; with MQTT 5 they ask for retained messages only when the subscription
  is new (retain handling 1), so a reconnection does not replay retained states. paho reconnects with backoff (1 s
  doubling to 30 s) forever.
- Retained ``online`` status on ``PREFIX/status/recorder/INSTANCE`` on every connection; the Last Will (and a clean
  stop) is the same status with ``offline``.
- The network thread only drops other shards' machines (by topic) and queues messages; QoS 1 messages are
  acknowledged manually by the writer, in arrival order, once their rows are fsynced (``ack``). The broker sends at
  most ``receive_maximum`` unacknowledged messages, so a slow disk holds the broker back instead of losing data.
  When the queue is full the network thread waits for room (TCP back-pressure), counted as ``queue_full``.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from pdm.contract import Status, Topics
from pdm.contract.topics import MACHINE_KINDS, owns
from pdm.mqtt.client import Received, SessionLink
from pdm.recorder.counters import Counters
from pdm.recorder.settings import RecordSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecorderMessage(Received):
    retain: bool
    received_at: float  # time.time() when the network thread received it


class RecorderLink(SessionLink[RecordSettings]):
    """Connection, subscriptions and status; thread-safe ``ack``."""

    def __init__(self, settings: RecordSettings, status: Status, inbox: queue.Queue[RecorderMessage],
                 counters: Counters, subscriptions: list[tuple[str, int]]) -> None:
        self.status, self.inbox, self.counters = status, inbox, counters
        self.subscriptions = subscriptions
        self.topics = Topics(settings.prefix)
        super().__init__(settings, self.topics.status(status.service, status.instance), status.offline().encode())
        self._head = settings.prefix + "/"
        self._shard, self._shards = settings.shard_index, settings.shard_count
        self.client.on_message = self._on_message

    def stop(self, timeout: float) -> None:
        """Publish ``offline`` (retained) and wait for it, then disconnect."""
        self.closing.set()
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, self.status.offline().encode(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:  # lost the connection meanwhile
                logger.warning("could not publish the offline status: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_session(self, client: mqtt.Client) -> None:
        if self.settings.mqtt_version == 5:
            client.subscribe([(topic, SubscribeOptions(qos=qos, retainHandling=1))
                              for topic, qos in self.subscriptions])
        else:
            client.subscribe(list(self.subscriptions))
        client.publish(self.status_topic, self.status.encode(), qos=1, retain=True)

    def _note(self, event: str) -> None:
        if event == "reconnected":
            self.counters.inc("reconnects")

    def _on_queue_full(self) -> None:
        self.counters.inc("queue_full")

    def _other_shard(self, topic: str) -> bool:
        if self._shards == 1 or not topic.startswith(self._head):
            return False
        kind, sep, machine = topic[len(self._head):].partition("/")
        if not sep or kind not in MACHINE_KINDS or "/" in machine:
            return False
        return not owns(machine, self._shard, self._shards)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if self._other_shard(msg.topic):
                self.counters.inc("other_shard")
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
                return
            item = RecorderMessage(msg.topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain), time.time())
            self._enqueue(self.inbox, item)
        except Exception:  # per message: a raise here would end paho's network loop
            self.counters.inc("rejected.internal")
            logger.exception("could not queue a message on %s", msg.topic)
