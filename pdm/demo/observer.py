"""The demo's own MQTT subscriber: what a dashboard or another service sees of the fleet, through the contract only.

It subscribes to telemetry, truth, scores, alerts, states and statuses, validates each message with
`pdm.contract`, and keeps per-machine series for the live view, the final summary and the PNG report. Callbacks run
on paho's network thread; every message is handled in its own ``try`` (a bad one is counted, never fatal) and the
shared data is guarded by one lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pdm.contract import SENSORS, Alert, Topics, parse_alert, parse_state, parse_status, parse_telemetry, parse_truth
from pdm.contract.errors import ContractError

logger = logging.getLogger(__name__)


def clock(ts: float | None) -> str:
    """Simulated time for people: ``MM-DD HH:MM:SS`` UTC.

    >>> clock(0.0)
    '01-01 00:00:00'
    """
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m-%d %H:%M:%S")


@dataclass
class Fault:
    fault_id: str
    fault: str
    kind: str
    sensor: str | None
    start: float
    end: float | None = None


@dataclass
class Episode:
    alert_id: str
    raised: float  # the alert's ts: end of the raising window (simulated time)
    top_sensor: str
    peak: float
    cleared: float | None = None  # end of the clearing window
    model_version: str = ""
    problem: str | None = None  # a sensor alert's problem (missing, stuck, spikes); None: a machine alert


@dataclass
class MachineView:
    machine_id: str
    machine_type: str = ""
    state: str = "unknown"
    score: float | None = None
    threshold: float | None = None
    model: str = ""
    last_ts: float | None = None
    readings: int = 0
    ts: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SENSORS})
    score_ts: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    sensor_episodes: dict[str, Episode] = field(default_factory=dict)  # ``kind: sensor`` alerts


@dataclass(frozen=True)
class Snapshot:
    machines: list[MachineView]
    events: list[str]  # the latest events, oldest first
    events_total: int  # events seen since the start (so a reader knows how many of ``events`` are new)
    statuses: dict[str, str]  # "service/instance" -> online | offline
    sim_now: float | None  # the latest telemetry timestamp seen


class Observer:
    """Collects the fleet's contract traffic; ``snapshot()`` gives the view a consistent copy of the small parts."""

    def __init__(self, host: str, port: int, prefix: str, *, mqtt_version: int = 5, keep_series: bool = True,
                 events: int = 12) -> None:
        self.topics = Topics(prefix)
        self.host, self.port, self.keep_series = host, port, keep_series
        self.lock = threading.Lock()
        self.machines: dict[str, MachineView] = {}
        self.statuses: dict[str, str] = {}
        self.events: deque[str] = deque(maxlen=events)
        self.events_total = 0
        self.bad_messages = 0
        self.sim_now: float | None = None
        self.connected = threading.Event()
        v5 = mqtt_version == 5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pdm-demo-observer-{time.time_ns()}",
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)

    def start(self, timeout: float = 10.0) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectionError(f"observer: not connected and subscribed to {self.host}:{self.port} within "
                                  f"{timeout:g} s")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("observer: connection refused: %s", reason)
            return
        kinds = ("telemetry", "truth", "alerts", "state") + (("scores",) if self.keep_series else ())
        client.subscribe([(self.topics.subscription(k), 1) for k in kinds]  # type: ignore[arg-type]
                         + [(f"{self.topics.prefix}/status/#", 1)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # Ready only once the broker has acknowledged the subscriptions: a message published before the SUBACK
        # would not reach this observer.
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._handle(msg.topic, bytes(msg.payload))
        except (ContractError, ValueError, KeyError, TypeError) as exc:
            with self.lock:
                self.bad_messages += 1
            logger.debug("observer: ignored a message on %s: %s", msg.topic, exc)
        except Exception:  # never let an exception reach paho: it would stop the network loop
            with self.lock:
                self.bad_messages += 1
            logger.exception("observer: failed to handle a message on %s", msg.topic)

    def _machine(self, machine_id: str) -> MachineView:
        m = self.machines.get(machine_id)
        if m is None:
            m = self.machines[machine_id] = MachineView(machine_id)
        return m

    def _handle(self, topic: str, payload: bytes) -> None:
        info = self.topics.parse(topic)
        if info.kind == "status":
            if payload:
                status = parse_status(payload, info.service, info.instance)
                with self.lock:
                    self.statuses[f"{status.service}/{status.instance}"] = status.state
            return
        mid = info.machine_id
        if mid is None:  # not a per-machine topic (e.g. PREFIX/rejected): not subscribed, ignore
            return
        if info.kind == "telemetry":
            self._telemetry(mid, payload)
        elif info.kind == "scores":
            body = json.loads(payload)
            with self.lock:
                m = self._machine(mid)
                m.score_ts.append(float(body["ts"]))
                m.scores.append(float(body["score"]))
        elif info.kind == "truth":
            self._truth(parse_truth(payload, mid))
        elif info.kind == "alerts":
            self._alert(parse_alert(payload, mid))
        elif info.kind == "state" and payload:
            st = parse_state(payload, mid)
            with self.lock:
                m = self._machine(mid)
                m.state, m.threshold = st.state, st.threshold
                m.score = st.score if st.score is not None else m.score
                m.model = f"{st.model.name}@{st.model.version}" if st.model else m.model

    def _telemetry(self, mid: str, payload: bytes) -> None:
        obj = json.loads(payload)
        t = parse_telemetry(obj, machine_id=mid, sensors=SENSORS)
        with self.lock:
            m = self._machine(mid)
            m.machine_type = obj.get("machine_type") or m.machine_type
            m.readings += len(t)
            last = float(t.ts[-1])
            m.last_ts = last
            self.sim_now = last if self.sim_now is None else max(self.sim_now, last)
            if self.keep_series:
                m.ts.extend(t.ts.tolist())
                for k, s in enumerate(SENSORS):
                    m.values[s].extend(t.values[:, k].tolist())

    def _truth(self, ev: Any) -> None:
        with self.lock:
            m = self._machine(ev.machine_id)
            if ev.event == "start":
                m.faults[ev.fault_id] = Fault(ev.fault_id, ev.fault, ev.kind, ev.sensor, ev.ts)
                what = f"{ev.fault} ({ev.kind}{', ' + ev.sensor if ev.sensor else ''})"
                self._event(ev.ts, f"[truth] {ev.machine_id}: {what} starts")
            else:
                f = m.faults.get(ev.fault_id)
                if f is not None:
                    f.end = ev.ts
                self._event(ev.ts, f"[truth] {ev.machine_id}: {ev.fault} ends")

    def _alert(self, a: Alert) -> None:
        top = max(a.contributions, key=lambda k: a.contributions[k])
        with self.lock:
            m = self._machine(a.machine_id)
            episodes = m.sensor_episodes if a.kind == "sensor" else m.episodes
            ep = episodes.get(a.alert_id)
            if a.event == "raised":
                if ep is None:
                    episodes[a.alert_id] = Episode(a.alert_id, a.ts, top, a.score, model_version=a.model.version,
                                                   problem=a.problem)
                if a.kind == "sensor":
                    self._event(a.ts, f"[sensor] {a.machine_id}: {a.sensor} {a.problem} RAISED")
                else:
                    self._event(a.ts, f"[alert] {a.machine_id}: RAISED score {a.score:.3g} > {a.threshold:.3g}, "
                                       f"top sensor {top} ({a.contributions[top]:.0%})")
            else:
                if ep is not None:
                    ep.cleared, ep.peak = a.ts, max(ep.peak, a.score)
                self._event(a.ts, f"[sensor] {a.machine_id}: {a.sensor} cleared" if a.kind == "sensor"
                            else f"[alert] {a.machine_id}: cleared (peak {a.score:.3g})")

    def _event(self, ts: float, text: str) -> None:
        self.events.append(f"{clock(ts)}  {text}")
        self.events_total += 1

    def snapshot(self) -> Snapshot:
        """Small copies for the live view: machines without their series, recent events, statuses, sim time."""
        with self.lock:
            rows = [MachineView(m.machine_id, m.machine_type, m.state, m.score, m.threshold, m.model, m.last_ts,
                                m.readings, faults=dict(m.faults), episodes=dict(m.episodes),
                                sensor_episodes=dict(m.sensor_episodes))
                    for m in sorted(self.machines.values(), key=lambda v: v.machine_id)]
            return Snapshot(rows, list(self.events), self.events_total, dict(self.statuses), self.sim_now)
