"""Restoring open alerts from the daemon's own retained states, before it starts scoring.

A short-lived clean-session client subscribes to ``PREFIX/state/+`` and collects the retained states whose
``instance`` is this daemon's, whose machine belongs to this shard, and that carry an ``alert_id`` (an open
alert). It reads until no retained state has arrived for ``quiet_s`` (the broker sends retained messages right
after the subscription is acknowledged), or ``timeout_s``. This runs before the persistent session connects, so a
backlog of queued telemetry cannot overtake the states.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pdm.contract import State, Topics, owns, parse_state
from pdm.contract.errors import ContractError
from pdm.daemon.settings import ServeSettings
from pdm.mqtt.client import parse_broker, set_credentials

logger = logging.getLogger(__name__)


def open_alerts(settings: ServeSettings, stop: threading.Event, quiet_s: float = 0.5,
                timeout_s: float = 20.0) -> dict[str, State]:
    """Machine id -> its retained state with an open alert, as this instance last published it. Waits for the
    broker as long as it takes (the daemon can do nothing without it) unless ``stop`` is set."""
    topics = Topics(settings.prefix)
    host, port, tls = parse_broker(settings.broker)
    instance = settings.effective_instance
    found: dict[str, State] = {}
    seen = [0]
    last = [time.monotonic()]
    sub_at = [0.0]
    subscribed = threading.Event()
    connect_failed: list[str] = []
    lock = threading.Lock()
    v5 = settings.mqtt_version == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.effective_client_id}-restore",
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    set_credentials(client, settings, tls)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            connect_failed.append(str(reason))
            return
        c.subscribe(topics.subscription("state"), qos=1)

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        last[0] = sub_at[0] = time.monotonic()
        subscribed.set()

    def on_message(c: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if not msg.retain:
                return
            machine = topics.machine_of(msg.topic, "state")
            with lock:
                seen[0] += 1
                last[0] = time.monotonic()
            if not owns(machine, settings.shard_index, settings.shard_count) or not msg.payload:
                return
            state = parse_state(msg.payload, machine)
            if state.instance == instance and state.alert_id is not None:
                with lock:
                    found[machine] = state
        except ContractError as exc:
            logger.warning("ignoring a retained state on %s: %s", msg.topic, exc)
        except Exception:  # never let a raise end the network loop
            logger.exception("reading a retained state on %s failed", msg.topic)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.reconnect_delay_set(1, 5)
    client.connect_async(host, port, keepalive=30)
    client.loop_start()
    started = time.monotonic()
    next_note = started + 10.0
    try:
        while not stop.wait(0.05):
            now = time.monotonic()
            if not subscribed.is_set():
                if now >= next_note:
                    next_note = now + 10.0
                    logger.warning("waiting for broker %s:%d to read retained states (%.0f s)%s", host, port,
                                   now - started, f"; refused: {connect_failed[-1]}" if connect_failed else "")
                continue
            with lock:
                if now - last[0] >= quiet_s:
                    break
                if now - sub_at[0] > timeout_s:
                    logger.warning("retained states still arriving after %.0f s; starting with %d read",
                                   timeout_s, seen[0])
                    break
    finally:
        client.disconnect()
        client.loop_stop()
    logger.info("read %d retained states: %d open alerts of %s to resume", seen[0], len(found), instance)
    return found
