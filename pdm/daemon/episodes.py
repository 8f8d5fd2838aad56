"""Alert episodes: the model's alarm rule turned into one ``raised`` and one ``cleared`` event per episode.

An episode opens when the alarm rule becomes active (k of the last n windows over the threshold) and closes after
m consecutive windows under it. Its id is the contract's: ``MACHINE-`` + the raising window's end in integer
milliseconds. Severity: ``critical`` when the score is at least twice the threshold, else ``warning``. The cleared
event repeats the raise's id and window and carries the episode's peak score and that window's contributions.

>>> a = OpenAlert.restored("pump-007", "pump-007-1795406400000", since=1795406400.0, score=0.9, window_s=63.0)
>>> a.window_end, a.window_start
(1795406400.0, 1795406337.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pdm.contract import alert_id
from pdm.detectors.alarm import AlarmTracker

CRITICAL_RATIO = 2.0


def severity(score: float, threshold: float) -> str:
    return "critical" if score >= CRITICAL_RATIO * threshold else "warning"


@dataclass
class OpenAlert:
    alert_id: str
    window_start: float
    window_end: float
    since: float
    peak: float
    contributions: dict[str, float] = field(default_factory=dict)  # at the peak; empty when restored
    was_restored: bool = False

    @classmethod
    def restored(cls, machine_id: str, aid: str, since: float, score: float | None, window_s: float) -> OpenAlert:
        """An open alert read back from the daemon's own retained state (its window end is in the id)."""
        end = int(aid.rsplit("-", 1)[1]) / 1000.0
        if alert_id(machine_id, end) != aid:
            raise ValueError(f"alert_id: found {aid!r}, expected {machine_id}-<window end in ms>")
        return cls(aid, end - window_s, end, since, score if score is not None else 0.0,
                   was_restored=True)


@dataclass(frozen=True)
class Event:
    kind: str  # "raised" | "cleared"
    alert: OpenAlert
    ts: float  # end of the window that raised or cleared
    score: float
    contributions: dict[str, float]


def step(tracker: AlarmTracker, current: OpenAlert | None, machine_id: str, *, score: float,
         shares: dict[str, float], start: float, end: float, threshold: float) -> tuple[OpenAlert | None, Event | None]:
    """Feed one window to the machine's tracker; returns the open alert after it and the event, if any."""
    was = tracker.active
    active = tracker.update(score > threshold)
    if active and not was:
        opened = OpenAlert(alert_id(machine_id, end), start, end, end, score, shares)
        return opened, Event("raised", opened, end, score, shares)
    if was and not active:
        closed = current if current is not None else OpenAlert(alert_id(machine_id, end), start, end, end, score,
                                                              shares)
        peak_shares = closed.contributions or shares
        return None, Event("cleared", closed, end, closed.peak, peak_shares)
    if active and current is not None and score > current.peak:
        current.peak = score
        current.contributions = shares
    return current, None
