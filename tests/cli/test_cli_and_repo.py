"""The command line as a user runs it (subprocess), and the repository promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from pdm.detectors.zscore import RobustZScoreDetector
from tests.support.cli import pdm

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_subcommands() -> None:
    result = pdm("--help")
    assert result.returncode == 0
    for command in ("train", "score", "evaluate", "info", "demo"):
        assert command in result.stdout


def test_every_commands_help_names_each_default_once_and_never_none() -> None:
    import argparse

    from pdm.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"train", "score", "evaluate", "info", "demo", "serve", "record", "retrain", "models"}
    for command, parser in sub.choices.items():
        text = " ".join(parser.format_help().split())
        assert "(default: None)" not in text, command
        assert re.search(r"\(default: [^)]*\) \(default:", text) is None, command


def test_info_verifies_and_summarises_a_model(zscore: RobustZScoreDetector, tmp_path: Path) -> None:
    version = zscore.save(tmp_path / "pump")
    result = pdm("info", str(tmp_path / "pump"))
    assert result.returncode == 0, result.stderr
    assert "checksums OK" in result.stdout and str(version) in result.stdout
    assert "temperature [degC]" in result.stdout
    assert "(pot, fell back to exponential_tail, target 0.0001 per window," in result.stdout  # 820 windows


def test_info_states_a_declustered_target_and_the_sensors_checked_for_drift() -> None:
    result = pdm("info", str(ROOT / "models" / "pump"))  # the shipped model: 0.05 a machine-day, 1 Hz
    assert result.returncode == 0, result.stderr
    assert re.search(r"threshold  [0-9.]+ \(declustered, target 0.05 false alarms per machine-day, \d+ clusters",
                     result.stdout), result.stdout
    # both pumps stood still in training: their vibration and pressure are checked for drift at rest, temperature not
    assert "drift      vibration on 2 machine(s); pressure on 2 machine(s) (checked at rest)" in result.stdout
    assert "raise on 60 of 120 windows over, clear after 14400 under 0.5 x threshold (at 1 s a window: 1 min of " \
           "2 min, 4 h)" in result.stdout  # the rule in windows and in time
    as_json = pdm("info", str(ROOT / "models" / "pump"), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["drift_checked"] == {"vibration": 2, "pressure": 2}


def test_info_on_a_tampered_model_is_one_line_and_nonzero(zscore: RobustZScoreDetector, tmp_path: Path) -> None:
    version = zscore.save(tmp_path / "pump")
    (version / "scaler.json").write_text("{}")
    result = pdm("info", str(version))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "scaler.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_console_script_named_pdm() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert "[project.scripts]" not in text or "\npdm =" not in text


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_importing_pdm_does_not_import_tensorflow() -> None:
    code = ("import pdm, pdm.detectors, pdm.saving, pdm.detectors.alarm, pdm.detectors.calibration, sys; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
