"""The evaluation report stored with each retrained version: ``report.json`` and ``report.png``.

``report.json`` holds the decision (promote or not, why, each check with both figures and its limit), the
champion's and the challenger's figures (`pdm.retrain.compare.Figures`), the data (source, machines, span, how much
was excluded and why, holdout) and the options. ``report.png`` compares the two models' score distributions
(score / own threshold, log scale) on the held-out normal readings and inside labelled faults.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pdm.retrain.compare import Figures

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
