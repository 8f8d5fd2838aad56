"""Judging champion and challenger on the same held-out data with `pdm.evaluation`, and the promotion rule.

Figures per model, each at the model's own calibrated threshold:

- on the held-out **normal** readings: the *raise rate*, the share of windows at which the alarm rule's raise
  condition holds (the quantity a ``pot`` or ``quantile`` threshold is calibrated for, at the target
  ``target_false_alarm_rate``; a ``declustered`` threshold's target, raises per window, is far smaller, so the
  champion's own raise rate sets the limit), the
  share of windows over the threshold, and `pdm.evaluation`'s false alarms (episodes, per machine-day) and
  pointwise false-alarm rate;
- on slices around **labelled faults**: `pdm.evaluation`'s event recall (by type) and detection delays.

**Promotion rule** (tolerance ``t``, e.g. 0.1): the challenger is promoted unless it is worse on one of

1. false alarms: its raise rate exceeds ``max(champion's raise rate, target) x (1 + t)`` (a challenger within the
   agreed target is never "worse", whatever the champion's luck on this data);
2. fault recall (when labelled faults exist): below ``champion's recall x (1 - t)``;
3. detection delay (faults both detected): its median delay exceeds ``champion's x (1 + t)`` plus one window
   duration (the resolution of a window-based score).

No champion: promoted. A champion that cannot score the data (other sensors, unreadable): kept unless forced.
``force`` promotes whatever the figures, and the report says so.

>>> ch = Figures(windows=1000, raise_rate=3e-4, exceedance_rate=0.01)
>>> cp = Figures(windows=1000, raise_rate=1e-4, exceedance_rate=0.01)
>>> d = decide(cp, ch, tolerance=0.1, target_rate=1e-4, delay_slack_s=64.0)
>>> d.promote, d.reasons[0].startswith("false alarms")
(False, True)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.detectors.base import Detector
from pdm.detectors.calibration import alarm_statistic
from pdm.detectors.frames import segment_bounds
from pdm.evaluation import FaultSpan, evaluate_machine, summarise
from pdm.retrain.challenger import as_input
from pdm.retrain.data import TS

logger = logging.getLogger(__name__)
PLOT_SAMPLES = 200_000


@dataclass
class Figures:
    windows: int = 0
    raise_rate: float | None = None
    exceedance_rate: float | None = None
    normal: dict[str, Any] = field(default_factory=dict)  # pdm.evaluation Report on held-out normal data
    faults: dict[str, Any] | None = None  # pdm.evaluation Report on fault slices
    delays: dict[str, float | None] = field(default_factory=dict)  # fault key -> delay (None: missed)
    ratio_normal: np.ndarray = field(default_factory=lambda: np.empty(0))  # score / threshold samples
    ratio_fault: np.ndarray = field(default_factory=lambda: np.empty(0))

    def to_dict(self) -> dict[str, Any]:
        q = [0.5, 0.9, 0.99, 0.999]
        quant = {f"q{p:g}": float(np.quantile(self.ratio_normal, p)) for p in q} if len(self.ratio_normal) else {}
        return {"windows": self.windows, "raise_rate": self.raise_rate, "exceedance_rate": self.exceedance_rate,
                "normal": self.normal, "faults": self.faults, "delays_s": self.delays,
                "score_over_threshold_normal": quant}


def _fault_key(f: FaultSpan) -> str:
    return f"{f.machine_id}@{f.start:.0f}:{f.kind}"


def judge(det: Detector, holdout: Mapping[str, pd.DataFrame],
          fault_slices: Mapping[str, tuple[pd.DataFrame, list[FaultSpan]]], grace_s: float,
          rng_seed: int = 0) -> Figures:
    """Score the held-out normal frames and the fault slices with ``det``; the figures of the module docstring."""
    thr = det.threshold
    k, n = det.alarm_rule.k, det.alarm_rule.n
    max_gap = det.max_gap_s
    results, ratios, raises, over, windows = [], [], 0, 0, 0
    for m, frame in holdout.items():
        out = det.detect(as_input(frame, det.timestamp_column), machine_id=m)
        ts = frame[TS].to_numpy(dtype=np.float64)
        score, alarm = out["score"].to_numpy(), out["alarm"].to_numpy()
        for s, e in segment_bounds(ts, max_gap):
            results.append(evaluate_machine(m, ts[s:e], alarm[s:e], [], grace_s))
            seg = score[s:e]
            seg = seg[~np.isnan(seg)]
            if len(seg):
                windows += len(seg)
                over += int(np.sum(seg > thr))
                raises += int(np.sum(alarm_statistic(seg, k, n) > thr))
                ratios.append(seg / thr)
    fig = Figures(windows=windows, raise_rate=raises / windows if windows else None,
                  exceedance_rate=over / windows if windows else None)
    if results:
        fig.normal = summarise(results).to_dict() | {"machines": len(holdout)}
    fig.ratio_normal = _sample(ratios, rng_seed)
    fault_results, fault_ratios = [], []
    for m, (frame, spans) in fault_slices.items():
        out = det.detect(as_input(frame, det.timestamp_column), machine_id=m)
        ts = frame[TS].to_numpy(dtype=np.float64)
        res = evaluate_machine(m, ts, out["alarm"].to_numpy(), spans, grace_s)
        fault_results.append(res)
        for event in res.events:
            fig.delays[_fault_key(event.fault)] = event.delay_s
        score = out["score"].to_numpy()
        inside = np.zeros(len(ts), dtype=bool)
        for f in spans:
            if not f.sensor_fault:
                inside |= (ts >= f.start) & (ts <= f.end)
        fault_ratios.append(score[inside & ~np.isnan(score)] / thr)
    if fault_results:
        fig.faults = summarise(fault_results).to_dict()
    fig.ratio_fault = _sample(fault_ratios, rng_seed)
    return fig


def _sample(parts: list[np.ndarray], seed: int) -> np.ndarray:
    values = np.concatenate(parts) if parts else np.empty(0)
    if len(values) > PLOT_SAMPLES:
        values = np.random.default_rng(seed).choice(values, PLOT_SAMPLES, replace=False)
    return values


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"promote": self.promote, "forced": self.forced, "reasons": self.reasons, "checks": self.checks}


def decide(champion: Figures | None, challenger: Figures, *, tolerance: float, target_rate: float,
           delay_slack_s: float, force: bool = False, champion_error: str | None = None) -> Decision:
    """The promotion rule of the module docstring."""
    if champion is None:
        if champion_error is not None:
            reasons = [f"the champion cannot be judged on this data ({champion_error})"]
            return Decision(force, [*reasons, "promoted because --force" if force else "champion kept; "
                                    "promote with --force if the data really changed"], forced=force)
        return Decision(True, ["no champion yet: the first version becomes current"])
    checks: list[dict[str, Any]] = []
    worse: list[str] = []
    if challenger.raise_rate is None or champion.raise_rate is None:
        worse.append("false alarms: no held-out normal windows to judge on (give more data or a larger --holdout)")
    else:
        limit = max(champion.raise_rate, target_rate) * (1 + tolerance)
        ok = challenger.raise_rate <= limit
        checks.append({"check": "raise_rate", "champion": champion.raise_rate, "challenger": challenger.raise_rate,
                       "limit": limit, "ok": ok})
        if not ok:
            worse.append(f"false alarms: the challenger's raise rate on held-out normal data is "
                         f"{challenger.raise_rate:.3g}, over the limit {limit:.3g} (champion {champion.raise_rate:.3g},"
                         f" target {target_rate:g}, tolerance {tolerance:g})")
    cp_recall = (champion.faults or {}).get("event_recall")
    ch_recall = (challenger.faults or {}).get("event_recall")
    if cp_recall is not None and ch_recall is not None:
        limit = cp_recall * (1 - tolerance) - 1e-12
        ok = ch_recall >= limit
        checks.append({"check": "event_recall", "champion": cp_recall, "challenger": ch_recall, "limit": limit,
                       "ok": ok})
        if not ok:
            worse.append(f"fault recall: the challenger detects {ch_recall:.0%} of labelled faults, below the limit "
                         f"{limit:.0%} (champion {cp_recall:.0%}, tolerance {tolerance:g})")
    both = [key for key, d in challenger.delays.items() if d is not None and champion.delays.get(key) is not None]
    if both:
        cp_med = float(np.median([champion.delays[key] for key in both]))
        ch_med = float(np.median([challenger.delays[key] for key in both]))
        limit = cp_med * (1 + tolerance) + delay_slack_s
        ok = ch_med <= limit
        checks.append({"check": "median_delay_s", "faults": len(both), "champion": cp_med, "challenger": ch_med,
                       "limit": limit, "ok": ok})
        if not ok:
            worse.append(f"detection delay: the challenger's median delay is {ch_med:.0f} s over {len(both)} faults "
                         f"both detect, over the limit {limit:.0f} s (champion {cp_med:.0f} s)")
    if not worse:
        return Decision(True, ["the challenger is not worse than the champion: " +
                               ", ".join(f"{c['check']} {c['challenger']:.4g} vs {c['champion']:.4g}"
                                         for c in checks)], checks)
    if force:
        return Decision(True, [*worse, "promoted anyway because --force"], checks, forced=True)
    return Decision(False, [*worse, "champion kept"], checks)
