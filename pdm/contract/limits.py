"""The contract's bounds on untrusted input: what a consumer (the daemon, the recorder, a tool) accepts at most.

They are stricter validation of schema 1, not a new schema: a payload within them is unchanged. Each bound has its
own reason code (`pdm.contract.errors`), so a dead letter says which one was hit:

- Sensor values: ``|value| <= MAX_ABS_VALUE`` (1e12; ``max_abs_value`` of `parse_telemetry` changes it). A PLC's
  float32 maximum (3.4028235e38, often sent for "invalid") or ``1e39`` is ``out_of_range``: it would become
  ``inf`` in a float32 model. Integers beyond int64 (``seq``) are ``out_of_range`` too.
- Times: telemetry ``ts`` in ``[MIN_TS, MAX_TS)`` = [2000-01-01, 2100-01-01) UTC, ``bad_timestamp`` otherwise (a
  device whose clock was reset to 1970, milliseconds sent as seconds); the other payloads' times are before
  ``MAX_TS``. A consumer may also bound the distance to its receive time (``clock_skew``, `check_clock_skew`).
- Strings: ``MAX_TEXT`` (200) characters for short texts (``machine_type``, severity, model name and version,
  fault, ``fault_id``, ``alert_id``, maintenance ``by``, ...), ``MAX_REASON`` (1000) for a maintenance ``reason``,
  ``MAX_CONTRIBUTIONS`` (64) sensors in an alert's ``contributions``; longer is ``too_long``.
- Nesting: JSON nested deeper than the decoder's recursion limit (about 1000 levels) is ``too_deep``.

>>> check_text("pump", "telemetry: machine_type")
'pump'
>>> check_clock_skew(np.array([1795406400.0]), "telemetry", now=1795406410.0, max_clock_skew_s=60.0)
>>> iso(1795406400.0)
'2026-11-23T04:00:00Z'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from pdm.contract.errors import ClockSkewError, TimestampError, TooLongError

MAX_ABS_VALUE = 1e12
MIN_TS = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_TS = 4_102_444_800.0  # 2100-01-01T00:00:00Z
MAX_INT = 2**63 - 1  # int64: what a table column holds
MAX_TEXT = 200
MAX_REASON = 1000
MAX_DETAIL = 1000  # a dead letter's detail (cut, never refused: the daemon writes it)
MAX_TOPIC = 1024  # a dead letter's topic (cut, never refused)
MAX_CONTRIBUTIONS = 64
TS_RANGE = "epoch seconds from 2000-01-01 to before 2100-01-01 (seconds, not milliseconds)"


def iso(ts: float) -> str:
    """``ts`` as an ISO 8601 UTC time, or "not a date" (never raises, whatever the number).

    >>> iso(1e300), iso(float("nan"))
    ('not a date', 'not a date')
    """
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return "not a date"


def plausible_time(ts: float | int) -> bool:
    """True when ``ts`` is in ``[MIN_TS, MAX_TS)`` (exact for huge integers: nothing is converted)."""
    return MIN_TS <= ts < MAX_TS


def check_times(ts: np.ndarray, what: str, field: str = "ts") -> None:
    """Every ``ts`` in ``[MIN_TS, MAX_TS)``; `TimestampError` naming the first one that is not."""
    if len(ts) and ts.min() >= MIN_TS and ts.max() < MAX_TS:  # the usual case, cheaply (NaN fails both)
        return
    bad = np.flatnonzero(~((ts >= MIN_TS) & (ts < MAX_TS)))
    if len(bad):
        i = int(bad[0])
        where = f"{what} reading {i}" if len(ts) > 1 else what
        raise TimestampError(f"{where}: {field}: found {float(ts[i])!r} ({iso(float(ts[i]))}), expected {TS_RANGE}")


def check_clock_skew(ts: np.ndarray, what: str, now: float, max_clock_skew_s: float, field: str = "ts") -> None:
    """Every ``ts`` within ``max_clock_skew_s`` of ``now`` (the receive time); `ClockSkewError` otherwise."""
    if not math.isfinite(max_clock_skew_s) or max_clock_skew_s < 0:
        raise ValueError(f"max_clock_skew_s: found {max_clock_skew_s!r}, expected a finite number >= 0")
    off = ts - now
    bad = np.flatnonzero(np.abs(off) > max_clock_skew_s)
    if len(bad):
        i = int(bad[0])
        where = f"{what} reading {i}" if len(ts) > 1 else what
        side = "ahead of" if off[i] > 0 else "behind"
        raise ClockSkewError(f"{where}: {field}: found {iso(float(ts[i]))}, {abs(float(off[i])):.0f} s {side} the "
                             f"receive time {iso(now)}, expected within {max_clock_skew_s:g} s of it "
                             "(max_clock_skew_s)")


def check_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """``value`` when it has at most ``limit`` characters; `TooLongError` otherwise."""
    if len(value) > limit:
        raise TooLongError(f"{what}: found {len(value)} characters, expected at most {limit}")
    return value
