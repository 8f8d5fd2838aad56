"""The models the demo scores with: one per machine type, shipped in ``models/`` and trained by the project's own
commands on simulated normal data. ``python -m pdm demo --train-models`` (``make models``) re-runs exactly these
commands; the demo runs them for a type whose model is missing.

As in a plant, a model is trained on the normal history of the machines it then watches: the training data is
simulated with the demo fleet's machine seed (``DATA_SEED``: the same units, ids and parameters) and the demo runs
them on other days (the simulator's ``--noise-seed``), so per-machine scaling applies to every demo machine.

The history is ``TRAIN_DAYS`` separate days, an hour apart, each starting from machines at rest, rather than one
continuous run: a plant's history has restarts, and a continuous run has one cold start (its first minutes). With
one, the pump model raised an alert at every cold start (the demo's first 17 minutes, then open for hours); with
four, none in 6 machine-days of other days, and the pump's imbalance was raised 66 s after onset at 37x the
threshold (docs/detector.md, "Train on a history with restarts").

>>> [c[2] for c in training_commands("pump", Path("models"), Path("build/models-data"))]
['simulators.fleet', 'simulators.fleet', 'simulators.fleet', 'simulators.fleet', 'pdm']
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

MACHINE_TYPES = ("pump", "compressor", "motor")
FEATURES = "temperature,vibration,pressure"
TRAIN_MACHINES = 2  # per type: the demo fleet's machines (`pdm.demo.run.DemoPlan.mix`)
TRAIN_DAYS = 4  # separate simulated days of history per type (module docstring)
TRAIN_START = 1795392000  # 2026-11-23T00:00:00Z: the first day; the next ones follow a day and an hour apart
DATA_SEED = {"pump": 101, "compressor": 102, "motor": 103}  # the machines' seed, in training and in the demo


def training_commands(machine_type: str, models_dir: Path, data_dir: Path) -> list[list[str]]:
    """The commands that produce ``models_dir/machine_type``: simulate ``TRAIN_DAYS`` days of normal data, train
    on them."""
    seed = DATA_SEED[machine_type]
    days = [data_dir / f"{machine_type}-normal-day{k}.parquet" for k in range(TRAIN_DAYS)]
    simulate = [[sys.executable, "-m", "simulators.fleet", "--mix", f"{machine_type}={TRAIN_MACHINES}", "--duration",
                 "1d", "--normal-only", "--seed", str(seed), "--noise-seed", str(seed + k), "--start",
                 str(TRAIN_START + k * 90_000), "--out", str(path)] for k, path in enumerate(days)]
    data = [arg for path in days for arg in ("--data", str(path))]
    return [*simulate, [sys.executable, "-m", "pdm", "train", *data, "--out", str(models_dir / machine_type),
                        "--features", FEATURES, "--seed", "0"]]


def has_model(models_dir: Path, name: str) -> bool:
    return (models_dir / name / "current").is_file()


def train_models(models_dir: Path, data_dir: Path, types: tuple[str, ...] = MACHINE_TYPES,
                 only_missing: bool = True) -> list[str]:
    """Train the models of ``types`` (only those missing, by default); returns the names trained."""
    trained = []
    for machine_type in types:
        if only_missing and has_model(models_dir, machine_type):
            continue
        logger.warning("training the %s model (a few minutes): the commands are in pdm/demo/models.py",
                       machine_type)
        for cmd in training_commands(machine_type, models_dir, data_dir):
            print("$ python " + " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True)  # noqa: S603 - the project's own commands
        trained.append(machine_type)
    return trained
