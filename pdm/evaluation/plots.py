"""PNG reports: sensors, score against threshold, labelled faults shaded, alarms marked. Never opens a window."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pdm.evaluation.judge import FaultSpan, alarm_episodes


def plot_machines(
    panels: Sequence[tuple[str, pd.DataFrame, pd.DataFrame, list[FaultSpan]]],
    features: Sequence[str],
    path: Path | str,
    *,
    timestamp_column: str = "timestamp",
    baseline: Sequence[pd.DataFrame] | None = None,
) -> Path:
    """One column per machine: a row per sensor, then the score with its threshold.

    ``panels`` holds (machine id, input frame, ``detect()`` output, labelled faults); ``baseline`` optionally holds
    a second detector's ``detect()`` output per panel, drawn as a dashed score normalised to its threshold.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(features) + 1
    fig, axes = plt.subplots(rows, len(panels), figsize=(5.2 * len(panels), 1.7 * rows + 0.6), sharex="col",
                             squeeze=False)
    for col, (mid, frame, out, faults) in enumerate(panels):
        t = pd.to_datetime(frame[timestamp_column].to_numpy(), unit="s")
        t0 = frame[timestamp_column].to_numpy()[0]

        def shade(ax: object, faults: list[FaultSpan] = faults, t0: float = t0, t: pd.DatetimeIndex = t) -> None:
            for f in faults:
                ax.axvspan(t[0] + pd.Timedelta(seconds=f.start - t0), t[0] + pd.Timedelta(seconds=f.end - t0),  # type: ignore[attr-defined]
                           color="tab:red", alpha=0.12, lw=0)

        for r, name in enumerate(features):
            ax = axes[r][col]
            ax.plot(t, frame[name].to_numpy(), lw=0.6, color="tab:blue")
            ax.set_ylabel(name, fontsize=8)
            shade(ax)
        ax = axes[-1][col]
        thr = float(out["threshold"].iloc[0])
        ax.plot(t, out["score"].to_numpy() / thr, lw=0.7, color="black", label="GRU score / threshold")
        if baseline is not None:
            b = baseline[col]
            ax.plot(t, b["score"].to_numpy() / float(b["threshold"].iloc[0]), lw=0.6, ls="--", color="tab:gray",
                    label="z-score baseline / threshold")
        ax.axhline(1.0, color="tab:red", lw=0.8, label="threshold")
        ax.set_yscale("log")
        ax.set_ylabel("score / thr", fontsize=8)
        ts_sec = frame[timestamp_column].to_numpy()
        for a, b_ in alarm_episodes(ts_sec, out["alarm"].to_numpy()):
            ax.axvspan(t[0] + pd.Timedelta(seconds=a - t0), t[0] + pd.Timedelta(seconds=b_ - t0), color="tab:orange",
                       alpha=0.35, lw=0)
        shade(ax)
        title = mid + ("" if not faults else "  fault: " + ", ".join(sorted({f.kind for f in faults})))
        axes[0][col].set_title(title, fontsize=9)
        if col == 0:
            ax.legend(fontsize=6, loc="upper left")
        for a in axes[:, col]:
            a.tick_params(labelsize=7)
    fig.suptitle("red: injected fault   orange: alarm", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
