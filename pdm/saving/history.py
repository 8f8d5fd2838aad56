"""Managing the versions of a model name directory: which is current, removing and pruning old ones.

Rules:

- Versions are ordered by name (UTC timestamps), a ``-N`` suffix (several saves in one second) counting as a
  number, so ``...Z-10`` comes after ``...Z-2``.
- The current version is never removed.
- A version is removed by first renaming it to a hidden ``.tmp-removed-*`` name (one atomic rename: a reader sees
  the whole version or none of it), then deleting that; a crash in between leaves a hidden temporary that the next
  save removes.

>>> sorted(["20261123T051200Z-10", "20261123T051200Z-2", "20261123T051200Z"], key=version_key)
['20261123T051200Z', '20261123T051200Z-2', '20261123T051200Z-10']
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from pdm.errors import ModelLoadError
from pdm.saving.manifest import MANIFEST
from pdm.saving.model_dir import CURRENT, TMP_PREFIX, fsync_path, versions

logger = logging.getLogger(__name__)


def version_key(version: str) -> tuple[str, int]:
    """Sort key: the timestamp, then the numeric ``-N`` suffix (none = 1)."""
    base, sep, suffix = version.partition("-")
    return (base, int(suffix) if sep and suffix.isdigit() else 1)


def ordered_versions(name_dir: Path | str) -> list[str]:
    """Saved versions, oldest first (see `version_key`)."""
    return sorted(versions(name_dir), key=version_key)


def current_version(name_dir: Path | str) -> str | None:
    """The version ``current`` names, or ``None`` when there is no ``current`` file (nothing saved yet)."""
    path = Path(name_dir) / CURRENT
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def remove_version(name_dir: Path | str, version: str) -> None:
    """Delete one version (never the current one), renaming it out of sight first."""
    name_dir = Path(name_dir)
    if version != Path(version).name or version.startswith(".") or not (name_dir / version / MANIFEST).is_file():
        raise ModelLoadError(name_dir / version, "is not a saved model version", f"pick one of {versions(name_dir)}")
    if version == current_version(name_dir):
        raise ModelLoadError(name_dir / version, "is the current version and cannot be removed",
                             "switch current to another version first")
    hidden = name_dir / f"{TMP_PREFIX}removed-{version}-{uuid.uuid4().hex[:8]}"
    os.rename(name_dir / version, hidden)
    fsync_path(name_dir)
    shutil.rmtree(hidden)
    logger.info("removed model version %s", name_dir / version)


def prune_versions(name_dir: Path | str, keep: int) -> list[str]:
    """Keep the ``keep`` newest versions and the current one; remove the others. Returns the removed versions."""
    if keep < 1:
        raise ValueError(f"keep: found {keep}, expected at least 1")
    name_dir = Path(name_dir)
    ordered = ordered_versions(name_dir)
    current = current_version(name_dir)
    kept = set(ordered[-keep:]) | ({current} if current else set())
    removed = [v for v in ordered if v not in kept]
    for v in removed:
        remove_version(name_dir, v)
    return removed
