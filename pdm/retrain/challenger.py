"""The challenger: the champion's hyper-parameters (or the defaults), the overrides given, fitted from scratch or
fine-tuned from the champion's weights, with the robust z-score baseline fitted alongside
(`pdm.detectors.training.fit_with_baseline`, as `pdm train` does).

Rules:

- Hyper-parameters: the champion's saved ones, then each override that is not ``None``; without a champion (or
  when it is not a GRU autoencoder), the `GRUAutoencoderDetector` defaults and the overrides. A champion saved
  with the alarm rule's old default in windows (60 of 120, 14,400: before the default was set in time) passes on
  the default set in time instead, which is the same at 1 Hz and right at other sampling periods.
- Sensors: the champion's, in its order (the daemon routes the same telemetry to it); without a champion, those
  of the data. ``timestamp_column`` and ``machine_column`` are kept from the champion.
- ``init="finetune"`` needs a GRU champion with the same architecture (`pdm.retrain.finetune.check_compatible`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from pdm.detectors.base import Detector, Progress
from pdm.detectors.gru import GRUAutoencoderDetector
from pdm.detectors.training import fit_with_baseline
from pdm.detectors.zscore import RobustZScoreDetector
from pdm.errors import DataError
from pdm.retrain.data import TS
from pdm.retrain.finetune import FineTunedGRU, check_compatible

logger = logging.getLogger(__name__)

Init = Literal["scratch", "finetune"]
LEGACY_DEFAULT_RULE = (60, 120, 14_400)  # alarm_k, alarm_n, alarm_m saved by every model before 2026-12-06


def challenger_params(champion: Detector | None, overrides: Mapping[str, Any], features: list[str]) -> dict[str, Any]:
    """The challenger's constructor parameters (rules in the module docstring)."""
    params: dict[str, Any] = {}
    if isinstance(champion, GRUAutoencoderDetector):
        params.update(champion.get_params())
        if tuple(params.get(k) for k in ("alarm_k", "alarm_n", "alarm_m")) == LEGACY_DEFAULT_RULE:
            logger.info("the champion's alarm rule is the old default in windows (60 of 120, 14,400): the challenger "
                        "takes the default set in time, at its data's sampling period")
            params.update(alarm_k=None, alarm_n=None, alarm_m=None)
    params.update({k: v for k, v in overrides.items() if v is not None})
    params["features"] = list(features)
    return params


def as_input(frame: pd.DataFrame, timestamp_column: str | None) -> pd.DataFrame:
    """``frame`` with its ``timestamp`` column named as the detector expects."""
    if timestamp_column and timestamp_column != TS:
        return frame.rename(columns={TS: timestamp_column})
    return frame


def fit_challenger(train: Mapping[str, pd.DataFrame], params: Mapping[str, Any], *, init: Init,
                   champion: Detector | None, progress: Progress | None = None) -> tuple[GRUAutoencoderDetector,
                                                                                         RobustZScoreDetector]:
    """Fit the challenger and its baseline on ``train`` (one frame per machine)."""
    if not train:
        raise DataError("no normal readings left to train on after exclusions and the holdout: expected some; "
                        "give a longer period, fewer exclusions (--margin-before/--margin-after) or a smaller "
                        "--holdout")
    frames = {m: as_input(f, params.get("timestamp_column")) for m, f in train.items()}
    detector: GRUAutoencoderDetector
    if init == "finetune":
        if not isinstance(champion, GRUAutoencoderDetector):
            found = "no champion" if champion is None else f"a {champion.kind} champion"
            raise DataError(f"--init finetune: found {found}, expected a GRU autoencoder champion to start from "
                            "(use --init scratch)")
        check_compatible(champion, params, list(params["features"]))
        detector = FineTunedGRU(**params).start_from(champion)
    elif init == "scratch":
        detector = GRUAutoencoderDetector(**params)
    else:
        raise DataError(f"--init: found {init!r}, expected 'scratch' or 'finetune'")
    detector, baseline = fit_with_baseline(detector, frames, progress=progress)
    detector.evaluation_["init"] = init
    return detector, baseline
