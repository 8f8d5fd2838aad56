"""Normal ranges that know how well the training history covers them.

A range learned from a history is only as wide as the history was varied. A machine trained on a few hundred
readings, or on a few hours of a slow channel (a temperature that follows the weather), later leaves that range while
it is perfectly healthy; scoring every such excursion floods the operator with alarms.

The history itself tells how far its range can be trusted. It is cut into ``blocks`` consecutive parts; each part
in turn is held out, the range (the ``quantile`` and ``1 - quantile`` quantiles) is learned from the other parts, and
the held-out part's excess beyond it is measured. Two figures per column come out:

- ``outside``: the share of held-out rows outside the range of the other parts. For a history that covers the
  operating range this is about ``2 x quantile``; above `COVERAGE_LIMIT` the history does not cover it: the column
  is not scored for leaving its range (`covered`), and a warning says so (`coverage_warning`).
- ``margin``: how far held-out rows went beyond the others' range (the ``MARGIN_LEVEL`` quantile of the excess,
  the largest over the parts). The range used for scoring is widened by it on both sides: a history that keeps
  drifting gets a wider range, a representative one keeps its own (margin about 0).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> steady = rng.normal(0.0, 1.0, (5_000, 1))
>>> r = HeldOutRanges.fit(np.array_split(steady, 5), quantile=1e-3)
>>> round(r.margin[0], 2), r.outside[0]     # 1,000 rows pin a 1e-3 quantile down to about a standard deviation
(0.86, 0.003)
>>> drifting = steady + np.linspace(0.0, 10.0, 5_000)[:, None]   # a slow channel that keeps rising
>>> r = HeldOutRanges.fit(np.array_split(drifting, 5), quantile=1e-3)
>>> bool(r.margin[0] > 2.5 and r.outside[0] > 0.05)
True
>>> coverage_warning(["temperature"], r.outside) is not None
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MARGIN_LEVEL = 0.999  # the held-out excess quantile that widens the range
COVERAGE_LIMIT = 0.05  # share of held-out rows outside the others' range above which a column is reported
BLOCKS = 5


class HeldOutRanges(BaseModel):
    """Per column: the range of all rows, its held-out margin and the held-out share outside (module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    quantile: float = Field(gt=0, lt=0.5)
    low: list[float]
    high: list[float]
    margin: list[float]
    outside: list[float]

    @classmethod
    def fit(cls, blocks: Sequence[np.ndarray], *, quantile: float) -> HeldOutRanges:
        """``blocks``: the same columns in consecutive parts of the history, each (rows, F); empty ones are skipped."""
        parts = [np.asarray(b, dtype=np.float64) for b in blocks if len(b)]
        held_out = [(part, np.concatenate([p for j, p in enumerate(parts) if j != i])) for i, part in enumerate(parts)]
        return cls.from_held_out(np.concatenate(parts), held_out if len(parts) >= 2 else [], quantile=quantile)

    @classmethod
    def from_held_out(cls, rows: np.ndarray, held_out: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      quantile: float) -> HeldOutRanges:
        """The range of ``rows``, with margin and share outside measured on ``held_out`` pairs (values of a held-out
        part, values of the rest), e.g. residuals of a model refitted without that part."""
        rows = np.asarray(rows, dtype=np.float64)
        low, high = np.quantile(rows, quantile, axis=0), np.quantile(rows, 1 - quantile, axis=0)
        margin = np.zeros(rows.shape[1])
        outside = np.zeros(rows.shape[1])
        n_held = 0
        for part, rest in held_out:
            lo, hi = np.quantile(rest, quantile, axis=0), np.quantile(rest, 1 - quantile, axis=0)
            excess = np.maximum(part - hi, 0.0) + np.maximum(lo - part, 0.0)
            margin = np.maximum(margin, np.quantile(excess, MARGIN_LEVEL, axis=0))
            outside += (excess > 0).sum(axis=0)
            n_held += len(part)
        if n_held:
            outside /= n_held
        return cls(quantile=quantile, low=low.tolist(), high=high.tolist(), margin=margin.tolist(),
                   outside=outside.tolist())

    def widened(self) -> tuple[np.ndarray, np.ndarray]:
        """The scoring range: ``[low - margin, high + margin]``."""
        low, high, margin = (np.asarray(v, dtype=np.float64) for v in (self.low, self.high, self.margin))
        return low - margin, high + margin


def time_blocks(segments: Sequence[np.ndarray], blocks: int = BLOCKS) -> list[list[np.ndarray]]:
    """Cut every segment into ``blocks`` consecutive parts; part ``i`` of every segment forms block ``i``."""
    out: list[list[np.ndarray]] = [[] for _ in range(blocks)]
    for seg in segments:
        for i, part in enumerate(np.array_split(seg, blocks)):
            out[i].append(part)
    return out


def covered(outside: Sequence[float] | None, n: int) -> np.ndarray:
    """(n,) 1.0 for a column whose range the history covers (held-out share outside at most `COVERAGE_LIMIT`),
    0.0 for one it does not: its excursions cannot be told from conditions the history never showed, so they are
    not scored (``None``: a model saved before the check, every column scored)."""
    if outside is None:
        return np.ones(n)
    return np.asarray([1.0 if o <= COVERAGE_LIMIT else 0.0 for o in outside])


def coverage_warning(names: Sequence[str], outside: Sequence[float], what: str = "range") -> str | None:
    """A one-line warning naming the columns whose held-out share outside the range exceeds `COVERAGE_LIMIT`."""
    poor = [(n, o) for n, o in zip(names, outside, strict=True) if o > COVERAGE_LIMIT]
    if not poor:
        return None
    listed = ", ".join(f"{n} ({o:.0%})" for n, o in poor)
    return (f"the history does not cover the operating {what} of {listed}: parts of it left the {what} of the rest "
            f"that often, so leaving that {what} is not scored (it cannot be told from a condition the history never "
            "showed); train on a longer history that includes every operating condition")
