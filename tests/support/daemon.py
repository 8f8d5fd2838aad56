"""Helpers for the scoring-daemon tests: a small model trained once per process on simulator data, telemetry
built from the simulator, an in-process daemon, a collecting subscriber, and a daemon subprocess."""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdm import contract
from pdm.daemon.service import Daemon
from pdm.daemon.settings import ServeSettings
from pdm.recorder import Recorder, for_serve, recording
from tests.support.broker import Broker

ROOT = Path(__file__).resolve().parents[2]
SEED = 7
TRAIN_START = 1_795_392_000.0
LIVE_START = TRAIN_START + 86_400.0  # a day later: the same machines, unseen data
SENSORS = ["temperature", "vibration", "pressure"]
MODEL = "fleet"


def simulate(machines: int, duration_s: float, start: float, **kw: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    from simulators.fleet import offline
    from simulators.fleet.config import SimConfig, fleet_types
    from simulators.fleet.engine import Simulator

    cfg = SimConfig(types=fleet_types(machines), seed=SEED, duration_s=duration_s, start_ts=start, **kw)
    return offline.frames(Simulator(cfg))


@functools.lru_cache(maxsize=1)
def models_dir() -> Path:
    """A models directory holding ``fleet``: GRU(window=16, hidden=8, latent=4, epochs=3) on 4 machines x 6 h, with
    a short alarm rule (30 of 60 raise, 60 under the threshold clear) so that tests see alerts raised and cleared
    within minutes, and uncentred windows, so that a level shift inside the normal range moves the score
    distribution the drift signal watches (with centred windows it does not: docs/daemon.md)."""
    from pdm.detectors.gru import GRUAutoencoderDetector

    data, _ = simulate(4, 6 * 3600, TRAIN_START, normal_only=True)
    det = GRUAutoencoderDetector(window=16, hidden=8, latent=4, epochs=3, features=SENSORS, seed=0, alarm_k=30,
                                 alarm_n=60, alarm_m=60, alarm_clear=1.0, center_windows=False)
    det.fit(data[["timestamp", "machine_id", *SENSORS]])
    root = Path(tempfile.mkdtemp(prefix="pdm-daemon-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # lru_cache: one per test process
    det.save(root / MODEL)
    return root


def copy_models(dest: Path) -> Path:
    """A private copy of `models_dir` (tests that add versions must not change the shared one)."""
    shutil.copytree(models_dir(), dest)
    return dest


def new_version(name_dir: Path, edit: Callable[[Path], None] | None = None, *, make_current: bool = True,
                source: str | None = None) -> str:
    """Save a new version of a model the way retraining does (`pdm.saving.write_version`: atomic, manifest
    written), with the files of version ``source`` (default: ``current``) edited by ``edit(directory)``; returns
    the new version's name."""
    from pdm.saving import resolve_version_dir, write_version

    source_dir = resolve_version_dir(name_dir if source is None else name_dir / source)

    def write(tmp: Path) -> None:
        for path in source_dir.iterdir():
            if path.name != "manifest.json":
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, tmp / path.name)
        if edit is not None:
            edit(tmp)

    return write_version(name_dir, write, make_current=make_current).name


def edit_json(path: Path, **changes: Any) -> None:
    """Change top-level keys of a JSON file in place."""
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def settings(broker: Broker, /, **kw: Any) -> ServeSettings:
    """The daemon's settings for a test: the shared model, no warm-up, and no clock-skew rule (the fixtures' data
    is days old; the tests of the rule set ``max_clock_skew``)."""
    base: dict[str, Any] = {"broker": broker.url, "models_dir": models_dir(), "default_model": MODEL,
                            "metrics_port": 0, "warm_up": False, "drain_timeout": 5.0, "max_clock_skew": 0}
    return ServeSettings(**{**base, **kw})


@contextmanager
def running(s: ServeSettings) -> Iterator[Daemon]:
    """An in-process daemon on a thread (signals are the command's business, so ``stop()`` ends it)."""
    daemon = Daemon(s)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    assert daemon.ready.wait(20), "daemon did not connect"
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(20)
        assert not thread.is_alive() and result == [0]


@contextmanager
def serving(s: ServeSettings) -> Iterator[tuple[Daemon, Recorder | None]]:
    """`running`, composed as ``python -m pdm serve`` composes it: with ``record_dir``, a recorder beside the
    daemon (`pdm.recorder.recording`), started first and stopped last."""
    recorder = Recorder(for_serve(s, s.record_dir)) if s.record_dir is not None else None
    with recording(recorder), running(s) as daemon:
        yield daemon, recorder


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    return daemon.metrics.registry.get_sample_value(name, labels) or 0.0


def health(port: int) -> tuple[int, dict[str, Any]]:
    """``/healthz`` of the daemon whose metrics server listens on ``port``: the status code and the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read())


def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    assert predicate(), f"timed out after {timeout} s waiting for {what}"


class Collector:
    """Subscribes to everything the daemon publishes and keeps it."""

    def __init__(self, broker: Broker, client_id: str = "collector") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe([("pdm/v1/alerts/+", 1), ("pdm/v1/state/+", 1),
                                                             ("pdm/v1/rejected", 1), ("pdm/v1/status/#", 1),
                                                             ("pdm/v1/scores/+", 1)])
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # persistent: nothing is missed while the broker restarts
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.split("/")[2] == kind and p]

    def alerts(self) -> list[dict[str, Any]]:
        return self.of("alerts")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Sender:
    """Publishes telemetry (QoS 1) and waits for the broker's acknowledgements."""

    def __init__(self, broker: Broker, client_id: str = "sender") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.wait_connected()
        self.seq: dict[str, int] = {}
        self.pending: list[mqtt.MQTTMessageInfo] = []

    def wait_connected(self, timeout: float = 20.0) -> None:
        wait_for(self.client.is_connected, timeout, "the sender to connect")

    def raw(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.pending.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def batch(self, machine_id: str, ts: np.ndarray, values: np.ndarray, machine_type: str = "pump",
              size: int = 60, *, sensors: list[str] = SENSORS) -> None:
        """One batch message per ``size`` readings, ``seq`` +1 per message; ``values`` has one column per sensor of
        ``sensors``."""
        topic = contract.Topics().telemetry(machine_id)
        for i in range(0, len(ts), size):
            seq = self.seq.get(machine_id, 0)
            self.seq[machine_id] = seq + 1
            cols = {s: values[i : i + size, j].tolist() for j, s in enumerate(sensors)}
            self.raw(topic, contract.encode_batch(machine_id, seq, ts[i : i + size].tolist(), cols, machine_type))

    def flush(self, timeout: float = 20.0) -> None:
        for info in self.pending:
            info.wait_for_publish(timeout)
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def machine_arrays(frame: pd.DataFrame, machine_id: str) -> tuple[np.ndarray, np.ndarray]:
    rows = frame[frame["machine_id"] == machine_id]
    return rows["timestamp"].to_numpy(dtype=float).copy(), rows[SENSORS].to_numpy(dtype=float).copy()


def serve_process(broker: Broker, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m pdm -v serve`` as a real process (for signals); no clock-skew rule unless ``args`` set one (the
    fixtures' data is days old)."""
    cmd = [sys.executable, "-m", "pdm", "-v", "serve", "--broker", broker.url, "--models-dir", str(models_dir()),
           "--default-model", MODEL, "--metrics-port", "0", "--no-warm-up", "--max-clock-skew", "0", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def retained(broker: Broker, topic: str, timeout: float = 5.0) -> dict[str, Any]:
    """The retained message on ``topic``, read by a real client: ``mosquitto_sub``."""
    out = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-C", "1",
                          "-W", str(int(timeout)), "-V", "mqttv5"], capture_output=True, text=True, timeout=timeout + 5,
                         check=False)
    assert out.returncode == 0 and out.stdout.strip(), f"mosquitto_sub read nothing on {topic}: {out.stderr}"
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[0])
    return result


@functools.lru_cache(maxsize=1)
def training_frame() -> pd.DataFrame:
    """The data `models_dir`'s model was trained on (simulated again: seeded, so identical)."""
    data, _ = simulate(4, 6 * 3600, TRAIN_START, normal_only=True)
    return data


def calibration_tail(machine_id: str, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The readings of ``machine_id`` that `models_dir`'s model held back to calibrate on (the held-back part of
    every piece, cut as `pdm.detectors.calibration.split_history` cuts them), one after the other on a clock that
    goes on
    at the training period from the last piece's start."""
    from pdm.detectors.calibration import split_history

    ts, values = machine_arrays(training_frame(), machine_id)
    pieces = split_history(len(ts), fraction, 16)
    held = np.concatenate([values[c:d] for _, _, c, d in pieces])
    start = ts[pieces[-1][2]]
    return start + np.arange(len(held)) * float(np.median(np.diff(ts))), held


def expected_alerts(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """(alert_id, event) pairs the batch path gives for the same data (rising and falling alarm edges)."""
    from pdm.detectors.base import Detector

    det = Detector.load(models_dir() / MODEL)
    out: set[tuple[str, str]] = set()
    for machine, rows in frame.groupby("machine_id"):
        got = det.detect(rows[["timestamp", *SENSORS]], machine_id=str(machine))
        alarm = got["alarm"].to_numpy()
        ts = rows["timestamp"].to_numpy()
        open_id = None
        for i in range(len(alarm)):
            if alarm[i] and (i == 0 or not alarm[i - 1]):
                open_id = contract.alert_id(str(machine), float(ts[i]))
                out.add((open_id, "raised"))
            elif not alarm[i] and i > 0 and alarm[i - 1]:
                out.add((str(open_id), "cleared"))
    return out
