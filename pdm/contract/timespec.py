"""Durations and dates on the command line: ``90s``, ``15m``, ``6h``, ``7d``, ``1d12h``; ISO dates or epoch seconds.

>>> parse_duration("1d12h")
129600.0
>>> parse_duration("90")
90.0
>>> parse_time("2026-11-23")
1795392000.0
>>> parse_time("2026-11-23T06:00:00+01:00")
1795410000.0
>>> parse_holdout("0.2"), parse_holdout("12h")
((0.2, None), (None, 43200.0))
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from pdm.errors import DataError

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|min|s|m|h|d|w)")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from a number of seconds or ``<number><unit>...`` (units ms, s, m or min, h, d, w); shared by the
    product's commands and the simulator."""
    t = str(text).strip().lower()
    try:
        value = float(t)
    except ValueError:
        parts = _PART.findall(t)
        if not parts or "".join(n + u for n, u in parts) != t:
            raise DataError(f"{what}: found {text!r}, expected a duration like 30s, 15m, 6h, 7d or 1d12h") from None
        value = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{what}: found {text!r}, expected a duration >= 0")
    return value


def parse_time(text: str, what: str = "time") -> float:
    """Epoch seconds from epoch seconds or an ISO 8601 date/time (naive = UTC)."""
    t = str(text).strip()
    try:
        return float(t)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{what}: found {text!r}, expected an ISO 8601 date/time (2026-11-23, "
                        "2026-11-23T06:00:00Z) or epoch seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_holdout(text: str) -> tuple[float | None, float | None]:
    """``(fraction, None)`` for a number below 1, ``(None, seconds)`` for a duration."""
    t = str(text).strip()
    try:
        value = float(t)
    except ValueError:
        return None, parse_duration(t, "--holdout")
    if 0 < value < 1:
        return value, None
    raise DataError(f"--holdout: found {text!r}, expected a fraction between 0 and 1 (e.g. 0.2) or a duration "
                    "(e.g. 12h)")
