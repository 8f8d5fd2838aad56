"""Periods that retraining must not learn from, built from the recorded tables, and the rows they cover.

Every period is ``[start, end)`` in the reading clock (epoch seconds of the telemetry's ``ts``), per machine:

- ``alert``: from the raising window's start minus ``alert_margin_s`` to the clearing window's end plus the
  margin (alerts table); an alert not cleared in the data runs to the end of the range. The daemon's ``alert``
  states (states table) are periods too, without margin.
- ``stale``, ``warming_up``, ``maintenance`` (states table): a state runs from its ``since`` to the next recorded
  state's ``since``; the machine's last state runs to the end of the range.
- ``maintenance`` (maintenance table): every announced window ``[from, until)``; a later clear does not shorten
  it (being conservative costs a little normal data, never teaches a fault).
- ``fault`` and ``sensor_fault`` (truth table, simulator only; ``kind`` machine or sensor): from a fault's
  ``start`` event to its ``end`` event (or the end of the range).

Tables are read ``lookback_s`` (7 days) before ``start`` so that a period opened earlier is still seen.
A reading in several periods gets the first reason of ``REASONS``.

>>> frame = pd.DataFrame({"machine_id": ["a", "a", "a", "b"], "ts": [1.0, 5.0, 9.0, 5.0]})
>>> periods = pd.DataFrame({"machine_id": ["a", "a"], "start": [4.0, 0.0], "end": [6.0, 5.0],
...                         "reason": ["stale", "fault"]})
>>> mark_excluded(frame, periods).tolist()
['fault', 'stale', None, None]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.recorder.reader import TimeLike, read_table, to_epoch
from pdm.recorder.schema import DAY_S

REASONS: tuple[str, ...] = ("fault", "sensor_fault", "alert", "maintenance", "stale", "warming_up")
PERIOD_COLUMNS = ["machine_id", "start", "end", "reason", "source"]
LOOKBACK_S = 7 * DAY_S


def _range(start: TimeLike, end: TimeLike, lookback_s: float) -> tuple[float | None, float | None, float]:
    lo, hi = to_epoch(start), to_epoch(end)
    return (None if lo is None else lo - lookback_s), hi, (np.inf if hi is None else hi)


def _clip(frame: pd.DataFrame, start: TimeLike) -> pd.DataFrame:
    lo = to_epoch(start)
    frame = frame[frame["end"] > frame["start"]]
    if lo is not None:
        frame = frame[frame["end"] > lo]
    return frame.reset_index(drop=True)


def state_periods(root: Path | str, start: TimeLike = None, end: TimeLike = None,
                  machines: Iterable[str] | None = None, *, lookback_s: float = LOOKBACK_S,
                  include_open: bool = False) -> pd.DataFrame:
    """One row per recorded state: machine_id, state, start (its ``since``), end (the next state's), alert_id,
    instance."""
    lo, hi, last = _range(start, end, lookback_s)
    states = read_table(root, "states", lo, hi, machines, include_open=include_open)
    states = states.sort_values(["machine_id", "since", "received_at"], kind="stable")
    nxt = states.groupby("machine_id", sort=False)["since"].shift(-1)
    out = pd.DataFrame({"machine_id": states["machine_id"], "state": states["state"], "start": states["since"],
                        "end": nxt.fillna(last).to_numpy(dtype=float), "alert_id": states["alert_id"],
                        "instance": states["instance"]})
    return _clip(out, start)


def alert_periods(root: Path | str, start: TimeLike = None, end: TimeLike = None,
                  machines: Iterable[str] | None = None, *, margin_s: float = 3600.0, lookback_s: float = LOOKBACK_S,
                  include_open: bool = False) -> pd.DataFrame:
    """One row per alert episode: machine_id, alert_id, start, end (margins included)."""
    lo, hi, last = _range(start, end, lookback_s)
    alerts = read_table(root, "alerts", lo, hi, machines, include_open=include_open)
    if alerts.empty:
        return pd.DataFrame(columns=["machine_id", "alert_id", "start", "end"])
    by = alerts.groupby("alert_id", sort=True)
    cleared = alerts[alerts["event"] == "cleared"].groupby("alert_id")["ts"].max()
    out = pd.DataFrame({"machine_id": by["machine_id"].first(), "start": by["window_start"].min() - margin_s})
    out["end"] = (cleared.reindex(out.index) + margin_s).fillna(last)
    return _clip(out.rename_axis("alert_id").reset_index(), start)


def maintenance_periods(root: Path | str, start: TimeLike = None, end: TimeLike = None,
                        machines: Iterable[str] | None = None, *, lookback_s: float = LOOKBACK_S,
                        include_open: bool = False) -> pd.DataFrame:
    """Every announced maintenance window: machine_id, start, end, reason, by."""
    lo, hi, _ = _range(start, end, lookback_s)
    m = read_table(root, "maintenance", lo, hi, machines, include_open=include_open)
    m = m[~m["cleared"].fillna(False).astype(bool)]
    out = pd.DataFrame({"machine_id": m["machine_id"], "start": m["from_ts"], "end": m["until_ts"],
                        "reason": m["reason"], "by": m["by"]})
    return _clip(out, start)


def fault_periods(root: Path | str, start: TimeLike = None, end: TimeLike = None,
                  machines: Iterable[str] | None = None, *, lookback_s: float = LOOKBACK_S,
                  include_open: bool = False) -> pd.DataFrame:
    """One row per labelled fault (truth table): machine_id, fault_id, fault, kind, sensor, start, end."""
    lo, hi, last = _range(start, end, lookback_s)
    truth = read_table(root, "truth", lo, hi, machines, include_open=include_open)
    if truth.empty:
        return pd.DataFrame(columns=["machine_id", "fault_id", "fault", "kind", "sensor", "start", "end"])
    by = truth.groupby("fault_id", sort=True)
    starts = truth[truth["event"] == "start"].groupby("fault_id")["ts"].min()
    ends = truth[truth["event"] == "end"].groupby("fault_id")["ts"].max()
    out = by[["machine_id", "fault", "kind", "sensor"]].first()
    out["start"] = starts.reindex(out.index).fillna(by["ts"].min())
    out["end"] = ends.reindex(out.index).fillna(last)
    return _clip(out.reset_index(), start)


def exclusion_periods(root: Path | str, start: TimeLike = None, end: TimeLike = None,
                      machines: Iterable[str] | None = None, *, alert_margin_s: float = 3600.0,
                      states: Sequence[str] = ("alert", "stale", "warming_up", "maintenance"),
                      faults: bool = True, lookback_s: float = LOOKBACK_S, include_open: bool = False) -> pd.DataFrame:
    """Every period to leave out of training: machine_id, start, end, reason (one of ``REASONS``), source table."""
    ms = None if machines is None else sorted(set(machines))
    parts = []
    a = alert_periods(root, start, end, ms, margin_s=alert_margin_s, lookback_s=lookback_s, include_open=include_open)
    parts.append(a.assign(reason="alert", source="alerts"))
    s = state_periods(root, start, end, ms, lookback_s=lookback_s, include_open=include_open)
    s = s[s["state"].isin(list(states))]
    parts.append(s.assign(reason=s["state"], source="states"))
    m = maintenance_periods(root, start, end, ms, lookback_s=lookback_s, include_open=include_open)
    parts.append(m.assign(reason="maintenance", source="maintenance"))
    if faults:
        f = fault_periods(root, start, end, ms, lookback_s=lookback_s, include_open=include_open)
        parts.append(f.assign(reason=np.where(f["kind"] == "sensor", "sensor_fault", "fault"), source="truth"))
    parts = [p[PERIOD_COLUMNS] for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("start", "end") else object) for c in PERIOD_COLUMNS})
    return pd.concat(parts, ignore_index=True).sort_values(["machine_id", "start"], kind="stable",
                                                           ignore_index=True)


def _inside(ts: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which ``ts`` fall in the union of ``[start, end)`` intervals."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    idx = np.searchsorted(s, ts, side="right") - 1
    return (idx >= 0) & (ts < e[np.clip(idx, 0, None)])


def mark_excluded(frame: pd.DataFrame, periods: pd.DataFrame, ts_column: str = "ts",
                  machine_column: str = "machine_id") -> pd.Series:
    """Per row of ``frame``: the reason it is excluded (the first of ``REASONS`` that covers it), or ``None``."""
    reasons = np.full(len(frame), None, dtype=object)
    if len(frame) and len(periods):
        ts = frame[ts_column].to_numpy(dtype=float)
        codes, names = pd.factorize(frame[machine_column])
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        by_machine = {m: g for m, g in periods.groupby("machine_id", sort=False)}
        for i, machine in enumerate(names):
            g = by_machine.get(machine)
            if g is None:
                continue
            rows = order[bounds[i]:bounds[i + 1]]
            for reason in reversed(REASONS):  # the first reason is applied last, so it wins
                p = g[g["reason"] == reason]
                if len(p):
                    hit = _inside(ts[rows], p["start"].to_numpy(dtype=float), p["end"].to_numpy(dtype=float))
                    reasons[rows[hit]] = reason
    return pd.Series(reasons, index=frame.index, name="excluded", dtype=object)


def summarize(excluded: pd.Series) -> dict[str, int]:
    """Rows kept and excluded per reason (``{"kept": n, "alert": n, ...}``)."""
    counts = excluded.fillna("kept").value_counts()
    return {k: int(counts.get(k, 0)) for k in ("kept", *REASONS) if k == "kept" or counts.get(k, 0)}
