"""Running ``python -m pdm`` as a user does: a child process in the repository root, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def command(*args: str | Path) -> list[str]:
    """The argv of ``python -m pdm ARGS`` with this interpreter."""
    return [sys.executable, "-m", "pdm", *map(str, args)]


def pdm(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pdm ARGS`` to completion (never raises on a non-zero exit)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(command(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
