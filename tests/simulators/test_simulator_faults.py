"""Every fault type leaves its documented signature, measured against the same machine's healthy baseline: the
same seed in normal-only mode (faults draw from their own random streams, so the healthy run is the exact
counterfactual of the faulty one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulators.fleet import offline
from simulators.fleet.config import ForcedFault, SimConfig, fleet_types
from simulators.fleet.engine import Simulator
from simulators.fleet.faults import FAULT_TYPES

H = 3600.0
INTERVAL = 2.0
SENSORS = ["temperature", "vibration", "pressure"]
# (machine, type, start h, duration h, sensor); fleet_types(8): pump-001 compressor-001 pump-002 motor-001
# pump-003 compressor-002 pump-004 motor-002
FORCED = [
    ("pump-001", "bearing_wear", 2, 30, None),
    ("pump-002", "cavitation", 2, 12, None),
    ("pump-002", "leak", 16, 12, None),
    ("pump-003", "imbalance", 2, 20, None),
    ("pump-004", "blockage", 2, 10, None),
    ("pump-004", "misalignment", 14, 20, None),
    ("compressor-001", "overheating", 2, 6, None),
    ("compressor-001", "stuck", 10, 2, "temperature"),
    ("compressor-001", "spike", 14, 6, "pressure"),
    ("compressor-002", "leak", 2, 10, None),
    ("compressor-002", "drift", 14, 24, "temperature"),
    ("motor-001", "overheating", 4, 6, None),
    ("motor-001", "dropout", 12, 1, "vibration"),
    ("motor-002", "misalignment", 2, 20, None),
    ("motor-002", "spike", 24, 6, "vibration"),
]


@pytest.fixture(scope="module")
def runs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    base = {"types": fleet_types(8), "seed": 11, "interval_s": INTERVAL, "duration_s": 40 * H}
    healthy, none = offline.frames(Simulator(SimConfig(**base, normal_only=True)))  # type: ignore[arg-type]
    forced = [ForcedFault(m, t, s * H, d * H, 0.8, sensor) for m, t, s, d, sensor in FORCED]
    faulty, table = offline.frames(Simulator(SimConfig(**base, fault_rate_per_day=0.0, forced=forced)))  # type: ignore[arg-type]
    assert none.empty
    return healthy, faulty, table


def machine(df: pd.DataFrame, mid: str) -> pd.DataFrame:
    return df[df["machine_id"] == mid].reset_index(drop=True)


def window(mid: str, ftype: str, frac: tuple[float, float] = (0.0, 1.0)) -> slice:
    _, _, s, d, _ = next(f for f in FORCED if f[0] == mid and f[1] == ftype)
    a = round((s + d * frac[0]) * H / INTERVAL)
    b = round((s + d * frac[1]) * H / INTERVAL)
    return slice(a, b)


def diff(runs: tuple[pd.DataFrame, ...], mid: str, sensor: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, f = machine(runs[0], mid)[sensor].to_numpy(), machine(runs[1], mid)[sensor].to_numpy()
    return f - h, h, f


def test_every_fault_type_is_covered_here() -> None:
    assert {f[1] for f in FORCED} == set(FAULT_TYPES)


def test_fault_table_and_row_labels_match_the_forced_faults(runs: tuple[pd.DataFrame, ...]) -> None:
    _, faulty, table = runs
    start = 1_795_392_000.0
    got = sorted(zip(table["machine_id"], table["type"], table["start"], table["end"], table["sensor"].fillna(""),
                     strict=True))
    want = sorted((m, t, start + s * H, start + (s + d) * H, sensor or "") for m, t, s, d, sensor in FORCED)
    assert got == want
    assert set(table["kind"]) == {"machine", "sensor"}
    for row in table.itertuples():
        rows = faulty[faulty["fault_id"] == row.fault_id]
        assert len(rows) == round((row.end - row.start) / INTERVAL)
        assert rows["timestamp"].min() == row.start and rows["timestamp"].max() == row.end - INTERVAL
        assert set(rows["fault_type"]) == {row.type} and set(rows["fault_kind"]) == {row.kind}
    normal = faulty[faulty["fault_id"] == ""]
    assert (normal["fault_type"] == "").all() and (normal["fault_kind"] == "").all()


def test_before_its_first_fault_a_machine_is_identical_to_its_healthy_self(runs: tuple[pd.DataFrame, ...]) -> None:
    for mid in {f[0] for f in FORCED}:
        first = min(round(s * H / INTERVAL) for m, _, s, _, _ in FORCED if m == mid)
        changed = []
        for sensor in SENSORS:
            d, _, _ = diff(runs, mid, sensor)
            assert np.array_equal(d[:first], np.zeros(first)), (mid, sensor)
            changed.append(np.isnan(d[first:]).any() or np.abs(d[first:]).max() > 0)
        assert any(changed), mid


def running(h: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(h > threshold)


def test_bearing_wear_raises_vibration_slowly_then_more_and_creeps_temperature(runs: tuple[pd.DataFrame, ...]) -> None:
    d, h, _ = diff(runs, "pump-001", "vibration")
    early, late = window("pump-001", "bearing_wear", (0, 0.2)), window("pump-001", "bearing_wear", (0.8, 1))
    on_e, on_l = running(h[early], 1.0), running(h[late], 1.0)
    assert on_e.mean() > 0.3 and on_l.mean() > 0.3
    assert d[early][on_e].mean() < 0.15  # early stage: subtle
    assert d[late][on_l].mean() > 1.0 and d[late][on_l].mean() > 8 * max(d[early][on_e].mean(), 0.01)
    dt, _, _ = diff(runs, "pump-001", "temperature")
    assert dt[late].mean() > 1.0 and dt[early].mean() < 0.3


def test_overheating_raises_temperature_only(runs: tuple[pd.DataFrame, ...]) -> None:
    for mid in ("compressor-001", "motor-001"):
        w = window(mid, "overheating", (0.3, 1))
        dt, _, _ = diff(runs, mid, "temperature")
        assert dt[w].max() > 5.0, mid
        dv, _, _ = diff(runs, mid, "vibration")
        assert np.all(dv[window(mid, "overheating")] == 0), mid
    dp, _, _ = diff(runs, "compressor-001", "pressure")
    assert np.all(dp[window("compressor-001", "overheating")] == 0)


def test_leak_drops_pressure_below_the_operating_point(runs: tuple[pd.DataFrame, ...]) -> None:
    for mid, threshold in (("pump-002", 2.5), ("compressor-002", 3.0)):
        w = window(mid, "leak", (0.3, 1))
        d, h, f = diff(runs, mid, "pressure")
        on = running(h[w], threshold)
        assert on.mean() > 0.2, mid
        assert d[w][on].mean() < -0.4, mid
        assert np.median(f[w][on] / h[w][on]) < 0.85, mid  # same operating point, lower pressure
        dv, _, _ = diff(runs, mid, "vibration")
        assert np.all(dv[w] == 0), mid


def test_blockage_raises_pressure_above_the_operating_point(runs: tuple[pd.DataFrame, ...]) -> None:
    w = window("pump-004", "blockage", (0.5, 1))
    d, h, f = diff(runs, "pump-004", "pressure")
    assert d[w].mean() > 0.2
    assert np.median(f[w] / h[w]) > 1.08


def test_cavitation_gives_vibration_bursts_and_pressure_oscillation(runs: tuple[pd.DataFrame, ...]) -> None:
    w = window("pump-002", "cavitation")
    dv, _, _ = diff(runs, "pump-002", "vibration")
    bursts = dv[w] > 0.5
    assert 0.002 < bursts.mean() < 0.2  # intermittent bursts, not a step
    assert dv[w].max() > 2.0
    dp, _, _ = diff(runs, "pump-002", "pressure")
    active = np.abs(dp[w]) > 0
    assert active.mean() > 0.1
    centred = dp[w][active] - dp[w][active].mean()
    assert dp[w][active].mean() < 0  # a little lower on average
    assert centred.std() > 0.1 and (centred > 0.15).any() and (centred < -0.15).any()  # and oscillating


def test_imbalance_is_a_vibration_step(runs: tuple[pd.DataFrame, ...]) -> None:
    d, h, _ = diff(runs, "pump-003", "vibration")
    first, last = window("pump-003", "imbalance", (0, 0.1)), window("pump-003", "imbalance", (0.9, 1))
    on_f, on_l = running(h[first], 1.0), running(h[last], 1.0)
    assert on_f.mean() > 0.2 and on_l.mean() > 0.2
    # per unit of speed**2 (~ healthy vibration), the first tenth already shows the full step
    step_f, step_l = np.median(d[first][on_f]), np.median(d[last][on_l])
    assert step_f > 0.7 and step_f > 0.5 * step_l


def test_misalignment_steps_vibration_and_warms(runs: tuple[pd.DataFrame, ...]) -> None:
    for mid, threshold in (("pump-004", 1.0), ("motor-002", 0.6)):
        d, h, _ = diff(runs, mid, "vibration")
        first = window(mid, "misalignment", (0, 0.1))
        on = running(h[first], threshold)
        assert on.mean() > 0.2, mid
        assert np.median(d[first][on]) > 0.4, mid
        dt, _, _ = diff(runs, mid, "temperature")
        assert dt[window(mid, "misalignment", (0.5, 1))].mean() > 0.3, mid


def test_stuck_sensor_repeats_one_value(runs: tuple[pd.DataFrame, ...]) -> None:
    w = window("compressor-001", "stuck", (0, 1))
    _, h, f = diff(runs, "compressor-001", "temperature")
    assert len(np.unique(f[w])) == 1 and len(np.unique(h[w])) > 10
    assert f[w][0] == h[w][0]  # the value at the onset
    for other in ("vibration", "pressure"):
        d, _, _ = diff(runs, "compressor-001", other)
        assert np.all(d[w] == 0)


def test_dropout_is_null_exactly_during_the_fault(runs: tuple[pd.DataFrame, ...]) -> None:
    w = window("motor-001", "dropout")
    _, h, f = diff(runs, "motor-001", "vibration")
    nan = np.flatnonzero(np.isnan(f))
    assert nan.tolist() == list(range(w.start, w.stop))
    assert not np.isnan(h).any()


def test_spikes_are_rare_single_samples(runs: tuple[pd.DataFrame, ...]) -> None:
    for mid, sensor, size, floor in (("compressor-001", "pressure", 0.99, 3.5), ("motor-002", "vibration", 2.99, -1)):
        w = window(mid, "spike")
        d, h, _ = diff(runs, mid, sensor)
        hit = np.abs(d[w]) > 0
        assert 0.003 < hit.mean() < 0.03, mid
        unclipped = hit & (h[w] > floor)  # a reading cannot go below 0: a downward pressure spike may be cut short
        assert unclipped.sum() > 10 and np.abs(d[w][unclipped]).min() >= size, mid
        assert (hit[1:] & hit[:-1]).sum() < 0.1 * hit.sum(), mid  # single samples, not runs


def test_drift_grows_linearly(runs: tuple[pd.DataFrame, ...]) -> None:
    d, _, _ = diff(runs, "compressor-002", "temperature")
    first, mid, last = (window("compressor-002", "drift", fr) for fr in ((0, 0.1), (0.45, 0.55), (0.9, 1)))
    a, b, c = np.abs(d[first].mean()), np.abs(d[mid].mean()), np.abs(d[last].mean())
    # severity 0.8 x 8 degC = 6.4 degC at the end, about half of it in the middle, little at the start
    assert a < 0.6 and 2.0 < b < 4.5 and 4.5 < c < 7.0
    assert np.sign(d[first].mean()) == np.sign(d[last].mean())
