"""The sensor-drift rule at rest (`pdm.detectors.rest`) on hand-made machines whose rest and running levels are
known: which sensors it can check, a bias caught on either side, a fault that only shows while running not taken
for drift, a machine that never stops never judged, the verdict independent of how readings are batched, and
stored rest levels that do not fit refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError

from pdm.detectors.rest import RestLevels, RestWatch, Spans

SETTLE, _, VOTES = Spans.at(1.0)  # the spans at 1 Hz, the rate of these tests

TEMPERATURE, VIBRATION, PRESSURE = range(3)


def machine(seed: int, hours: float = 20.0, stretch: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """(rows, running) of a pump at 1 Hz that runs and stops in 20-minute stretches: at rest vibration 0.1 mm/s and
    pressure 1.0 bar, running 2.1 mm/s and 4.0 bar; temperature 40 degC at rest, 50 running."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600) // stretch
    running = np.repeat(rng.random(n) < 0.6, stretch)
    noise = lambda s: rng.normal(0, s, running.size)  # noqa: E731
    rows = np.column_stack([40 + 10 * running + noise(1.0), 0.1 + 2.0 * running + noise(0.02),
                            1.0 + 3.0 * running + noise(0.02)])
    return rows, running


@pytest.fixture(scope="module")
def levels() -> RestLevels:
    rows, _ = machine(0)
    return RestLevels.fit([rows[:40_000], rows[40_000:]])  # two frames: the settle rule never spans a break


def test_activity_sensors_and_rest_levels_are_learned(levels: RestLevels) -> None:
    rows, running = machine(0)
    assert levels.activity == [False, True, True]  # temperature's cold rows are not the rest
    assert levels.checked == [False, True, True]  # and it has no stable rest level
    rest = rows[~running]
    for j in (VIBRATION, PRESSURE):  # the rest level brackets the rest readings (0.1 and 1.0, noise 0.02)
        lo, hi = levels.lo[j], levels.hi[j]
        assert lo is not None and hi is not None
        low, high = np.quantile(rest[:, j], [0.001, 0.999])
        assert low - 0.01 < lo < np.median(rest[:, j]) < hi < high + 0.01
        assert levels.margin[j] == pytest.approx(hi - lo)  # the spread (0.1) is above 2 % of the range (0.06)


@pytest.mark.parametrize(("sensor", "bias"), [(PRESSURE, 0.4), (PRESSURE, -0.4), (VIBRATION, 0.5)])
def test_a_bias_is_drift_of_that_sensor(levels: RestLevels, sensor: int, bias: float) -> None:
    rows, _ = machine(1)
    watch = RestWatch(levels)
    watch.update(rows)
    assert watch.drifting == []
    biased = rows.copy()
    biased[:, sensor] += bias
    watch.update(biased)
    assert watch.drifting == [sensor]
    watch.update(rows)  # the transmitter replaced: it clears
    assert watch.drifting == []


def test_a_fault_that_shows_only_while_running_is_not_drift(levels: RestLevels) -> None:
    rows, running = machine(2)
    rows[:, VIBRATION] += 1.5 * running  # imbalance
    rows[:, TEMPERATURE] += 15 * running  # overheating
    rows[:, PRESSURE] -= 1.0 * running  # a leak under pressure
    watch = RestWatch(levels)
    watch.update(rows)
    assert watch.drifting == []
    assert watch.judged(VIBRATION) and watch.judged(PRESSURE)  # it was looked at


def test_a_machine_that_never_stops_is_never_judged(levels: RestLevels) -> None:
    rows, running = machine(3)
    always = rows[running][:30_000]
    always[:, PRESSURE] += 0.4
    watch = RestWatch(levels)
    watch.update(always)
    assert watch.drifting == [] and not watch.judged(PRESSURE) and not watch.judged(VIBRATION)


def test_the_verdict_does_not_depend_on_the_batching(levels: RestLevels) -> None:
    rows, _ = machine(4, hours=10)
    rows[:, PRESSURE] += np.linspace(0, 0.6, len(rows))  # a bias growing from 0
    rng = np.random.default_rng(0)
    cuts = np.unique(np.r_[0, np.cumsum(rng.integers(1, 3 * SETTLE, size=len(rows) // SETTLE)), len(rows)])
    cuts = cuts[cuts <= len(rows)]
    watches = {"whole messages": RestWatch(levels), "random batches": RestWatch(levels),
               "one reading at a time": RestWatch(levels)}
    seen: dict[str, list[list[int]]] = {name: [] for name in watches}
    for a, b in itertools.pairwise(cuts):  # every watch reports at the same reading numbers
        watches["whole messages"].update(rows[a:b])
        mid = int(rng.integers(a, b + 1))
        watches["random batches"].update(rows[a:mid])
        watches["random batches"].update(rows[mid:b])
        for i in range(a, b):
            watches["one reading at a time"].update(rows[i : i + 1])
        for name, w in watches.items():
            seen[name].append(w.drifting)
    assert seen["whole messages"] == seen["random batches"] == seen["one reading at a time"]
    assert seen["whole messages"][0] == [] and seen["whole messages"][-1] == [PRESSURE]  # undecided, then drift
    assert len(rows) > VOTES


def test_a_crossing_inside_one_message_counts(levels: RestLevels) -> None:
    """The average reaches ON part-way through a message and falls back before its end: raised all the same, as
    reading by reading (hysteresis: it stays raised while the average is above OFF)."""
    rng = np.random.default_rng(1)
    n = 2 * SETTLE + 1500
    rest = np.column_stack([40 + rng.normal(0, 1, n), 0.1 + rng.normal(0, 0.02, n), 1.0 + rng.normal(0, 0.02, n)])
    rest[: SETTLE + 1390, PRESSURE] += 0.4  # biased for about 1,390 judged readings (ON takes about 1,381), mended
    whole, single = RestWatch(levels), RestWatch(levels)
    whole.update(rest)
    for row in rest:
        single.update(row[None])
    assert whole.drifting == single.drifting == [PRESSURE]


def test_an_assumed_drift_stays_until_the_evidence_clears_it(levels: RestLevels) -> None:
    """A drift alert restored after a restart: the new watch takes the sensor as drifting, keeps it while the bias
    is there, on either side, and clears it once the sensor reads its rest level again."""
    rows, _ = machine(7)
    for bias in (0.4, -0.4):
        watch = RestWatch(levels)
        watch.assume(PRESSURE)
        assert watch.drifting == [PRESSURE]
        biased = rows.copy()
        biased[:, PRESSURE] += bias
        watch.update(biased)
        assert watch.drifting == [PRESSURE]
        watch.update(rows)
        assert watch.drifting == []
    watch = RestWatch(levels)
    watch.assume(TEMPERATURE)  # not checked: nothing to assume
    assert watch.drifting == []


def test_rest_levels_that_do_not_fit_are_refused() -> None:
    ok = {"band_lo": [None, 0.0], "band_hi": [None, 0.3], "lo": [None, 0.1], "hi": [None, 0.2], "margin": [None, 0.1]}
    RestLevels(**ok)
    for bad in ({"lo": [None]}, {"hi": [None, 0.05]}, {"band_hi": [None, None]}, {"margin": [None, -1.0]},
                {"margin": [0.1, 0.1]}, {"lo": [None, float("nan")]}):
        with pytest.raises(ValidationError, match="rest levels"):
            RestLevels(**{**ok, **bad})


def test_the_calibration_summary_keeps_rest_levels_per_machine() -> None:
    from pdm.detectors.drift import CalibrationSummary

    a, _ = machine(5)
    b, _ = machine(6)
    scores = {"pump-a": [np.linspace(0, 1, 200)], "pump-b": [np.linspace(0, 1, 200)]}
    summary = CalibrationSummary.fit(scores, [a, b], machines=["pump-a", "pump-b"])
    assert sorted(summary.rest) == ["pump-a", "pump-b"] and summary.rest["pump-a"].checked == [False, True, True]
    again = CalibrationSummary.model_validate_json(summary.model_dump_json())
    assert again == summary
    assert CalibrationSummary.fit(scores, [a, b]).rest == {}  # frames without machines: no rest levels
    with pytest.raises(ValidationError, match=r"rest\.pump-a"):
        CalibrationSummary.model_validate({**summary.model_dump(), "longest_repeat": [1, 1]})


def test_the_spans_are_times_so_a_machine_sampled_every_10_s_is_judged() -> None:
    """The same pump read every 10 s (one reading in ten): with the spans counted in readings at 1 Hz its rests
    (2 minutes of readings) never settle, so nothing was checked; at its own period they are 5-minute spans again,
    its sensors are checked and a pressure bias is caught, while healthy readings raise nothing."""
    rows, _ = machine(0, hours=60.0)
    slow = rows[::10]
    assert RestLevels.fit([slow]).checked == [False, False, False]  # the spans of 1 Hz
    levels = RestLevels.fit([slow], period_s=10.0)
    assert levels.checked == [False, True, True] and levels.period_s == 10.0
    assert RestWatch(levels).bounds()[0][3] == 10.0
    healthy, _ = machine(1, hours=60.0)
    watch = RestWatch(levels)
    watch.update(healthy[::10])
    assert watch.drifting == []
    biased = healthy[::10].copy()
    biased[:, PRESSURE] += 0.4
    watch.update(biased)
    assert watch.drifting == [PRESSURE]


def test_rest_levels_saved_before_the_period_was_stored_count_at_1_hz(levels: RestLevels) -> None:
    saved = levels.model_dump()
    del saved["period_s"]
    old = RestLevels.model_validate(saved)
    assert old.period_s == 1.0 and old.spans == Spans(300, 300, 600)
    with pytest.raises(ValidationError):
        RestLevels.model_validate({**saved, "period_s": 0.0})


@pytest.mark.parametrize("batch", [600, 1])
def test_an_unsure_activity_sensor_does_not_make_a_rest(levels: RestLevels, batch: int) -> None:
    """Vibration stuck at its rest reading while the pump runs: taken at its word, the running pressure would be
    judged as a rest reading (and voted up, as drift); marked ``unsure`` it makes no rest, and pressure is not
    judged while it is, whether the readings come 600 or one at a time. Its own readings are still judged."""
    rows, running = machine(5, hours=6)
    stuck = rows.copy()
    stuck[:, VIBRATION] = 0.1
    unsure = np.array([False, True, False])
    trusting, careful = RestWatch(levels), RestWatch(levels)
    for i in range(0, len(rows), batch):
        trusting.update(stuck[i : i + batch])
        careful.update(stuck[i : i + batch], unsure)
    assert trusting.drifting == [PRESSURE]
    assert careful.drifting == [] and careful.evidence()[PRESSURE][2] == 0
    assert careful.evidence()[VIBRATION][2] > 0  # judged by the pressure's real rests
    assert running.mean() > 0.4
