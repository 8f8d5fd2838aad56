"""Screening: when the data carries neither alert history nor labels (files from a historian), the champion scores
it and every alarm episode it raises becomes an exclusion (reason ``screen``), as the daemon's alerts would have been.

This is the guard for unlabelled files: without it a fault in the history would be learned as normal. Its cost is
one scoring pass over all readings. Its risk: a stale champion that alarms on a machine's new normal behaviour (after
a service, a change of duty) keeps that behaviour out of training; the exclusion summary warns when most of a
machine's readings are excluded, and ``--no-screen`` turns it off once an engineer has looked. Measured
(`benchmarks/retrain_init.py`, docs/retraining.md): on labelled data, screening on top of the labels only removed
hard normal periods and raised the challengers' false alarms, hence no screening by default when labels exist.
"""

from __future__ import annotations

import logging

from pdm.detectors.base import Detector
from pdm.evaluation import alarm_episodes
from pdm.retrain.challenger import as_input
from pdm.retrain.data import TS, Exclusion, RetrainData
from pdm.retrain.progress import Advance

logger = logging.getLogger(__name__)


def screen(champion: Detector, data: RetrainData, advance: Advance | None = None) -> list[Exclusion]:
    """The champion's alarm episodes over ``data`` as exclusions."""
    out: list[Exclusion] = []
    for m, frame in data.machine_frames().items():
        result = champion.detect(as_input(frame, champion.timestamp_column), machine_id=m)
        for start, end in alarm_episodes(frame[TS].to_numpy(), result["alarm"].to_numpy()):
            out.append(Exclusion(m, start, end, "screen", "champion alarm"))
        if advance is not None:
            advance(1)
    logger.info("screening with the champion: %d alarm episode(s) excluded", len(out))
    return out
