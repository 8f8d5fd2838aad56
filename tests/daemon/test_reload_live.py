"""Model hot reload against a real mosquitto (`tests.support.broker`): a new version promoted while telemetry streams is
swapped in without a dropped, doubled or unscored window, and every alert, score and state after the switch carries
it (an alert open across the switch is not raised again); a corrupt version is refused with the reason in the
retained status while the old version keeps scoring."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pdm import contract
from pdm.saving import set_current
from tests.support.broker import Broker
from tests.support.daemon import (
    LIVE_START,
    MODEL,
    Collector,
    Sender,
    copy_models,
    edit_json,
    machine_arrays,
    metric,
    new_version,
    retained,
    running,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]
WINDOW = 16
STATUS = "pdm/v1/status/scorer/scorer-0"


def fleet(n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    frame, _ = simulate(4, n, LIVE_START, fault_rate_per_day=0.0, forced=[])
    return {m: machine_arrays(frame, m) for m in sorted(frame["machine_id"].unique())}


NEW_WARNING = "the history does not cover the operating range (test)"


def raised_threshold(directory: Path) -> None:
    """A retrained version, as far as the daemon can tell: its threshold is 10 % higher, and fitting it warned."""
    edit_json(directory / "threshold.json", value=1.1 * json.loads((directory / "threshold.json").read_text())["value"])
    edit_json(directory / "training.json", warnings=[NEW_WARNING])


def test_hot_reload_under_load_switches_versions_without_losing_a_window(mosquitto: Broker, tmp_path: Path) -> None:
    n = 2700
    root = copy_models(tmp_path / "models")
    old = (root / MODEL / "current").read_text().strip()
    data = fleet(n)
    values = data["pump-001"][1]
    values[300:1200, 1] += 8.0  # fault 1: raised by the old version, open across the switch
    values[1800:2300, 1] += 8.0  # fault 2: after the switch
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    new = None
    try:
        with running(settings(mosquitto, models_dir=root, reload_interval=0.2, publish_scores=True)) as daemon:
            swapped = lambda: metric(daemon, "pdm_model_reloads_total", model=MODEL, result="loaded") == 1  # noqa: E731
            swapped_at = None
            for i in range(0, n, 10):  # 4 machines x 10 readings every ~50 ms, without waiting for the daemon
                for machine, (ts, vals) in data.items():
                    sender.batch(machine, ts[i : i + 10], vals[i : i + 10])
                time.sleep(0.05)
                if new is None and any(a["event"] == "raised" for a in collector.alerts()):
                    new = new_version(root / MODEL, raised_threshold)  # promoted while the alert is open
                if new is not None and swapped_at is None and (swapped() or i >= 1100):
                    wait_for(swapped, 60, "the new version to be swapped in")  # before fault 1 ends
                    swapped_at = i
            assert new is not None and swapped_at is not None and swapped_at < n - 500, "switched mid-stream"
            sender.flush()
            total = 4 * (n - WINDOW + 1)
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) >= total, 60, "every window")
            wait_for(lambda: len(collector.of("scores")) >= total, 20, "every score")
            time.sleep(0.5)
            assert metric(daemon, "pdm_readings_total") == 4 * n
            assert metric(daemon, "pdm_windows_scored_total", model=MODEL) == total
            assert metric(daemon, "pdm_reload_unscored_windows_total") == 0
            assert metric(daemon, "pdm_model_info", model=MODEL, version=new) == 1
            assert daemon.metrics.registry.get_sample_value("pdm_model_info", {"model": MODEL, "version": old}) is None
            wait_for(lambda: all(a["model"]["version"] == new for a in collector.alerts()[-1:]) and len(
                [a for a in collector.alerts() if a["machine_id"] == "pump-001"]) >= 4, 20, "both episodes")
        scores: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for s in collector.of("scores"):
            scores[s["machine_id"]].append((s["ts"], s["model"]["version"]))
        for machine, (ts, _) in data.items():
            got = scores[machine]
            assert [t for t, _ in got] == ts[WINDOW - 1 :].tolist(), machine  # each window once, in order
            versions = [v for _, v in got]
            k = versions.index(new)
            assert k > 0 and set(versions[:k]) == {old} and set(versions[k:]) == {new}, machine
        alerts = [a for a in collector.alerts() if a["machine_id"] == "pump-001"]
        events = [(a["event"], a["model"]["version"]) for a in alerts]
        assert events == [("raised", old), ("cleared", new), ("raised", new), ("cleared", new)]
        assert alerts[0]["alert_id"] == alerts[1]["alert_id"] != alerts[2]["alert_id"] == alerts[3]["alert_id"]
        assert alerts[2]["threshold"] == pytest.approx(1.1 * alerts[0]["threshold"])
        state = retained(mosquitto, "pdm/v1/state/pump-001")
        assert state["model"] == {"name": MODEL, "version": new}
        status = retained(mosquitto, STATUS)
        assert contract.parse_status(json.dumps(status)).state == "offline"  # the daemon has stopped
        assert status["model"]["version"] == new
        assert status["models"] == [{"name": MODEL, "version": new, "warnings": [NEW_WARNING]}]
        assert status["model_errors"] == []
    finally:
        sender.close()
        collector.close()


def test_corrupt_version_is_refused_and_the_old_version_keeps_scoring(mosquitto: Broker, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    n = 1200
    root = copy_models(tmp_path / "models")
    old = (root / MODEL / "current").read_text().strip()
    data = fleet(n)
    data["pump-001"][1][700:1100, 1] += 8.0  # a fault after the refusal: raised by the old version
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    half = n // 2
    try:
        with running(settings(mosquitto, models_dir=root, reload_interval=0.2)) as daemon:
            for machine, (ts, vals) in data.items():
                sender.batch(machine, ts[:half], vals[:half])
            bad = new_version(root / MODEL, make_current=False)
            (root / MODEL / bad / "threshold.json").write_text('{"value": 1e-9}')  # does not match its manifest
            set_current(root / MODEL, bad)
            wait_for(lambda: metric(daemon, "pdm_model_reloads_total", model=MODEL, result="refused") == 1, 30,
                     "the refusal")
            for machine, (ts, vals) in data.items():
                sender.batch(machine, ts[half:], vals[half:])
            sender.flush()
            total = 4 * (n - WINDOW + 1)
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) >= total, 60, "every window")
            time.sleep(0.5)
            assert metric(daemon, "pdm_windows_scored_total", model=MODEL) == total
            assert metric(daemon, "pdm_model_errors") == 1
            assert metric(daemon, "pdm_model_reloads_total", model=MODEL, result="loaded") == 0
            status = retained(mosquitto, STATUS)  # a real client reads why
            assert status["state"] == "online" and status["model"] == {"name": MODEL, "version": old}
            [error] = status["model_errors"]
            assert error["model"] == MODEL and error["version"] == bad and "SHA-256" in error["reason"]
            assert contract.parse_status(json.dumps(status)).model == contract.ModelRef(name=MODEL, version=old)
            set_current(root / MODEL, old)  # rolled back: the error no longer applies
            wait_for(lambda: metric(daemon, "pdm_model_errors") == 0, 30, "the error to clear")
            wait_for(lambda: retained(mosquitto, STATUS)["model_errors"] == [], 10, "the status to say so")
            wait_for(lambda: any(a["event"] == "raised" for a in collector.alerts()), 20, "the fault's alert")
        raised = [a for a in collector.alerts() if a["event"] == "raised" and a["machine_id"] == "pump-001"]
        assert raised and all(a["model"]["version"] == old for a in collector.alerts())
        assert all(s["model"]["version"] == old for s in collector.of("state"))
        assert f"refusing version {bad}" in caplog.text and "threshold.json" in caplog.text
    finally:
        sender.close()
        collector.close()
