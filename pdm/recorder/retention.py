"""Retention: cap disk use by removing whole date partitions, oldest first, never anything else.

Rules:

- ``days`` > 0: a partition whose date is more than ``days`` days before today's UTC date is removed
  (``days=1`` keeps yesterday and today). Dates in the future (an accelerated simulator) are never removed by age.
- ``max_bytes`` > 0: while the root (every table's partitions plus the write-ahead segments) is larger, the oldest
  date is removed from every table; the newest date is always kept (a warning says when it alone is too large).
- Only ``date=YYYY-MM-DD`` directories of the recorder's tables are touched. A partition is first renamed to a
  hidden name (atomic: readers see it whole or not at all), then deleted.

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

from pdm.recorder.schema import TABLES, WAL_DIR, partition_date

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


def apply_retention(root: Path, days: int = 0, max_bytes: int = 0, today: dt.date | None = None) -> list[Path]:
    """Remove date partitions per the rules above; returns the removed partition directories."""
    by_date = partitions(root)
    removed: list[Path] = []
    if days > 0:
        today = today or dt.datetime.now(dt.UTC).date()
        cutoff = (today - dt.timedelta(days=days)).isoformat()
        for date in [d for d in by_date if d < cutoff]:
            removed += [p for p in by_date.pop(date) if remove_partition(p)]
    if max_bytes > 0 and by_date:
        sizes = {date: sum(tree_bytes(p) for p in dirs) for date, dirs in by_date.items()}
        total = sum(sizes.values()) + tree_bytes(root / WAL_DIR)
        while total > max_bytes and len(by_date) > 1:
            date = next(iter(by_date))
            removed += [p for p in by_date.pop(date) if remove_partition(p)]
            total -= sizes.pop(date)
        if total > max_bytes:
            logger.warning("retention: %d bytes recorded, over the cap of %d, but only the newest date (%s) is "
                           "left; it is kept", total, max_bytes, next(iter(by_date)))
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
