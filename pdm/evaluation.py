"""How detections are judged: one module, used by the demo, `evaluate`, retraining and the benchmarks.

Rules (event level):

- An *alarm episode* is a maximal run of timestamps where the alarm state is on.
- A labelled fault ``[start, end]`` is *detected* when an episode starts (or is already on) between ``start`` and
  ``end + grace_s``. Its *detection delay* is the time from ``start`` to the first such alarm timestamp.
- A *false alarm* is an episode that overlaps no fault, each fault extended by ``grace_s`` at its end (a detector
  may keep alarming while the window still holds faulty readings).
- False alarms are reported per machine-day of scored data.

>>> ts = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
>>> alarm = [False, True, False, False, False, True, True, False]
>>> alarm_episodes(ts, alarm)
[(1.0, 1.0), (5.0, 6.0)]
>>> r = match_events(alarm_episodes(ts, alarm), [FaultSpan(4.0, 5.5, "leak")], grace_s=1.0)
>>> [(e.detected, e.delay_s) for e in r.events], r.false_alarms
([(True, 1.0)], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DAY_S = 86_400.0


@dataclass(frozen=True)
class FaultSpan:
    """A labelled fault: ``kind`` is the fault type; ``sensor_fault`` marks a faulty sensor (judged separately)."""

    start: float
    end: float
    kind: str = "fault"
    machine_id: str = ""
    sensor_fault: bool = False


@dataclass(frozen=True)
class EventResult:
    fault: FaultSpan
    detected: bool
    delay_s: float | None


@dataclass
class MatchResult:
    events: list[EventResult] = field(default_factory=list)
    false_alarms: int = 0
    episodes: int = 0


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


def match_events(episodes: Sequence[tuple[float, float]], faults: Sequence[FaultSpan], grace_s: float) -> MatchResult:
    """Judge one machine's alarm episodes against its labelled faults (rules in the module docstring)."""
    result = MatchResult(episodes=len(episodes))
    for fault in faults:
        hits = [max(a, fault.start) for a, b in episodes if a <= fault.end + grace_s and b >= fault.start]
        first = min(hits) if hits else None
        result.events.append(EventResult(fault, first is not None, None if first is None else first - fault.start))
    for a, b in episodes:
        if not any(a <= f.end + grace_s and b >= f.start for f in faults):
            result.false_alarms += 1
    return result


def label_spans(ts: Sequence[float] | np.ndarray, label: Sequence[int] | np.ndarray, kind: str = "fault",
                machine_id: str = "") -> list[FaultSpan]:
    """Fault spans from a 0/1 label column.

    >>> label_spans([0.0, 1.0, 2.0, 3.0], [0, 1, 1, 0])
    [FaultSpan(start=1.0, end=2.0, kind='fault', machine_id='', sensor_fault=False)]
    """
    return [FaultSpan(a, b, kind, machine_id) for a, b in alarm_episodes(ts, np.asarray(label) > 0)]


@dataclass(frozen=True)
class Summary:
    faults: int
    detected: int
    mean_delay_s: float | None
    false_alarms: int
    machine_days: float

    @property
    def event_recall(self) -> float:
        return self.detected / self.faults if self.faults else float("nan")

    @property
    def false_alarms_per_machine_day(self) -> float:
        return self.false_alarms / self.machine_days if self.machine_days else float("nan")


def summarise(results: Sequence[MatchResult], scored_seconds: float) -> Summary:
    """Fleet totals of machine faults (sensor faults excluded) over ``scored_seconds`` of machine time."""
    events = [e for r in results for e in r.events if not e.fault.sensor_fault]
    delays = [e.delay_s for e in events if e.delay_s is not None]
    return Summary(
        faults=len(events),
        detected=sum(e.detected for e in events),
        mean_delay_s=float(np.mean(delays)) if delays else None,
        false_alarms=sum(r.false_alarms for r in results),
        machine_days=scored_seconds / DAY_S,
    )
