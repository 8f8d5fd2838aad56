"""One machine's signals over a period with its faults shaded (PNG; matplotlib's Agg backend, never a window)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pdm.contract import SENSORS, UNITS
from simulators.fleet.config import ConfigError

logger = logging.getLogger(__name__)
MAX_POINTS = 4000  # longer series are drawn as per-bin mean with the min-max band (spikes stay visible)
COLOURS = {"machine": "tab:red", "sensor": "tab:purple"}


def _binned(t: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    edges = np.linspace(0, len(t), bins + 1).astype(int)
    starts = edges[:-1]
    with np.errstate(all="ignore"):
        mean = np.add.reduceat(np.nan_to_num(y), starts) / np.maximum(np.add.reduceat(~np.isnan(y), starts), 1)
        lo = np.fmin.reduceat(y, starts)
        hi = np.fmax.reduceat(y, starts)
    empty = np.add.reduceat(~np.isnan(y), starts) == 0
    mean[empty] = np.nan
    return t[starts], mean, lo, hi


def plot_machine(readings: pd.DataFrame, faults: pd.DataFrame, machine_id: str, out: Path, *,
                 start: float | None = None, end: float | None = None) -> Path:
    """Draw ``machine_id``'s sensors between epoch seconds ``start`` and ``end`` (default: all) to ``out``."""
    df = readings[readings["machine_id"] == machine_id]
    if df.empty:
        known = sorted(readings["machine_id"].unique())
        raise ConfigError(f"--machine: found {machine_id!r}, expected one of the file's machines "
                          f"({', '.join(known[:5])}{', ...' if len(known) > 5 else ''})")
    t0 = float(df["timestamp"].iloc[0])
    lo_t = t0 if start is None else start
    hi_t = float(df["timestamp"].iloc[-1]) if end is None else end
    df = df[(df["timestamp"] >= lo_t) & (df["timestamp"] <= hi_t)]
    if df.empty:
        raise ConfigError(f"--from/--to: found no readings of {machine_id} in that period, expected a period "
                          "inside the file's time span")
    days = (df["timestamp"].to_numpy() - t0) / 86400.0
    mine = faults[(faults["machine_id"] == machine_id) & (faults["end"] > lo_t) & (faults["start"] < hi_t)]
    fig, axes = plt.subplots(len(SENSORS), 1, figsize=(12, 7.5), sharex=True)
    for ax, sensor in zip(axes, SENSORS, strict=True):
        y = df[sensor].to_numpy(dtype=float)
        if len(y) > MAX_POINTS:
            t, mean, lo, hi = _binned(days, y, MAX_POINTS)
            ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.25, linewidth=0)
            ax.plot(t, mean, color="tab:blue", linewidth=0.6)
        else:
            ax.plot(days, y, color="tab:blue", linewidth=0.6)
        ax.set_ylabel(f"{sensor}\n[{UNITS[sensor]}]")
        ax.grid(alpha=0.3)
        for f in mine.itertuples():
            a, b = (max(f.start, lo_t) - t0) / 86400.0, (min(f.end, hi_t) - t0) / 86400.0
            hit = f.kind == "machine" or f.sensor == sensor
            ax.axvspan(a, b, color=COLOURS[f.kind], alpha=0.22 if hit else 0.07, linewidth=0)
    for f in mine.itertuples():
        a = (max(f.start, lo_t) - t0) / 86400.0
        label = f.type if f.kind == "machine" else f"{f.type} ({f.sensor})"
        axes[0].annotate(label, (a, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 3),
                         textcoords="offset points", fontsize=8, color=COLOURS[f.kind])
    mtype = df["machine_type"].iloc[0]
    axes[0].set_title(f"{machine_id} ({mtype}): red = machine fault, purple = sensor fault", fontsize=10,
                      pad=14)
    axes[-1].set_xlabel("days since the start of the data")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
