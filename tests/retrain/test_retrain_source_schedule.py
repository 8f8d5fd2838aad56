"""What ``retrain`` reads (`pdm.retrain.source`) and the ``--every`` loop (`pdm.retrain.schedule`), without
training: the loop runs a stand-in for one retrain and is stopped by a real signal sent to this process."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import CorruptModelError, DataError
from pdm.retrain.lock import LockedError
from pdm.retrain.schedule import parse_interval, run_every
from pdm.retrain.source import Selection, champion_timestamp_column, read_files


def write_files(tmp_path: Path, column: str = "timestamp") -> list[Path]:
    paths = []
    for m in ("pump-1", "pump-2"):
        rng = np.random.default_rng(len(paths))
        frame = pd.DataFrame({column: np.arange(100, dtype=float), "x": rng.normal(size=100)})
        frame.to_csv(tmp_path / f"{m}.csv", index=False)
        paths.append(tmp_path / f"{m}.csv")
    return paths


def test_files_are_read_with_the_champions_timestamp_column_and_selected(tmp_path: Path) -> None:
    paths = write_files(tmp_path, column="time")
    name_dir = tmp_path / "models" / "pump"
    assert champion_timestamp_column(name_dir) is None  # no champion yet
    frames = {p.stem: pd.read_csv(p) for p in paths}
    RobustZScoreDetector(timestamp_column="time", threshold_method="quantile", target_false_alarm_rate=0.01,
                         alarm_k=1, alarm_n=1, alarm_m=1).fit(frames).save(name_dir)
    assert champion_timestamp_column(name_dir) == "time"
    data = read_files(paths, Selection(machines=["pump-2"], last_s=10.0), champion=name_dir)
    assert data.machines == ["pump-2"]
    assert data.frame["timestamp"].tolist() == [float(t) for t in range(90, 100)]  # the last 10 s before the end
    data = read_files(paths, Selection(since=95.0, until=98.0), champion=name_dir)
    assert sorted(set(data.frame["timestamp"])) == [95.0, 96.0, 97.0]


def test_a_damaged_champion_config_is_a_typed_error(tmp_path: Path) -> None:
    paths = write_files(tmp_path)
    name_dir = tmp_path / "pump"
    RobustZScoreDetector(threshold_method="quantile", target_false_alarm_rate=0.01, alarm_k=1, alarm_n=1,
                         alarm_m=1).fit({p.stem: pd.read_csv(p) for p in paths}).save(name_dir)
    version = name_dir / (name_dir / "current").read_text().strip()
    (version / "config.json").write_text('{"detector": 1}')
    with pytest.raises(CorruptModelError, match=r"config\.json"):
        champion_timestamp_column(name_dir)


def test_every_needs_at_least_a_minute() -> None:
    assert parse_interval("1d12h") == 129_600.0
    with pytest.raises(DataError, match="found --every 5s, expected at least 1m"):
        parse_interval("5s")


def test_every_loop_logs_each_outcome_goes_on_after_errors_and_stops_on_sigterm(
        caplog: pytest.LogCaptureFixture) -> None:
    before = signal.getsignal(signal.SIGTERM)
    outcomes: list[str] = []

    def run_once() -> int:
        outcomes.append("run")
        if len(outcomes) == 1:
            raise LockedError("another retrain or rollback holds /m/.retrain.lock")
        if len(outcomes) == 2:
            raise DataError("found no readings, expected some")
        if len(outcomes) == 3:
            return 3
        os.kill(os.getpid(), signal.SIGTERM)  # a signal during a run aborts it
        outcomes.append("not reached")
        return 0

    with caplog.at_level(logging.INFO, logger="pdm.retrain"):
        assert run_every(0.0, run_once) == 0
    assert outcomes == ["run"] * 4
    messages = [r.getMessage() for r in caplog.records]
    assert "retrain skipped: another retrain or rollback holds /m/.retrain.lock" in messages
    assert "retrain failed: found no readings, expected some" in messages
    assert "retrain finished: exit code 3 (champion kept)" in messages
    assert "received SIGTERM: stopping" in messages and "retrain interrupted" in messages
    assert messages[-1] == "stopped"
    assert signal.getsignal(signal.SIGTERM) == before
