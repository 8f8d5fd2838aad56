"""One retrain of a model name, end to end (under the name's lock):

1. load the champion (the ``current`` version), if any;
2. exclusions: the source's (alerts, stale, warming-up, maintenance, labelled faults) plus, for sources with
   neither alert history nor labels, the champion's own alarms (`pdm.retrain.screen`); margins added
   (`pdm.retrain.exclusions`);
3. split each machine into older training readings and recent held-out ones;
4. fit the challenger (from scratch or fine-tuned) and its baseline on the training readings; its threshold is
   calibrated on the held-back tail of them, the most recent training readings;
5. judge champion and challenger on the same held-out normal readings and labelled-fault slices; decide
   (`pdm.retrain.compare`);
6. save the challenger as a new version with ``report.json`` and ``report.png`` (always: a challenger that was
   not promoted stays inspectable, and can be made current later with ``pdm models --rollback VERSION``);
7. on promotion switch ``current`` atomically; prune old versions when asked (never the current one).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pdm.detectors.alarm import AlarmRule
from pdm.detectors.base import Detector
from pdm.detectors.frames import machine_positions, median_period
from pdm.detectors.gru import GRUAutoencoderDetector
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import DataError, PdmError
from pdm.retrain.challenger import Init, challenger_params, fit_challenger
from pdm.retrain.compare import Decision, Figures, decide, judge
from pdm.retrain.data import MID, TS, Exclusion, RetrainData
from pdm.retrain.exclusions import HOLDOUT_REASONS, ExclusionSummary, Margins, Split, exclusion_mask, split
from pdm.retrain.lock import model_lock
from pdm.retrain.progress import LogProgress, Reporter
from pdm.retrain.report import REPORT_JSON, REPORT_PNG, plot_distributions, write_json_report
from pdm.retrain.screen import screen
from pdm.retrain.verdicts import weigh
from pdm.saving import current_version, prune_versions, set_current

logger = logging.getLogger(__name__)
REPORT_FORMAT = 1


@dataclass
class RetrainOptions:
    init: Init = "scratch"
    overrides: dict[str, Any] = field(default_factory=dict)
    holdout_fraction: float | None = 0.2
    holdout_s: float | None = None
    margin_before_s: float = 2 * 3600.0
    margin_after_s: float = 3600.0
    tolerance: float = 0.1
    force: bool = False
    keep: int | None = None
    screen: bool | None = None  # None: when there is a champion and the data has neither alert history nor labels
    trust_champion: bool = False  # take a short-history champion's alarms and alerts as faults all the same
    max_eval_rows: int = 500_000
    grace_s: float | None = None


@dataclass
class Outcome:
    promoted: bool
    version_dir: Path
    champion_version: str | None
    decision: Decision
    report: dict[str, Any]
    exclusions: ExclusionSummary
    removed: list[str] = field(default_factory=list)


def load_champion(name_dir: Path) -> Detector | None:
    """The current version, or ``None`` when the name has none yet (a damaged one raises)."""
    if current_version(name_dir) is None:
        return None
    return Detector.load(name_dir)


def cap_rows(frames: dict[str, pd.DataFrame], budget: int) -> dict[str, pd.DataFrame]:
    """At most ``budget`` rows in total: each machine keeps its most recent share (contiguous, so the alarm rule
    sees real sequences)."""
    total = sum(len(f) for f in frames.values())
    if total <= budget or not frames:
        return frames
    each = max(1, budget // len(frames))
    logger.info("judging on the most recent %d held-out readings per machine (%d in all, --max-eval-rows %d)",
                each, total, budget)
    return {m: f.iloc[-each:].reset_index(drop=True) for m, f in frames.items()}


def retrain(data: RetrainData, name_dir: Path | str, options: RetrainOptions,
            progress: Reporter | None = None) -> Outcome:
    """Run the steps of the module docstring; see `Outcome`."""
    name_dir = Path(name_dir)
    progress = progress or LogProgress()
    timings: dict[str, float] = {}
    with model_lock(name_dir):
        t0 = time.monotonic()
        champion = load_champion(name_dir)
        champion_version = champion.version_dir.name if champion is not None and champion.version_dir else None
        champion_error = _unusable(champion, data)
        usable = champion.feature_names if isinstance(champion, GRUAutoencoderDetector) and not champion_error \
            else None
        features = list(options.overrides.get("features") or usable or data.features)
        _check_references(champion, features)
        short = champion is not None and champion_error is None and champion.short_history
        do_screen = options.screen if options.screen is not None else (
            champion is not None and not data.has_alert_history and not data.labelled and
            (options.trust_champion or not short))
        screened: list[Exclusion] = []
        if do_screen and champion is not None and champion_error is None:
            with progress.stage("screening with champion", total=len(data.machines)) as advance:
                screened = screen(champion, data, advance)
        timings["load_and_screen"] = time.monotonic() - t0
        period = _median_period(data)
        params = challenger_params(champion, options.overrides, features)
        gap_factor = float(params.get("max_gap_factor", 5.0))
        window = int(params.get("window", 64))
        margins = Margins(options.margin_before_s, options.margin_after_s, (gap_factor + 1) * period)
        weighed = weigh(data.frame, [*data.exclusions, *screened], margins, short_history=short,
                        trust=options.trust_champion, keep=screened if options.screen else None)
        exclusions, doubt = weighed.exclusions, weighed.doubt
        mask, summary = exclusion_mask(data.frame, exclusions, margins)
        holdout_mask, _ = exclusion_mask(data.frame, [e for e in exclusions if e.reason in HOLDOUT_REASONS], margins)
        for w in summary.warnings:
            logger.warning("%s", w)
        grace = options.grace_s if options.grace_s is not None else 2.0 * window * period
        parts = split(data.frame, mask, holdout_mask, data.faults, holdout_fraction=options.holdout_fraction,
                      holdout_s=options.holdout_s, context_s=2.0 * (window + look_back(params, period)) * period,
                      grace_s=grace)
        parts.holdout = cap_rows(parts.holdout, options.max_eval_rows)
        t0 = time.monotonic()
        with progress.stage(f"training ({options.init})", total=int(params.get("epochs", 50))):
            challenger, baseline = fit_challenger(parts.train, params, init=options.init, champion=champion,
                                                  progress=progress.epoch)
        timings["fit"] = time.monotonic() - t0
        t0 = time.monotonic()
        with progress.stage("judging challenger", total=1) as advance:
            ch_fig = judge(challenger, parts.holdout, parts.fault_slices, grace)
            advance(1)
        cp_fig: Figures | None = None
        if champion is not None and champion_error is None:
            with progress.stage("judging champion", total=1) as advance:
                try:
                    cp_fig = judge(champion, parts.holdout, parts.fault_slices, grace)
                except PdmError as exc:
                    champion_error = str(exc)
                advance(1)
        timings["judge"] = time.monotonic() - t0
        decision = decide(cp_fig, ch_fig, tolerance=options.tolerance,
                          target_rate=_target(champion, challenger), delay_slack_s=window * period,
                          force=options.force, champion_error=champion_error if champion is not None else None)
        report = _report(data, options, summary, parts, champion_version=champion_version, cp_fig=cp_fig,
                         champion_error=champion_error, challenger=challenger, ch_fig=ch_fig, decision=decision,
                         timings=timings, screened=do_screen, doubt=doubt)
        t0 = time.monotonic()
        version_dir = _save(name_dir, challenger, baseline, report, cp_fig=cp_fig, ch_fig=ch_fig,
                            champion_version=champion_version)
        if decision.promote:
            set_current(name_dir, version_dir.name)
            logger.info("promoted %s (was %s)", version_dir.name, champion_version)
        else:
            logger.info("kept champion %s; challenger saved as %s", champion_version, version_dir.name)
        removed = prune_versions(name_dir, options.keep) if options.keep else []
        logger.info("saved, switched and pruned in %.1f s", time.monotonic() - t0)
    return Outcome(decision.promote, version_dir, champion_version, decision, report, summary, removed)


def _check_references(champion: Detector | None, features: list[str]) -> None:
    """The challenger inherits the champion's references (`pdm.detectors.references`): every sensor in them must be
    among the sensors it trains on, else a `DataError` now, before any work."""
    refs = dict(getattr(champion, "references", None) or {})
    missing = sorted({name for pair in refs.items() for name in pair} - set(features))
    if missing:
        raise DataError(f"the champion scores {', '.join(f'{t} over {r}' for t, r in refs.items())}: found no "
                        f"{missing} among the sensors {features}, expected every sensor it reads (serve "
                        "--record-dir records them; pdm record needs --sensors naming them)")


def _unusable(champion: Detector | None, data: RetrainData) -> str | None:
    if champion is None:
        return None
    missing = [f for f in champion.feature_names if f not in data.features]
    if missing:
        return f"its sensors {missing} are not in the data, which has {data.features}"
    return None


def look_back(params: dict[str, Any], period_s: float) -> int:
    """Windows of the alarm rule's raise look-back for hyper-parameters ``params`` at ``period_s``."""
    return AlarmRule.at(period_s, n=params.get("alarm_n")).n


def _median_period(data: RetrainData) -> float:
    ts = data.frame[TS].to_numpy()
    return median_period(ts[pos] for pos in machine_positions(data.frame, MID).values())


def _target(champion: Detector | None, challenger: Detector) -> float:
    det = champion if champion is not None else challenger
    return float(det.threshold_.target_rate)


def _report(data: RetrainData, options: RetrainOptions, summary: ExclusionSummary, parts: Split, *,
            champion_version: str | None, cp_fig: Figures | None, champion_error: str | None,
            challenger: GRUAutoencoderDetector, ch_fig: Figures, decision: Decision, timings: dict[str, float],
            screened: bool, doubt: str | None) -> dict[str, Any]:
    ts = data.frame[TS]
    fit = {k: v for k, v in challenger.evaluation_.items() if k != "history"}
    return {
        "format": REPORT_FORMAT,
        "created_at": time.time(),
        "decision": decision.to_dict(),
        "champion": None if champion_version is None else {
            "version": champion_version, "figures": None if cp_fig is None else cp_fig.to_dict(),
            "error": champion_error, "alarms_taken_as_faults": doubt is None, "not_believed_because": doubt},
        "challenger": {"init": options.init, "threshold": challenger.threshold,
                       "figures": ch_fig.to_dict(), "fit": fit, "training": challenger.training_summary_},
        "data": {"source": data.source, "machines": len(data.machines), "machine_ids": data.machines[:100],
                 "rows": len(data.frame), "span": [float(ts.min()), float(ts.max())],
                 "labelled_faults": sum(len(v) for v in data.faults.values()), "screened_with_champion": screened,
                 "exclusions": summary.to_dict(), "split": parts.to_dict()},
        "options": {"init": options.init, "overrides": {k: v for k, v in options.overrides.items() if v is not None},
                    "holdout_fraction": options.holdout_fraction, "holdout_s": options.holdout_s,
                    "margin_before_s": options.margin_before_s, "margin_after_s": options.margin_after_s,
                    "tolerance": options.tolerance, "force": options.force, "max_eval_rows": options.max_eval_rows,
                    "trust_champion": options.trust_champion},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _save(name_dir: Path, challenger: GRUAutoencoderDetector, baseline: RobustZScoreDetector, report: dict[str, Any],
          *, cp_fig: Figures | None, ch_fig: Figures, champion_version: str | None) -> Path:
    """A new version (not current) holding the challenger, its baseline and the report, written in one step."""
    def write_report(directory: Path) -> None:
        write_json_report(directory / REPORT_JSON, report)
        plot_distributions(directory / REPORT_PNG, cp_fig, ch_fig, champion_name=champion_version or "(none)",
                           title=f"{name_dir.name}: champion {champion_version or '(none)'} vs challenger "
                           f"({'promoted' if report['decision']['promote'] else 'not promoted'})")

    return challenger.save(name_dir, make_current=False, companions={"baseline": baseline}, extra_files=write_report)
