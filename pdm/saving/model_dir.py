"""Versioned model directories, written atomically.

Layout::

    <models>/<name>/current            text file naming the version in use (replaced with os.replace)
    <models>/<name>/<version>/         one trained model, never modified after it appears
        manifest.json                  format version + SHA-256 of every other file (`pdm.saving.manifest`)
        config.json, scaler.json, ...  what the writer put there; companions in sub-directories (``baseline/``)

A version is written into ``<name>/.tmp-<random>/``, each file fsynced, then renamed to ``<name>/<version>/``: a
crash leaves at most a hidden temporary directory (removed by the next save), never a half-written version, and a
reader never sees one. Only then is ``current`` switched. Reading a version: `pdm.saving.version_dir.VersionDir`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pdm.errors import CorruptModelError, ModelLoadError
from pdm.saving.manifest import MANIFEST, write_manifest

logger = logging.getLogger(__name__)

CURRENT = "current"
TMP_PREFIX = ".tmp-"


def new_version_name(name_dir: Path) -> str:
    """UTC timestamp such as ``20261123T051200Z``; a suffix keeps it unique within one second."""
    base = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version, i = base, 1
    while (name_dir / version).exists():
        i += 1
        version = f"{base}-{i}"
    return version


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory's entries (created, renamed files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


WriteFiles = Callable[[Path], None]  # writes files into the directory it is given


def write_version(name_dir: Path | str, write_files: WriteFiles, *, make_current: bool = True,
                  companions: Mapping[str, WriteFiles] | None = None) -> Path:
    """Create a new version of model ``name_dir`` with ``write_files(tmp_dir)``; returns the version directory.

    Each of ``companions`` (``{"baseline": write}``) writes a sub-directory that gets a manifest of its own, so it is
    a version directory by itself; the version's manifest then covers every file, the companions' included."""
    name_dir = Path(name_dir)
    name_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(name_dir)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=name_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a daemon may run as another user  # noqa: S103
    try:
        for sub_name, write_sub in (companions or {}).items():
            if sub_name != Path(sub_name).name or sub_name.startswith("."):
                raise ValueError(f"found companion name {sub_name!r}, expected a plain directory name")
            (tmp / sub_name).mkdir()
            write_sub(tmp / sub_name)
            write_manifest(tmp / sub_name)
        write_files(tmp)
        for path in [*write_manifest(tmp), tmp / MANIFEST]:
            fsync_path(path)
        for sub_dir in [p for p in tmp.rglob("*") if p.is_dir()]:
            fsync_path(sub_dir)
        fsync_path(tmp)
        version = new_version_name(name_dir)
        final = name_dir / version
        os.rename(tmp, final)
        fsync_path(name_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote model version %s", final)
    if make_current:
        set_current(name_dir, version)
    return final


def set_current(name_dir: Path | str, version: str) -> None:
    """Point ``current`` at ``version`` atomically."""
    name_dir = Path(name_dir)
    if not (name_dir / version / MANIFEST).is_file():
        raise ModelLoadError(name_dir / version, "is not a saved model version", f"pick one of {versions(name_dir)}")
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + "current-", dir=name_dir)
    os.fchmod(fd, 0o644)  # readable like the versions it names
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_name, name_dir / CURRENT)
    fsync_path(name_dir)


def versions(name_dir: Path | str) -> list[str]:
    """Saved versions of a model, oldest first."""
    name_dir = Path(name_dir)
    if not name_dir.is_dir():
        return []
    return sorted(p.name for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def resolve_version_dir(path: Path | str) -> Path:
    """A version directory from a model name directory (its ``current``) or a version directory."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    current = path / CURRENT
    if current.is_file():
        version = current.read_text(encoding="utf-8").strip()
        target = path / version
        if not version or version != Path(version).name or version.startswith(".") or "\\" in version \
                or not (target / MANIFEST).is_file():
            raise CorruptModelError(current, f"names version {version!r}, which is not a saved version here",
                                    f"point it at one of {versions(path)} (pdm.saving.set_current)")
        return target
    if not path.exists():
        raise ModelLoadError(path, "does not exist", "pass a model name directory (with 'current') or a version")
    raise ModelLoadError(path, f"is not a model directory (no {MANIFEST} and no {CURRENT})",
                         "pass a model name directory (with 'current') or one of its version directories")


def _remove_stale_temporaries(name_dir: Path, older_than_s: float = 3600.0) -> None:
    """Delete temporaries left by crashed saves (an hour old, so a concurrent save is not disturbed)."""
    now = time.time()
    for p in name_dir.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than_s:
                logger.info("removing %s left by an interrupted save", p)
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
