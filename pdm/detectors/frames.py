"""Turning user DataFrames into sorted numeric arrays, with the input rules stated once.

A *frame* is a pandas DataFrame with a timestamp (a column, or a DatetimeIndex) and numeric sensor columns, for one
machine, or for several when it has a machine column.

Rules applied here:

- Timestamps: a column named by the caller, otherwise the first of ``timestamp``, ``ts``, ``time``, ``datetime``
  (any case), otherwise a DatetimeIndex. Numbers are Unix epoch seconds; datetimes and date strings are converted
  (naive ones are taken as UTC).
- Rows are processed in timestamp order; output is mapped back to input order. Rows that repeat a timestamp are
  duplicates: the last one is used and every copy gets its result.
- Sensor values must be numeric; ``±inf`` counts as missing (``NaN``).

>>> import pandas as pd
>>> df = pd.DataFrame({"ts": [2.0, 1.0, 2.0], "temp": [3.0, 1.0, 5.0]})
>>> p = prepare_frame(df, ["temp"], timestamp_column=None, machine_id="m1")
>>> p.ts.tolist(), p.values[:, 0].tolist(), p.inverse.tolist()
([1.0, 2.0], [1.0, 5.0], [1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pdm.errors import DataError, FeatureMismatchError

TIMESTAMP_NAMES = ("timestamp", "ts", "time", "datetime")


@dataclass(frozen=True)
class PreparedFrame:
    """One machine's readings sorted by time, duplicates removed.

    ``values[i]`` is the reading at ``ts[i]``; ``inverse[j]`` is the sorted position of input row ``j``.
    """

    machine_id: str
    ts: np.ndarray  # (N,) float64 epoch seconds, strictly increasing
    values: np.ndarray  # (N, F) float64, NaN where missing
    inverse: np.ndarray  # (rows,) int64
    n_duplicates: int
    n_missing: int


def find_timestamp_column(df: pd.DataFrame, name: str | None) -> str | None:
    """Name of the timestamp column, or ``None`` when the index holds the timestamps."""
    if name is not None:
        if name not in df.columns:
            raise DataError(f"timestamp column {name!r} not found: found columns {list(map(str, df.columns))}")
        return name
    lower = {str(c).lower(): c for c in df.columns}
    for candidate in TIMESTAMP_NAMES:
        if candidate in lower:
            return str(lower[candidate])
    if isinstance(df.index, pd.DatetimeIndex):
        return None
    raise DataError(
        f"no timestamp column found in columns {list(map(str, df.columns))}: expected one of {list(TIMESTAMP_NAMES)}"
        " or a DatetimeIndex; name it with timestamp_column"
    )


def to_epoch_seconds(values: pd.Series | pd.Index, label: str) -> np.ndarray:
    """Timestamps as float64 Unix epoch seconds."""
    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"timestamp column {label!r} holds booleans, expected times")
    if pd.api.types.is_numeric_dtype(series):
        out = series.to_numpy(dtype=np.float64)
    else:
        parsed = _parse_datetimes(series, label)
        out = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(out)):
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise DataError(f"timestamp column {label!r} has a missing or invalid time at row {bad}")
    return out


def _parse_datetimes(series: pd.Series, label: str) -> pd.Series:
    """ISO 8601 first (fast, unambiguous), then per-element inference."""
    import warnings

    try:
        return pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return pd.to_datetime(series, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        bad = next((v for v in series if not _is_time(v)), series.iloc[0] if len(series) else None)
        raise DataError(f"timestamp column {label!r} is not a time: found {bad!r}, expected a date-time or "
                        "epoch seconds") from None


def _is_time(value: object) -> bool:
    try:
        pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def numeric_columns(df: pd.DataFrame, exclude: Iterable[str | None]) -> list[str]:
    """Columns usable as sensors when none are named: numeric, not boolean, not excluded."""
    skip = {e for e in exclude if e is not None}
    return [
        str(c)
        for c in df.columns
        if str(c) not in skip and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]


def check_features(df: pd.DataFrame, features: Sequence[str]) -> None:
    """Raise `FeatureMismatchError` naming missing sensor columns."""
    columns = [str(c) for c in df.columns]
    missing = [f for f in features if f not in columns]
    if missing:
        raise FeatureMismatchError(
            f"found columns {columns}, expected sensor columns {list(features)}: missing {missing}"
        )


def sensor_matrix(df: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """(rows, F) float64 of the sensor columns; non-numeric content is an error, ``inf`` becomes NaN."""
    check_features(df, features)
    out = np.empty((len(df), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        col = df[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            converted = pd.to_numeric(col, errors="coerce")
            bad = converted.isna() & col.notna()
            if pd.api.types.is_bool_dtype(col) or bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
                raise DataError(
                    f"column {name!r} is not numeric: found {col.iloc[row]!r} at row {row}, expected a number"
                )
            col = converted
        out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


def prepare_frame(
    df: pd.DataFrame, features: Sequence[str], *, timestamp_column: str | None, machine_id: str
) -> PreparedFrame:
    """Sort one machine's frame by time and drop duplicate timestamps (keeping the last)."""
    if len(df) == 0:
        raise DataError(f"machine {machine_id!r}: the frame has no rows")
    ts_col = find_timestamp_column(df, timestamp_column)
    raw_ts = to_epoch_seconds(df.index if ts_col is None else df[ts_col], ts_col or "index")
    values = sensor_matrix(df, features)
    # unique() sorts; taking the last occurrence: reverse, unique (first of reversed == last), map back.
    rev_ts = raw_ts[::-1]
    uniq, first_rev, inv_rev = np.unique(rev_ts, return_index=True, return_inverse=True)
    last_pos = len(raw_ts) - 1 - first_rev
    inverse = inv_rev[::-1].astype(np.int64)
    kept = values[last_pos]
    return PreparedFrame(
        machine_id=machine_id,
        ts=uniq.astype(np.float64),
        values=kept,
        inverse=inverse,
        n_duplicates=len(raw_ts) - len(uniq),
        n_missing=int(np.isnan(kept).sum()),
    )


def machine_positions(df: pd.DataFrame, machine_column: str) -> dict[str, np.ndarray]:
    """Row positions of each machine, in order of first appearance; a row without an id is a `DataError`.

    >>> {m: p.tolist() for m, p in machine_positions(pd.DataFrame({"m": ["b", "a", "b"]}), "m").items()}
    {'b': [0, 2], 'a': [1]}
    """
    missing = df[machine_column].isna().to_numpy()
    if missing.any():
        raise DataError(f"column {machine_column!r} has no machine id at row {int(missing.argmax())}: expected one "
                        "on every row")
    return {str(k): np.asarray(pos) for k, pos in df.groupby(machine_column, sort=False).indices.items()}


def split_by_machine(
    frames: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame], machine_column: str | None
) -> list[tuple[str, pd.DataFrame]]:
    """(machine id, frame) pairs. Ids come from a mapping's keys, a machine column, or ``frame-<i>``."""
    if isinstance(frames, pd.DataFrame):
        items: list[tuple[str | None, pd.DataFrame]] = [(None, frames)]
    elif isinstance(frames, Mapping):
        items = [(str(k), v) for k, v in frames.items()]
    else:
        items = [(None, f) for f in frames]
    if not items:
        raise DataError("no frames given: expected at least one DataFrame")
    out: list[tuple[str, pd.DataFrame]] = []
    for i, (key, df) in enumerate(items):
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"frame {i} is a {type(df).__name__}, expected a pandas DataFrame")
        if machine_column is not None and machine_column in df.columns:
            out.extend((mid, df.iloc[pos]) for mid, pos in machine_positions(df, machine_column).items())
        else:
            out.append((key if key is not None else f"frame-{i}", df))
    return out


def segment_bounds(ts: np.ndarray, max_gap_s: float) -> list[tuple[int, int]]:
    """[start, end) index ranges of runs with no gap larger than ``max_gap_s``.

    >>> segment_bounds(np.array([0.0, 1.0, 2.0, 10.0, 11.0]), max_gap_s=5.0)
    [(0, 3), (3, 5)]
    """
    if len(ts) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ts) > max_gap_s) + 1
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), len(ts)]
    return list(zip(starts, ends, strict=True))


def median_period(ts_list: Iterable[np.ndarray]) -> float:
    """Median sampling period over all frames, in seconds."""
    diffs = [np.diff(ts) for ts in ts_list if len(ts) > 1]
    if not diffs:
        raise DataError("cannot infer the sampling period: every frame has fewer than 2 distinct timestamps")
    period = float(np.median(np.concatenate(diffs)))
    if period <= 0:
        raise DataError(f"found a median sampling period of {period} s, expected a positive period")
    return period


def fill_missing(scaled: np.ndarray) -> np.ndarray:
    """The missing-value rule, applied to scaled values of one segment (in place and returned).

    Each missing value takes the last valid value of the same sensor (last observation carried forward); values
    missing since the segment's start take 0, which is the training median after scaling.

    >>> fill_missing(np.array([[np.nan], [2.0], [np.nan]])).ravel().tolist()
    [0.0, 2.0, 2.0]
    """
    mask = np.isnan(scaled)
    if not mask.any():
        return scaled
    n = scaled.shape[0]
    idx = np.where(~mask, np.arange(n)[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = np.take_along_axis(scaled, idx, axis=0)
    filled[np.isnan(filled)] = 0.0
    scaled[...] = filled
    return scaled


def sliding_windows(segment: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """(L, F) -> (⌊(L - window) / stride⌋ + 1, window, F), a view.

    >>> sliding_windows(np.arange(5.0)[:, None], 3, 2)[:, :, 0].tolist()
    [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]]
    """
    view = np.lib.stride_tricks.sliding_window_view(segment, window, axis=0)  # (n, F, window)
    return np.swapaxes(view, 1, 2)[::stride]
