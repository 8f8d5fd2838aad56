"""Streaming (`Detector.stream`): for the same readings, a batch at a time, the windows and scores of the batch path
(`Detector.detect`), through missing values, gaps, unsorted batches and model swaps; the reading rules; the public
properties a streaming service reads."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.base import Detector
from pdm.detectors.stream import WindowStream
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import DataError, NotFittedError
from tests.conftest import SENSORS, normal_fleet

MACHINE = "pump-000"


def arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    frame = normal_fleet(1, n, seed=7)[MACHINE]
    return frame["timestamp"].to_numpy(dtype=np.float64, copy=True), frame[SENSORS].to_numpy(np.float64, copy=True)


def batch(det: Detector, ts: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"timestamp": ts, **{s: values[:, j] for j, s in enumerate(SENSORS)}})
    return det.detect(frame[["timestamp", *det.feature_names]], machine_id=MACHINE)


def columns(det: Detector, values: np.ndarray) -> np.ndarray:
    return values[:, [SENSORS.index(f) for f in det.feature_names]]


def feed(stream: WindowStream, ts: np.ndarray, values: np.ndarray, bounds: list[int],
         rng: np.random.Generator | None = None) -> tuple[list[float], list[float], list[bool]]:
    """Append readings [bounds[k], bounds[k + 1]) as one batch each (shuffled with ``rng``); score what becomes
    ready with the stream's detector and run its alarm rule (restarted at a gap). Returns window end times, scores
    and alarm states."""
    det = stream.detector
    tracker = det.new_alarm_tracker()
    ends: list[float] = []
    scores: list[float] = []
    alarms: list[bool] = []
    for lo, hi in itertools.pairwise(bounds):
        order = np.arange(lo, hi) if rng is None else rng.permutation(np.arange(lo, hi))
        got = stream.append(ts[order], columns(det, values[order]))
        if got.gaps:
            tracker.reset()
        s, _ = det.score_windows(got.windows)
        ends.extend(got.end_ts.tolist())
        scores.extend(s.tolist())
        alarms.extend(tracker.update_score(float(x), det.threshold) for x in s)
    return ends, scores, alarms


def chunks(lo: int, hi: int, size: int, *cuts: int) -> list[int]:
    """Batch bounds of ``size`` readings from ``lo`` to ``hi``, also cut at ``cuts``."""
    return sorted({*range(lo, hi, size), *cuts, hi})


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    ts, values = arrays(1800)
    values[0:5, 0] = np.nan  # missing since the segment's start: 0 (the training median)
    values[100:130, 1] = np.nan  # a vibration dropout: last observation carried forward
    values[300:302, 2] = np.inf  # not a number either: missing
    values[900:1100, 1] += 6.0  # a vibration step, so the alarm rule has something to do
    return ts, values


@pytest.fixture(scope="module")
def versions(gru: Detector, zscore: Detector, train_fleet: dict[str, pd.DataFrame],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Detector]:
    """The GRU saved and loaded (``a``); a copy in another scaling (``b``: every center moved by 0.3 scale, every
    scale x 1.25); z-scores (window 1) on the three sensors (``z3``) and on two (``z2``)."""
    root = tmp_path_factory.mktemp("stream")
    gru.save(root / "gru")
    a, b = Detector.load(root / "gru"), Detector.load(root / "gru")
    scaler = b.scaler_  # type: ignore[attr-defined]

    def moved(stats):  # type: ignore[no-untyped-def]
        return stats.model_copy(update={"center": [c + 0.3 * s for c, s in zip(stats.center, stats.scale, strict=True)],
                                        "scale": [1.25 * s for s in stats.scale]})

    b.scaler_ = scaler.model_copy(update={"global_stats": moved(scaler.global_stats),  # type: ignore[attr-defined]
                                          "machines": {m: moved(s) for m, s in scaler.machines.items()}})
    z2 = RobustZScoreDetector(features=["temperature", "vibration"], seed=0).fit(train_fleet)
    return {"a": a, "b": b, "z3": zscore, "z2": z2}


@pytest.mark.parametrize("name", ["gru", "zscore"])
def test_stream_scores_and_alarms_equal_detect(name: str, data, request: pytest.FixtureRequest) -> None:  # type: ignore[no-untyped-def]
    det: Detector = request.getfixturevalue(name)
    ts, values = data
    ts = ts.copy()
    ts[1200:] += 10 * det.max_gap_s  # a gap: the segment (and the alarm rule) restarts
    expected = batch(det, ts, values).dropna(subset=["score"])
    w = det.window_length
    assert np.array_equal(expected.index, np.r_[w - 1 : 1200, 1200 + w - 1 : 1800])
    # batches that do not line up with windows, readings shuffled inside each, one batch ending at the gap
    ends, scores, alarms = feed(det.stream(MACHINE), ts, values, chunks(0, 1800, 37, 1200), np.random.default_rng(3))
    assert np.array_equal(ends, ts[expected.index])
    np.testing.assert_allclose(scores, expected["score"].to_numpy(), rtol=1e-4, atol=1e-5)
    assert alarms == expected["alarm"].tolist()
    assert any(alarms), "the vibration step should raise the alarm"


def test_a_gap_inside_a_batch_restarts_the_window(gru: Detector, data) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    ts = ts.copy()
    ts[500:] += 10 * gru.max_gap_s
    stream = gru.stream(MACHINE)
    first = stream.append(ts[:480], values[:480])
    got = stream.append(ts[480:560], values[480:560])  # 20 readings, the gap, 60 readings
    assert (first.gaps, got.gaps, got.readings) == (0, 1, 80)
    assert got.end_ts.tolist() == ts[480:500].tolist() + ts[500 + gru.window_length - 1 : 560].tolist()
    expected = batch(gru, ts[:560], values[:560])["score"].to_numpy()
    s, _ = gru.score_windows(got.windows)
    np.testing.assert_allclose(s, expected[np.isin(ts[:560], got.end_ts)], rtol=1e-4, atol=1e-5)
    assert not stream.warming_up


def test_rebase_continues_the_window_in_the_new_versions_scaling(data, versions) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    a, b = versions["a"], versions["b"]
    stream = a.stream(MACHINE)
    feed(stream, ts, values, [0, 30])  # the ring holds the default-filled readings
    assert stream.rebase(b) == 0 and stream.detector is b
    ends, scores, _ = feed(stream, ts, values, chunks(30, 800, 23))
    assert ends == ts[31:800].tolist()  # the first window completes at reading 32; none skipped, none twice
    np.testing.assert_allclose(scores, batch(b, ts, values)["score"].to_numpy()[31:800], rtol=1e-4, atol=1e-5)
    assert stream.ring.n < stream.seg_count  # compacted: the second swap converts a partial history
    assert stream.rebase(a) == 0
    ends, scores, _ = feed(stream, ts, values, chunks(800, 1800, 23))
    assert ends == ts[800:].tolist()
    np.testing.assert_allclose(scores, batch(a, ts, values)["score"].to_numpy()[800:], rtol=1e-4, atol=1e-5)


def test_rebase_to_a_shorter_window_and_back(data, versions) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    a, z = versions["a"], versions["z3"]
    stream = a.stream(MACHINE)
    feed(stream, ts, values, [0, 300])
    assert stream.rebase(z) == 0  # a shorter window: seamless
    i, compacted = 300, False
    while not (compacted and stream.ring.n == 5):  # one reading at a time, until just after the ring moved its rows
        before = stream.ring.n
        ends, scores, _ = feed(stream, ts, values, [i, i + 1])
        assert ends == [ts[i]]
        np.testing.assert_allclose(scores, batch(z, ts, values)["score"].to_numpy()[i : i + 1], rtol=1e-4, atol=1e-5)
        compacted = compacted or stream.ring.n < before
        i += 1
    # back to a window of 32: the ring holds 5 readings, so the 26 windows ending in the next 26 are never ready
    skipped = a.window_length - 1 - 5
    assert stream.rebase(a) == skipped and stream.warming_up
    ends, scores, _ = feed(stream, ts, values, chunks(i, 1800, 41))
    assert ends == ts[i + skipped :].tolist()
    np.testing.assert_allclose(scores, batch(a, ts, values)["score"].to_numpy()[i + skipped :], rtol=1e-4,
                               atol=1e-5)


def test_rebase_to_fewer_sensors_but_never_more(data, versions) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    a, z2 = versions["a"], versions["z2"]
    stream = a.stream(MACHINE)
    feed(stream, ts, values, [0, 3])  # temperature still missing since the segment's start
    assert stream.rebase(z2) == 0 and stream.ring.values.shape[1] == 2
    ends, scores, _ = feed(stream, ts, values, chunks(3, 400, 17))
    assert ends == ts[3:400].tolist()
    np.testing.assert_allclose(scores, batch(z2, ts, values)["score"].to_numpy()[3:400], rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match=r"expected a subset of \['temperature', 'vibration'\].*'pressure'"):
        stream.rebase(a)


def test_duplicates_late_readings_and_stride(gru: Detector, caplog: pytest.LogCaptureFixture) -> None:
    ts, values = arrays(200)
    w = gru.window_length
    with caplog.at_level(logging.INFO, logger="pdm.detectors.stream"):
        stream = gru.stream("pump-new")  # a machine the model has not seen: the fleet's scaling, logged
    assert "'pump-new' is new to" in caplog.text and "fleet's statistics" in caplog.text
    first = stream.append(ts[:50], values[:50])
    assert (first.readings, len(first.windows), first.windows.dtype) == (50, 50 - w + 1, np.float32)
    assert first.start_ts.tolist() == ts[: 50 - w + 1].tolist() and first.end_ts.tolist() == ts[w - 1 : 50].tolist()
    again = stream.append(ts[:50], values[:50])  # everything again: duplicates and late readings, dropped
    assert (again.readings, again.duplicates, again.late, len(again.windows)) == (0, 1, 49, 0)
    mixed = stream.append(np.r_[ts[52], ts[49], ts[30], ts[50:53]], values[:6])  # a repeat in the batch too
    assert (mixed.duplicates, mixed.late, mixed.readings) == (2, 1, 3)
    assert mixed.end_ts.tolist() == ts[50:53].tolist() and stream.last_ts == ts[52]
    strided = gru.stream(MACHINE, stride=4).append(ts, values)
    assert strided.end_ts.tolist() == ts[w - 1 :: 4].tolist()
    assert strided.start_ts.tolist() == ts[: 200 - w + 1 : 4].tolist()


def test_bad_input_is_a_clear_error(gru: Detector) -> None:
    stream = gru.stream(MACHINE)
    with pytest.raises(DataError, match=r"values of shape \(3, 2\), expected \(n,\) and \(n, 3\)"):
        stream.append(np.arange(3.0), np.zeros((3, 2)))
    with pytest.raises(DataError, match="timestamp that is not a finite number"):
        stream.append(np.array([1.0, np.nan]), np.zeros((2, 3)))
    for stride in (0, -1, 1.5):
        with pytest.raises(DataError, match=rf"stride: found {stride}, expected an integer >= 1"):
            gru.stream(MACHINE, stride=stride)  # type: ignore[arg-type]
    assert stream.last_ts is None and stream.seg_count == 0  # nothing applied
    with pytest.raises(NotFittedError):
        RobustZScoreDetector().stream(MACHINE)


def test_public_properties_of_a_fitted_detector(gru: Detector, versions) -> None:  # type: ignore[no-untyped-def]
    a = versions["a"]
    assert a.feature_names == tuple(SENSORS) and a.window_length == 32
    assert a.threshold == pytest.approx(float(gru.threshold_.value)) and a.threshold > 0  # type: ignore[attr-defined]
    assert a.period_s == pytest.approx(1.0) and a.max_gap_s == pytest.approx(5.0)  # 1 Hz training data, factor 5
    assert (a.alarm_rule.k, a.alarm_rule.n, a.alarm_rule.m, a.alarm_rule.clear_ratio) == (60, 120, 14_400, 0.5)
    tracker = a.new_alarm_tracker()
    assert not tracker.active and tracker is not a.new_alarm_tracker()
    assert a.calibration_summary is not None and a.version_dir is not None
    assert a.version_dir.parent.name == "gru" and (a.version_dir / "manifest.json").is_file()
    assert a.engine_name in ("OnnxEngine", "CompiledKerasEngine")
    a.warm_up()
    z = versions["z2"]
    assert z.engine_name is None and z.version_dir is None and z.feature_names == ("temperature", "vibration")
    z.warm_up()  # nothing to compile
    with pytest.raises(NotFittedError):
        _ = RobustZScoreDetector().threshold
