"""Whether the champion's alarms are taken as faults when retraining.

Retraining leaves out what the champion (the current version) called a fault: its recorded machine alerts and
``alert`` states, or, for data without alert history or labels, its alarms when it scores the data again
(`pdm.retrain.screen`). That is right for a model that knows its machines, and self-confirming for one that does
not: whatever it alarmed on is never learned, so it alarms on it again after the retrain, and the next retrain
leaves it out again. Two such champions are not believed (their alarms stay in training; sensor alerts, labels,
maintenance and stale periods are still left out):

- **a short history** (`Detector.short_history`): fewer than 2,000 fitting rows cannot show the operating range;
- **alarms over most of the history**: when the champion's verdicts, with the margins around them, would leave
  out more than `MAX_VERDICT_SHARE` of the readings. Faults are what a machine rarely does; a model that alarms on
  most of what its machines did describes what it never saw. Measured: a model retrained daily from its first day
  (`benchmarks/commissioning.py --days 4`) kept 24-44 % of the history after its alarms, and the compressor's
  second retrain failed with nothing left to train on.

``--trust-champion`` (`RetrainOptions.trust_champion`) takes the alarms as faults all the same; an explicit
``--screen`` keeps the screen's verdicts. A real fault the champion alarmed on is learned when it is not believed,
unless it is labelled or under maintenance: the warning says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from pdm.retrain.data import Exclusion
from pdm.retrain.exclusions import Margins, exclusion_mask

logger = logging.getLogger(__name__)

MAX_VERDICT_SHARE = 0.5  # the champion's verdicts (with margins) may leave out at most this share of the readings


def champions_verdict(e: Exclusion) -> bool:
    """A machine alert's period, an ``alert`` state or a screen alarm: the scoring model's verdict. A sensor alert
    (its id ``MACHINE-SENSOR-ms``, `pdm.contract.alert_id`) comes from the data-quality rules and is not."""
    if e.reason == "screen":
        return True
    return e.reason == "alert" and (e.detail == "states" or e.detail.removeprefix(f"{e.machine_id}-").isdigit())


def verdict_share(frame: pd.DataFrame, verdicts: list[Exclusion], margins: Margins) -> float:
    """The share of ``frame``'s readings that ``verdicts``, widened by ``margins``, leave out."""
    if not verdicts or len(frame) == 0:
        return 0.0
    mask, _ = exclusion_mask(frame, verdicts, margins)
    return float(mask.mean())


@dataclass(frozen=True)
class Weighed:
    """The exclusions to train with, and why the champion's verdicts were not believed (``None``: they were)."""

    exclusions: list[Exclusion]
    doubt: str | None


def weigh(frame: pd.DataFrame, exclusions: list[Exclusion], margins: Margins, *, short_history: bool,
          trust: bool, keep: list[Exclusion] | None = None) -> Weighed:
    """``exclusions`` (the source's and the screen's) without the champion's verdicts when it is not believed (module
    docstring). ``keep``: verdicts kept whatever the doubt (an explicit ``--screen``)."""
    kept = {id(e) for e in keep or []}
    verdicts = [e for e in exclusions if champions_verdict(e) and id(e) not in kept]
    if trust:
        return Weighed(exclusions, None)
    doubt = None
    if short_history:
        doubt = "it was trained on a short history: its alarms flag conditions it never saw as much as faults"
    elif verdicts:
        share = verdict_share(frame, verdicts, margins)
        if share > MAX_VERDICT_SHARE:
            doubt = (f"its alarms, with their margins, cover {share:.0%} of the readings (more than "
                     f"{MAX_VERDICT_SHARE:.0%}): a model that alarms on most of what its machines did describes "
                     "what it never saw, not faults")
    if doubt is None:
        return Weighed(exclusions, None)
    logger.warning("the champion is not believed: %s. Its %d alarm period(s) stay in training (a real fault among "
                   "them is learned unless it is labelled or under maintenance); sensor alerts, labels, maintenance "
                   "and stale periods are still left out. --trust-champion leaves them out", doubt, len(verdicts))
    left_out = {id(e) for e in verdicts}
    return Weighed([e for e in exclusions if id(e) not in left_out], doubt)
