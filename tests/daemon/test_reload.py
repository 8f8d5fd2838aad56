"""Model hot reload, unit level (no broker): a swapped-in version continues every machine's window exactly in its
own scaling, features and window length; the watcher loads good versions and refuses corrupt, incomplete or
unfitting ones with the reason, and does not retry them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pdm import contract
from pdm.daemon.machines import MachineState
from pdm.daemon.models import ModelSlot, load_slot, misfit
from pdm.daemon.reload import Loaded, ModelWatcher, Refused, Resolved
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.saving import set_current
from tests.support.daemon import (
    LIVE_START,
    MODEL,
    SENSORS,
    TRAIN_START,
    copy_models,
    edit_json,
    machine_arrays,
    new_version,
    simulate,
)


def rescaled(directory: Path) -> None:
    """Another scaling (every center moved by 0.3 scale, every scale x 1.25), threshold x 0.8, alarm k - 5."""
    scaler = json.loads((directory / "scaler.json").read_text())
    for stats in [scaler["global_stats"], *scaler["machines"].values()]:
        stats["center"] = [c + 0.3 * s for c, s in zip(stats["center"], stats["scale"], strict=True)]
        stats["scale"] = [1.25 * s for s in stats["scale"]]
    (directory / "scaler.json").write_text(json.dumps(scaler))
    edit_json(directory / "threshold.json", value=0.8 * json.loads((directory / "threshold.json").read_text())["value"])
    alarm = json.loads((directory / "alarm.json").read_text())
    edit_json(directory / "alarm.json", k=alarm["k"] - 5)


def feed(m: MachineState, ts: np.ndarray, values: np.ndarray, size: int = 23) -> tuple[list[float], list[float]]:
    """Apply readings in messages of ``size``; score what becomes ready with the machine's current model."""
    ends: list[float] = []
    scores: list[float] = []
    for i in range(0, len(ts), size):
        cols = {s: values[i : i + size, j].tolist() for j, s in enumerate(SENSORS)}
        seq = 0 if m.last_seq is None else m.last_seq + 1
        msg = contract.parse_telemetry(contract.encode_batch(m.machine_id, seq, ts[i : i + size].tolist(), cols),
                                       m.machine_id, m.slot.features)
        ready = m.apply(msg).ready
        if ready is not None:
            ends.extend(ready.end_ts.tolist())
            scores.extend(m.slot.detector.score_windows(ready.windows)[0].tolist())
    return ends, scores


def batch_scores(slot: ModelSlot, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"timestamp": ts, **{s: values[:, j] for j, s in enumerate(SENSORS)}})
    return slot.detector.detect(frame[["timestamp", *slot.features]], machine_id="pump-001")["score"].to_numpy()


@pytest.fixture(scope="module")
def zscores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSlot]:
    """Models with another window (1): on the three sensors (``z3``) and on fewer, temperature and vibration
    (``z2``)."""
    data, _ = simulate(4, 3600, TRAIN_START, normal_only=True)
    root = tmp_path_factory.mktemp("zscore")
    for name, features in (("z3", SENSORS), ("z2", ["temperature", "vibration"])):
        det = RobustZScoreDetector(features=features, seed=0)
        det.fit(data[["timestamp", "machine_id", *features]]).save(root / name)
    return {name: load_slot(root, name, warm_up=False) for name in ("z3", "z2")}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    frame, _ = simulate(4, 1200, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    values[:20, 0] = np.nan  # temperature missing since the segment's start: the default fill (0, the median)
    values[100:110, 1] = np.nan  # a vibration dropout: carried forward
    values[400:700, 1] += 6.0
    return ts, values


def test_swap_continues_every_window_in_the_new_versions_scaling(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    root = copy_models(tmp_path / "models")
    a = load_slot(root, MODEL, warm_up=False)
    b = load_slot(root, MODEL, warm_up=False, version=new_version(root / MODEL, rescaled))
    assert b.ref.version != a.ref.version and b.threshold == pytest.approx(0.8 * a.threshold)
    m = MachineState.create("pump-001", a, "pump")
    feed(m, ts[:30], values[:30])  # 30 readings: the ring holds the default-filled ones
    assert m.rebase(b) == 0 and m.slot is b and m.tracker.rule == b.detector.alarm_rule
    ends, scores = feed(m, ts[30:800], values[30:800])
    assert ends == ts[30:800].tolist()  # every reading completes a window: none skipped, none twice
    np.testing.assert_allclose(scores, batch_scores(b, ts, values)[30:800], rtol=1e-4, atol=1e-5)
    assert m.stream.ring.n < m.stream.seg_count  # the ring was compacted: the second swap converts a partial history
    assert m.rebase(a) == 0
    ends, scores = feed(m, ts[800:], values[800:])
    assert ends == ts[800:].tolist()
    np.testing.assert_allclose(scores, batch_scores(a, ts, values)[800:], rtol=1e-4, atol=1e-5)


def test_swap_to_another_window_length_and_back(tmp_path: Path, data, zscores) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    a, z = load_slot(copy_models(tmp_path / "models"), MODEL, warm_up=False), zscores["z3"]
    m = MachineState.create("pump-001", a, "pump")
    feed(m, ts[:300], values[:300])
    assert m.rebase(z) == 0  # a shorter window: seamless
    i = 300
    compacted = False
    while not (compacted and m.stream.ring.n == 5):  # one reading at a time, until just after the ring moved its rows
        before = m.stream.ring.n
        ends, scores = feed(m, ts[i : i + 1], values[i : i + 1])
        assert ends == [ts[i]]
        np.testing.assert_allclose(scores, batch_scores(z, ts, values)[i : i + 1], rtol=1e-4, atol=1e-5)
        compacted = compacted or m.stream.ring.n < before
        i += 1
    # back to window 16: the ring holds 5 readings, so 10 windows go unscored while it fills
    assert m.rebase(a) == 10
    assert m.state == "warming_up"
    ends, scores = feed(m, ts[i:], values[i:])
    assert ends == ts[i + 10 :].tolist()
    np.testing.assert_allclose(scores, batch_scores(a, ts, values)[i + 10 :], rtol=1e-4, atol=1e-5)


def test_swap_to_fewer_sensors(tmp_path: Path, data, zscores) -> None:  # type: ignore[no-untyped-def]
    ts, values = data
    a, z = load_slot(copy_models(tmp_path / "models"), MODEL, warm_up=False), zscores["z2"]
    assert misfit(a, z) is None and misfit(z, a) is not None  # fewer sensors fit; more do not
    m = MachineState.create("pump-001", a, "pump")
    feed(m, ts[:10], values[:10])  # temperature still missing since the segment's start
    assert m.rebase(z) == 0 and m.stream.ring.values.shape[1] == 2
    ends, scores = feed(m, ts[10:], values[10:])
    assert ends == ts[10:].tolist()
    np.testing.assert_allclose(scores, batch_scores(z, ts, values)[10:], rtol=1e-4, atol=1e-5)


def test_misfit_names_the_unknown_sensor(tmp_path: Path) -> None:
    root = copy_models(tmp_path / "models")
    a = load_slot(root, MODEL, warm_up=False)
    frame, _ = simulate(4, 1800, TRAIN_START, normal_only=True)
    frame["humidity"] = 50.0 + np.random.default_rng(0).normal(0, 1, len(frame))
    RobustZScoreDetector(features=[*SENSORS, "humidity"], seed=0).fit(
        frame[["timestamp", "machine_id", *SENSORS, "humidity"]]).save(root / "wide")
    reason = misfit(a, load_slot(root, "wide", warm_up=False))
    assert reason is not None and "humidity" in reason and "subset" in reason
    assert misfit(a, load_slot(root, MODEL, warm_up=False)) is None


def test_watcher_loads_good_versions_and_refuses_bad_ones_once(tmp_path: Path) -> None:
    root = copy_models(tmp_path / "models")
    name_dir = root / MODEL
    a = load_slot(root, MODEL, warm_up=False)
    watcher = ModelWatcher(root, {MODEL: a}, interval=0, warm_up=False)
    assert watcher.check(MODEL) is None

    tampered = new_version(name_dir, make_current=False)
    (name_dir / tampered / "threshold.json").write_text('{"value": 0.001}')  # after the manifest was written
    set_current(name_dir, tampered)
    got = watcher.check(MODEL)
    assert isinstance(got, Refused) and got.version == tampered and "SHA-256" in got.reason
    assert watcher.check(MODEL) is None  # not tried again while current names it

    incomplete = new_version(name_dir, make_current=False, source=a.ref.version)
    (name_dir / incomplete / "model.keras").unlink()
    set_current(name_dir, incomplete)
    got = watcher.check(MODEL)
    assert isinstance(got, Refused) and "model.keras" in got.reason and "missing" in got.reason

    (name_dir / "current").write_text("no-such-version\n")
    got = watcher.check(MODEL)
    assert isinstance(got, Refused) and got.version == "no-such-version" and "does not exist" in got.reason
    (name_dir / "current").unlink()
    got = watcher.check(MODEL)
    assert isinstance(got, Refused) and "cannot read" in got.reason

    set_current(name_dir, a.ref.version)
    assert watcher.check(MODEL) == Resolved(MODEL)
    assert watcher.check(MODEL) is None

    good = new_version(name_dir, rescaled, source=a.ref.version)
    got = watcher.check(MODEL)
    assert isinstance(got, Loaded) and got.slot.ref == contract.ModelRef(name=MODEL, version=good)
    assert got.slot.threshold == pytest.approx(0.8 * a.threshold)
    assert watcher.check(MODEL) is None


def test_swap_to_fewer_sensors_with_a_drift_alert_open_on_the_dropped_one(tmp_path: Path, data, zscores) -> None:  # type: ignore[no-untyped-def]
    """The new version has no pressure: the machine goes on scoring (the drifting sensor is no longer fed to the
    windows as missing, there is none) and the pressure's drift alert clears with its own id at the next message."""
    ts, values = data
    a, z = load_slot(copy_models(tmp_path / "models"), MODEL, warm_up=False), zscores["z2"]
    m = MachineState.create("pump-001", a, "pump")
    feed(m, ts[:100], values[:100])
    aid = contract.alert_id("pump-001", float(ts[99]), "pressure")
    m.open_sensors["pressure"] = (aid, float(ts[99]), "drift")
    feed(m, ts[100:200], values[100:200])  # pressure enters the windows as missing while its alert is open
    assert np.ptp(m.stream.ring.values[-10:, SENSORS.index("pressure")]) == 0
    m.rebase(z)
    ends, _ = feed(m, ts[200:], values[200:])
    assert ends == ts[200:].tolist()  # every reading still scored (the new version's window is 1)
    [cleared] = m.sensor_alerts("test")
    assert (cleared.alert_id, cleared.event, cleared.sensor) == (aid, "cleared", "pressure")
    assert m.open_sensors == {}
