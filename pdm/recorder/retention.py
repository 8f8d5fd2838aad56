"""Retention: cap disk use by removing whole date partitions, oldest first, never anything else.

Rules:

- Partitions are ``date=YYYY-MM-DD`` directories of the recorder's tables whose date is real and from 2000 to
  2099, ordered by that date. Any other ``date=`` directory (``date=NaT``, ``date=9999-12-31``: written by older
  versions from device clocks) is never data and never deleted: `quarantine_bad_partitions` moves it to
  ``ROOT/_quarantine/<table>/`` (the recorder does at start, and counts it).
- ``days`` > 0: a partition whose date is more than ``days`` days before today's UTC date is removed
  (``days=1`` keeps yesterday and today). Dates in the future (an accelerated simulator) are never removed by age.
- ``max_bytes`` > 0: while the root (every table's partitions plus the write-ahead segments) is larger, partitions
  are removed from every table in this order: first the dates beyond ``today + horizon_days`` (dates the
  recorder's clock-skew rule cannot produce; farthest first), then the oldest dates. The newest date up to
  ``today + horizon_days`` (normally today's) is always kept: a warning says when it alone is too large. Without
  ``horizon_days`` (no clock-skew rule) no date is beyond it and the newest date is the one kept.
- A partition is first renamed to a hidden name (atomic: readers see it whole or not at all), then deleted.

>>> import tempfile, pathlib, datetime
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for d in ("2026-11-20", "2026-11-21", "2026-11-23"):
...     (root / "telemetry" / f"date={d}").mkdir(parents=True)
>>> [p.name for p in apply_retention(root, days=2, today=datetime.date(2026, 11, 23))]
['date=2026-11-20']
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from pathlib import Path

from pdm.recorder.schema import QUARANTINE_DIR, TABLES, WAL_DIR, is_bad_partition, partition_date
from pdm.saving.model_dir import fsync_path

logger = logging.getLogger(__name__)


def partitions(root: Path) -> dict[str, list[Path]]:
    """Every date partition directory of the recorder's tables under ``root``, by date (sorted)."""
    found: dict[str, list[Path]] = {}
    for table in TABLES:
        tdir = root / table
        if not tdir.is_dir():
            continue
        for d in tdir.iterdir():
            date = partition_date(d.name)
            if date is not None and d.is_dir():
                found.setdefault(date, []).append(d)
    return dict(sorted(found.items()))


def quarantine(path: Path, root: Path) -> Path:
    """Move ``path`` (somewhere under ``root``) to the same place under ``root/_quarantine`` (a unique name when
    that is taken); returns where it went."""
    target = root / QUARANTINE_DIR / path.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
    os.replace(path, target)
    fsync_path(target.parent)
    return target


def quarantine_bad_partitions(root: Path) -> list[Path]:
    """Move every ``date=`` directory that is not a partition (not a real date from 2000 to 2099) to the
    quarantine; returns where they went."""
    moved: list[Path] = []
    for table in TABLES:
        tdir = root / table
        if tdir.is_dir():
            for d in sorted(tdir.iterdir()):
                if d.is_dir() and is_bad_partition(d.name):
                    try:
                        moved.append(quarantine(d, root))
                    except FileNotFoundError:  # another recorder instance on this root moved it first
                        continue
                    logger.warning("%s/%s is not a valid date partition; moved to %s", table, d.name, moved[-1])
    return moved


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # removed meanwhile (compaction, another reader's retention)
                continue
    return total


def remove_partition(path: Path) -> bool:
    """Rename to a hidden name, then delete; False when it is already gone."""
    hidden = path.with_name(f".removed-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, hidden)
    except FileNotFoundError:
        return False
    shutil.rmtree(hidden, ignore_errors=True)
    return True


def apply_retention(root: Path, days: int = 0, max_bytes: int = 0, today: dt.date | None = None,
                    horizon_days: int | None = None) -> list[Path]:
    """Remove date partitions per the rules above; returns the removed partition directories."""
    by_date = partitions(root)
    removed: list[Path] = []
    today = today or dt.datetime.now(dt.UTC).date()
    if days > 0:
        cutoff = (today - dt.timedelta(days=days)).isoformat()
        for date in [d for d in by_date if d < cutoff]:
            removed += [p for p in by_date.pop(date) if remove_partition(p)]
    if max_bytes > 0 and by_date:
        sizes = {date: sum(tree_bytes(p) for p in dirs) for date, dirs in by_date.items()}
        total = sum(sizes.values()) + tree_bytes(root / WAL_DIR)
        limit = None if horizon_days is None else (today + dt.timedelta(days=horizon_days)).isoformat()
        beyond = sorted((d for d in by_date if limit is not None and d > limit), reverse=True)
        current = [d for d in by_date if d not in beyond]  # oldest first; the last one is kept
        for date in [*beyond, *current[:-1]]:
            if total <= max_bytes:
                break
            removed += [p for p in by_date.pop(date) if remove_partition(p)]
            total -= sizes.pop(date)
        if total > max_bytes:
            logger.warning("retention: %d bytes recorded, over the cap of %d, but only the current date (%s) is "
                           "left; it is kept", total, max_bytes, current[-1] if current else "none")
    for p in removed:
        logger.info("retention removed %s/%s", p.parent.name, p.name)
    return removed


def remove_leftovers(root: Path) -> int:
    """Delete what a crash can leave behind in the tables: hidden ``.removed-*`` partitions being deleted.
    (Temporary Parquet files are the recorder's own business: see ``Recorder``.)"""
    n = 0
    for table in TABLES:
        tdir = root / table
        if tdir.is_dir():
            for d in tdir.iterdir():
                if d.name.startswith(".removed-") and d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
    return n
