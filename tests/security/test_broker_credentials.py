"""A broker URL carrying credentials (issue 14): ``--broker mqtt://user:pass@host`` used to be accepted with the
credentials silently ignored, and the password was logged in clear at ``-v``. Every program now refuses such a URL
with an error that says where the user name and password go, and the password never appears in its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, pdm

PASSWORD = "s3cret-Pa55word"  # noqa: S105 - a made-up password that must never be printed
URL = f"mqtt://alice:{PASSWORD}@127.0.0.1:1"


def _refused(result: subprocess.CompletedProcess[str], flag: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{flag}: found 'mqtt://alice:***@127.0.0.1:1' with credentials in the URL" in result.stderr
    assert "--username" in result.stderr and "PDM_MQTT_PASSWORD" in result.stderr
    assert PASSWORD not in output


def test_record_refuses_a_broker_url_with_a_password(tmp_path: Path) -> None:
    _refused(pdm("-v", "record", "--root", tmp_path, "--broker", URL), "--broker / PDM_RECORD_BROKER")


def test_serve_refuses_a_broker_url_with_a_password(tmp_path: Path) -> None:
    _refused(pdm("-vv", "serve", "--models-dir", tmp_path, "--broker", URL), "--broker / PDM_BROKER")


def test_a_password_in_the_environment_broker_is_refused_too(tmp_path: Path) -> None:
    env = {**os.environ, "PDM_BROKER": URL, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "pdm", "-v", "record", "--root", str(tmp_path)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    _refused(result, "--broker / PDM_RECORD_BROKER")


@pytest.mark.parametrize("extra", [[], ["--username", "alice"]])
def test_the_simulator_refuses_it(extra: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "simulators.fleet", "--machines", "1", "--duration", "1m",
                             "--broker", URL, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    _refused(result, "--broker")
