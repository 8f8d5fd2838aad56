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

import math
from collections import deque
from dataclasses import dataclass, field

from pdm.contract import alert_id
from pdm.contract.errors import FieldValueError
from pdm.contract.limits import plausible_time
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
        """An open alert read back from the daemon's own retained state (its window end is in the id); a
        `FieldValueError` when the id is not ``MACHINE-<window end in ms>`` or the score is not finite."""
        head, _, ms = aid.rpartition("-")
        end = int(ms) / 1000.0 if head == machine_id and ms.isascii() and ms.isdigit() and len(ms) <= 15 else math.nan
        if not math.isfinite(end) or alert_id(machine_id, end) != aid:
            raise FieldValueError(f"alert_id: found {aid[:80]!r}, expected {machine_id}-<window end in ms>")
        if score is not None and not math.isfinite(score):
            raise FieldValueError(f"score: found {score!r}, expected a finite number")
        return cls(aid, end - window_s, end, since, score if score is not None else 0.0,
                   was_restored=True)

    @classmethod
    def untrusted(cls, machine_id: str, aid: str, since: float, score: float | None, window_s: float) -> OpenAlert:
        """`restored`, for an alert read from untrusted input (a retained state, a checkpoint): its window end and
        ``since`` must also be times from 2000 to before 2100 (`FieldValueError` otherwise)."""
        a = cls.restored(machine_id, aid, since, score, window_s)
        if not plausible_time(a.window_end):
            raise FieldValueError(f"alert_id: found {aid[:80]!r}, expected {machine_id}-<window end in ms from 2000 "
                                  "to before 2100>")
        if not (math.isfinite(since) and plausible_time(since)):
            raise FieldValueError(f"since: found {since!r}, expected epoch seconds from 2000 to before 2100")
        return a


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
    active = tracker.update_score(score, threshold)
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


class LookBack:
    """What a machine's alarm tracker holds, mirrored by the daemon so a checkpoint can rebuild it exactly
    (`pdm.daemon.checkpoint`; the tracker's own state is the detector's). It follows `pdm.detectors.alarm`'s
    k-of-n / m rule with its hysteresis: ``recent`` holds the over-threshold verdicts since the look-back last
    restarted (at most n; a clear or a gap restarts it), ``under`` the quiet windows in a row (score under the clear
    level). Rebuilt by `rebuild`: an active alarm is set active and fed ``under`` quiet windows (its verdicts before
    do not matter until it clears); an inactive one is fed ``recent`` (it never raised on them, so neither does the
    rebuilt tracker). Change it with the alarm rule (and with `step`)."""

    def __init__(self, n: int) -> None:
        self.recent: deque[bool] = deque(maxlen=n)
        self.under = 0

    def update(self, over: bool, cleared: bool, quiet: bool | None = None) -> None:
        """One window fed to the tracker (``quiet``: under the clear level, default not ``over``; ``cleared``: it
        cleared the alarm, which restarts the look-back)."""
        self.recent.append(over)
        self.under = self.under + 1 if (not over if quiet is None else quiet) else 0
        if cleared:
            self.recent.clear()

    def restart(self) -> None:
        self.recent.clear()
        self.under = 0

    def rebuild(self, tracker: AlarmTracker) -> AlarmTracker:
        """``tracker`` (fresh) brought to the mirrored state."""
        if tracker.active:
            for _ in range(self.under):
                tracker.update(False, True)
        else:
            for over in self.recent:
                tracker.update(over)
        return tracker
