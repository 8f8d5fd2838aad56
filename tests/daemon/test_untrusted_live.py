"""Untrusted input never kills, stalls or bloats the daemon (issue 14), against a real mosquitto: a non-finite score
from the model, a value far beyond the model's range, a reading from the far future, a device clock that jumps,
forged and malformed retained states, maintenance for anyone, a flood of machine ids, a huge batch, and a scoring
call that keeps failing. Each test first reproduced the defect it names (the daemon died, stopped scoring, trusted
the forgery, or grew)."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pdm import contract
from pdm.daemon.service import Daemon
from tests.support.broker import Broker, free_port
from tests.support.daemon import (
    LIVE_START,
    MODEL,
    Collector,
    Sender,
    health,
    machine_arrays,
    metric,
    retained,
    running,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]
WINDOW = 16
DAY = 86_400.0


def recent(n: int, machine: str = "pump-001", end: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` simulated readings of ``machine`` whose timestamps end at ``end`` (default: now), one per second."""
    frame, _ = simulate(4, n, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, machine)
    last = math.floor(time.time() if end is None else end)
    return ts - ts[-1] + last, values


def alive(daemon: Daemon) -> bool:
    """The scoring loop still runs (it marks progress at least every 0.2 s)."""
    return time.monotonic() - daemon.last_progress < 2.0


class Poison:
    """The model returns ``inf`` (and NaN contributions) for every window whose newest scaled temperature is over
    ``above``: a stand-in for any cause of a non-finite score (an engine overflow, a bad version)."""

    def __init__(self, daemon: Daemon, above: float = 20.0) -> None:
        self.detector = daemon.models.slots[MODEL].detector
        self.score = self.detector.score_windows
        self.above = above
        self.hits = 0
        self.detector.score_windows = self._call  # type: ignore[method-assign]

    def _call(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, shares = self.score(windows)
        bad = windows[:, -1, 0] > self.above
        self.hits += int(bad.sum())
        scores, shares = np.array(scores, dtype=np.float64), np.array(shares, dtype=np.float64)
        scores[bad] = np.inf
        shares[bad] = np.nan
        return scores, shares


def test_a_non_finite_score_is_contained_and_other_machines_keep_their_windows(mosquitto: Broker) -> None:
    ts, values = recent(300)
    ts2, values2 = recent(300, "pump-002")
    poisoned = values2.copy()
    poisoned[100:140, 0] = 60.0 + 25 * 7.2  # about 25 robust scales: inside the model's range, a huge score
    sender = Sender(mosquitto)
    collector = Collector(mosquitto)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            poison = Poison(daemon)
            for i in range(0, 300, 60):  # both machines in the same micro-batches
                sender.batch("pump-001", ts[i : i + 60], values[i : i + 60])
                sender.batch("pump-002", ts2[i : i + 60], poisoned[i : i + 60])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 600, 30, "every reading applied")
            expected = 2 * (300 - WINDOW + 1)

            def scored() -> float:
                return metric(daemon, "pdm_windows_scored_total", model=MODEL)

            wait_for(lambda: scored() + metric(daemon, "pdm_windows_failed_total", reason="non_finite_score")
                     == expected, 20, "every window scored or counted as failed")
            assert metric(daemon, "pdm_windows_failed_total", reason="non_finite_score") == poison.hits >= 40
            assert scored() == expected - poison.hits
            sender.batch("pump-001", ts[-1:] + 1.0, values[-1:])  # the loop is alive and scores on
            sender.flush()
            wait_for(lambda: scored() == expected - poison.hits + 1, 10, "one more window")
            assert alive(daemon)
            wait_for(lambda: any(s["machine_id"] == "pump-002" for s in collector.of("state")), 10, "a state")
        for s in collector.of("state"):  # every state published is valid: its score is finite (or null)
            contract.parse_state(json.dumps(s), s["machine_id"])
        assert all(math.isfinite(a["score"]) for a in collector.alerts())
    finally:
        sender.close()
        collector.close()


def test_a_value_far_beyond_the_models_range_is_rejected_with_its_own_reason(mosquitto: Broker) -> None:
    ts, values = recent(200)
    bad = values.copy()
    bad[150, 0] = 1e11  # within the contract's 1e12, about 1e10 robust scales from the machine's median
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            sender.batch("pump-001", ts, bad, size=50)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_rejected_total", reason="beyond_model_range") == 1, 20,
                     "the message with the huge value rejected")
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 150, 10, "the other three messages applied")
            wait_for(lambda: any(d["reason"] == "beyond_model_range" for d in collector.of("rejected")), 10,
                     "the dead letter")
        letter = next(d for d in collector.of("rejected") if d["reason"] == "beyond_model_range")
        assert "temperature" in letter["detail"] and "robust scales" in letter["detail"]
    finally:
        sender.close()
        collector.close()


def test_a_reading_from_the_far_future_does_not_stop_the_machine(mosquitto: Broker) -> None:
    ts, values = recent(600)
    future = contract.encode_reading("pump-001", 4_070_908_800.0, dict(zip(("temperature", "vibration",
                                                                          "pressure"), values[0], strict=True)))
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            sender.raw("pdm/v1/telemetry/pump-001", future)  # 2099: before the contract's 2100, a day past skew
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_rejected_total", reason="clock_skew") == 1, 10, "clock_skew")
            sender.batch("pump-001", ts, values)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 600 - WINDOW + 1, 20,
                     "every window of the real readings scored")
            assert daemon.scorer is not None and daemon.scorer.machines["pump-001"].state == "normal"
    finally:
        sender.close()


def test_a_machine_whose_clock_jumps_back_recovers_without_a_restart(mosquitto: Broker) -> None:
    """The clock runs 2 h ahead (within the skew: accepted), then is corrected: after one window of late readings
    in fresh messages the machine restarts its stream at the corrected clock and scores again."""
    ts, values = recent(400)
    ahead = ts + 7200.0
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            sender.batch("pump-001", ahead[:200], values[:200], size=20)
            sender.flush()
            scored = 200 - WINDOW + 1
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == scored, 20, "ahead windows")
            sender.batch("pump-001", ts[200:], values[200:], size=10)  # the corrected clock: 2 h behind the newest
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 200 + 200 - 10, 20, "readings applied again")
            assert metric(daemon, "pdm_clock_restarts_total") == 1
            # the first message (10 readings, less than a window) is dropped as late; the second reaches a window
            # of late readings and restarts the stream: its readings and the 180 after are applied and scored
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == scored + 190 - WINDOW + 1,
                     20, "windows on the corrected clock")
            assert metric(daemon, "pdm_late_readings_total") == 10
            assert daemon.scorer is not None and daemon.scorer.machines["pump-001"].last_ts == ts[-1]
    finally:
        sender.close()


def forged_state(machine: str, alert_id: str, since: float, **extra: Any) -> bytes:
    return contract.State(machine_id=machine, state="alert", since=since, alert_id=alert_id, score=9.0,
                          threshold=3.0, instance="scorer-0", ts=since, **extra).encode()


def test_forged_retained_states_are_ignored_and_one_bad_machine_costs_no_other_its_windows(
        mosquitto: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    ts, values = recent(300)
    sender = Sender(mosquitto)
    collector = Collector(mosquitto)
    start = float(ts[0])
    # a well-formed forged open alert (no signature), and a malformed one whose id names the year 5138
    sender.raw("pdm/v1/state/pump-003", forged_state("pump-003", contract.alert_id("pump-003", start - 60), start),
               retain=True)
    sender.raw("pdm/v1/state/pump-004", contract.State(
        machine_id="pump-004", state="alert", since=start, alert_id="pump-004-99999999999999999", score=9.0,
        instance="scorer-0", ts=start).encode(), retain=True)
    sender.raw("pdm/v1/state/pump-005", b'{"schema": 1, "machine_id": "pump-005", "state": "alert"}', retain=True)
    sender.flush()
    monkeypatch.setenv("PDM_STATE_KEY", "k" * 40)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            assert metric(daemon, "pdm_restore_ignored_total", reason="bad_signature") == 3
            for i in range(0, 300, 60):  # one micro-batch holds all four machines
                for machine in ("pump-001", "pump-003", "pump-004", "pump-002"):
                    sender.batch(machine, ts[i : i + 60], values[i : i + 60])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 4 * (300 - WINDOW + 1), 30,
                     "every window of every machine")
            assert metric(daemon, "pdm_alerts_total", event="cleared") == 0  # the forged alerts are not cleared
            assert metric(daemon, "pdm_alerts_restored_total") == 0
            wait_for(lambda: {"pump-003", "pump-004"} <= {s["machine_id"] for s in collector.of("state")
                                                          if s.get("sig")}, 10, "signed states replacing the forged")
        assert not [a for a in collector.alerts() if a["machine_id"] in ("pump-003", "pump-004")]
    finally:
        sender.close()
        collector.close()


def test_malformed_retained_alert_ids_are_ignored_without_a_key(mosquitto: Broker) -> None:
    ts, values = recent(200)
    sender = Sender(mosquitto)
    start = float(ts[0])
    sender.raw("pdm/v1/state/pump-004", contract.State(
        machine_id="pump-004", state="alert", since=start, alert_id="pump-004-99999999999999999", score=9.0,
        instance="scorer-0", ts=start).encode(), retain=True)
    sender.raw("pdm/v1/state/pump-002", forged_state("pump-002", "pump-002-x", start), retain=True)
    sender.flush()
    try:
        with running(settings(mosquitto, max_clock_skew=DAY)) as daemon:
            assert metric(daemon, "pdm_restore_ignored_total", reason="bad_field") == 2
            for i in range(0, 200, 50):
                for machine in ("pump-001", "pump-004", "pump-002"):
                    sender.batch(machine, ts[i : i + 50], values[i : i + 50])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 3 * (200 - WINDOW + 1), 30,
                     "every window of every machine")
            assert metric(daemon, "pdm_alerts_total", event="cleared") == 0
    finally:
        sender.close()


def test_maintenance_spans_and_unknown_ids_are_bounded(mosquitto: Broker) -> None:
    ts, values = recent(100)
    sender = Sender(mosquitto)
    now = time.time()
    try:
        with running(settings(mosquitto, max_clock_skew=DAY, allow_machines="pump-*")) as daemon:
            endless = contract.Maintenance(machine_id="pump-001", from_=now - 10, until=now + 365 * DAY,
                                           reason="forged", by="nobody")
            sender.raw("pdm/v1/maintenance/pump-001", endless.encode(), retain=True)
            for i in range(200):  # windows for ids the allow-list does not know
                window = contract.Maintenance(machine_id=f"junk-{i}", from_=now, until=now + 3600, reason="r" * 999,
                                              by="x")
                sender.raw(f"pdm/v1/maintenance/junk-{i}", window.encode())
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_messages_total", kind="maintenance") == 201, 20, "maintenance read")
            assert metric(daemon, "pdm_rejected_total", reason="maintenance_too_long") == 1
            assert metric(daemon, "pdm_rejected_total", reason="unknown_machine") == 200
            assert daemon.scorer is not None and daemon.scorer.maintenance == {}
            sender.batch("pump-001", ts, values)
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 100 - WINDOW + 1, 20,
                     "pump-001 scored: the forged window was refused")
    finally:
        sender.raw("pdm/v1/maintenance/pump-001", b"", retain=True)
        sender.close()


def test_machine_ids_are_capped_allow_listed_and_evicted_and_rings_stay_small(mosquitto: Broker) -> None:
    ts, values = recent(15_000)
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, max_clock_skew=DAY, max_machines=50, allow_machines="pump-*,junk-*",
                              evict_after=3.0, stale_timeout=1.0, max_payload_bytes=2_000_000)) as daemon:
            reading = dict(zip(("temperature", "vibration", "pressure"), values[0], strict=True))
            for i in range(300):
                sender.raw(f"pdm/v1/telemetry/junk-{i}", contract.encode_reading(f"junk-{i}", ts[0], reading))
            for i in range(20):
                sender.raw(f"pdm/v1/telemetry/other-{i}", contract.encode_reading(f"other-{i}", ts[0], reading))
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_messages_total", kind="telemetry") == 320, 20, "the flood")
            assert daemon.scorer is not None and len(daemon.scorer.machines) == 50
            assert metric(daemon, "pdm_rejected_total", reason="too_many_machines") == 250
            assert metric(daemon, "pdm_rejected_total", reason="unknown_machine") == 20
            wait_for(lambda: len(daemon.scorer.machines) == 0 if daemon.scorer else False, 20, "stale ids evicted")
            assert metric(daemon, "pdm_machines_evicted_total") == 50
            sender.batch("pump-001", ts, values, size=15_000)  # one huge batch: the ring must not keep its size
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) == 15_000 - WINDOW + 1, 60,
                     "the huge batch scored")
            ring = daemon.scorer.machines["pump-001"].stream.ring
            assert len(ring.ts) <= 256 and ring.values.nbytes <= 256 * 3 * 4
    finally:
        sender.close()


def test_healthz_fails_while_every_scoring_call_fails_or_every_machine_is_stuck(mosquitto: Broker) -> None:
    ts, values = recent(400)
    port = free_port()
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, metrics_port=port, stall_timeout=2.0, max_clock_skew=DAY)) as daemon:
            detector = daemon.models.slots[MODEL].detector
            real = detector.score_windows
            broken = threading.Event()
            broken.set()

            def failing(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                if broken.is_set():
                    raise RuntimeError("engine failure")
                return real(windows)

            detector.score_windows = failing  # type: ignore[method-assign]
            for i in range(0, 100, 10):
                sender.batch("pump-001", ts[i : i + 10], values[i : i + 10])
                sender.flush()
            wait_for(lambda: health(port)[0] == 503, 10, "/healthz to fail")
            body = health(port)[1]
            assert any("scoring failed" in p for p in body["problems"]), body
            broken.clear()
            for i in range(100, 200, 10):
                sender.batch("pump-001", ts[i : i + 10], values[i : i + 10])
                sender.flush()
            wait_for(lambda: health(port)[0] == 200, 10, "/healthz to recover")
            # every later reading is a gap: the machine applies readings but never fills a window
            for k in range(60):
                sender.batch("pump-001", ts[200 + k : 201 + k] + 10 * (k + 1), values[200 + k : 201 + k])
            sender.flush()
            wait_for(lambda: health(port)[0] == 503, 10, "/healthz to fail on the stuck machine")
            assert any("stuck" in p for p in health(port)[1]["problems"])
    finally:
        sender.close()


def test_an_emptied_retained_state_does_not_orphan_an_open_alert_with_a_state_dir(mosquitto: Broker,
                                                                                  tmp_path: Path) -> None:
    ts, values = recent(1800)
    values[300:900, 1] += 8.0  # a vibration step: one alert, cleared after it
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    state_dir = tmp_path / "state"
    try:
        with running(settings(mosquitto, max_clock_skew=DAY, state_dir=state_dir)):
            sender.batch("pump-001", ts[:600], values[:600])
            sender.flush()
            wait_for(lambda: [a["event"] for a in collector.alerts()] == ["raised"], 20, "the alert raised")
        raised = collector.alerts()[0]["alert_id"]
        sender.raw("pdm/v1/state/pump-001", b"", retain=True)  # someone deletes the retained state
        sender.flush()
        with running(settings(mosquitto, max_clock_skew=DAY, state_dir=state_dir)) as daemon:
            wait_for(lambda: retained_state(mosquitto).get("alert_id") == raised, 10,
                     "the state published again from the checkpoint")
            sender.batch("pump-001", ts[600:], values[600:])
            sender.flush()
            wait_for(lambda: [a["event"] for a in collector.alerts()] == ["raised", "cleared"], 30, "the clearing")
            assert metric(daemon, "pdm_readings_total") == 1200  # the first run's readings were not redelivered
        assert [a["alert_id"] for a in collector.alerts()] == [raised, raised]
    finally:
        sender.close()
        collector.close()


def retained_state(broker: Broker) -> dict[str, Any]:
    """pump-001's retained state, or {} when there is none."""
    try:
        return retained(broker, "pdm/v1/state/pump-001", timeout=1.0)
    except AssertionError:
        return {}
