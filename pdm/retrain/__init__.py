"""Retraining: refresh a model from recent data believed normal, promote the challenger only when it is not worse.

Modules, one role each:

- `pdm.retrain.data`: what a source returns (readings, excluded intervals with reasons, labelled faults); files;
- `pdm.retrain.recorder_source`: the recorder's Parquet tables as a source;
- `pdm.retrain.source`: files or the recorder, selected by machine, type and time (what ``retrain`` reads);
- `pdm.retrain.exclusions`: margins, which rows are excluded and why, the recent holdout;
- `pdm.retrain.screen`: the champion's alarms as exclusions for sources without alert history;
- `pdm.retrain.challenger` / `pdm.retrain.finetune`: fitting the challenger from scratch or from the champion;
- `pdm.retrain.compare`: judging both models on the same held-out data, and the promotion rule;
- `pdm.retrain.report`: the JSON and PNG report stored with each version, and the printed summary;
- `pdm.retrain.run`: one retrain end to end; `pdm.retrain.catalog`: listing versions and rollback;
- `pdm.retrain.schedule`: ``--every``, a retrain every interval until SIGTERM/SIGINT;
- `pdm.retrain.lock`: one retrain per model name at a time; `pdm.retrain.progress`: bars or log lines (also for
  ``pdm train``).

Documentation: docs/retraining.md.
"""

from pdm.retrain.catalog import VersionInfo, list_versions, rollback
from pdm.retrain.data import Exclusion, RetrainData, from_files, from_frame
from pdm.retrain.lock import LockedError, model_lock
from pdm.retrain.run import Outcome, RetrainOptions, retrain

__all__ = [
    "Exclusion",
    "LockedError",
    "Outcome",
    "RetrainData",
    "RetrainOptions",
    "VersionInfo",
    "from_files",
    "from_frame",
    "list_versions",
    "model_lock",
    "retrain",
    "rollback",
]
