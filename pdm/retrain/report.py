"""The evaluation report stored with each retrained version: ``report.json`` and ``report.png``.

``report.json`` holds the decision (promote or not, why, each check with both figures and its limit), the
champion's and the challenger's figures (`pdm.retrain.compare.Figures`), the data (source, machines, span, how much
was excluded and why, holdout) and the options. ``report.png`` compares the two models' score distributions
(score / own threshold, log scale) on the held-out normal readings and inside labelled faults.

`outcome_lines` is the summary ``python -m pdm retrain`` prints: the data, what was excluded and why, the split, the
training, both models' figures, the decision and where the version was saved.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pdm.retrain.compare import Figures

if TYPE_CHECKING:
    from pdm.retrain.run import Outcome

REPORT_JSON = "report.json"
REPORT_PNG = "report.png"


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become ``None``, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(clean(report), indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def plot_distributions(path: Path, champion: Figures | None, challenger: Figures, *, champion_name: str,
                       title: str) -> None:
    """Histograms of log10(score / threshold): held-out normal readings, and readings inside labelled faults."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("held-out normal readings", "ratio_normal")]
    if len(challenger.ratio_fault) or (champion is not None and len(champion.ratio_fault)):
        panels.append(("inside labelled machine faults", "ratio_fault"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 3.8), squeeze=False)
    series = [(f"champion {champion_name}", champion, "tab:gray"), ("challenger", challenger, "tab:blue")]
    for ax, (label, attr) in zip(axes[0], panels, strict=True):
        values = {name: np.log10(np.clip(getattr(f, attr), 1e-6, None)) for name, f, _ in series if f is not None}
        finite = [v for v in values.values() if len(v)]
        lo = min(float(np.min(v)) for v in finite) if finite else -2.0
        hi = max(float(np.max(v)) for v in finite) if finite else 1.0
        bins = np.linspace(min(lo, -0.5), max(hi, 0.5), 80)
        for name, f, color in series:
            if f is None or not len(values[name]):
                continue
            over = float(np.mean(values[name] > 0))
            ax.hist(values[name], bins=bins, histtype="step", lw=1.4, color=color, density=True,
                    label=f"{name} ({over:.2%} over)")
        ax.axvline(0.0, color="tab:red", lw=1.0, ls="--", label="threshold")
        ax.set_yscale("log")
        ax.set_xlabel("log10(score / own threshold)")
        ax.set_ylabel("density")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def outcome_lines(o: Outcome) -> list[str]:
    """The run's summary, one labelled line each (module docstring); figures come from ``o.report``."""
    r, lines = o.report, []
    d = r["data"]
    span = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") for t in d["span"]]
    screened = "; screened with the champion" if d["screened_with_champion"] else ""
    lines.append(f"data      {d['rows']} readings from {d['machines']} machine(s), {span[0]} to {span[1]} UTC; "
                 f"{d['labelled_faults']} labelled fault(s){screened}")
    lines += [f"{'excluded' if i == 0 else '':10s}{line}" for i, line in enumerate(o.exclusions.lines())]
    lines += [f"warning   {w}" for w in o.exclusions.warnings]
    if r["champion"] is not None and not r["champion"].get("alarms_taken_as_faults", True):
        why = r["champion"].get("not_believed_because") or "it was trained on a short history"
        lines.append(f"champion  not believed, {why}: its alarms and machine alerts were not taken as faults, so the "
                     "readings under them were learned (--trust-champion excludes them)")
    s, fit = d["split"], r["challenger"]["fit"]
    lines.append(f"split     {s['train_rows']} training readings, {s['holdout_rows']} held out, {s['fault_slices']} "
                 "fault slice(s)")
    lines.append(f"training  {r['challenger']['init']}: {fit.get('train_windows')} windows (stride "
                 f"{fit.get('stride')}), {fit.get('epochs_run')} epochs; threshold {r['challenger']['threshold']:.5g}")
    rows = [("challenger", r["challenger"]["figures"])]
    if r["champion"] is not None and r["champion"]["figures"] is not None:
        rows.insert(0, (f"champion {r['champion']['version']}", r["champion"]["figures"]))
    for name, f in rows:
        faults = f.get("faults") or {}
        judged = ""
        if faults.get("faults"):
            judged += f", faults {faults['detected']}/{faults['faults']}"
            if faults.get("median_delay_s") is not None:
                judged += f", median delay {faults['median_delay_s']:.0f} s"
        if faults.get("sensor_faults"):
            judged += f", sensor faults {faults['sensor_detected']}/{faults['sensor_faults']}"
        false_alarms = _fmt((f.get("normal") or {}).get("false_alarms_per_machine_day"), ".2f")
        lines.append(f"judged    {name}: raise rate {_fmt(f['raise_rate'])} on {f['windows']} held-out windows, "
                     f"{false_alarms} false alarms/machine-day" + judged)
    verdict = "PROMOTED" if o.promoted else "CHAMPION KEPT"
    lines.append(f"decision  {verdict}: " + "; ".join(o.decision.reasons))
    lines.append(f"saved     {o.version_dir} ({'now current' if o.promoted else 'not current'}); report.json, "
                 "report.png")
    if o.removed:
        lines.append(f"pruned    {', '.join(o.removed)}")
    return lines
