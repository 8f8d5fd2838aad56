"""Who may publish what (issue 14), against a real mosquitto started with the project's ACL
(docs/mosquitto/acl, used as it is) and a password file made with ``mosquitto_passwd``: a device account cannot
forge a state, an alert or a maintenance window (subscribers never receive them, a retained one is never kept);
the scorer publishes states and alerts, the operator maintenance windows; anonymous clients are refused; pdm's
own recorder connects with its account and never logs the password.

No timing is assumed: every denied publish is acknowledged (MQTT 5 PUBACK "not authorized") before the allowed
ones are sent, so a subscriber that has received the allowed ones would have received a forged one first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pdm import contract
from tests.support.broker import Accounts, Broker, make_password_file, mosquitto_binary
from tests.support.cli import ROOT

pytestmark = pytest.mark.broker

DOCS = ROOT / "docs" / "mosquitto"
USERS = ("pump-007", "pump-008", "gateway", "scorer", "recorder", "operator", "simulator", "dashboard")
NOT_AUTHORIZED = 135
TS = time.time()
T = contract.Topics()
WAIT_S = 20.0  # only a bound on waiting for something that must happen; no assertion is about time


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Broker, Accounts]]:
    """mosquitto with the documented ACL, a password per account, and the documented packet size limit."""
    accounts = make_password_file(tmp_path / "pdm.passwd", USERS)
    limits = [line for line in (DOCS / "mosquitto.conf").read_text().splitlines() if line.startswith("max_packet")]
    broker = Broker(mosquitto_binary(), tmp_path / "mosquitto", password_file=accounts.password_file,
                    acl_file=DOCS / "acl", extra_config=limits)
    broker.start()
    try:
        yield broker, accounts
    finally:
        broker.stop()


class Client:
    """A paho MQTT 5 client that records what it receives and the reason code of each acknowledgement."""

    def __init__(self, broker: Broker, user: str | None, password: str | None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}-{id(self)}",
                                  protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.cond = threading.Condition()
        self.connack: int | None = None
        self.acks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.received: list[tuple[str, bytes, bool]] = []
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None, "CONNACK")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self.cond:
            self.connack = reason.value
            self.cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self.cond:
            self.acks[mid] = reason.value
            self.cond.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self.cond:
            self.subacks[mid] = [r.value for r in reasons]
            self.cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, WAIT_S):
                raise AssertionError(f"never got {what}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0 or 16: accepted; 135: not authorized)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait(lambda: info.mid in self.acks, f"the PUBACK of {topic}")
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1 and return the SUBACK's reason code (1: granted QoS 1; 135: not authorized)."""
        _, mid = self.client.subscribe(topic, qos=1)
        self.wait(lambda: mid in self.subacks, f"the SUBACK of {topic}")
        return self.subacks[mid][0]

    def payloads(self) -> list[bytes]:
        with self.cond:
            return [p for _, p, _ in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connect(secured: tuple[Broker, Accounts]) -> Iterator[Callable[[str], Client]]:
    broker, accounts = secured
    clients: list[Client] = []

    def make(user: str) -> Client:
        clients.append(Client(broker, user, accounts.passwords[user]))
        assert clients[-1].connack == 0, f"{user} could not connect: {clients[-1].connack}"
        return clients[-1]

    yield make
    for c in clients:
        c.close()


def state(machine: str, name: str, marker: str) -> bytes:
    return contract.State(machine_id=machine, state=name, since=TS, alert_id=marker if name == "alert" else None,  # type: ignore[arg-type]
                          instance="scorer-0", ts=TS).encode()


def alert(machine: str, severity: str) -> bytes:
    return contract.Alert(alert_id=contract.alert_id(machine, TS), machine_id=machine, event="raised", ts=TS,
                          window_start=TS - 60, window_end=TS, score=9.0, threshold=1.0, severity=severity,
                          contributions={"temperature": 1.0}, model=contract.ModelRef(name="m", version="1"),
                          instance="scorer-0").encode()


def maintenance(machine: str, by: str) -> bytes:
    return contract.Maintenance(machine_id=machine, from_=TS, until=TS + 3600, reason="swap", by=by).encode()


def test_anonymous_and_wrong_passwords_are_refused(secured: tuple[Broker, Accounts]) -> None:
    broker, _ = secured
    conf = (DOCS / "mosquitto.conf").read_text().splitlines()
    assert {"allow_anonymous false", "password_file /etc/mosquitto/pdm.passwd",
            "acl_file /etc/mosquitto/pdm.acl"} <= set(conf)  # what the fixture configures, as documented
    anonymous = Client(broker, None, None)
    wrong = Client(broker, "scorer", "not-the-password")
    try:
        assert anonymous.connack == NOT_AUTHORIZED
        assert wrong.connack is not None and wrong.connack >= 128
    finally:
        anonymous.close()
        wrong.close()


def test_a_device_cannot_forge_states_alerts_or_maintenance(connect: Callable[[str], Client]) -> None:
    scorer_view, operator_view = connect("scorer"), connect("operator")
    for view in (scorer_view, operator_view):
        assert view.subscribe("pdm/v1/#") == 1
    device = connect("pump-007")
    forged = [(T.state("pump-007"), state("pump-007", "alert", "forged"), True),
              (T.alerts("pump-007"), alert("pump-007", "forged"), False),
              (T.maintenance("pump-007"), maintenance("pump-007", "forged"), True),
              (T.maintenance("pump-007"), b"", True),  # clearing the operator's window
              (T.scores("pump-007"), b'{"machine_id": "pump-007", "score": "forged"}', False),
              (T.rejected(), b'{"forged": true}', False),
              (T.status("scorer", "scorer-0"), b'{"forged": "offline"}', True),
              (T.telemetry("pump-008"), b'{"machine_id": "pump-008", "forged": true}', False),
              (T.truth("pump-007"), b'{"forged": "truth"}', False)]
    for topic, payload, retain in forged:
        assert device.publish(topic, payload, retain) == NOT_AUTHORIZED, topic

    allowed = [(connect("operator"), T.maintenance("pump-007"), maintenance("pump-007", "operator"), True),
               (connect("scorer"), T.state("pump-007"), state("pump-007", "normal", ""), True),
               (connect("scorer"), T.alerts("pump-007"), alert("pump-007", "critical"), False),
               (device, T.telemetry("pump-007"), b'{"machine_id": "pump-007", "own": true}', False)]
    for client, topic, payload, retain in allowed:
        assert client.publish(topic, payload, retain) in (0, 16), topic  # 16: accepted, no subscriber matched
    expected = [payload for _, _, payload, _ in allowed]
    for view in (scorer_view, operator_view):
        view.wait(lambda v=view: len(v.received) >= len(expected), "the allowed messages")  # type: ignore[misc]
        assert view.payloads() == expected  # nothing forged arrived before them, nothing else at all

    late = connect("recorder")  # a subscriber that connects afterwards sees the retained messages
    assert late.subscribe("pdm/v1/#") == 1
    late.wait(lambda: len(late.received) >= 2, "the retained state and maintenance window")
    assert sorted(late.payloads()) == sorted([maintenance("pump-007", "operator"), state("pump-007", "normal", "")])
    assert all(b"forged" not in p for v in (scorer_view, operator_view, late) for p in v.payloads())


# (account, topic, allowed to publish)
PUBLISH_RULES = [
    ("pump-007", T.telemetry("pump-007"), True), ("pump-007", T.telemetry("pump-008"), False),
    ("pump-007", T.status("pump-007", "x"), False),
    ("gateway", T.telemetry("pump-008"), True), ("gateway", T.state("pump-008"), False),
    ("scorer", T.state("pump-007"), True), ("scorer", T.alerts("pump-007"), True),
    ("scorer", T.scores("pump-007"), True), ("scorer", T.rejected(), True),
    ("scorer", T.status("scorer", "scorer-0"), True), ("scorer", T.status("recorder", "recorder-0"), True),
    ("scorer", T.maintenance("pump-007"), False), ("scorer", T.telemetry("pump-007"), False),
    ("scorer", T.truth("pump-007"), False),
    ("operator", T.maintenance("pump-007"), True), ("operator", T.state("pump-007"), False),
    ("operator", T.alerts("pump-007"), False), ("operator", T.status("scorer", "scorer-0"), False),
    ("recorder", T.status("recorder", "recorder-0"), True), ("recorder", T.state("pump-007"), False),
    ("recorder", T.telemetry("pump-007"), False), ("recorder", T.status("scorer", "scorer-0"), False),
    ("simulator", T.telemetry("pump-007"), True), ("simulator", T.truth("pump-007"), True),
    ("simulator", T.status("simulator", "sim-0"), True), ("simulator", T.alerts("pump-007"), False),
    ("dashboard", T.state("pump-007"), False), ("dashboard", T.maintenance("pump-007"), False),
]


def test_each_role_publishes_only_what_the_acl_grants(connect: Callable[[str], Client]) -> None:
    clients: dict[str, Client] = {}
    got = {}
    for user, topic, _ in PUBLISH_RULES:
        client = clients.get(user) or clients.setdefault(user, connect(user))
        got[(user, topic)] = client.publish(topic, b"{}") != NOT_AUTHORIZED
    assert got == {(user, topic): allowed for user, topic, allowed in PUBLISH_RULES}


def test_devices_and_dashboards_receive_only_what_the_acl_grants(connect: Callable[[str], Client]) -> None:
    """mosquitto grants a wildcard subscription and filters each message on delivery by the ACL's read rules. A
    SUBACK sent to a client after a message was routed arrives after that message would have (one connection, in
    order): the proof that nothing was delivered."""
    device, dashboard = connect("pump-007"), connect("dashboard")
    for client in (device, dashboard):
        assert client.subscribe("pdm/v1/#") == 1
    assert connect("scorer").publish(T.state("pump-008"), state("pump-008", "normal", "")) in (0, 16)
    assert connect("pump-008").publish(T.telemetry("pump-008"), b'{"machine_id": "pump-008"}') in (0, 16)
    dashboard.wait(lambda: len(dashboard.received) >= 1, "the state (dashboards read states)")
    for client in (device, dashboard):
        client.subscribe("pdm/v1/sync")  # in order after anything routed to this client before
    assert device.received == []  # a device reads nothing: not the scorer's states, not other machines' telemetry
    assert [t for t, _, _ in dashboard.received] == [T.state("pump-008")]  # no telemetry


def test_the_recorder_connects_with_its_account_and_never_logs_the_password(
        secured: tuple[Broker, Accounts], connect: Callable[[str], Client], tmp_path: Path) -> None:
    broker, accounts = secured
    password = accounts.passwords["recorder"]
    watcher = connect("operator")
    assert watcher.subscribe(T.status("recorder", "rec-sec")) == 1
    env = {**os.environ, "PDM_MQTT_PASSWORD": password, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "pdm", "-vv", "record", "--root", str(tmp_path / "rec"),
                             "--broker", broker.url, "--username", "recorder", "--instance", "rec-sec",
                             "--client-id", "pdm-recorder-sec"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        watcher.wait(lambda: any(b'"online"' in p for p in watcher.payloads()), "the recorder's online status")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-2000:]
    assert "settings:" in output and "username='recorder'" in output  # -vv logs the settings ...
    assert password not in output  # ... never the password
    assert any(b'"offline"' in p for p in watcher.payloads())
