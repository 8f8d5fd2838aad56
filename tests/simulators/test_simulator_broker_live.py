"""The broker fixture itself (`tests.support.broker`): the contract's configuration, a restart that keeps persistent
sessions and their queued messages, and the missing-binary rule (skip locally, fail in CI)."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support import broker as broker_plugin
from tests.support.broker import Broker


def persistent_client(b: Broker, received: list[bytes]) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="persistent-sub", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: received.append(m.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(b.host, b.port, clean_start=False, properties=props)
    return c


@pytest.mark.broker
def test_restart_keeps_the_port_and_the_queued_messages_of_persistent_sessions(mosquitto: Broker) -> None:
    config = mosquitto.config_path.read_text()
    assert "persistence true" in config and "max_queued_messages 1000000" in config
    assert f"listener {mosquitto.port} 127.0.0.1" in config
    received: list[bytes] = []
    sub = persistent_client(mosquitto, received)
    done = threading.Event()
    sub.on_subscribe = lambda *a: done.set()
    sub.subscribe("q/#", qos=1)
    sub.loop_start()
    assert done.wait(5)
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    infos = [pub.publish("q/x", str(i).encode(), qos=1) for i in range(2000)]  # more than mosquitto's default 1000
    for info in infos:
        info.wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.port == port and mosquitto.running
    sub = persistent_client(mosquitto, received)
    sub.loop_start()
    deadline = time.monotonic() + 10
    while len(received) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.disconnect()
    sub.loop_stop()
    assert sorted(int(p) for p in set(received)) == list(range(2000))


def test_missing_mosquitto_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_plugin, "find_mosquitto", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        broker_plugin.mosquitto_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        broker_plugin.mosquitto_binary()
