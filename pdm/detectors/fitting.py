"""The calibration half of `Detector.fit`: score the held-back parts of the history, fit the threshold on the
alarm rule's statistic (`pdm.detectors.calibration`), per-machine thresholds where a machine's history allows, and
the warnings a user should read about what was fitted.

`Detector.fit` prepares the frames, fits the scaler and calls the subclass's ``_fit_core``; then `calibrate`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pdm.detectors.alarm import AlarmRule
from pdm.detectors.calibration import MIN_CLUSTERS, Piece, Threshold, alarm_statistic, split_history
from pdm.detectors.drift import CalibrationSummary
from pdm.detectors.frames import (
    PreparedFrame,
    find_timestamp_column,
    median_period,
    numeric_columns,
    prepare_frame,
    segment_bounds,
    split_by_machine,
)
from pdm.detectors.references import References
from pdm.detectors.scaling import Scaler
from pdm.detectors.spikes import step_limits
from pdm.errors import DataError

if TYPE_CHECKING:
    from pdm.detectors.base import Detector, Frames, Progress

logger = logging.getLogger(__name__)
SHORT_HISTORY_ROWS = 2_000  # fitting rows under which a history is short (`Detector.short_history`)
DAY_S = 86_400.0  # a history spanning less cannot show a day's conditions (weather, shifts, load cycles): warned
RETRAIN_HINT = ("retrain on a day or more of recorded data that includes every operating condition (`pdm retrain` "
                "does not take this model's alarms as faults)")

MIN_CALIBRATION_WINDOWS = 100
MIN_MACHINE_CALIBRATION = 2_000  # alarm-statistic values a machine needs for a threshold of its own
MACHINE_THRESHOLD_FLOOR = 0.5  # a machine's own threshold is at least this share of the fleet's


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` fitted: the fleet threshold, machines' own ones, each machine's calibration scores (for
    drift), the number of calibration windows and the warnings."""

    threshold: Threshold
    machine_thresholds: dict[str, Threshold]
    scores_by_machine: dict[str, list[np.ndarray]]
    n_windows: int
    warnings: list[str]


def fit_detector(det: Detector, frames: Frames, progress: Progress | None) -> None:
    """`Detector.fit` after its parameter check: sets every fitted attribute of ``det``."""
    started = time.monotonic()
    pairs = split_by_machine(frames, det.machine_column)
    first = pairs[0][1]
    ts_col = find_timestamp_column(first, det.timestamp_column)
    features = list(det.features) if det.features else numeric_columns(first, [ts_col, det.machine_column])
    if not features:
        raise DataError(f"no numeric sensor columns found in {list(map(str, first.columns))}: expected at least"
                        " one (name them with features=...)")
    refs = References.resolve(det.references, features)
    read = [prepare_frame(df, features, timestamp_column=det.timestamp_column, machine_id=m) for m, df in pairs]
    prepared = [refs.prepared(p) for p in read]  # what the model judges; rest levels and repeats are the sensors'
    period = median_period(p.ts for p in prepared)
    max_gap = det.max_gap_factor * period
    window = det.window_length
    parts = [split_history(len(p.ts), det.calibration_fraction, window) for p in prepared]
    by_machine: dict[str, list[np.ndarray]] = {}
    for p, pieces in zip(prepared, parts, strict=True):
        by_machine.setdefault(p.machine_id, []).extend(p.values[a:b] for a, b, _, _ in pieces)
    scaler = Scaler.fit({m: np.concatenate(v) for m, v in by_machine.items()}, det.scaling)
    det.spike_limits_ = None
    if det.despike:
        raw = [scaler.transform(p.values[a:b][s:e], p.machine_id) for p, pieces in zip(prepared, parts, strict=True)
               for a, b, _, _ in pieces for s, e in segment_bounds(p.ts[a:b], max_gap)]
        det.spike_limits_ = step_limits(raw)
    fit_segments = [s for p, pieces in zip(prepared, parts, strict=True) for a, b, _, _ in pieces
                    for s in det._segments(p, scaler, max_gap, a, b)]
    if not fit_segments:
        longest = max(len(p.ts) for p in prepared)
        raise DataError(f"too few rows: found at most {longest} rows per frame ({1 - det.calibration_fraction:.0%}"
                        f" used for fitting) without a gap, expected at least window={window} rows")
    rule = det.alarm_rule_at(period)
    figures = det._fit_core(fit_segments, progress)
    cal = calibrate(det, prepared, parts, scaler, max_gap, period_s=period, rule=rule)
    threshold, machine_thresholds, warnings = cal.threshold, cal.machine_thresholds, list(cal.warnings)
    inputs_only = refs.inputs_only(features)
    constant = [features[i] for i in scaler.constant_columns() if features[i] not in inputs_only]
    if constant:
        warnings.append(f"constant in training (any change will stand out): {constant}")
    warnings += det._fit_warnings(features)
    rows_fitting = int(sum(b - a for pieces in parts for a, b, _, _ in pieces))
    if rows_fitting < SHORT_HISTORY_ROWS and not any(w.startswith("short history (") for w in warnings):
        warnings.append(f"short history ({rows_fitting} fitting rows, fewer than {SHORT_HISTORY_ROWS}): it cannot "
                        "show the operating range, so alarms flag conditions it never saw as much as faults; "
                        f"{RETRAIN_HINT}")
    span_warning = short_span_warning(prepared, rows_fitting, period)
    if span_warning is not None:
        warnings.append(span_warning)
    for w in warnings:
        logger.warning("%s: %s", type(det).__name__, w)
    det.features_ = features
    det.scaler_ = scaler
    det.period_s_ = period
    det.threshold_ = threshold
    det.machine_thresholds_ = machine_thresholds
    det.alarm_rule_ = rule
    det.calibration_summary_ = CalibrationSummary.fit(cal.scores_by_machine, [p.values for p in read],
                                                      machines=[p.machine_id for p in read], period_s=period,
                                                      unchecked=sorted({c for pair in refs.pairs for c in pair}))
    det.training_summary_ = {
        "frames": len(prepared),
        "machines": sorted(by_machine),
        "rows": int(sum(len(p.ts) for p in prepared)),
        "rows_fitting": rows_fitting,
        "rows_calibration": int(sum(d - c for pieces in parts for _, _, c, d in pieces)),
        "calibration_parts": int(sum(len(pieces) for pieces in parts)),
        "machine_thresholds": {m: t.value for m, t in sorted(machine_thresholds.items())},
        "time_span": [float(min(p.ts[0] for p in prepared)), float(max(p.ts[-1] for p in prepared))],
        "period_s": period,
        "missing_values": int(sum(p.n_missing for p in prepared)),
        "duplicate_timestamps": int(sum(p.n_duplicates for p in prepared)),
        "constant_columns": constant,
        "warnings": warnings,
        "fit_seconds": round(time.monotonic() - started, 2),
    }
    det.evaluation_ = {**figures, "calibration_windows": cal.n_windows,
                        "calibration_exceedance_rate": threshold.calibration_exceedance_rate}


def short_span_warning(prepared: list[PreparedFrame], rows_fitting: int, period_s: float) -> str | None:
    """A warning when the history has enough rows but spans less than `DAY_S` from its first reading to the end of
    its last (one sampling period ``period_s`` after it), over all machines: a few hours at 1 Hz are thousands of
    rows and still none of the day's other conditions. Unlike a short history's, the hint does not say that `pdm
    retrain` sets this model's alarms aside: it takes them as faults (`Detector.short_history` is by rows).
    ``None`` for a history of a day or more, or one already warned as short by its rows."""
    spans = [(float(p.ts[0]), float(p.ts[-1])) for p in prepared if len(p.ts)]
    if rows_fitting < SHORT_HISTORY_ROWS or not spans:
        return None
    span = max(b for _, b in spans) - min(a for a, _ in spans) + period_s  # 86,400 readings at 1 Hz: a day
    if span >= DAY_S:
        return None
    return (f"the history spans {span / 3600:.1f} h, less than a day: it cannot show a day's conditions (weather, "
            "shifts, load cycles), so alarms may flag conditions it never saw as much as faults; retrain it with "
            "`pdm retrain` on a day or more of recorded data that includes every operating condition")


def target_rate(det: Detector, period_s: float) -> float:
    """The threshold's target per calibration value: ``target_false_alarm_rate`` (windows over the threshold), or
    for ``declustered`` ``target_alarms_per_day`` as raises per window at the sampling period ``period_s``.

    >>> from pdm.detectors.zscore import RobustZScoreDetector
    >>> target_rate(RobustZScoreDetector(threshold_method="declustered", target_alarms_per_day=0.0864), 1.0)
    1e-06
    """
    if det.threshold_method == "declustered":
        return min(det.target_alarms_per_day * period_s / 86_400, 0.5)
    return det.target_false_alarm_rate


def calibrate(det: Detector, prepared: list[PreparedFrame], parts: list[list[Piece]], scaler: Scaler,
              max_gap: float, *, period_s: float, rule: AlarmRule) -> Calibration:
    """Threshold ``det`` (whose ``_fit_core`` has run) on the held-back pieces ``parts`` of each frame, for the
    alarm ``rule`` (its raise statistic is what is calibrated)."""
    segments, owners, overlap = calibration_segments(det, prepared, parts, scaler, max_gap)
    per_segment = [det._aggregate(e) for e in det._sensor_errors(segments)]
    by_owner: dict[str, list[np.ndarray]] = {}
    for owner, seg_scores in zip(owners, per_segment, strict=True):
        by_owner.setdefault(owner, []).append(seg_scores)
    n_windows = sum(len(s) for s in per_segment)
    stats = [alarm_statistic(s, rule.k, rule.n) for s in per_segment]
    if not any(len(s) for s in stats):
        raise DataError(f"too few rows to calibrate: every held-back segment has fewer than alarm_k={rule.k}"
                        " windows; give more history or a smaller alarm_k")
    threshold = Threshold.fit(stats, method=det.threshold_method, target_rate=target_rate(det, period_s),
                              cluster_gap=rule.n)
    own = machine_thresholds(owners, stats, threshold, enabled=det.machine_thresholds, cluster_gap=rule.n)
    return Calibration(threshold=threshold, machine_thresholds=own, scores_by_machine=by_owner, n_windows=n_windows,
                       warnings=threshold_warnings(threshold, overlap, n_windows))


def calibration_segments(det: Detector, prepared: list[PreparedFrame], parts: list[list[Piece]], scaler: Scaler,
                         max_gap: float) -> tuple[list[np.ndarray], list[str], bool]:
    """The held-back parts of each frame (`split_history`) as ``det``'s cleaned segments, with each segment's
    machine and whether their windows had to overlap the fitting rows (a history too short for
    `MIN_CALIBRATION_WINDOWS` windows of its own)."""
    window = det.window_length

    def held(back: int) -> tuple[list[np.ndarray], list[str]]:
        pairs = [(s, p.machine_id) for p, pieces in zip(prepared, parts, strict=True) for _, _, c, d in pieces
                 for s in det._segments(p, scaler, max_gap, max(0, c - back), d)]
        return [s for s, _ in pairs], [m for _, m in pairs]

    segs, owners = held(0)
    n_windows = sum(len(s) - window + 1 for s in segs)
    if n_windows >= MIN_CALIBRATION_WINDOWS or (window == 1 and segs):
        return segs, owners, False
    segs, owners = held(window - 1)
    if not segs:
        raise DataError(f"too few rows to calibrate: expected at least window={window} rows in the held-back parts "
                        "of some frame; give more history or a shorter window")
    return segs, owners, True


def machine_thresholds(owners: list[str], stats: list[np.ndarray], fleet: Threshold, *, enabled: bool = True,
                       cluster_gap: int = 1) -> dict[str, Threshold]:
    """A threshold of its own for every machine with at least `MIN_MACHINE_CALIBRATION` calibration values of the
    alarm statistic (``stats``, one array per segment of machine ``owners[i]``), never below
    `MACHINE_THRESHOLD_FLOOR` x the fleet's; the others use the fleet's.

    >>> fleet = Threshold.fit(np.linspace(0, 1, 5000), method="quantile", target_rate=0.01)
    >>> own = machine_thresholds(["a", "b"], [np.linspace(0, 2, 3000), np.linspace(0, 0.1, 3000)], fleet)
    >>> round(own["a"].value, 2), own["b"].value == 0.5 * fleet.value
    (1.98, True)
    """
    by_owner: dict[str, list[np.ndarray]] = {}
    for owner, st in zip(owners, stats, strict=True):
        by_owner.setdefault(owner, []).append(st)
    out: dict[str, Threshold] = {}
    if not enabled or len(by_owner) < 2:
        return out
    for owner, values in by_owner.items():
        if sum(len(v) for v in values) < MIN_MACHINE_CALIBRATION:
            continue
        own = Threshold.fit(values, method=fleet.method, target_rate=fleet.target_rate, cluster_gap=cluster_gap)
        if own.value < MACHINE_THRESHOLD_FLOOR * fleet.value:
            own = own.model_copy(update={"value": MACHINE_THRESHOLD_FLOOR * fleet.value,
                                         "params": {**own.params, "floored_at_fleet_share": MACHINE_THRESHOLD_FLOOR}})
        out[owner] = own
    return out


def threshold_warnings(threshold: Threshold, overlap: bool, n_windows: int) -> list[str]:
    """What a user should know about how the threshold was fitted."""
    warnings = []
    if overlap:
        warnings.append(f"short history: calibration windows overlap the fitting data ({n_windows} windows); the "
                        "threshold may be optimistic")
    fallback = threshold.params.get("fallback")
    if fallback == "pot":  # declustered, from too few clusters
        found = threshold.params["declustered"]["clusters"]
        warnings.append(f"few clusters of high scores ({found}, expected at least {MIN_CLUSTERS}) for a declustered "
                        "threshold: per-window peaks over threshold at the target over the extremal index used "
                        "instead; more history gives a tighter one")
        fallback = threshold.params.get("pot_fallback")
    if fallback == "quantile":
        warnings.append("peaks-over-threshold fell back to the empirical quantile: "
                        f"{threshold.params.get('reason', 'no fit')}")
    elif fallback == "exponential_tail":
        target = threshold.params.get("per_window_target", threshold.target_rate)
        warnings.append(f"few calibration values ({threshold.n_calibration}) for a target of {target:g} per window:"
                        " the threshold is extrapolated with an exponential tail (on the safe side); more history "
                        "gives a tighter one")
    return warnings
