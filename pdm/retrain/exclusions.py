"""Which readings retraining may learn from, and which recent ones it holds out to judge the models.

Rules:

- Every exclusion interval is widened by margins: ``before`` ahead of alerts and screened alarms (a fault starts
  before it is detected: detection delays of slowly developing faults are hours), ``after`` behind alerts, screened
  alarms and labelled faults (effects linger: thermal lag, the window still holding faulty readings). Maintenance,
  stale and warming-up periods are taken as recorded.
- An interval is then widened to at least ``min_width`` (more than the detector's gap rule), so dropping its rows
  always leaves a gap that splits the data: no training window spans an excluded period.
- A reading inside any widened interval is excluded; the summary counts rows per reason (a row excluded for two
  reasons counts under both) and in total (each row once).
- The **holdout** is the most recent part of each machine's span (a fraction of it, or a duration): its normal
  readings judge champion and challenger alike; neither trains on them. There, only what is known not to be
  normal operation is left out (labelled faults, maintenance, stale, warming-up: `HOLDOUT_REASONS`); alert and
  screened periods stay in, because they are the champion's own verdicts: leaving them out would remove exactly
  the champion's alarms from its false-alarm count and none of the challenger's. Labelled faults are judged on
  slices of all readings around them (``context`` before, ``grace`` after), wherever they are.

>>> frame = pd.DataFrame({"timestamp": np.arange(10.0), "machine_id": "m", "x": np.zeros(10)})
>>> mask, summary = exclusion_mask(frame, [Exclusion("m", 4.0, 4.0, "alert")], Margins(1.0, 2.0, 0.0))
>>> np.flatnonzero(mask).tolist(), summary.rows_excluded
([3, 4, 5, 6], 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.detectors.frames import machine_positions
from pdm.evaluation import FaultSpan
from pdm.retrain.data import MID, TS, Exclusion

BEFORE_REASONS = frozenset({"alert", "screen"})
AFTER_REASONS = frozenset({"alert", "screen", "fault", "sensor_fault"})
HOLDOUT_REASONS = frozenset({"fault", "sensor_fault", "maintenance", "stale", "warming_up"})
WARN_FRACTION = 0.5


@dataclass(frozen=True)
class Margins:
    before: float
    after: float
    min_width: float

    def widen(self, e: Exclusion) -> tuple[float, float]:
        start = e.start - (self.before if e.reason in BEFORE_REASONS else 0.0)
        end = e.end + (self.after if e.reason in AFTER_REASONS else 0.0)
        short = self.min_width - (end - start)
        if short > 0:
            start, end = start - short / 2, end + short / 2
        return start, end


@dataclass
class ExclusionSummary:
    rows_total: int = 0
    rows_excluded: int = 0
    by_reason: dict[str, dict[str, float]] = field(default_factory=dict)  # reason -> intervals, rows
    excluded_fraction: dict[str, float] = field(default_factory=dict)  # per machine
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows_total": self.rows_total, "rows_excluded": self.rows_excluded,
                "fraction_excluded": self.rows_excluded / self.rows_total if self.rows_total else 0.0,
                "by_reason": self.by_reason, "excluded_fraction_by_machine": self.excluded_fraction,
                "warnings": self.warnings}

    def lines(self) -> list[str]:
        """Human-readable lines: how much was excluded and why."""
        share = self.rows_excluded / self.rows_total if self.rows_total else 0.0
        out = [f"{self.rows_excluded} of {self.rows_total} readings ({share:.1%}) from training"]
        for reason, d in sorted(self.by_reason.items()):
            out.append(f"{reason:13s} {int(d['intervals']):5d} interval(s) {int(d['rows']):9d} readings")
        return out


def exclusion_mask(frame: pd.DataFrame, exclusions: list[Exclusion], margins: Margins) -> tuple[np.ndarray,
                                                                                               ExclusionSummary]:
    """``True`` for each excluded row of ``frame`` (sorted by machine then time), and the summary."""
    mask = np.zeros(len(frame), dtype=bool)
    ts = frame[TS].to_numpy(dtype=np.float64)
    positions = machine_positions(frame, MID)
    per_reason: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for e in exclusions:
        pos = positions.get(e.machine_id)
        if pos is None:
            continue
        start, end = margins.widen(e)
        t = ts[pos]
        lo, hi = np.searchsorted(t, start, "left"), np.searchsorted(t, end, "right")
        if hi > lo:  # intervals that cover at least one reading
            counts[e.reason] = counts.get(e.reason, 0) + 1
            rmask = per_reason.setdefault(e.reason, np.zeros(len(frame), dtype=bool))
            rmask[pos[lo:hi]] = True
    for reason_mask in per_reason.values():
        mask |= reason_mask
    summary = ExclusionSummary(rows_total=len(frame), rows_excluded=int(mask.sum()))
    summary.by_reason = {r: {"intervals": counts[r], "rows": int(per_reason[r].sum())} for r in sorted(counts)}
    for m, pos in positions.items():
        fraction = float(mask[pos].mean()) if len(pos) else 0.0
        summary.excluded_fraction[m] = round(fraction, 4)
        if fraction > WARN_FRACTION:
            why = ", ".join(f"{r} {per_reason[r][pos].mean():.0%}" for r in sorted(per_reason)
                            if per_reason[r][pos].any())
            summary.warnings.append(f"{m}: {fraction:.0%} of its readings excluded ({why}): a long fault, or a "
                                    "stale model alarming on a new normal? Inspect before trusting this retrain")
    return mask, summary


@dataclass
class Split:
    """Training rows, held-out normal rows and fault slices, per machine (frames without the machine column)."""

    train: dict[str, pd.DataFrame]
    holdout: dict[str, pd.DataFrame]
    fault_slices: dict[str, tuple[pd.DataFrame, list[FaultSpan]]]
    cuts: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"train_rows": sum(len(f) for f in self.train.values()),
                "holdout_rows": sum(len(f) for f in self.holdout.values()),
                "fault_slices": sum(len(s) for _, s in self.fault_slices.values()),
                "fault_slice_rows": sum(len(f) for f, _ in self.fault_slices.values()),
                "holdout_from": {m: round(c, 3) for m, c in self.cuts.items()}}


def split(frame: pd.DataFrame, mask: np.ndarray, holdout_mask: np.ndarray, faults: dict[str, list[FaultSpan]], *,
          holdout_fraction: float | None, holdout_s: float | None, context_s: float, grace_s: float) -> Split:
    """Cut each machine's span into training (older) and holdout (recent) parts; ``mask`` marks the rows excluded
    from training, ``holdout_mask`` those excluded from the holdout (see the module rules)."""
    ts = frame[TS].to_numpy(dtype=np.float64)
    out = Split({}, {}, {}, {})
    for m, pos in machine_positions(frame, MID).items():
        t = ts[pos]
        first, last = float(t[0]), float(t[-1])
        cut = last - holdout_s if holdout_s is not None else first + (1 - (holdout_fraction or 0.0)) * (last - first)
        out.cuts[m] = cut
        before = t < cut
        train = pos[before & ~mask[pos]]
        holdout = pos[~before & ~holdout_mask[pos]]
        if len(train):
            out.train[m] = frame.iloc[train].drop(columns=[MID]).reset_index(drop=True)
        if len(holdout):
            out.holdout[m] = frame.iloc[holdout].drop(columns=[MID]).reset_index(drop=True)
        spans = faults.get(m, [])
        if spans:
            whole = frame.iloc[pos].drop(columns=[MID])
            keep = np.zeros(len(pos), dtype=bool)
            for f in spans:
                keep |= (t >= f.start - context_s) & (t <= f.end + grace_s)
            if keep.any():
                inside = [f for f in spans if f.start <= t[-1] and f.end >= t[0]]
                out.fault_slices[m] = (whole[keep].reset_index(drop=True), inside)
    return out
