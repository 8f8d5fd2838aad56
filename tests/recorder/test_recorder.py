"""Recorder rules without a broker: write-ahead segments and crash recovery, atomic compaction, date partitions,
retention, rejection of malformed messages, the reader's filters, exclusion periods, and settings precedence.

Messages are fed to the recorder's handler exactly as the network thread would queue them."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pdm import contract
from pdm.recorder import (
    RecordSettings,
    SettingsError,
    exclusion_periods,
    load_settings,
    mark_excluded,
    read_table,
    summarize,
)
from pdm.recorder.compact import compact_segment
from pdm.recorder.link import RecorderMessage
from pdm.recorder.reader import partition_files
from pdm.recorder.retention import apply_retention
from pdm.recorder.schema import table_specs
from pdm.recorder.segments import list_segments, read_segment
from pdm.recorder.service import Recorder

DAY = 1_795_392_000.0  # 2026-11-23T00:00:00Z
SENSORS = ["temperature", "vibration", "pressure"]
TOPICS = contract.Topics()


def recorder(root: Path, **kw: object) -> Recorder:
    """A recorder that is never connected (its handler and journal are driven by the test). The fixtures' data is
    days old: the clock-skew rule is off unless a test sets it."""
    kw = {"max_clock_skew": 0, **kw}
    return Recorder(RecordSettings(root=root, broker="mqtt://127.0.0.1:1", instance="unit", **kw))  # type: ignore[arg-type]


def feed(rec: Recorder, topic: str, payload: bytes, retain: bool = False) -> None:
    rec.handler.handle(RecorderMessage(topic, payload, 1, 1, retain, time.time()))


def batch(machine: str, seq: int, ts: list[float], values: np.ndarray, machine_type: str | None = "pump") -> bytes:
    return contract.encode_batch(machine, seq, ts, {s: values[:, j].tolist() for j, s in enumerate(SENSORS)},
                                 machine_type)


def readings(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal([60.0, 2.0, 4.0], [1.0, 0.1, 0.05], size=(n, 3))
    v[1 % n, 1] = np.nan  # a dropout: recorded as null, read back as NaN
    return v


def finish(rec: Recorder) -> None:
    """What a clean stop does to the files: flush, close the segments, compact them."""
    rec.journal.close()
    rec.recover()


def test_flushed_rows_survive_a_crash_and_a_torn_tail_is_dropped(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    sent = {m: readings(10, i) for i, m in enumerate(["m1", "m2"])}
    ts = [DAY + i for i in range(10)]
    for m, v in sent.items():
        feed(rec, TOPICS.telemetry(m), batch(m, 0, ts, v))
    rec.journal.flush()  # fsynced: survives what follows
    feed(rec, TOPICS.telemetry("m3"), batch("m3", 0, ts, readings(10, 3)))  # buffered only: lost in the crash
    (segment,) = list_segments(rec.wal_dir / "telemetry")
    with open(segment, "ab") as f:  # the crash happens in the middle of writing the next batch
        f.write(b"\xff\xff\xff\xff\x78\x00\x00\x00\x10\x00")
    assert read_segment(segment)[1] is True

    again = recorder(tmp_path)  # the restart
    assert again.recover() == 1
    assert again.counters.get("segments_torn") == 1
    assert list_segments(rec.wal_dir / "telemetry") == []
    got = read_table(tmp_path, "telemetry")
    assert sorted(got["machine_id"].unique()) == ["m1", "m2"]
    for m, v in sent.items():
        rows = got[got["machine_id"] == m]
        assert rows["ts"].tolist() == ts
        np.testing.assert_array_equal(rows[SENSORS].to_numpy(), v)  # NaN where null, bit-exact elsewhere


def test_compaction_is_atomic_and_idempotent(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    feed(rec, TOPICS.telemetry("m1"), batch("m1", 0, [DAY + i for i in range(5)], readings(5, 0)))
    rec.journal.close()
    (segment,) = list_segments(rec.wal_dir / "telemetry")
    copy = tmp_path / "copy.arrows"
    shutil.copy(segment, copy)
    spec = table_specs(SENSORS)["telemetry"]
    first = compact_segment(segment, tmp_path, spec)
    shutil.copy(copy, segment)  # a crash after the rename but before the segment's removal
    second = compact_segment(segment, tmp_path, spec)
    assert first.files == second.files and len(first.files) == 1
    assert len(read_table(tmp_path, "telemetry", dedupe=False)) == 5  # replaced, not duplicated
    assert not list(tmp_path.rglob("*.tmp"))


def test_rows_are_partitioned_by_utc_date_and_ranges_prune_partitions(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    ts = [DAY - 2.0, DAY - 0.5, DAY, DAY + 1.0]  # 2026-11-22 23:59:58 .. 2026-11-23 00:00:01
    feed(rec, TOPICS.telemetry("m1"), batch("m1", 0, ts, readings(4, 0)))
    finish(rec)
    dirs = sorted(p.name for p in (tmp_path / "telemetry").iterdir())
    assert dirs == ["date=2026-11-22", "date=2026-11-23"]
    assert pq.read_table(next((tmp_path / "telemetry" / "date=2026-11-22").glob("*.parquet")))["ts"].to_pylist() \
        == ts[:2]
    assert len(partition_files(tmp_path, "telemetry", DAY, None)) == 1
    assert read_table(tmp_path, "telemetry", start="2026-11-23")["ts"].tolist() == ts[2:]
    assert read_table(tmp_path, "telemetry", end=DAY)["ts"].tolist() == ts[:2]  # end is exclusive


def _partition(root: Path, table: str, date: str, size: int) -> Path:
    d = root / table / f"date={date}"
    d.mkdir(parents=True)
    (d / "part-x.parquet").write_bytes(bytes([len(date)]) * size)
    return d


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_retention_removes_the_oldest_partitions_only(tmp_path: Path) -> None:
    dates = ["2026-11-01", "2026-11-10", "2026-11-20", "2026-11-22", "2026-11-23", "2026-12-01"]
    for date in dates:
        for table in ("telemetry", "alerts"):
            _partition(tmp_path, table, date, 1000)
    other = tmp_path / "telemetry" / "notes.txt"
    other.write_text("not a partition")
    foreign = _partition(tmp_path, "not_a_table", "2020-01-01", 10)
    kept_before = {p: _digest(p) for p in tmp_path.rglob("date=2026-11-2*/*.parquet")}

    removed = apply_retention(tmp_path, days=5, today=dt.date(2026, 11, 23))
    assert sorted({p.name for p in removed}) == ["date=2026-11-01", "date=2026-11-10"]
    left = sorted({p.name for p in (tmp_path / "telemetry").iterdir() if p.is_dir()})
    assert left == ["date=2026-11-20", "date=2026-11-22", "date=2026-11-23", "date=2026-12-01"]  # future kept

    # a cap of 5 kB (4 dates x 2 tables x 1 kB = 8 kB): the oldest dates go until it fits
    removed = apply_retention(tmp_path, max_bytes=5000)
    assert sorted({p.name for p in removed}) == ["date=2026-11-20", "date=2026-11-22"]
    removed = apply_retention(tmp_path, max_bytes=10)  # the newest date is always kept
    assert sorted({p.name for p in removed}) == ["date=2026-11-23"]
    assert sorted(p.name for p in (tmp_path / "alerts").iterdir()) == ["date=2026-12-01"]
    assert other.read_text() == "not a partition" and foreign.is_dir()
    for p, digest in kept_before.items():
        if p.exists():
            assert _digest(p) == digest
    assert not [p for p in tmp_path.rglob(".removed-*")]


def test_malformed_messages_are_counted_by_reason_and_not_recorded(tmp_path: Path) -> None:
    rec = recorder(tmp_path, max_payload_bytes=4096)
    good = batch("m1", 0, [DAY, DAY + 1], readings(2, 0))
    feed(rec, TOPICS.telemetry("m1"), good)
    bad = [
        (TOPICS.telemetry("m1"), b"{not json", "not_json"),
        (TOPICS.telemetry("m1"), b'{"schema": 2, "machine_id": "m1", "ts": 1.0}', "schema"),
        (TOPICS.telemetry("m1"), b'{"machine_id": "m1", "ts": 5.0, "temperature": 1, "vibration": 2}',
         "missing_field"),
        (TOPICS.telemetry("m1"), b'{"machine_id": "m1", "ts": 6.0, "temperature": "hot", "vibration": 2, '
         b'"pressure": 3}', "bad_field"),
        (TOPICS.telemetry("m2"), batch("m1", 1, [DAY + 2], readings(2, 0)[:1]), "machine_mismatch"),
        ("pdm/v1/telemetry/bad id!", good, "bad_topic"),
        (TOPICS.telemetry("m1"), b"{" + b" " * 5000 + b"}", "oversized"),
        (TOPICS.alerts("m1"), b'{"schema": 1, "machine_id": "m1"}', "missing_field"),
    ]
    for topic, payload, _ in bad:
        feed(rec, topic, payload)
    feed(rec, TOPICS.telemetry("m1"), contract.encode_reading("m1", DAY + 9, {s: 1.0 for s in SENSORS})[:-1]
         + b',"humidity":40}')  # an extra field: recorded, counted, never a rejection
    finish(rec)
    assert rec.counters.group("rejected") == {"not_json": 1, "schema": 1, "missing_field": 2, "bad_field": 1,
                                              "machine_mismatch": 1, "bad_topic": 1, "oversized": 1}
    assert rec.counters.get("extra_fields") == 1
    tel = read_table(tmp_path, "telemetry")
    assert tel["ts"].tolist() == [DAY, DAY + 1, DAY + 9] and "humidity" not in tel.columns
    assert read_table(tmp_path, "alerts").empty
    rejected = read_table(tmp_path, "rejected")
    assert sorted(rejected["reason"]) == sorted(r for _, _, r in bad)
    assert rejected["payload_excerpt"].str.len().max() <= contract.EXCERPT_BYTES


def test_state_heartbeats_are_recorded_once_and_a_cleared_maintenance_is_a_row(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    for ts in (DAY + 60, DAY + 90, DAY + 120):  # the same state re-published as a heartbeat
        feed(rec, TOPICS.state("m1"), contract.State(machine_id="m1", state="normal", since=DAY, instance="scorer-0",
                                                     ts=ts).encode(), retain=True)
    feed(rec, TOPICS.maintenance("m1"), contract.Maintenance(machine_id="m1", from_=DAY, until=DAY + 60,
                                                             reason="swap", by="op").encode(), retain=True)
    feed(rec, TOPICS.maintenance("m1"), b"", retain=True)
    finish(rec)
    assert len(read_table(tmp_path, "states")) == 1 and rec.counters.get("states_unchanged") == 2
    m = read_table(tmp_path, "maintenance")
    assert m["cleared"].tolist() == [False, True] and m["from_ts"].iloc[0] == DAY


def test_reader_filters_by_machine_type_and_time_and_removes_redelivered_copies(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    ts = [DAY + i for i in range(6)]
    feed(rec, TOPICS.telemetry("p1"), batch("p1", 0, ts[:3], readings(3, 1), "pump"))
    feed(rec, TOPICS.telemetry("p1"), batch("p1", 0, ts[:3], readings(3, 1), "pump"))  # redelivered after a crash
    feed(rec, TOPICS.telemetry("p1"), contract.encode_reading("p1", ts[3], dict(zip(SENSORS, [1.0, 2.0, 3.0],
                                                                                    strict=True))))
    feed(rec, TOPICS.telemetry("c1"), batch("c1", 0, ts, readings(6, 2), "compressor"))
    finish(rec)
    feed(rec, TOPICS.telemetry("c1"), batch("c1", 1, [DAY + 10], readings(1, 3), "compressor"))
    rec.journal.flush()  # in a segment, not yet Parquet

    assert len(read_table(tmp_path, "telemetry", dedupe=False)) == 3 + 3 + 1 + 6
    pumps = read_table(tmp_path, "telemetry", machine_type="pump")
    assert pumps["machine_id"].unique().tolist() == ["p1"] and pumps["ts"].tolist() == ts[:4]  # the single reading
    assert read_table(tmp_path, "telemetry", DAY + 2, DAY + 4, machines=["c1"])["ts"].tolist() == ts[2:4]
    assert read_table(tmp_path, "telemetry", machines=["c1"])["ts"].max() == ts[-1]
    assert read_table(tmp_path, "telemetry", machines=["c1"], include_open=True)["ts"].max() == DAY + 10
    assert read_table(tmp_path, "telemetry", machines=["nobody"]).empty


def _alert(machine: str, event: str, ts: float, window_start: float, window_end: float) -> bytes:
    return contract.Alert(alert_id=contract.alert_id(machine, window_end), machine_id=machine, event=event,  # type: ignore[arg-type]
                          ts=ts, window_start=window_start, window_end=window_end, score=2.0, threshold=1.0,
                          severity="critical", contributions={"temperature": 1.0},
                          model=contract.ModelRef(name="m", version="1"), instance="scorer-0").encode()


def test_exclusion_periods_cover_alerts_states_maintenance_and_faults(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    ts = [DAY + 10.0 * i for i in range(131)]  # 0 .. 1300 s
    for m in ("m1", "m2"):
        feed(rec, TOPICS.telemetry(m), batch(m, 0, ts, readings(len(ts), 0)))
    aid = contract.alert_id("m1", DAY + 500)
    for since, state in ((0, "warming_up"), (100, "normal"), (500, "alert"), (800, "normal"), (1000, "stale"),
                         (1200, "normal")):
        feed(rec, TOPICS.state("m1"), contract.State(machine_id="m1", state=state, since=DAY + since,  # type: ignore[arg-type]
                                                     alert_id=aid if state == "alert" else None,
                                                     instance="scorer-0", ts=time.time()).encode())
    feed(rec, TOPICS.alerts("m1"), _alert("m1", "raised", DAY + 500, DAY + 450, DAY + 500))
    feed(rec, TOPICS.alerts("m1"), _alert("m1", "cleared", DAY + 800, DAY + 450, DAY + 500))
    feed(rec, TOPICS.maintenance("m2"), contract.Maintenance(machine_id="m2", from_=DAY + 300, until=DAY + 400,
                                                             reason="r", by="b").encode())
    for event, at in (("start", 600), ("end", 700)):
        feed(rec, TOPICS.truth("m2"), contract.TruthEvent(machine_id="m2", ts=DAY + at, event=event, fault="f",  # type: ignore[arg-type]
                                                          kind="machine", fault_id="m2-1").encode())
        feed(rec, TOPICS.truth("m2"), contract.TruthEvent(machine_id="m2", ts=DAY + at + 300, event=event,  # type: ignore[arg-type]
                                                          fault="stuck", kind="sensor", sensor="temperature",
                                                          fault_id="m2-2").encode())
    finish(rec)

    tel = read_table(tmp_path, "telemetry")
    periods = exclusion_periods(tmp_path, DAY, DAY + 1310, alert_margin_s=10.0)
    got = mark_excluded(tel, periods)
    expected = []
    for m, t in zip(tel["machine_id"], tel["ts"] - DAY, strict=True):
        if m == "m1":
            expected.append("warming_up" if t < 100 else "alert" if 440 <= t < 810 else
                            "stale" if 1000 <= t < 1200 else None)
        else:
            expected.append("maintenance" if 300 <= t < 400 else "fault" if 600 <= t < 700 else
                            "sensor_fault" if 900 <= t < 1000 else None)
    assert got.tolist() == expected
    assert summarize(got) == {"kept": 262 - 10 - 37 - 20 - 10 - 10 - 10, "fault": 10, "sensor_fault": 10,
                              "alert": 37, "maintenance": 10, "stale": 20, "warming_up": 10}


def test_settings_precedence_flag_env_shared_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pdm.toml"
    config.write_text('[serve]\nbroker = "mqtt://file-serve:1"\nclient_id = "pdm-scorer"\nstride = 2\n'
                      '[record]\nroot = "/data/rec"\nflush_interval = 2.5\nretention_bytes = "1GiB"\n')
    monkeypatch.delenv("PDM_RECORD_BROKER", raising=False)
    s = load_settings({}, config)
    assert (s.broker, s.client_id, s.root, s.flush_interval, s.retention_bytes) == (
        "mqtt://file-serve:1", "pdm-recorder", Path("/data/rec"), 2.5, 1024**3)
    monkeypatch.setenv("PDM_BROKER", "mqtt://shared-env:1")
    monkeypatch.setenv("PDM_CLIENT_ID", "pdm-scorer")  # the daemon's: never the recorder's
    monkeypatch.setenv("PDM_RECORD_FLUSH_INTERVAL", "0.5")
    s = load_settings({}, config)
    assert (s.broker, s.client_id, s.flush_interval) == ("mqtt://shared-env:1", "pdm-recorder", 0.5)
    monkeypatch.setenv("PDM_RECORD_BROKER", "mqtt://record-env:1")
    assert load_settings({}, config).broker == "mqtt://record-env:1"
    assert load_settings({"broker": "mqtt://flag:1", "flush_interval": "3"}, config).flush_interval == 3.0
    with pytest.raises(SettingsError, match="--root"):
        load_settings({})
    with pytest.raises(SettingsError, match="--sensors"):
        load_settings({"root": "x", "sensors": "ts,temperature"})
    with pytest.raises(SettingsError, match="--tables"):
        load_settings({"root": "x", "tables": "telemetry,nope"})
    secret = tmp_path / "secret.toml"
    secret.write_text('[record]\nroot = "x"\nmqtt_password = "p"\n')
    with pytest.raises(SettingsError, match="password"):
        load_settings({}, secret)


def test_settings_for_a_recorder_inside_serve_share_the_connection_not_the_session(tmp_path: Path) -> None:
    from pdm.daemon.settings import ServeSettings
    from pdm.recorder import for_serve

    secret = tmp_path / "password"
    secret.write_text("pw\n")
    serve = ServeSettings(broker="mqtt://broker.example:1884", username="u", shard="1/4", prefix="plant/v1",
                          password_file=secret)
    s = for_serve(serve, tmp_path, flush_interval=0.5)
    assert (s.broker, s.username, s.password(), s.prefix, s.shard) == ("mqtt://broker.example:1884", "u", "pw",
                                                                        "plant/v1", "1/4")
    assert (s.effective_client_id, s.effective_instance) == ("pdm-recorder-1of4", "recorder-1")
    assert serve.effective_client_id != s.effective_client_id and s.flush_interval == 0.5
