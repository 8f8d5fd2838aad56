"""Live mode: publish the simulation over MQTT per docs/mqtt-contract.md.

- Telemetry on ``PREFIX/telemetry/MACHINE``: by default one batch per machine per tick (``seq`` +1 per message),
  ``--single`` sends one message per reading. Truth events on ``PREFIX/truth/MACHINE`` when simulated time reaches
  a fault's start or end. Status on ``PREFIX/status/simulator/INSTANCE`` (retained ``online``; the Last Will and a
  clean exit publish ``offline``).
- Pacing: reading ``k`` is due ``k * interval / speed`` seconds after the start (``--speed max``: no pacing).
- Broker down: paho reconnects with exponential backoff (1 s doubling to 30 s); the simulation waits, and resumes
  from the next unpublished step (QoS 1 messages in flight are re-sent): simulated time is never skipped. Being
  late is reported (``cannot keep up``, or ``catching up`` after an outage), never silently absorbed.
- SIGTERM/SIGINT: finish the current tick, publish ``offline``, wait for acknowledgements, print the counts.
"""

from __future__ import annotations

import heapq
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pdm.contract import Status, Topics, TruthEvent, encode_batch, encode_reading
from pdm.contract.topics import parse_broker_url
from simulators.fleet.config import ConfigError
from simulators.fleet.engine import Block, Simulator

logger = logging.getLogger(__name__)
VERSION = "0.1.0"
MAX_OUTSTANDING = 20_000  # messages published but not yet acknowledged (back-pressure)


@dataclass(frozen=True)
class LiveOptions:
    broker: str
    prefix: str = "pdm/v1"
    qos: int = 1
    single: bool = False
    speed: float | None = 1.0  # None: as fast as possible
    tick_s: float = 1.0  # wall-clock seconds per tick (one batch per machine per tick)
    max_batch: int = 60  # readings per batch at --speed max
    instance: str = "simulator-0"
    username: str | None = None
    password_env: str = "PDM_MQTT_PASSWORD"  # noqa: S105 - the name of an environment variable, not a password
    ca_file: str | None = None
    mqtt_version: int = 5
    inflight: int = 100
    report_every_s: float = 5.0  # how often lag behind --speed is checked and reported


@dataclass
class Counts:
    telemetry: int = 0
    readings: int = 0
    truth: int = 0
    acked: int = 0
    sent: int = 0  # publish() calls, status included
    dropped_qos0: int = 0
    disconnects: int = 0
    max_lag_s: float = 0.0
    behind_reports: int = 0


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` (or ``mqtts://`` for TLS) -> (host, port, tls); a bad URL is a `ConfigError`."""
    try:
        return parse_broker_url(url)
    except ValueError as exc:
        raise ConfigError(f"--broker: {exc}") from None


class Publisher:
    def __init__(self, sim: Simulator, opts: LiveOptions) -> None:
        self.sim, self.opts = sim, opts
        self.topics = Topics(opts.prefix)
        self.host, self.port, tls = parse_broker(opts.broker)
        self.counts = Counts()
        self.stop = threading.Event()
        self.connected = threading.Event()
        self._cond = threading.Condition()
        self.status = Status(state="online", service="simulator", instance=opts.instance, version=VERSION,
                             started_at=time.time())
        self.status_topic = self.topics.status("simulator", opts.instance)
        v5 = opts.mqtt_version == 5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pdm-sim-{opts.instance}",
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
        self.client.will_set(self.status_topic, self.status.offline().encode(), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(opts.inflight)
        self.client.max_queued_messages_set(0)
        if opts.username:
            self.client.username_pw_set(opts.username, os.environ.get(opts.password_env))
        if tls:
            self.client.tls_set(ca_certs=opts.ca_file)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._seq = [0] * len(sim.machine_ids)
        self._telemetry_topics = [self.topics.telemetry(m) for m in sim.machine_ids]
        self._events: list[tuple[int, int, str, int]] = []  # (step, order, event, fault index)
        self._seen_faults = 0
        self._closing = False

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        client.publish(self.status_topic, self.status.encode(), qos=1, retain=True)
        with self._cond:
            self.counts.sent += 1
        logger.info("connected to %s:%d", self.host, self.port)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected.is_set() and not self._closing:
            self.counts.disconnects += 1
            logger.warning("disconnected from %s:%d (%s); reconnecting with backoff, simulated time waits",
                           self.host, self.port, reason)
        self.connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self.counts.acked += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ publishing (main thread)
    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        with self._cond:
            while self.counts.sent - self.counts.acked >= MAX_OUTSTANDING and not self.stop.is_set():
                self._cond.wait(0.5)
            self.counts.sent += 1
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0:
            with self._cond:
                self.counts.dropped_qos0 += 1
                self.counts.acked += 1  # never acknowledged: do not wait for it

    def _truth(self, k1: int) -> None:
        faults = self.sim.faults
        for f in faults[self._seen_faults :]:
            heapq.heappush(self._events, (f.start, 2 * f.index, "start", f.index))
            heapq.heappush(self._events, (f.end, 2 * f.index + 1, "end", f.index))
        self._seen_faults = len(faults)
        while self._events and self._events[0][0] < k1:
            step, _, event, index = heapq.heappop(self._events)
            f = faults[index]
            msg = TruthEvent(machine_id=f.machine_id, ts=float(self.sim.ts(step)), event=event,  # type: ignore[arg-type]
                             fault=f.type, kind=f.kind, sensor=f.sensor, fault_id=f.fault_id)
            self._publish(self.topics.truth(f.machine_id), msg.encode(), 1)
            self.counts.truth += 1

    def _telemetry(self, block: Block) -> None:
        ts = block.ts.tolist()
        qos = self.opts.qos
        sensors = self.sim.sensors
        cols = {s: block.values[s].T.tolist() for s in sensors}  # per machine lists
        for c, mid in enumerate(self.sim.machine_ids):
            topic = self._telemetry_topics[c]
            if self.opts.single:
                for i, t in enumerate(ts):
                    self._publish(topic, encode_reading(mid, t, {s: cols[s][c][i] for s in sensors}), qos)
                    self.counts.telemetry += 1
            else:
                payload = encode_batch(mid, self._seq[c], ts, {s: cols[s][c] for s in sensors}, self.sim.types[c])
                self._seq[c] += 1
                self._publish(topic, payload, qos)
                self.counts.telemetry += 1
        self.counts.readings += block.labels.size

    def _wait_connected(self) -> float:
        """Block until connected (or stopped); returns the seconds waited."""
        t = time.monotonic()
        while not self.connected.wait(1.0):
            if self.stop.is_set():
                break
            waited = time.monotonic() - t
            if int(waited) % 10 == 0:
                logger.warning("not connected to %s:%d for %.0f s; retrying with backoff (up to 30 s apart)",
                               self.host, self.port, waited)
        return time.monotonic() - t

    def _handle_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.info("received %s: finishing the current tick", signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> Counts:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle_signal)
        opts, sim = self.opts, self.sim
        speed = opts.speed
        steps_per_tick = opts.max_batch if speed is None else max(1, round(speed * opts.tick_s / sim.interval))
        if opts.single:
            steps_per_tick = min(steps_per_tick, opts.max_batch)
        need = None if speed is None else speed * len(sim.machine_ids) / sim.interval
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        started = time.monotonic()
        try:
            self._wait_connected()
            t0 = time.monotonic()
            pacer = _Pacer(need, t0, max(1.0, 2 * steps_per_tick * sim.interval / (speed or 1.0)), opts.report_every_s)
            for block in sim.blocks():
                k = block.step0
                while k < block.step0 + len(block) and not self.stop.is_set():
                    k1 = min(k + steps_per_tick, block.step0 + len(block))
                    if speed is not None:
                        self.stop.wait(max(0.0, t0 + k1 * sim.interval / speed - time.monotonic()))
                    if not self.connected.is_set():
                        self._wait_connected()
                    if self.stop.is_set():
                        break
                    self._truth(k1)
                    self._telemetry(block.rows(k, k1))
                    k = k1
                    if speed is not None:
                        lag = time.monotonic() - (t0 + k * sim.interval / speed)
                        pacer.update(self.counts, lag, speed)
                if self.stop.is_set():
                    break
        finally:
            self._finish(started)
        return self.counts

    def _finish(self, started: float) -> None:
        if self.connected.is_set():
            self._publish(self.status_topic, self.status.offline().encode(), 1, retain=True)
        deadline = time.monotonic() + 15.0
        with self._cond:
            while self.counts.sent > self.counts.acked and time.monotonic() < deadline and self.connected.is_set():
                self._cond.wait(0.2)
        self._closing = True
        self.client.disconnect()
        self.client.loop_stop()
        logger.info("stopped after %.1f s", time.monotonic() - started)


class _Pacer:
    """Reports, every few seconds, when publishing runs behind the schedule that --speed sets."""

    def __init__(self, need: float | None, t0: float, tolerance_s: float, every_s: float) -> None:
        self.need, self.last_t, self.last_readings, self.tolerance = need, t0, 0, tolerance_s
        self.every = every_s

    def update(self, counts: Counts, lag: float, speed: float) -> None:
        counts.max_lag_s = max(counts.max_lag_s, lag)
        now = time.monotonic()
        if now - self.last_t < self.every:
            return
        rate = (counts.readings - self.last_readings) / (now - self.last_t)
        self.last_t, self.last_readings = now, counts.readings
        if lag <= self.tolerance or self.need is None:
            return
        counts.behind_reports += 1
        if rate > 1.05 * self.need:
            logger.warning("catching up: %.1f s behind schedule, publishing %.0f readings/s (--speed %g needs "
                           "%.0f/s)", lag, rate, speed, self.need)
        else:
            logger.warning("cannot keep up with --speed %g: it needs %.0f readings/s, publishing %.0f/s; %.1f s "
                           "behind schedule (simulated time is not skipped, the run takes longer)",
                           speed, self.need, rate, lag)
