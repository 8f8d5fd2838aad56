"""End to end against a real mosquitto (`tests.support.broker`): the daemon scores and records a fleet (``serve
--record-dir``), raises an alert on a fault; ``pdm retrain --recorder`` reads what was recorded, leaves the alert
period out, promotes the challenger; the running daemon hot-reloads it and what it publishes from then on carries
the new version."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pdm.recorder.reader import read_table
from pdm.saving import current_version
from tests.support.broker import Broker
from tests.support.cli import command
from tests.support.daemon import (
    LIVE_START,
    MODEL,
    ROOT,
    Collector,
    Sender,
    copy_models,
    machine_arrays,
    metric,
    retained,
    serving,
    settings,
    simulate,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(400)]
N = 3000


def test_record_retrain_promote_and_the_daemon_switches(mosquitto: Broker, tmp_path: Path) -> None:
    models = copy_models(tmp_path / "models")
    old = current_version(models / MODEL)
    recorded = tmp_path / "recorded"
    frame, _ = simulate(4, N, LIVE_START, fault_rate_per_day=0.0, forced=[])
    data = {m: machine_arrays(frame, m) for m in sorted(frame["machine_id"].unique())}
    data["pump-001"][1][1000:1600, 1] += 8.0  # a vibration fault the daemon alerts on (and nobody labels)
    collector = Collector(mosquitto)
    sender = Sender(mosquitto)
    try:
        with serving(settings(mosquitto, models_dir=models, reload_interval=0.2, record_dir=recorded)) as (daemon, _):
            for machine, (ts, vals) in data.items():
                sender.batch(machine, ts[: N - 200], vals[: N - 200])
            sender.flush()
            wait_for(lambda: any(a["event"] == "cleared" for a in collector.alerts()), 60, "the fault's episode")
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) >= 4 * (N - 216), 60,
                     "every window")
            wait_for((recorded / "_wal").is_dir, 10, "the recorder's files")
            # the recorder writes on its own clock: retrain reads only what it has written (a loaded machine lags)
            wait_for(lambda: "cleared" in set(read_table(recorded, "alerts", include_open=True).get("event", [])), 30,
                     "the recorded cleared event")
            result = subprocess.run(
                command("retrain", "--model", models / MODEL, "--recorder", recorded, "--since", str(LIVE_START),
                        "--until", str(LIVE_START + 86_400), "--margin-before", "5m", "--margin-after", "5m",
                        "--force"),
                cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            assert result.returncode == 0, result.stdout + result.stderr
            new = current_version(models / MODEL)
            assert new != old and "decision  PROMOTED" in result.stdout
            report = json.loads((models / MODEL / str(new) / "report.json").read_text())
            assert report["data"]["exclusions"]["by_reason"]["alert"]["rows"] >= 600  # the alert period, margins
            assert report["data"]["screened_with_champion"] is False  # the recorded alerts are the screening
            wait_for(lambda: metric(daemon, "pdm_model_reloads_total", model=MODEL, result="loaded") == 1, 60,
                     "the daemon to reload")
            for machine, (ts, vals) in data.items():
                sender.batch(machine, ts[N - 200 :], vals[N - 200 :])
            sender.flush()
            wait_for(lambda: metric(daemon, "pdm_windows_scored_total", model=MODEL) >= 4 * (N - 15), 60,
                     "the last windows")
            assert metric(daemon, "pdm_model_info", model=MODEL, version=str(new)) == 1
            wait_for(lambda: retained(mosquitto, "pdm/v1/state/pump-002")["model"]["version"] == new, 30,
                     "a state carrying the new version")
        versions = [s["model"]["version"] for s in collector.of("state") if s["machine_id"] == "pump-002"]
        assert versions[0] == old and versions[-1] == new
        alerts = [(a["machine_id"], a["event"], a["model"]["version"]) for a in collector.alerts()]
        assert alerts[:2] == [("pump-001", "raised", old), ("pump-001", "cleared", old)]
        assert all(version == new for _, _, version in alerts[2:])  # any alert after the switch: the new version
    finally:
        sender.close()
        collector.close()
