"""How detections are judged: one module, used by the demo, ``evaluate``, retraining and the benchmarks.

Inputs per machine: sorted timestamps, the alarm state per timestamp (``predict``; rows without a score count as
no alarm), and labelled fault spans. Rules:

**Event level**

- An *alarm episode* is a maximal run of timestamps where the alarm state is on.
- A fault ``[start, end]`` is *detected* when an episode overlaps ``[start, end + grace_s]``; its *detection delay* is
  the time from ``start`` to the first alarmed timestamp in that interval (0 when an alarm was already on).
- A *false alarm* is an episode that overlaps no fault of either kind, each extended by ``grace_s`` at its end (the
  window still holds faulty readings for a while after a fault ends). False alarms are counted per machine-day of
  data (each machine's first to last timestamp, plus one sampling period).
- *Machine faults* give event recall (overall and by fault type) and delays. *Sensor faults* (a stuck, dropped,
  spiking or drifting sensor) are reported separately: catching one is useful, missing one is not a missed machine
  fault, and an alarm during one is not a false alarm.

**Pointwise** (per row), over rows outside sensor faults: a row inside a machine fault is positive, and alarmed rows
are predicted positive. Precision, recall, F1, false-alarm rate ``FP / (FP + TN)`` and missed-alarm rate
``FN / (FN + TP)``. Early in a slowly developing fault a detector is expected to miss rows; event figures are the
primary ones.

>>> ts = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
>>> alarm = [False, True, False, False, False, True, True, False]
>>> alarm_episodes(ts, alarm)
[(1.0, 1.0), (5.0, 6.0)]
>>> r = evaluate_machine("m", ts, alarm, [FaultSpan(4.0, 5.5, "leak")], grace_s=1.0)
>>> [(e.detected, e.delay_s, e.episodes) for e in r.events], r.false_alarms
([(True, 1.0, 1)], 1)
>>> r.counts   # rows 4 and 5 are in the fault; 5 is alarmed; 1 and 6 are alarmed outside it
(1, 2, 1, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DAY_S = 86_400.0


@dataclass(frozen=True)
class FaultSpan:
    """A labelled fault; ``kind`` is the fault type; ``sensor_fault`` marks a faulty sensor (judged separately) and
    ``sensor`` names it when known."""

    start: float
    end: float
    kind: str = "fault"
    machine_id: str = ""
    sensor_fault: bool = False
    sensor: str | None = None


@dataclass(frozen=True)
class EventResult:
    fault: FaultSpan
    detected: bool
    delay_s: float | None
    episodes: int = 0  # alarm episodes overlapping it (one fault, one alert: 1)


@dataclass
class MachineResult:
    machine_id: str
    events: list[EventResult] = field(default_factory=list)
    false_alarms: int = 0
    episodes: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # tp, fp, fn, tn
    seconds: float = 0.0


def alarm_episodes(ts: Sequence[float] | np.ndarray, alarm: Sequence[bool] | np.ndarray) -> list[tuple[float, float]]:
    """(first, last) timestamps of each run of ``True`` in ``alarm`` (``ts`` sorted)."""
    a = np.asarray(alarm, dtype=bool)
    t = np.asarray(ts, dtype=np.float64)
    if not a.any():
        return []
    edges = np.diff(np.concatenate([[0], a.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(float(t[s]), float(t[e])) for s, e in zip(starts, ends, strict=True)]


def label_spans(ts: Sequence[float] | np.ndarray, labels: Sequence[Any] | np.ndarray, machine_id: str = "",
                sensor_kinds: Sequence[Any] | np.ndarray | None = None) -> list[FaultSpan]:
    """Fault spans from a label column: each run of one non-empty value (not 0, False, NaN or "") is a fault whose
    type is the value (``"fault"`` for numbers). ``sensor_kinds`` marks rows of sensor faults (value ``"sensor"``).

    >>> label_spans([0.0, 1.0, 2.0, 3.0], [0, 1, 1, 0])
    [FaultSpan(start=1.0, end=2.0, kind='fault', machine_id='', sensor_fault=False, sensor=None)]
    >>> [(s.start, s.kind) for s in label_spans([0.0, 1.0, 2.0], ["", "leak", "stuck"])]
    [(1.0, 'leak'), (2.0, 'stuck')]
    """
    t = np.asarray(ts, dtype=np.float64)
    values = [label_value(v) for v in labels]
    kinds = [str(k).strip().lower() for k in sensor_kinds] if sensor_kinds is not None else None
    spans: list[FaultSpan] = []
    i = 0
    while i < len(values):
        if values[i] is None:
            i += 1
            continue
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        value = values[i]
        kind = value if isinstance(value, str) else "fault"
        spans.append(FaultSpan(float(t[i]), float(t[j]), kind, machine_id,
                               sensor_fault=kinds is not None and kinds[i] == "sensor"))
        i = j + 1
    return spans


def label_value(v: Any) -> str | int | None:
    """The fault a label cell names, or ``None`` for a normal row."""
    if v is None or v is pd.NA or (np.ndim(v) == 0 and isinstance(v, (float, np.floating)) and np.isnan(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return 1 if v else None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return 1 if v != 0 else None
    text = str(v).strip()
    return text if text and text.lower() not in {"0", "normal", "none", "nan", "false"} else None


def evaluate_machine(machine_id: str, ts: Sequence[float] | np.ndarray, alarm: Sequence[bool] | np.ndarray,
                     faults: Sequence[FaultSpan], grace_s: float) -> MachineResult:
    """Judge one machine's alarms against its labelled faults (rules in the module docstring)."""
    t = np.asarray(ts, dtype=np.float64)
    a = np.asarray(alarm, dtype=bool)
    episodes = alarm_episodes(t, a)
    result = MachineResult(machine_id, episodes=len(episodes))
    for fault in faults:
        hits = [max(s, fault.start) for s, e in episodes if s <= fault.end + grace_s and e >= fault.start]
        first = min(hits) if hits else None
        # the first alarmed timestamp inside the interval
        delay = None if first is None else float(first - fault.start)
        result.events.append(EventResult(fault, first is not None, delay, len(hits)))
    for s, e in episodes:
        if not any(s <= f.end + grace_s and e >= f.start for f in faults):
            result.false_alarms += 1
    positive = np.zeros(len(t), dtype=bool)
    excluded = np.zeros(len(t), dtype=bool)
    for f in faults:
        inside = (t >= f.start) & (t <= f.end)
        (excluded if f.sensor_fault else positive)[inside] = True
    keep = ~excluded
    p, y = a[keep], positive[keep]
    result.counts = (int(np.sum(p & y)), int(np.sum(p & ~y)), int(np.sum(~p & y)), int(np.sum(~p & ~y)))
    if len(t):
        period = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        result.seconds = float(t[-1] - t[0]) + period
    return result


def judge_rows(ts: Sequence[float] | np.ndarray, machines: Sequence[Any] | np.ndarray,
               alarm: Sequence[bool] | np.ndarray, labels: Sequence[Any] | np.ndarray,
               kinds: Sequence[Any] | np.ndarray | None = None, *, grace_s: float) -> Report:
    """Judge the rows of one table holding several machines, in any order: each machine's rows sorted by time,
    its faults from its labels (`label_spans`, ``kinds`` marking sensor faults), `evaluate_machine`, `summarise`.

    >>> r = judge_rows([1.0, 0.0, 1.0, 0.0], ["b", "a", "a", "b"], [True, False, False, False],
    ...                ["leak", 0, 0, 0], grace_s=0.0)
    >>> r.machines, r.detected, r.faults, r.false_alarms
    (2, 1, 1, 0)
    """
    t = np.asarray(ts, dtype=np.float64)
    m = np.asarray(machines).astype(str)
    a = np.asarray(alarm, dtype=bool)
    y = np.asarray(labels, dtype=object)
    k = None if kinds is None else np.asarray(kinds, dtype=object)
    results = []
    for machine in np.unique(m):
        pos = np.flatnonzero(m == machine)
        pos = pos[np.argsort(t[pos], kind="stable")]
        spans = label_spans(t[pos], y[pos], str(machine), None if k is None else k[pos])
        results.append(evaluate_machine(str(machine), t[pos], a[pos], spans, grace_s))
    return summarise(results)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass(frozen=True)
class Report:
    """Fleet totals; every figure follows the module's rules."""

    machines: int
    machine_days: float
    faults: int
    detected: int
    delays_s: tuple[float, ...]
    by_type: dict[str, tuple[int, int]]  # type -> (detected, total)
    alerts_per_fault: tuple[int, ...]  # per detected machine fault, the alarm episodes overlapping it
    sensor_faults: int
    sensor_detected: int
    false_alarms: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def event_recall(self) -> float:
        return _ratio(self.detected, self.faults)

    @property
    def false_alarms_per_machine_day(self) -> float:
        return _ratio(self.false_alarms, self.machine_days)

    @property
    def mean_delay_s(self) -> float | None:
        return float(np.mean(self.delays_s)) if self.delays_s else None

    @property
    def median_delay_s(self) -> float | None:
        return float(np.median(self.delays_s)) if self.delays_s else None

    @property
    def alerts_per_detected_fault(self) -> float:
        """Mean alarm episodes per detected machine fault: 1 when one fault pages the operator once."""
        return float(np.mean(self.alerts_per_fault)) if self.alerts_per_fault else float("nan")

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else float("nan")

    @property
    def false_alarm_rate(self) -> float:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def missed_alarm_rate(self) -> float:
        return _ratio(self.fn, self.fn + self.tp)

    def to_dict(self) -> dict[str, Any]:
        keys = ["machines", "machine_days", "faults", "detected", "event_recall", "mean_delay_s", "median_delay_s",
                "false_alarms", "false_alarms_per_machine_day", "alerts_per_detected_fault", "sensor_faults",
                "sensor_detected", "precision", "recall", "f1", "false_alarm_rate", "missed_alarm_rate",
                "tp", "fp", "fn", "tn"]
        out = {k: getattr(self, k) for k in keys}
        out["by_type"] = {k: {"detected": d, "faults": n} for k, (d, n) in sorted(self.by_type.items())}
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def summarise(results: Sequence[MachineResult]) -> Report:
    """Fleet totals over machines."""
    machine_events = [e for r in results for e in r.events if not e.fault.sensor_fault]
    sensor_events = [e for r in results for e in r.events if e.fault.sensor_fault]
    by_type: dict[str, tuple[int, int]] = {}
    for e in machine_events:
        d, n = by_type.get(e.fault.kind, (0, 0))
        by_type[e.fault.kind] = (d + e.detected, n + 1)
    tp, fp, fn, tn = (sum(r.counts[i] for r in results) for i in range(4))
    return Report(
        machines=len(results),
        machine_days=sum(r.seconds for r in results) / DAY_S,
        faults=len(machine_events),
        detected=sum(e.detected for e in machine_events),
        delays_s=tuple(e.delay_s for e in machine_events if e.delay_s is not None),
        by_type=by_type,
        alerts_per_fault=tuple(e.episodes for e in machine_events if e.detected),
        sensor_faults=len(sensor_events),
        sensor_detected=sum(e.detected for e in sensor_events),
        false_alarms=sum(r.false_alarms for r in results),
        tp=tp, fp=fp, fn=fn, tn=tn,
    )
