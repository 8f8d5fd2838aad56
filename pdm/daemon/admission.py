"""What the daemon takes in from untrusted publishers besides the contract's bounds (docs/daemon.md, "Untrusted
input"): which machine ids it tracks, the per-model value range, and the maintenance span. Each refusal is a
`pdm.contract.errors.ContractError` with its own ``reason``, so the scoring loop dead-letters and counts it like any
invalid message.

- **Allow-list** (`AllowList`): ``--allow-machines pump-*,motor-00?`` (glob patterns, `fnmatch` rules,
  case-sensitive) and/or ``--allow-machines-file`` (one id or pattern per line, ``#`` comments); an id either allows
  is tracked, any other is ``unknown_machine``. Without both, every valid id is allowed.
- **Cap**: at most ``--max-machines`` machines are tracked; a message for a new one beyond it is
  ``too_many_machines`` (stale machines are evicted after ``--evict-after``, which makes room).
- **Model range** (`check_model_range`): a value more than ``--model-range`` (1000) robust scales from the
  machine's training median, in the scaling its model applies (`pdm.detectors.stream.WindowStream.envelope`), is
  ``beyond_model_range``: not a measurement the model can judge (a PLC's "invalid" marker within the contract's
  1e12, a unit mix-up), and far enough out that the model's float32 arithmetic stays finite.
- **Maintenance span**: a window longer than ``--max-maintenance`` (30 days) is ``maintenance_too_long``.

>>> allow = AllowList("pump-*, motor-001")
>>> allow("pump-007"), allow("motor-001"), allow("motor-002"), AllowList(None)("anything")
(True, True, False, True)
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import numpy as np

from pdm.contract.errors import ContractError, FieldValueError
from pdm.daemon.settings import SettingsError

GLOB_CHARS = frozenset("*?[")


class UnknownMachineError(ContractError):
    """A machine id that the allow-list does not allow."""

    reason = "unknown_machine"


class TooManyMachinesError(ContractError):
    """A new machine while ``--max-machines`` are tracked."""

    reason = "too_many_machines"


class BeyondModelRangeError(FieldValueError):
    """A value far beyond the range the machine's model was trained on."""

    reason = "beyond_model_range"


class MaintenanceTooLongError(FieldValueError):
    """A maintenance window longer than ``--max-maintenance``."""

    reason = "maintenance_too_long"


class AllowList:
    """Machine ids allowed by patterns (a comma-separated string) and a file; calling it says whether one is."""

    def __init__(self, patterns: str | None, file: Path | None = None) -> None:
        entries = [p.strip() for p in (patterns or "").split(",") if p.strip()]
        if file is not None:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"--allow-machines-file: cannot read {file} ({exc.strerror}), expected a text "
                                    "file of machine ids or glob patterns, one per line") from None
            entries += [line.split("#", 1)[0].strip() for line in text.splitlines()]
        entries = [e for e in entries if e]
        self.active = patterns is not None or file is not None
        self.ids = frozenset(e for e in entries if not GLOB_CHARS & set(e))
        globs = [fnmatch.translate(e) for e in entries if GLOB_CHARS & set(e)]
        self._globs = re.compile("|".join(globs)) if globs else None

    def __call__(self, machine_id: str) -> bool:
        if not self.active or machine_id in self.ids:
            return True
        return self._globs is not None and self._globs.match(machine_id) is not None


def check_model_range(values: np.ndarray, low: np.ndarray, high: np.ndarray, sensors: tuple[str, ...],
                      n_scales: float) -> None:
    """Every non-null value within ``[low, high]`` per sensor; `BeyondModelRangeError` naming the first one out."""
    out = (values < low) | (values > high)  # NaN (null) compares False
    if not out.any():
        return
    i, j = (int(k) for k in np.argwhere(out)[0])
    where = f"telemetry reading {i}" if len(values) > 1 else "telemetry"
    center, half = (low[j] + high[j]) / 2, (high[j] - low[j]) / 2
    raise BeyondModelRangeError(f"{where}: {sensors[j]}: found {values[i, j]:.6g}, expected within {n_scales:g} "
                                f"robust scales of the model's training median for this machine ({center:.6g} "
                                f"+- {half:.6g}; --model-range)")
