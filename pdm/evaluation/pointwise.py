"""Figures for row-labelled benchmark data (one label per row, no timestamps needed), built on `pdm.evaluation.judge`.

- `pointwise_report`: precision, recall, F1 and false-alarm rate of flagged rows against labelled rows (the
  `Report` of `pdm.evaluation.judge`, each row a time step), and how many labelled segments were touched.
- `point_adjust`: the "point adjustment" common in the anomaly-detection literature: once one row of a labelled
  segment is flagged, the whole segment counts as flagged. It flatters any detector (one lucky row in a long
  segment makes it all true positives); report it beside the unadjusted figure, never alone.
- `attribution_hit_rate`: the share of labelled segments whose top-ranked sensor (contributions summed over the
  segment) is among the truly anomalous ones.
- `roc_auc`: how well the score alone ranks labelled rows above normal ones, whatever the threshold.

>>> labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
>>> flags = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
>>> r = pointwise_report(flags, labels)
>>> (r.tp, r.fp, r.fn, r.tn), round(r.f1, 3), r.detected
((1, 1, 4, 4), 0.286, 1)
>>> point_adjust(flags, labels).astype(int).tolist()
[0, 1, 1, 1, 0, 0, 0, 0, 0, 1]
>>> round(pointwise_report(point_adjust(flags, labels), labels).f1, 3)
0.667
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np

from pdm.evaluation.judge import Report, evaluate_machine, label_spans, summarise


class Segment(Protocol):
    """Rows ``[start, end)`` with the names of the truly anomalous sensors."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def sensors(self) -> Collection[str]: ...


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of non-zero labels."""
    edges = np.diff(np.concatenate([[0], (labels != 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def pointwise_report(flags: Sequence[bool] | np.ndarray, labels: Sequence[int] | np.ndarray) -> Report:
    """`pdm.evaluation.judge` figures with row numbers as timestamps and no grace: ``precision``, ``recall``,
    ``f1``, ``false_alarm_rate`` (flagged share of label-0 rows); ``detected`` of ``faults`` labelled segments had a
    flagged row."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels), dtype=np.float64)
    spans = label_spans(rows, (labels != 0).astype(np.int8))
    return summarise([evaluate_machine("", rows, np.asarray(flags, dtype=bool), spans, grace_s=0.0)])


def point_adjust(flags: Sequence[bool] | np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Flags with every labelled segment that has a flagged row flagged whole (module docstring)."""
    out = np.asarray(flags, dtype=bool).copy()
    for start, end in _runs(np.asarray(labels)):
        if out[start:end].any():
            out[start:end] = True
    return out


def attribution_hit_rate(contributions: np.ndarray, sensors: Sequence[str], segments: Sequence[Segment]) -> float:
    """Share of ``segments`` whose top-ranked sensor, by ``contributions`` (rows x sensors, NaN where a row has no
    score) summed over the segment's rows, is one of its true sensors; a segment without any scored row is a miss.

    >>> contrib = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [np.nan, np.nan]])
    >>> class S:
    ...     def __init__(self, start, end, sensors): self.start, self.end, self.sensors = start, end, sensors
    >>> attribution_hit_rate(contrib, ["a", "b"], [S(0, 1, {"a"}), S(1, 3, {"a"}), S(3, 4, {"b"})])
    0.3333333333333333
    """
    if not segments:
        return float("nan")
    contributions = np.asarray(contributions, dtype=np.float64)
    hits = 0
    for seg in segments:
        block = contributions[seg.start : seg.end]
        scored = block[np.all(np.isfinite(block), axis=1)]
        if len(scored):
            hits += sensors[int(np.argmax(scored.sum(axis=0)))] in seg.sensors
    return hits / len(segments)


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for labelled (non-zero) rows against the others (ties count half);
    rows without a score (NaN) are left out; NaN when either class is empty.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8, np.nan], [0, 0, 1, 1, 1])
    0.75
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) != 0
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
