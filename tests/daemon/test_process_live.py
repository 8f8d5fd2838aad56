"""The daemon as a real process (`python -m pdm serve`): SIGKILL and restart resumes the open alert (neither
forgotten nor raised again), the Last Will and SIGTERM publish `offline`, `mosquitto_sub` reads the retained
status and state, and with the ONNX engine the process never loads TensorFlow."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.daemon import (
    LIVE_START,
    Collector,
    Sender,
    machine_arrays,
    retained,
    serve_process,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


def started(collector: Collector, n: int) -> bool:
    """The n-th `online` status of scorer-0 has arrived."""
    return sum(1 for s in collector.of("status") if s["service"] == "scorer" and s["state"] == "online") >= n


def output(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=30)
    return out


def test_sigkill_restart_resumes_the_open_alert_and_sigterm_publishes_offline(mosquitto: Broker) -> None:
    frame, _ = simulate(4, 2400, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    values[600:1500, 1] += 8.0  # vibration step from reading 600 to 1500
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    first = serve_process(mosquitto)
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: started(collector, 1), 60, "the daemon's online status")
        sender.batch("pump-001", ts[:900], values[:900])
        sender.flush()
        wait_for(lambda: any(a["event"] == "raised" for a in collector.alerts()), 30, "the alert to be raised")
        raised = [a for a in collector.alerts() if a["event"] == "raised"]
        assert len(raised) == 1 and raised[0]["machine_id"] == "pump-001"
        # the model has a model.onnx, so the default engine (auto) scores without TensorFlow: not even mapped
        libraries = Path(f"/proc/{first.pid}/maps").read_text()
        assert "onnxruntime" in libraries and "tensorflow" not in libraries
        wait_for(lambda: retained(mosquitto, "pdm/v1/state/pump-001").get("alert_id") == raised[0]["alert_id"], 10,
                 "the retained alert state")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert retained(mosquitto, "pdm/v1/status/scorer/scorer-0")["state"] == "offline"  # the Last Will
        sender.batch("pump-001", ts[900:1200], values[900:1200])  # queued by the broker while the daemon is down
        sender.flush()
        second = serve_process(mosquitto)
        wait_for(lambda: started(collector, 2), 60, "the restarted daemon's online status")
        sender.batch("pump-001", ts[1200:], values[1200:])
        sender.flush()
        wait_for(lambda: any(a["event"] == "cleared" for a in collector.alerts()), 60, "the alert to clear")
        events = {(a["alert_id"], a["event"]) for a in collector.alerts()}
        assert events == {(raised[0]["alert_id"], "raised"), (raised[0]["alert_id"], "cleared")}
        state = retained(mosquitto, "pdm/v1/state/pump-001")
        assert state["state"] == "normal" and state["alert_id"] is None and state["instance"] == "scorer-0"
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        status = retained(mosquitto, "pdm/v1/status/scorer/scorer-0")
        assert status["state"] == "offline" and status["service"] == "scorer"
        log = output(second)
        assert "restored from the retained state" in log and "stopped cleanly" in log
        assert "Traceback" not in log
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sender.close()
        collector.close()
