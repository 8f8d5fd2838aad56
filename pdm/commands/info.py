"""``python -m pdm info``: verify a saved model and print what it holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pdm.detectors.base import Detector


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", help="verify a saved model and print what it holds",
                       description="Verify checksums and print a model's features, threshold, alarm rule and "
                       "training summary. MODEL is a model name directory (uses 'current') or a version.")
    p.add_argument("model", type=Path, metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pdm.detectors.base import Detector

    det = Detector.load(args.model)
    if args.json:
        summary = {
            "version_dir": str(det.version_dir_),
            "detector": det.kind,
            "features": [f.model_dump() for f in det.feature_infos],
            "references": dict(det.references or {}),
            "window": det.window_length,
            "period_s": det.period_s_,
            "threshold": det.threshold_.model_dump(),
            "alarm_rule": det.alarm_rule_.model_dump(),
            "training": det.training_summary_,
            "drift_checked": drift_checked(det),
        }
        print(json.dumps(summary, indent=2))
        return 0
    t, a, tr = det.threshold_, det.alarm_rule_, det.training_summary_
    machines = tr.get("machines")
    print(f"model      {det.version_dir_}  (checksums OK)")
    print(f"detector   {det.kind}, window {det.window_length} readings, period {det.period_s_:g} s")
    print("features   " + ", ".join(f"{f.name} [{f.unit or '?'}]" for f in det.feature_infos))
    for target, ref in (det.references or {}).items():
        print(f"reference  {target} scored as {target} - {ref} ({ref} is an input only, never scored)")
    target = (f"target {t.target_rate * 86_400 / det.period_s_:.3g} false alarms per machine-day, "
              f"{t.params.get('clusters', '?')} clusters" if t.method == "declustered" else
              f"target {t.target_rate:g} per window")
    fallback = f", fell back to {t.params['fallback']}" if t.params.get("fallback") else ""
    print(f"threshold  {t.value:.6g} ({t.method}{fallback}, {target}, {t.n_calibration} calibration windows)")
    print(f"alarm      {a.describe(det.period_s)}")
    print(f"training   {tr.get('rows')} rows from {len(machines) if isinstance(machines, list) else '?'} "
          f"machine(s); warnings: {tr.get('warnings') or 'none'}")
    checked = drift_checked(det)
    print("drift      " + ("; ".join(f"{s} on {n} machine(s)" for s, n in checked.items()) + " (checked at rest)"
                          if checked else "no sensor is checked for drift (no rest levels: a machine that never "
                          "stood still in training, or a model saved before 2026-12-06)"))
    return 0


def drift_checked(det: Detector) -> dict[str, int]:
    """Per sensor, the machines whose rest level it is checked for drift against (`pdm.detectors.rest`)."""
    summary = det.calibration_summary_
    out: dict[str, int] = {}
    for levels in (summary.rest.values() if summary is not None else []):
        for name, checked in zip(det.features_, levels.checked, strict=True):
            if checked:
                out[name] = out.get(name, 0) + 1
    return out
