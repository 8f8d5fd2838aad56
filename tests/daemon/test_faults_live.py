"""Fault and fuzz loops against a live daemon and a real mosquitto (issue 14; `tests.support.faults`): a stream of
fuzzed payloads with a normal machine in between (0 crashes, every payload counted by the reason the contract's
decoder gives it), and, marked slow, the daemon SIGKILLed 10 times and the broker restarted 10 times in the middle
of a stream with a fault in it: every reading scored exactly once, the alerts exactly the batch path's.
``benchmarks/daemon_faults.py`` runs longer versions and prints the table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pdm import contract
from tests.support.broker import Broker, free_port
from tests.support.daemon import (
    MODEL,
    Sender,
    metric,
    running,
    settings,
    wait_for,
)
from tests.support.faults import Stream, broker_loop, kill_loop, oracle, reasons
from tests.support.fuzz import payloads

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]
FUZZ = 1500


def test_a_fuzzed_stream_is_counted_by_reason_while_a_normal_machine_is_scored(mosquitto: Broker) -> None:
    stream = Stream.make(machines=1, seconds=1200, size=20)
    fuzz = list(payloads(FUZZ, seed=11))
    expected = Counter(oracle(p, "pump-007") for p in fuzz)
    port = free_port()
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto, metrics_port=port)) as daemon:
            normal = iter(stream.batches)
            for i, payload in enumerate(fuzz):
                sender.raw("pdm/v1/telemetry/pump-007", payload)
                if i % 25 == 0:
                    machine, ts, values = next(normal, (None, None, None))
                    if machine is not None:
                        sender.batch(machine, ts, values, size=len(ts))
            for machine, ts, values in normal:
                sender.batch(machine, ts, values, size=len(ts))
            sender.flush(60)
            telemetry = FUZZ + len(stream.batches)
            wait_for(lambda: metric(daemon, "pdm_messages_total", kind="telemetry") == telemetry, 60,
                     "every message handled")
            wait_for(lambda: daemon.scorer is not None and daemon.scorer.machines["pump-001"].scored
                     == stream.windows("pump-001"), 30, "the normal machine's every window scored")
            got = reasons(port)
            assert daemon.link.connected.is_set() and daemon.ready.is_set()
        for reason, n in expected.items():
            if reason != "accepted":
                assert got.pop(reason, 0) == n, reason
        # of what the decoder accepts, the daemon refuses values beyond the model's range, and applies the rest
        assert set(got) <= {"beyond_model_range"}, got
        assert got["beyond_model_range"] <= expected["accepted"]
        assert metric(daemon, "pdm_rejected_total", reason="internal") == 0
        for where in ("message", "machine", "batch", "state", "housekeeping"):
            assert metric(daemon, "pdm_errors_total", where=where) == 0, where
        assert expected["accepted"] > 50 and len(expected) >= 8  # the fuzz reaches both outcomes and many reasons
    finally:
        sender.close()


@pytest.mark.slow
def test_sigkill_ten_times_mid_stream_scores_every_reading_once_and_keeps_every_alert(
        mosquitto: Broker, tmp_path: Path) -> None:
    stream = Stream.make(machines=4, seconds=2400, size=20)
    assert stream.expected, "the vibration step should raise at least one alert"
    result = kill_loop(mosquitto, tmp_path / "state", stream, kills=10, seed=1)
    assert result.faults == 10
    assert result.check(stream) == []
    assert result.copies <= result.faults  # at most one commit's alerts published again per kill
    raised = {a for a, e in result.events if e == "raised"}
    assert raised == {a for a, e in result.events if e == "cleared"}  # each cleared once, with the same id


@pytest.mark.slow
def test_broker_restarts_ten_times_mid_stream_lose_and_double_nothing(mosquitto: Broker) -> None:
    stream = Stream.make(machines=4, seconds=2400, size=20)
    with running(settings(mosquitto)) as daemon:
        result = broker_loop(mosquitto, daemon, stream, restarts=10, seed=2)
        assert metric(daemon, "pdm_readings_total") == sum(stream.readings.values())
        assert metric(daemon, "pdm_windows_scored_total", model=MODEL) == sum(map(stream.windows, stream.readings))
        assert metric(daemon, "pdm_reconnects_total") >= 10
    assert result.faults == 10
    assert result.check(stream) == []
    raised = {a for a, e in result.events if e == "raised"}
    assert raised == {a for a, e in result.events if e == "cleared"}


def test_a_poison_message_is_acknowledged_and_never_redelivered(mosquitto: Broker) -> None:
    """A message whose handling raises is dead-lettered, counted and acknowledged: the next run does not get it."""
    sender = Sender(mosquitto)
    try:
        with running(settings(mosquitto)) as daemon:
            assert daemon.scorer is not None
            real = daemon.scorer._telemetry

            def explode(item, pending):  # type: ignore[no-untyped-def]
                if b"poison" in item.payload:
                    raise RuntimeError("a bug this message triggers")
                return real(item, pending)

            daemon.scorer._telemetry = explode  # type: ignore[method-assign]
            sender.raw("pdm/v1/telemetry/pump-001", b'{"machine_id": "pump-001", "poison": 1}')
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_errors_total", where="message") == 1, 10, "the failure counted")
            assert metric(daemon, "pdm_rejected_total", reason="internal") == 1
        with running(settings(mosquitto)) as daemon:  # same session: an unacknowledged message would come back
            reading = {"temperature": 40.0, "vibration": 1.0, "pressure": 3.0}
            sender.raw("pdm/v1/telemetry/pump-001", contract.encode_reading("pump-001", 1_795_478_400.0, reading))
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_readings_total") == 1, 10, "the next message")
            assert metric(daemon, "pdm_messages_total", kind="telemetry") == 1
    finally:
        sender.close()
