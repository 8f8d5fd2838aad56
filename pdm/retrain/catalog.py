"""The versions of a model name with their figures, and rollback.

Each version's figures come from its own files: ``report.json`` for retrained versions (the decision, the
held-out raise rate, fault recall, false alarms per machine-day, the champion it was judged against), else
``threshold.json`` / ``training.json`` (versions written by ``pdm train``).

**Rollback** switches ``current`` to a given version, or by default to the newest version older than the current
one that was made current when it was written (``pdm train``, or a retrain that promoted it): a challenger that was
not promoted is never picked by default, only by name. The target is verified first (every checksum, and a full
load of the model), then ``current`` is replaced atomically, under the name's lock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdm.detectors.base import Detector
from pdm.errors import ModelLoadError
from pdm.retrain.lock import model_lock
from pdm.retrain.report import REPORT_JSON
from pdm.saving import current_version, ordered_versions, read_manifest, set_current, version_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    version: str
    current: bool
    created_at: float | None
    origin: str  # "train" or "retrain"
    decision: str  # "promoted", "forced", "not promoted", "" (train)
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "current": self.current, "created_at": self.created_at,
                "origin": self.origin, "decision": self.decision, "figures": self.figures}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _created_at(version_dir: Path) -> float | None:
    """When the version was written (its manifest), or ``None`` when the manifest cannot be read (the listing still
    shows the version; loading it would name the problem)."""
    try:
        return read_manifest(version_dir).created_at
    except ModelLoadError:
        return None


def version_info(name_dir: Path, version: str, current: str | None) -> VersionInfo:
    d = name_dir / version
    threshold, training = _read(d / "threshold.json"), _read(d / "training.json")
    figures: dict[str, Any] = {"threshold": threshold.get("value"), "rows": training.get("rows"),
                               "machines": len(training.get("machines") or [])}
    report = _read(d / REPORT_JSON)
    decision, origin = "", "train"
    if report:
        origin = "retrain"
        dec = report.get("decision") or {}
        decision = "forced" if dec.get("forced") else "promoted" if dec.get("promote") else "not promoted"
        ch = (report.get("challenger") or {}).get("figures") or {}
        cp = ((report.get("champion") or {}).get("figures")) or {}
        figures |= {"init": (report.get("challenger") or {}).get("init"),
                    "against": (report.get("champion") or {}).get("version"),
                    "raise_rate": ch.get("raise_rate"), "champion_raise_rate": cp.get("raise_rate"),
                    "false_alarms_per_machine_day": (ch.get("normal") or {}).get("false_alarms_per_machine_day"),
                    "event_recall": (ch.get("faults") or {}).get("event_recall"),
                    "champion_event_recall": (cp.get("faults") or {}).get("event_recall"),
                    "excluded": ((report.get("data") or {}).get("exclusions") or {}).get("fraction_excluded"),
                    "reasons": dec.get("reasons") or []}
    return VersionInfo(version, version == current, _created_at(d), origin, decision, figures)


def list_versions(name_dir: Path | str) -> list[VersionInfo]:
    """Every version, oldest first, with its figures."""
    name_dir = Path(name_dir)
    if not name_dir.is_dir():
        raise ModelLoadError(name_dir, "does not exist", "pass a model name directory such as models/pump")
    current = current_version(name_dir)
    return [version_info(name_dir, v, current) for v in ordered_versions(name_dir)]


def rollback_target(name_dir: Path, current: str | None) -> str:
    """The default rollback target (rules in the module docstring)."""
    infos = list_versions(name_dir)
    older = [i for i in infos if current is None or version_key(i.version) < version_key(current)]
    candidates = [i.version for i in older if i.decision != "not promoted"]
    if not candidates:
        raise ModelLoadError(name_dir, f"has no version before {current} that was ever current",
                             "name the version to switch to: pdm models NAME --rollback VERSION")
    return candidates[-1]


def rollback(name_dir: Path | str, version: str | None = None) -> tuple[str | None, str]:
    """Switch ``current`` to ``version`` (default: see the module docstring) after verifying it; returns
    (previous, new)."""
    name_dir = Path(name_dir)
    with model_lock(name_dir, "rollback"):
        current = current_version(name_dir)
        target = version or rollback_target(name_dir, current)
        if target not in ordered_versions(name_dir):
            raise ModelLoadError(name_dir / target, "is not a saved version",
                                 f"pick one of {ordered_versions(name_dir)}")
        Detector.load(name_dir / target)  # every checksum, the JSON files and the weights
        set_current(name_dir, target)
    logger.info("current %s -> %s", current, target)
    return current, target
