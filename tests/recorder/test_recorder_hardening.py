"""The recorder against untrusted time and a full disk (issue 14), with real files: partitions only from plausible
times near the receive time (rejections counted by reason, never written), invalid ``date=`` directories
quarantined rather than read or deleted, retention that never removes today's data before impossible dates,
leftover unreadable segments and undatable rows quarantined and counted, and stored strings capped.

Messages are fed to the handler exactly as the network thread would queue them."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pdm import contract
from pdm.recorder import RecordSettings, SettingsError, available_dates, load_settings, read_table
from pdm.recorder.link import RecorderMessage
from pdm.recorder.retention import apply_retention
from pdm.recorder.schema import QUARANTINE_DIR, table_specs
from pdm.recorder.segments import Segment, list_segments
from pdm.recorder.service import Recorder

SENSORS = ["temperature", "vibration", "pressure"]
TOPICS = contract.Topics()
DAY_S = 86_400.0


def recorder(root: Path, **kw: Any) -> Recorder:
    return Recorder(RecordSettings(root=root, broker="mqtt://127.0.0.1:1", instance="unit", **kw))


def feed(rec: Recorder, topic: str, payload: bytes, at: float) -> None:
    rec.handler.handle(RecorderMessage(topic, payload, 1, 1, False, at))


def finish(rec: Recorder) -> None:
    rec.journal.close()
    rec.recover()


def utc_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def reading(machine: str, ts: Any) -> bytes:
    return json.dumps({"machine_id": machine, "ts": ts, "temperature": 60.0, "vibration": 2.0,
                       "pressure": 4.0}).encode()


def date_dirs(root: Path) -> set[str]:
    return {p.name for p in root.glob("*/date=*")}


def test_partitions_come_from_plausible_times_near_the_receive_time(tmp_path: Path) -> None:
    rec = recorder(tmp_path, max_clock_skew="1d")
    now = time.time()
    good = now - 10.0
    telemetry = [("m-ok", good, None), ("m-ahead", now + 2 * DAY_S, "clock_skew"),
                 ("m-behind", now - 2 * DAY_S, "clock_skew"), ("m-zero", 0, "bad_timestamp"),
                 ("m-ms", now * 1000, "bad_timestamp"), ("m-9999", 253_402_214_400.0, "bad_timestamp"),
                 ("m-huge", 1e300, "bad_timestamp")]
    for machine, ts, _ in telemetry:
        feed(rec, TOPICS.telemetry(machine), reading(machine, ts), now)
    long_ago = now - 30 * DAY_S
    planned = now + 30 * DAY_S
    feed(rec, TOPICS.state("m-ok"), contract.State(machine_id="m-ok", state="normal", since=long_ago,
                                                   instance="scorer-0", ts=now).encode(), now)  # a long normal run
    feed(rec, TOPICS.state("m-2"), contract.State(machine_id="m-2", state="normal", since=now + 2 * DAY_S,
                                                  instance="scorer-0", ts=now).encode(), now)
    feed(rec, TOPICS.maintenance("m-ok"), contract.Maintenance(machine_id="m-ok", from_=planned, until=planned + 3600,
                                                               reason="overhaul", by="op").encode(), now)
    feed(rec, TOPICS.maintenance("m-2"), contract.Maintenance(machine_id="m-2", from_=0.0, until=60.0, reason="r",
                                                              by="op").encode(), now)
    feed(rec, TOPICS.truth("m-ok"), contract.TruthEvent(machine_id="m-ok", ts=now + 3 * DAY_S, event="start",
                                                        fault="leak", kind="machine", fault_id="f1").encode(), now)
    feed(rec, TOPICS.scores("m-ok"), json.dumps({"machine_id": "m-ok", "ts": now - 5 * DAY_S,
                                                 "score": 1.0}).encode(), now)
    finish(rec)

    assert rec.counters.group("rejected") == {"clock_skew": 2 + 1 + 1 + 1, "bad_timestamp": 4 + 1}
    assert date_dirs(tmp_path) <= {f"date={utc_date(t)}" for t in (good, now, long_ago, planned)}
    assert read_table(tmp_path, "telemetry")["machine_id"].tolist() == ["m-ok"]
    assert read_table(tmp_path, "states")["since"].tolist() == [long_ago]
    assert read_table(tmp_path, "maintenance")["from_ts"].tolist() == [planned]
    assert read_table(tmp_path, "truth").empty and read_table(tmp_path, "scores").empty
    rejected = read_table(tmp_path, "rejected")
    assert sorted(rejected["reason"]) == ["bad_timestamp"] * 5 + ["clock_skew"] * 5
    assert rejected["detail"].str.contains("receive time|from 2000-01-01").all()


def test_without_the_clock_skew_rule_implausible_times_are_still_refused(tmp_path: Path) -> None:
    rec = recorder(tmp_path, max_clock_skew=0)
    now = time.time()
    old = 1_795_392_000.0  # days or years before now: a replay is recorded
    for machine, ts in (("m-old", old), ("m-zero", 0), ("m-ms", now * 1000), ("m-9999", 253_402_214_400.0)):
        feed(rec, TOPICS.telemetry(machine), reading(machine, ts), now)
    finish(rec)
    assert rec.counters.group("rejected") == {"bad_timestamp": 3}
    assert date_dirs(tmp_path) == {f"date={utc_date(old)}", f"date={utc_date(now)}"}  # the rejections: today


def _partition(root: Path, name: str, rows: int = 2000) -> int:
    """A telemetry partition of ``rows`` readings at noon of its date (0:00 UTC for a name that is no date);
    returns its size in bytes."""
    d = root / "telemetry" / name
    d.mkdir(parents=True)
    try:
        noon = dt.datetime.fromisoformat(name.removeprefix("date=") + "T12:00:00+00:00").timestamp()
    except ValueError:
        noon = 0.0
    n = np.arange(rows, dtype=float)
    table = pa.table({"machine_id": ["m1"] * rows, "machine_type": pa.nulls(rows, pa.string()), "ts": noon + n,
                      "seq": pa.nulls(rows, pa.int64()), "received_at": noon + n, **{s: n for s in SENSORS}})
    pq.write_table(table.cast(table_specs(SENSORS)["telemetry"].schema), d / "part-x.parquet", compression="none")
    return (d / "part-x.parquet").stat().st_size


def test_invalid_date_directories_are_quarantined_and_retention_keeps_today_first(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=k)).isoformat() for k in (2, 1, 0)]
    bad = ["date=NaT", "date=33658-09-27", "date=9999-12-31", "date=2026-13-45", "date=1970-01-01"]
    size = max(_partition(tmp_path, name) for name in [*bad, "date=2099-06-01", *(f"date={d}" for d in days)])
    # readers never see the invalid ones
    assert available_dates(tmp_path, "telemetry") == [*days, "2099-06-01"]
    got = read_table(tmp_path, "telemetry")
    assert sorted({utc_date(t) for t in got["ts"]}) == [*days, "2099-06-01"] and len(got) == 4 * 2000

    rec = recorder(tmp_path, max_clock_skew="1d")
    assert rec.quarantine_leftovers() == len(bad)
    assert rec.counters.get("quarantined.partitions") == len(bad)
    assert sorted(p.name for p in (tmp_path / QUARANTINE_DIR / "telemetry").iterdir()) == sorted(bad)
    # the byte cap removes the impossible future first, then the oldest; today's date is kept
    cap = int(2.5 * size)  # room for two of the four dates left
    removed = apply_retention(tmp_path, max_bytes=cap, today=today, horizon_days=rec.settings.horizon_days)
    assert [p.name for p in removed] == ["date=2099-06-01", f"date={days[0]}"]
    assert available_dates(tmp_path, "telemetry") == days[1:]
    removed = apply_retention(tmp_path, max_bytes=1, today=today, horizon_days=2)
    assert [p.name for p in removed] == [f"date={days[1]}"] and available_dates(tmp_path, "telemetry") == days[2:]
    assert sorted(p.name for p in (tmp_path / QUARANTINE_DIR / "telemetry").iterdir()) == sorted(bad)  # untouched


def test_without_a_horizon_the_newest_date_is_the_one_kept(tmp_path: Path) -> None:
    for name in ("date=2026-11-22", "date=2026-11-23", "date=2027-01-01"):
        _partition(tmp_path, name)
    removed = apply_retention(tmp_path, max_bytes=1, today=dt.date(2026, 11, 23))
    assert [p.name for p in removed] == ["date=2026-11-22", "date=2026-11-23"]


def test_unreadable_segments_are_quarantined_and_counted(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    wal = rec.wal_dir / "telemetry"
    wal.mkdir(parents=True)
    leftover = wal / "20261120T000000Z-unit-aaaaaaaa.arrows.unreadable"  # what an older version left forever
    leftover.write_bytes(b"\xff\xff\xff\xff\x10\x00 disk full")
    torn = wal / "20261121T000000Z-unit-bbbbbbbb.arrows"  # a first batch that never made it to disk
    torn.write_bytes(b"\xff\xff\xff\xff\x78\x00\x00")

    assert rec.recover() == 1
    assert rec.quarantine_leftovers() == 1
    assert list(wal.iterdir()) == []
    quarantined = tmp_path / QUARANTINE_DIR / "_wal" / "unit" / "telemetry"
    assert sorted(p.name for p in quarantined.iterdir()) == [leftover.name, torn.name]
    assert (quarantined / leftover.name).read_bytes() == b"\xff\xff\xff\xff\x10\x00 disk full"  # kept as it was
    assert rec.counters.get("quarantined.segments") == 1 and rec.counters.get("segments_unreadable") == 1
    assert rec.quarantine_leftovers() == 0  # counted once


def test_rows_that_cannot_be_dated_are_quarantined_not_partitioned(tmp_path: Path) -> None:
    """A segment of an older version may hold rows the handler now refuses: compaction never makes them a
    partition."""
    spec = table_specs(SENSORS)["telemetry"]
    now = time.time()
    ts = [now, now * 1000, float("nan"), 0.0, 1e300]
    batch = pa.record_batch([pa.array(["m1"] * 5), pa.array([None] * 5, pa.string()), pa.array(ts),
                             pa.array([1] * 5), pa.array([now] * 5), *(pa.array([1.0] * 5) for _ in SENSORS)],
                            schema=spec.schema)
    rec = recorder(tmp_path)
    seg = Segment(rec.wal_dir / "telemetry" / "20261120T000000Z-unit-cccccccc.arrows", spec.schema)
    seg.append(batch)
    seg.close()
    rec.recover()
    assert date_dirs(tmp_path) == {f"date={utc_date(now)}"}
    assert read_table(tmp_path, "telemetry")["ts"].tolist() == [now]
    (undated,) = (tmp_path / QUARANTINE_DIR / "telemetry").glob("undated-*.parquet")
    assert len(pq.read_table(undated)) == 4 and rec.counters.get("quarantined.rows") == 4
    assert list_segments(rec.wal_dir / "telemetry") == []


def test_oversized_strings_are_refused_and_rejections_are_capped(tmp_path: Path) -> None:
    rec = recorder(tmp_path, max_clock_skew=0)
    now = time.time()
    huge_type = json.dumps({"schema": 1, "machine_id": "m1", "machine_type": "x" * 900_000, "seq": 1,
                            "readings": [{"ts": now, "temperature": 1, "vibration": 2, "pressure": 3}]}).encode()
    for i in range(20):
        feed(rec, TOPICS.telemetry(f"m{i}"), huge_type.replace(b'"m1"', f'"m{i}"'.encode()), now)
    feed(rec, "pdm/v1/telemetry/" + "y" * 100_000, b"{}", now)
    feed(rec, TOPICS.maintenance("m1"), json.dumps({"schema": 1, "machine_id": "m1", "from": now, "until": now + 1,
                                                    "reason": "r" * 5000, "by": "op"}).encode(), now)
    finish(rec)
    assert rec.counters.group("rejected") == {"too_long": 21, "bad_topic": 1}
    assert read_table(tmp_path, "telemetry").empty and read_table(tmp_path, "maintenance").empty
    rejected = read_table(tmp_path, "rejected")
    assert rejected["topic"].str.len().max() == 1024 and rejected["detail"].str.len().max() <= 1000
    assert sum(f.stat().st_size for f in tmp_path.rglob("*.parquet")) < 200_000  # not 20 x 900 kB


def test_the_clock_skew_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm.daemon.settings import ServeSettings
    from pdm.recorder import for_serve

    assert load_settings({"root": "x"}).max_clock_skew == DAY_S  # the default: one day
    assert load_settings({"root": "x", "max_clock_skew": "6h"}).max_clock_skew == 6 * 3600.0
    monkeypatch.setenv("PDM_RECORD_MAX_CLOCK_SKEW", "0")
    assert load_settings({"root": "x"}).max_clock_skew == 0.0
    assert RecordSettings(root="x", max_clock_skew="2d").horizon_days == 3
    with pytest.raises(SettingsError, match="--max-clock-skew / PDM_RECORD_MAX_CLOCK_SKEW: found 'soon'"):
        load_settings({"root": "x", "max_clock_skew": "soon"})
    # inside serve the rule follows the daemon's --max-clock-skew (issue 14: one day by default; 0 turns both off)
    assert for_serve(ServeSettings(), tmp_path).max_clock_skew == DAY_S
    assert for_serve(ServeSettings(max_clock_skew="6h"), tmp_path).max_clock_skew == 6 * 3600.0
    assert for_serve(ServeSettings(max_clock_skew=0), tmp_path).max_clock_skew == 0.0


def test_sensors_beyond_the_contracts_are_optional_and_recorded_as_null(tmp_path: Path) -> None:
    """A recorder beside models of which only some read ``ambient`` (`pdm.recorder.for_serve`): a machine that sends
    it has it recorded, one that does not is recorded with nulls; a contract sensor missing is still a rejection."""
    rec = recorder(tmp_path, sensors="temperature,vibration,pressure,ambient", max_clock_skew=0)
    now = time.time()
    with_air = json.dumps({"machine_id": "pump-1", "ts": now - 2, "temperature": 60.0, "vibration": 2.0,
                           "pressure": 4.0, "ambient": 21.5}).encode()
    feed(rec, TOPICS.telemetry("pump-1"), with_air, now)
    feed(rec, TOPICS.telemetry("comp-1"), reading("comp-1", now - 1), now)
    no_pressure = json.dumps({"machine_id": "comp-2", "ts": now - 1, "temperature": 60.0, "vibration": 2.0,
                              "ambient": 20.0}).encode()
    feed(rec, TOPICS.telemetry("comp-2"), no_pressure, now)
    finish(rec)
    table = read_table(tmp_path, "telemetry").set_index("machine_id")
    assert table.loc["pump-1", "ambient"] == 21.5 and table.loc["pump-1", "pressure"] == 4.0
    assert np.isnan(table.loc["comp-1", "ambient"]) and table.loc["comp-1", "temperature"] == 60.0
    assert "comp-2" not in table.index
    assert rec.counters.group("rejected") == {"missing_field": 1}
