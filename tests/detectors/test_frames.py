"""Input rules of pdm.detectors.frames: timestamps, duplicates, types, segments, missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.detectors.frames import (
    fill_missing,
    find_timestamp_column,
    median_period,
    numeric_columns,
    prepare_frame,
    segment_bounds,
    split_by_machine,
    to_epoch_seconds,
)
from pdm.errors import DataError, FeatureMismatchError


def test_timestamp_column_detected_case_insensitively() -> None:
    df = pd.DataFrame({"Time": [1.0], "a": [1.0]})
    assert find_timestamp_column(df, None) == "Time"


def test_datetime_index_is_used_when_no_column() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.to_datetime(["2026-01-01 00:00:00", "2026-01-01 00:00:01"]))
    assert find_timestamp_column(df, None) is None
    p = prepare_frame(df, ["a"], timestamp_column=None, machine_id="m")
    assert p.ts.tolist() == [1767225600.0, 1767225601.0]


def test_missing_timestamp_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no timestamp column found"):
        find_timestamp_column(pd.DataFrame({"a": [1.0]}), None)
    with pytest.raises(DataError, match="timestamp column 'when' not found"):
        find_timestamp_column(pd.DataFrame({"a": [1.0]}), "when")


def test_date_strings_are_parsed_as_utc() -> None:
    out = to_epoch_seconds(pd.Series(["1970-01-01T00:00:10Z", "1970-01-01 00:01:00"]), "ts")
    assert out.tolist() == [10.0, 60.0]


def test_unparseable_timestamp_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="is not a time"):
        to_epoch_seconds(pd.Series(["yesterday-ish", "x"]), "ts")


def test_non_numeric_sensor_value_names_column_and_row() -> None:
    df = pd.DataFrame({"ts": [0.0, 1.0, 2.0], "vibration": ["1.0", "oops", "2.0"]})
    with pytest.raises(DataError, match=r"column 'vibration' is not numeric: found 'oops' at row 1"):
        prepare_frame(df, ["vibration"], timestamp_column=None, machine_id="m")


def test_numeric_strings_are_accepted() -> None:
    df = pd.DataFrame({"ts": [0.0, 1.0], "vibration": ["1.5", "2.5"]})
    p = prepare_frame(df, ["vibration"], timestamp_column=None, machine_id="m")
    assert p.values[:, 0].tolist() == [1.5, 2.5]


def test_missing_sensor_column_says_found_and_expected() -> None:
    df = pd.DataFrame({"ts": [0.0], "temperature": [1.0]})
    with pytest.raises(FeatureMismatchError, match=r"found columns \['ts', 'temperature'\].*missing \['pressure'\]"):
        prepare_frame(df, ["temperature", "pressure"], timestamp_column=None, machine_id="m")


def test_inf_counts_as_missing_and_order_is_restored() -> None:
    df = pd.DataFrame({"ts": [3.0, 1.0, 2.0], "a": [np.inf, 1.0, 2.0]})
    p = prepare_frame(df, ["a"], timestamp_column=None, machine_id="m")
    assert p.ts.tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(p.values[2, 0]) and p.n_missing == 1
    assert p.inverse.tolist() == [2, 0, 1]


def test_duplicate_timestamps_keep_last() -> None:
    df = pd.DataFrame({"ts": [1.0, 1.0, 2.0], "a": [10.0, 11.0, 12.0]})
    p = prepare_frame(df, ["a"], timestamp_column=None, machine_id="m")
    assert p.values[:, 0].tolist() == [11.0, 12.0]
    assert p.n_duplicates == 1 and p.inverse.tolist() == [0, 0, 1]


def test_numeric_columns_exclude_timestamp_machine_and_booleans() -> None:
    df = pd.DataFrame({"ts": [1.0], "machine_id": ["x"], "flag": [True], "a": [1], "b": [2.0]})
    assert numeric_columns(df, ["ts", "machine_id"]) == ["a", "b"]


def test_segments_split_at_gaps() -> None:
    ts = np.array([0.0, 1.0, 2.0, 3.0, 20.0, 21.0, 50.0])
    assert segment_bounds(ts, max_gap_s=5.0) == [(0, 4), (4, 6), (6, 7)]


def test_median_period_ignores_gaps() -> None:
    assert median_period([np.array([0.0, 1.0, 2.0, 3.0, 100.0])]) == 1.0
    with pytest.raises(DataError, match="fewer than 2"):
        median_period([np.array([1.0])])


def test_fill_missing_carries_forward_and_starts_at_median() -> None:
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    out = fill_missing(x.copy())
    assert out.tolist() == [[0.0, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 5.0]]


def test_split_by_machine_column_and_mapping() -> None:
    df = pd.DataFrame({"ts": [0, 1, 2], "machine_id": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})
    pairs = split_by_machine(df, "machine_id")
    assert [(m, len(f)) for m, f in pairs] == [("a", 2), ("b", 1)]
    pairs = split_by_machine({"p1": df.drop(columns="machine_id")}, "machine_id")
    assert [m for m, _ in pairs] == ["p1"]
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        split_by_machine([np.zeros(3)], None)  # type: ignore[list-item]
