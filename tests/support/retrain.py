"""Small retraining fixtures: tiny GRU settings and a three-pump fleet with an optional labelled fault."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.synthetic import Fault, machine_frame

SMALL = {"window": 16, "hidden": 8, "latent": 4, "epochs": 3, "max_train_windows": 3000, "jit_compile": False,
         "threshold_method": "pot",
         "target_false_alarm_rate": 1e-3, "alarm_k": 5, "alarm_n": 10, "alarm_m": 10}
FAULT = Fault("vibration_step", 1000, 1800, severity=2.0, sensor="vibration")  # in the training part of 4000 rows


def fleet(n: int, seed: int, fault: Fault | None = None) -> pd.DataFrame:
    """Three pumps (the same units for every seed), a ``fault`` label column; ``fault`` hits pump-000."""
    frames = []
    for i in range(3):
        f, _ = machine_frame(n, seed=seed * 100 + i, unit_seed=i, faults=[fault] if fault and i == 0 else None)
        frames.append(f.assign(machine_id=f"pump-{i:03d}"))
    out = pd.concat(frames, ignore_index=True)
    out["fault"] = np.where(out.pop("label") == 1, "vibration_step", "")
    return out
