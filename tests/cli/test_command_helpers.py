"""Helpers the commands share: the hyper-parameter flags of train and retrain, the baseline fitted beside the GRU,
and the clean stop on SIGTERM/SIGINT of serve and record (a real signal sent to this process)."""

from __future__ import annotations

import argparse
import logging
import os
import signal

import pytest

from pdm.commands.hyper import add_hyper_arguments, hyper_values
from pdm.detectors.gru import GRUAutoencoderDetector
from pdm.detectors.training import baseline_params
from pdm.errors import DataError
from pdm.shutdown import stop_on_signals


def parse(*argv: str, defaults: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_hyper_arguments(parser, "hyper-parameters", defaults=defaults)
    return parser.parse_args(argv)


def test_train_defaults_to_the_detectors_signature_and_retrain_to_not_given() -> None:
    train = hyper_values(parse("--stride", "7", defaults=True))
    assert train["stride"] == 7 and train["window"] == 64 and train["cell"] == "gru" and train["envelope"] is True
    retrain = hyper_values(parse("--no-envelope", defaults=False))
    assert retrain["envelope"] is False and retrain["window"] is None and retrain["stride"] is None
    assert set(train) == set(retrain)  # one parameter list
    assert hyper_values(parse("--stride", "auto", defaults=False))["stride"] == "auto"
    for bad in ("0", "foo", "-2"):
        with pytest.raises(DataError, match=f"found --stride '{bad}', expected 'auto' or a whole number >= 1"):
            hyper_values(parse(f"--stride={bad}", defaults=False))


def test_the_baseline_takes_the_common_parameters_of_the_gru() -> None:
    gru = GRUAutoencoderDetector(window=16, features=["a", "b"], timestamp_column="t", alarm_k=3, alarm_n=5, seed=4)
    params = baseline_params(gru.get_params())
    assert set(params) == {"features", "timestamp_column", "machine_column", "units", "references", "scaling",
                           "max_gap_factor",
                           "calibration_fraction", "threshold_method", "target_false_alarm_rate",
                           "target_alarms_per_day", "alarm_k", "alarm_n", "alarm_m", "alarm_clear",
                           "machine_thresholds", "despike", "seed"}
    assert params["features"] == ["a", "b"] and params["timestamp_column"] == "t"
    assert params["alarm_k"] == 3 and params["seed"] == 4


def test_a_signal_logs_calls_stop_and_the_previous_handler_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    before = signal.getsignal(signal.SIGINT)
    stops: list[str] = []
    with caplog.at_level(logging.WARNING), stop_on_signals(lambda: stops.append("stop"), logging.getLogger("t"),
                                                            "draining, exiting"):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert stops == ["stop", "stop"]
    assert [r.getMessage() for r in caplog.records] == ["received SIGINT: draining, exiting",
                                                        "received SIGTERM: draining, exiting"]
    assert signal.getsignal(signal.SIGINT) == before
