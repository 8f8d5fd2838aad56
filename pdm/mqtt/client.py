"""The paho-mqtt 2.x client of a persistent session (``CallbackAPIVersion.VERSION2``, MQTT 5 by default), and
`SessionLink`, the connection the daemon's and the recorder's links build on.

The session (contract, "Sessions and scale"): a fixed client id including the shard, clean start off (MQTT 3.1.1:
clean session off), a session expiry interval and a Receive Maximum in the CONNECT properties (MQTT 5), QoS 1
messages acknowledged manually by the caller, a retained Last Will (the ``offline`` status), paho's reconnection
with backoff (1 s doubling to 30 s) forever, and no limit on the messages queued while disconnected (none is
dropped). User name, password and TLS come from the settings.

>>> parse_broker("mqtts://broker.example:8883")
('broker.example', 8883, True)
"""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdm.contract.topics import parse_broker_url
from pdm.mqtt.settings import ConnectionSettings, SettingsError

S = TypeVar("S", bound=ConnectionSettings)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Received:
    """A message from the broker, queued by the network thread; QoS 1 ones wait for `SessionLink.ack`."""

    topic: str
    payload: bytes
    qos: int
    mid: int


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` (``mqtts://`` for TLS) -> (host, port, tls); a bad URL is a `SettingsError`."""
    try:
        return parse_broker_url(url)
    except ValueError as exc:
        raise SettingsError(f"--broker: {exc}") from None


def set_credentials(client: mqtt.Client, settings: ConnectionSettings, tls: bool) -> None:
    """User name and password, and TLS (the CA, client certificate and key of the settings) when ``tls``."""
    if settings.username:
        client.username_pw_set(settings.username, settings.password())
    if tls:
        client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None,
                       certfile=str(settings.cert_file) if settings.cert_file else None,
                       keyfile=str(settings.key_file) if settings.key_file else None)


def session_client(settings: ConnectionSettings, tls: bool, will_topic: str, will_payload: bytes) -> mqtt.Client:
    """A client for the persistent session of ``settings`` (not connected), its retained Last Will set."""
    v5 = settings.mqtt_version == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.effective_client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
    client.manual_ack_set(True)
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_queued_messages_set(0)  # what is published while disconnected waits for a reconnection
    set_credentials(client, settings, tls)
    return client


def connect_session(client: mqtt.Client, settings: ConnectionSettings, host: str, port: int) -> None:
    """Connect in the background (clean start off; MQTT 5: session expiry and Receive Maximum) and start the
    network thread, which reconnects on its own."""
    if settings.mqtt_version == 5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = settings.session_expiry
        props.ReceiveMaximum = settings.receive_maximum
        client.connect_async(host, port, keepalive=settings.keepalive, clean_start=False, properties=props)
    else:
        client.connect_async(host, port, keepalive=settings.keepalive)
    client.loop_start()


class SessionLink(ABC, Generic[S]):
    """One persistent session: ``client``, ``connected`` (set while connected), ``closing`` (set by the subclass's
    stop). A subclass subscribes and announces itself in `_on_session` (on every connection, so a reconnection has
    the subscriptions too), counts in `_note`, and sets ``client.on_message``. Logs go to the subclass's module
    logger."""

    def __init__(self, settings: S, status_topic: str, offline: bytes) -> None:
        self.settings = settings
        self.host, self.port, tls = parse_broker(settings.broker)
        self.status_topic = status_topic
        self.connected = threading.Event()
        self.closing = threading.Event()
        self._connections = 0
        self._logger = logging.getLogger(type(self).__module__)
        self.client = session_client(settings, tls, status_topic, offline)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def start(self) -> None:
        connect_session(self.client, self.settings, self.host, self.port)
        self._logger.info("connecting to %s:%d as %s (persistent session, expiry %d s)", self.host, self.port,
                          self.settings.effective_client_id, self.settings.session_expiry)

    def ack(self, items: Iterable[Received]) -> int:
        """Acknowledge the QoS 1 messages among ``items``, in the order given; how many there were."""
        n = 0
        for item in items:
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)
                n += 1
        return n

    def _enqueue(self, inbox: queue.Queue[T], item: T) -> bool:
        """Put ``item`` on ``inbox`` (network thread). When it is full, `_on_queue_full` and wait for room: the
        socket is not read meanwhile (TCP back-pressure). False when ``closing`` was set before there was room."""
        try:
            inbox.put_nowait(item)
            return True
        except queue.Full:
            self._on_queue_full()
        while not self.closing.is_set():
            try:
                inbox.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _on_queue_full(self) -> None:
        """Count and report that the queue was full (network thread)."""

    @abstractmethod
    def _on_session(self, client: mqtt.Client) -> None:
        """Subscribe and publish the ``online`` status (network thread, on every connection)."""

    def _note(self, event: str) -> None:
        """Count ``event``: "connected", "reconnected" or "disconnected" (network thread)."""

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        try:
            if reason.is_failure:
                self._logger.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason)
                return
            self._on_session(client)
            self._connections += 1
            self._note("reconnected" if self._connections > 1 else "connected")
            self.connected.set()
            level = logging.WARNING if self._connections > 1 else logging.INFO
            self._logger.log(level, "connected to %s:%d (session present: %s)", self.host, self.port,
                             getattr(flags, "session_present", "?"))
        except Exception:  # a raise here would end paho's network loop
            self._logger.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self._note("disconnected")
        if not self.closing.is_set():
            self._logger.warning("disconnected from %s:%d (%s); reconnecting with backoff", self.host, self.port,
                                 reason)
