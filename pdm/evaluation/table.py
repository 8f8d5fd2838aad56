"""The side-by-side table ``python -m pdm evaluate`` prints: one column per model, one row per figure, then the
recall of each fault type."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from pdm.evaluation.judge import Report


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


ROWS: list[tuple[str, Callable[[Report], str]]] = [
    ("machine faults detected", lambda r: f"{r.detected}/{r.faults}"),
    ("event recall", lambda r: _fmt(r.event_recall)),
    ("mean detection delay (s)", lambda r: _fmt(r.mean_delay_s, ".0f")),
    ("median detection delay (s)", lambda r: _fmt(r.median_delay_s, ".0f")),
    ("false alarms", lambda r: str(r.false_alarms)),
    ("false alarms per machine-day", lambda r: _fmt(r.false_alarms_per_machine_day, ".2f")),
    ("alerts per detected fault", lambda r: _fmt(r.alerts_per_detected_fault, ".2f")),
    ("sensor faults caught", lambda r: f"{r.sensor_detected}/{r.sensor_faults}"),
    ("pointwise precision", lambda r: _fmt(r.precision)),
    ("pointwise recall", lambda r: _fmt(r.recall)),
    ("pointwise F1", lambda r: _fmt(r.f1)),
    ("false-alarm rate (rows)", lambda r: _fmt(r.false_alarm_rate, ".4f")),
    ("missed-alarm rate (rows)", lambda r: _fmt(r.missed_alarm_rate)),
]


def report_table(reports: Mapping[str, Report], grace_s: float) -> list[str]:
    """The table's lines for ``{model name: report}`` (at least one), judged with ``grace_s``."""
    names = list(reports)
    first = reports[names[0]]
    lines = [f"{first.machines} machine(s), {first.machine_days:.2f} machine-days; grace {grace_s:g} s after each "
             "fault", f"{'':30s}" + "".join(f"{n:>20s}" for n in names)]
    lines += [f"{label:30s}" + "".join(f"{fn(reports[n]):>20s}" for n in names) for label, fn in ROWS]
    for kind in sorted({k for r in reports.values() for k in r.by_type}):
        cells = [f"{d}/{total}" for d, total in (reports[n].by_type.get(kind, (0, 0)) for n in names)]
        lines.append(f"{'  recall: ' + kind:30s}" + "".join(f"{c:>20s}" for c in cells))
    return lines
