"""The daemon's state directory at unit level (no broker): a machine restored from its checkpoint record goes on
exactly as the original (the same windows, the same alarm events at every cut point), the journal survives a torn
last line, a corrupt snapshot is set aside, deliveries are recorded; and the input bounds that need no broker
(the allow-list, a huge batch applied in chunks, the clock-jump rule, a restored alert that is not plausible)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pdm import contract
from pdm.contract.errors import FieldValueError
from pdm.daemon.admission import AllowList
from pdm.daemon.checkpoint import JOURNAL, SNAPSHOT, Checkpoint, machine_record, restore_machine
from pdm.daemon.episodes import LookBack, OpenAlert, step
from pdm.daemon.machines import MachineState
from pdm.daemon.models import Models, ModelSlot
from pdm.daemon.quality import hold_s
from pdm.daemon.settings import SettingsError
from pdm.detectors.alarm import AlarmRule, AlarmTracker
from tests.support.daemon import LIVE_START, MODEL, SENSORS, machine_arrays, models_dir, simulate


@pytest.fixture(scope="module")
def slot() -> ModelSlot:
    return Models(models_dir(), {}, MODEL, warm_up=False).slots[MODEL]


def message(machine: str, seq: int, ts: np.ndarray, values: np.ndarray) -> contract.Telemetry:
    cols = {s: values[:, j].tolist() for j, s in enumerate(SENSORS)}
    return contract.parse_telemetry(contract.encode_batch(machine, seq, ts.tolist(), cols), machine, SENSORS)


def pump(n: int) -> tuple[np.ndarray, np.ndarray]:
    frame, _ = simulate(4, n, LIVE_START, fault_rate_per_day=0.0, forced=[])
    return machine_arrays(frame, "pump-001")


def events(m: MachineState, scores: np.ndarray, start: float) -> list[tuple[str, str, float]]:
    out = []
    for i, score in enumerate(scores):
        ev = m.record_score(float(score), {"temperature": 1.0}, start=start + i - 15, end=start + i)
        if ev is not None:
            out.append((ev.kind, ev.alert.alert_id, ev.score))
    return out


def test_a_restored_machine_goes_on_exactly_as_the_original(slot: ModelSlot) -> None:
    ts, values = pump(400)
    values[50:60, 1] = np.nan  # missing values inside the kept readings are kept as they were
    rng = np.random.default_rng(3)
    for cut in (100, 233, 301):
        original = MachineState.create("pump-001", slot, "pump", keep_tail=True)
        original.apply(message("pump-001", 0, ts[:cut], values[:cut]))
        # the alarm rule's state at the cut: random scores around the threshold, some alerts raised and cleared
        scores = slot.threshold * rng.choice([0.2, 1.5], size=600, p=[0.45, 0.55])
        before = events(original, scores[:cut], ts[0])
        record = json.loads(json.dumps(machine_record(original)))  # what the journal holds
        copy = restore_machine("pump-001", record, slot, 86_400.0, 1)
        assert (copy.last_ts, copy.last_seq, copy.tracker.active, copy.scored) == (
            original.last_ts, original.last_seq, original.tracker.active, cut)
        assert (copy.open_alert is None) == (original.open_alert is None)
        a = original.apply(message("pump-001", 1, ts[cut:], values[cut:])).ready
        b = copy.apply(message("pump-001", 1, ts[cut:], values[cut:])).ready
        assert a is not None and b is not None
        np.testing.assert_allclose(b.windows, a.windows, atol=1e-6)
        assert b.end_ts.tolist() == a.end_ts.tolist()
        assert events(copy, scores[cut:], ts[cut]) == events(original, scores[cut:], ts[cut])
        assert before  # the cut really falls in a history with alerts
        redelivered = copy.apply(message("pump-001", 0, ts[:cut], values[:cut]))
        assert redelivered.ready is None and redelivered.readings == 0  # already scored: dropped


def test_with_a_stride_the_alarm_rule_keeps_its_spans_in_time_and_survives_a_restore(slot: ModelSlot) -> None:
    rule = slot.detector.alarm_rule  # the test model's: 30 of 60 windows raise, 60 quiet ones clear
    m = MachineState.create("pump-001", slot, "pump", stride=10, keep_tail=True)
    assert (m.tracker.rule.k, m.tracker.rule.n, m.tracker.rule.m) == (3, 6, 6) == \
        (-(-rule.k // 10), -(-rule.n // 10), -(-rule.m // 10))
    assert m.look is not None and m.look.recent.maxlen == 6
    # scored every 10th window, 3 of the last 6 over the threshold raise (30 windows' worth, as without a stride)
    got = events(m, slot.threshold * np.array([2.0, 0.1, 2.0, 0.1, 2.0]), LIVE_START)
    assert [kind for kind, _, _ in got] == ["raised"]
    restored = restore_machine("pump-001", json.loads(json.dumps(machine_record(m))), slot, 86_400.0, 10)
    assert restored.tracker.rule == m.tracker.rule and restored.tracker.active
    quiet = events(restored, slot.threshold * np.full(6, 0.1), LIVE_START + 5)
    assert [kind for kind, _, _ in quiet] == ["cleared"]  # 6 quiet scored windows: 60 windows' worth


def test_an_open_sensor_alert_survives_a_restore_and_is_cleared_with_its_own_id(slot: ModelSlot) -> None:
    hold = hold_s(slot.drift, slot.period_s)
    n = int(hold / slot.period_s) + 600
    ts, values = pump(n)
    dead = values.copy()
    dead[300:, SENSORS.index("pressure")] = np.nan  # a dead transmitter: 100 nulls (window 16) raise "missing"
    original = MachineState.create("pump-001", slot, "pump", keep_tail=True)
    original.apply(message("pump-001", 0, ts[:400], dead[:400]))
    [raised] = original.sensor_alerts("test")
    assert (raised.sensor, raised.problem, raised.event) == ("pressure", "missing", "raised")
    record = json.loads(json.dumps(machine_record(original)))
    assert record["sensors"] == {"pressure": [raised.alert_id, float(ts[399]), "missing"]}

    still_dead = restore_machine("pump-001", record, slot, 86_400.0, 1)
    still_dead.apply(message("pump-001", 1, ts[400:450], dead[400:450]))  # still nothing: not raised again
    assert still_dead.sensor_alerts("test") == []
    assert still_dead.open_sensors["pressure"][0] == raised.alert_id

    mended = restore_machine("pump-001", record, slot, 86_400.0, 1)
    events: list[tuple[float, str, str]] = []
    for i in range(400, n, 100):  # the sensor works again: the span after the restart shows no problem
        mended.apply(message("pump-001", i, ts[i : i + 100], values[i : i + 100]))
        events += [(float(mended.last_ts or 0), a.event, a.alert_id) for a in mended.sensor_alerts("test")]
    [(when, event, aid)] = events  # held open for the hold span, then cleared with the id it was raised with
    assert (event, aid) == ("cleared", raised.alert_id)
    assert ts[399] + hold <= when < ts[399] + hold + 100 * slot.period_s


def test_a_restored_drift_alert_stays_open_while_the_bias_does(slot: ModelSlot) -> None:
    """A pressure transmitter 0.5 bar high for a whole day: its drift alert, restored from the checkpoint, is taken
    as drifting by the new drift watch and stays open with its id (it used to clear once the new watch had judged
    600 readings, before its average could reach the raise level, and be raised again under a new id)."""
    frame, _ = simulate(4, 24 * 3600, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    values[:, SENSORS.index("pressure")] += 0.5
    m = MachineState.create("pump-001", slot, "pump", keep_tail=True)
    events: list[tuple[str, str]] = []
    restored_at = None
    for seq, i in enumerate(range(0, len(ts), 600)):
        m.apply(message("pump-001", seq, ts[i : i + 600], values[i : i + 600]))
        events += [(a.event, a.alert_id) for a in m.sensor_alerts("test")]
        if events and restored_at is None:
            m = restore_machine("pump-001", json.loads(json.dumps(machine_record(m))), slot, 86_400.0, 1)
            restored_at = i
    assert restored_at is not None and restored_at < len(ts) // 2
    assert [e for e, _ in events] == ["raised"] and "pressure" in m.open_sensors
    assert m.open_sensors["pressure"][0] == events[0][1]


def feed(tracker: AlarmTracker, look: LookBack, alert: OpenAlert | None, i: int, *, over: bool,
         out: list[tuple[str, float]], score: float | None = None) -> OpenAlert | None:
    """Window ``i`` through the alarm rule (`step`) and the mirrored look-back, its event appended to ``out``."""
    score = (2.0 if over else 0.5) if score is None else score
    alert, ev = step(tracker, alert, "m", score=score, shares={"x": 1.0}, start=i - 1.0,
                     end=float(LIVE_START + i), threshold=1.0)
    look.update(over, ev is not None and ev.kind == "cleared", score < tracker.rule.clear_ratio)
    if ev is not None:
        out.append((ev.kind, ev.ts))
    return alert


@pytest.mark.parametrize("clear_ratio", [1.0, 0.6])
def test_the_mirrored_look_back_rebuilds_the_alarm_state_at_every_cut(clear_ratio: float) -> None:
    rule = AlarmRule(k=3, n=5, m=4, clear_ratio=clear_ratio)
    rng = np.random.default_rng(0)
    for trial in range(20):
        scores = rng.choice([0.3, 0.8, 2.0], size=80, p=[0.4, 0.3, 0.3]).tolist()  # quiet, in between, over
        overs = [x > 1.0 for x in scores]
        for cut in range(len(overs)):
            tracker, look, alert = rule.tracker(), LookBack(rule.n), None
            for i in range(cut):
                alert = feed(tracker, look, alert, i, over=overs[i], out=[], score=scores[i])
            rebuilt = rule.tracker()
            rebuilt.active = tracker.active
            rebuilt = look.rebuild(rebuilt)
            copy_look, copy_alert = LookBack(rule.n), alert
            copy_look.recent.extend(look.recent)
            copy_look.under = look.under
            rest: list[tuple[str, float]] = []
            rest_copy: list[tuple[str, float]] = []
            for i in range(cut, len(overs)):
                alert = feed(tracker, look, alert, i, over=overs[i], out=rest, score=scores[i])
                copy_alert = feed(rebuilt, copy_look, copy_alert, i, over=overs[i], out=rest_copy, score=scores[i])
            assert rest_copy == rest, (trial, cut)


def test_the_journal_survives_a_torn_line_and_a_corrupt_snapshot_is_set_aside(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path)
    cp.load()
    cp.write({"a": {"x": 1}}, [], [("pdm/v1/alerts/a", b'{"event":"raised"}')])
    cp.write({"b": {"x": 2}}, [], [])
    cp.write({"a": {"x": 3}}, ["b"], [("pdm/v1/alerts/a", b'{"event":"cleared"}')])
    cp.close()
    with (tmp_path / JOURNAL).open("ab") as f:
        f.write(b'{"c": 4, "m": {"a": {"x": 9')  # the kill cut this write short
    loaded = Checkpoint(tmp_path).load()
    assert loaded.records == {"a": {"x": 3}} and loaded.commit == 3
    assert list(loaded.undelivered) == [1, 3]
    cp = Checkpoint(tmp_path)
    cp.load()

    class Delivered:
        def is_published(self) -> bool:
            return True

    cp.sent(1, [Delivered()])  # type: ignore[list-item]
    cp.confirm()
    cp.compact(iter([("a", {"x": 3}), ("c", {"x": 5})]))
    cp.write({"c": {"x": 6}}, [], [])
    cp.close()
    again = Checkpoint(tmp_path).load()
    assert again.records == {"a": {"x": 3}, "c": {"x": 6}} and list(again.undelivered) == [3] and again.commit == 4
    (tmp_path / SNAPSHOT).write_text("{not json")
    (tmp_path / JOURNAL).write_text("")
    assert Checkpoint(tmp_path).load().records == {}
    assert (tmp_path / (SNAPSHOT + ".corrupt")).exists()


def test_a_record_that_does_not_fit_is_refused(slot: ModelSlot) -> None:
    ts, values = pump(50)
    m = MachineState.create("pump-001", slot, None, keep_tail=True)
    m.apply(message("pump-001", 0, ts, values))
    good = machine_record(m)
    with pytest.raises(FieldValueError, match="features"):
        restore_machine("pump-001", {**good, "f": ["temperature"]}, slot, 86_400.0, 1)
    with pytest.raises(FieldValueError, match="alert_id"):
        restore_machine("pump-001", {**good, "alert": {"id": "pump-001-99999999999999", "start": 0.0, "end": 1.0,
                                                       "since": LIVE_START, "peak": 1.0}}, slot, 86_400.0, 1)
    with pytest.raises(FieldValueError, match="look-back"):
        restore_machine("pump-001", {**good, "recent": "01x"}, slot, 86_400.0, 1)
    raised = float(ts[-1])
    for sensors in ({"humidity": ["pump-001-humidity-1", raised, "stuck"]},  # not one of the model's sensors
                    {"pressure": ["pump-001-pressure-1", raised, "stuck"]},  # an id the machine and time do not give
                    {"pressure": [f"pump-001-pressure-{round(raised * 1000)}", raised, "melted"]},  # no such problem
                    {"pressure": "pump-001-pressure"}):
        with pytest.raises(FieldValueError, match="sensors"):
            restore_machine("pump-001", {**good, "sensors": sensors}, slot, 86_400.0, 1)
    with pytest.raises(FieldValueError, match="alert_id"):
        OpenAlert.untrusted("pump-001", "pump-001-1000", LIVE_START, None, 60.0)  # 1970


def test_the_allow_list_reads_patterns_and_a_file(tmp_path: Path) -> None:
    listed = tmp_path / "machines.txt"
    listed.write_text("# the plant's machines\npump-001\ncompressor-0?  # two digits\n\n")
    allow = AllowList("motor-*", listed)
    assert [allow(m) for m in ("pump-001", "pump-002", "compressor-07", "compressor-007", "motor-x")] == [
        True, False, True, False, True]
    with pytest.raises(SettingsError, match="allow-machines-file"):
        AllowList(None, tmp_path / "missing.txt")


def test_a_huge_batch_is_applied_in_chunks_that_fit_the_ring(slot: ModelSlot) -> None:
    ts, values = pump(3000)
    chunked = MachineState.create("pump-001", slot, None)
    shuffled = np.random.default_rng(0).permutation(3000)
    got = chunked.apply(message("pump-001", 0, ts[shuffled], values[shuffled])).ready
    whole = slot.detector.stream("pump-001").append(ts, values)  # the stream alone grows its ring for this
    assert got is not None and len(chunked.stream.ring.ts) == 256
    np.testing.assert_allclose(got.windows, whole.windows, atol=1e-6)
    assert got.end_ts.tolist() == whole.end_ts.tolist()


def test_the_clock_jump_rule_ignores_redeliveries_and_old_seqs(slot: ModelSlot) -> None:
    ts, values = pump(200)
    m = MachineState.create("pump-001", slot, None)
    m.apply(message("pump-001", 10, ts[100:], values[100:]))
    for _ in range(3):  # far behind but redelivered, or with an old seq: never a clock jump
        assert not m.apply(message("pump-001", 11, ts[:50], values[:50]), redelivered=True).clock_restart
        assert not m.apply(message("pump-001", 5, ts[:50], values[:50])).clock_restart
    assert m.last_ts == ts[-1]
    assert not m.apply(message("pump-001", 12, ts[:10], values[:10])).clock_restart  # 10 < a window
    jumped = m.apply(message("pump-001", 13, ts[10:30], values[10:30]))
    assert jumped.clock_restart and jumped.readings == 20 and m.last_ts == ts[29]


def biased_pump_day() -> tuple[np.ndarray, np.ndarray]:
    frame, _ = simulate(4, 24 * 3600, LIVE_START, fault_rate_per_day=0.0, forced=[])
    ts, values = machine_arrays(frame, "pump-001")
    values[:, SENSORS.index("pressure")] += 0.5
    return ts, values


def raised_at(m: MachineState, ts: np.ndarray, values: np.ndarray, first: int) -> int | None:
    """The index of the 600-reading message, from message ``first`` on, after which a drift alert is raised."""
    for k in range(first, len(ts) // 600 + 1):
        m.apply(message("pump-001", k, ts[k * 600 : (k + 1) * 600], values[k * 600 : (k + 1) * 600]))
        if any(a.event == "raised" and a.problem == "drift" for a in m.sensor_alerts("test")):
            return k
    return None


def test_the_drift_evidence_survives_a_restore(slot: ModelSlot) -> None:
    """A pressure transmitter 0.5 bar high: cut the day where the drift watch's average has reached 0.7 (0.9
    raises). The machine restored from the record raises the drift alert where the uninterrupted one does (within
    the settling lost at the restart), and earlier than one restored without the evidence (a record of before it
    was kept), which must collect its votes again (measured: uninterrupted and resumed at the same message, 20
    minutes later without the evidence)."""
    ts, values = biased_pump_day()
    pressure = SENSORS.index("pressure")
    original = MachineState.create("pump-001", slot, "pump", keep_tail=True)
    assert original.quality.rest is not None and pressure in original.quality.rest.checked
    cut = None
    for k in range(len(ts) // 600):
        original.apply(message("pump-001", k, ts[k * 600 : (k + 1) * 600], values[k * 600 : (k + 1) * 600]))
        assert not original.sensor_alerts("test"), "raised before the cut: the test needs a cut with half the votes"
        if max(original.quality.rest.evidence()[pressure][:2]) >= 0.7:
            cut = k
            break
    assert cut is not None
    record = json.loads(json.dumps(machine_record(original)))
    assert max(record["rest"]["e"]["pressure"][:2]) >= 0.7
    resumed = restore_machine("pump-001", record, slot, 86_400.0, 1)
    assert resumed.quality.rest is not None
    assert resumed.quality.rest.evidence() == original.quality.rest.evidence()
    afresh = restore_machine("pump-001", {**record, "rest": None}, slot, 86_400.0, 1)
    uninterrupted = raised_at(original, ts, values, cut + 1)
    with_evidence = raised_at(resumed, ts, values, cut + 1)
    without = raised_at(afresh, ts, values, cut + 1)
    assert uninterrupted is not None and with_evidence is not None
    assert with_evidence <= uninterrupted + 1
    assert without is None or without > with_evidence


def test_drift_evidence_that_does_not_fit_is_refused_or_dropped(slot: ModelSlot) -> None:
    ts, values = biased_pump_day()
    m = MachineState.create("pump-001", slot, "pump", keep_tail=True)
    for k in range(12):
        m.apply(message("pump-001", k, ts[k * 600 : (k + 1) * 600], values[k * 600 : (k + 1) * 600]))
    good = json.loads(json.dumps(machine_record(m)))
    bounds, evidence = good["rest"]["b"], good["rest"]["e"]
    assert evidence and all(len(item) == 4 for item in evidence.values())
    sensor = next(iter(evidence))
    for bad in ({"b": bounds, "e": {sensor: [1.5, 0.0, 10, False]}},  # an average is a share
                {"b": bounds, "e": {sensor: [0.5, 0.0, -1, False]}},  # a count
                {"b": bounds, "e": {"humidity": [0.5, 0.0, 10, False]}},  # not one of the model's sensors
                {"b": bounds, "e": {sensor: [0.5, 0.0, 10]}},
                {"b": bounds, "e": [0.5, 0.0, 10, False]}):
        with pytest.raises(FieldValueError, match="rest"):
            restore_machine("pump-001", {**good, "rest": bad}, slot, 86_400.0, 1)
    other = [[j, lo - 1.0, hi, period] for j, lo, hi, period in bounds]  # against another version's rest levels
    restored = restore_machine("pump-001", {**good, "rest": {"b": other, "e": {sensor: [0.8, 0.0, 900, True]}}},
                               slot, 86_400.0, 1)
    assert restored.quality.rest is not None
    assert all(e == (0.0, 0.0, 0, False) for e in restored.quality.rest.evidence().values())
