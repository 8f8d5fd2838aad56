"""The models the demo scores with: one per machine type, shipped in ``models/`` and trained by the project's own
commands on simulated normal data. ``python -m pdm demo --train-models`` (``make models``) re-runs exactly these
commands; the demo runs them for a type whose model is missing.

As in a plant, a model is trained on the normal history of the machines it then watches: the training data is
simulated with the demo fleet's machine seed (``DATA_SEED``: the same units, ids and parameters) and the demo runs
them on other days (the simulator's ``--noise-seed``), so per-machine scaling applies to every demo machine.

>>> [c[2] for c in training_commands("pump", Path("models"), Path("build/models-data"))]
['simulators.fleet', 'pdm']
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
TRAIN_DURATION = "4d"
DATA_SEED = {"pump": 101, "compressor": 102, "motor": 103}  # the machines' seed, in training and in the demo


def training_commands(machine_type: str, models_dir: Path, data_dir: Path) -> list[list[str]]:
    """The two commands that produce ``models_dir/machine_type``: simulate normal data, train on it."""
    data = data_dir / f"{machine_type}-normal.parquet"
    return [
        [sys.executable, "-m", "simulators.fleet", "--mix", f"{machine_type}={TRAIN_MACHINES}", "--duration",
         TRAIN_DURATION, "--normal-only", "--seed", str(DATA_SEED[machine_type]), "--out", str(data)],
        [sys.executable, "-m", "pdm", "train", "--data", str(data), "--out", str(models_dir / machine_type),
         "--features", FEATURES, "--seed", "0"],
    ]


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
