"""Versioned model directories, written atomically and verified on load.

Layout::

    <models>/<name>/current            text file naming the version in use (replaced with os.replace)
    <models>/<name>/<version>/         one trained model, never modified after it appears
        manifest.json                  format version + SHA-256 of every other file
        config.json, scaler.json, threshold.json, alarm.json, training.json, evaluation.json, model.keras, ...

A version is written into ``<name>/.tmp-<random>/``, each file fsynced, then renamed to ``<name>/<version>/``: a
crash leaves at most a hidden temporary directory (removed by the next save), never a half-written version, and a
reader never sees one. Only then is ``current`` switched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pdm.errors import ChecksumMismatchError, CorruptModelError, ModelLoadError, UnsupportedFormatError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "current"
TMP_PREFIX = ".tmp-"
M = TypeVar("M", bound=BaseModel)


def new_version_name(name_dir: Path) -> str:
    """UTC timestamp such as ``20261123T051200Z``; a suffix keeps it unique within one second."""
    base = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version, i = base, 1
    while (name_dir / version).exists():
        i += 1
        version = f"{base}-{i}"
    return version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: BaseModel | dict[str, Any]) -> None:
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory's entries (created, renamed files)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_version(name_dir: Path | str, write_files: Callable[[Path], None], *, make_current: bool = True) -> Path:
    """Create a new version of model ``name_dir`` with ``write_files(tmp_dir)``; returns the version directory."""
    name_dir = Path(name_dir)
    name_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(name_dir)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=name_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a daemon may run as another user  # noqa: S103
    try:
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


def write_manifest(directory: Path) -> list[Path]:
    """Write ``manifest.json`` covering every file below ``directory``; returns those files."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p != directory / MANIFEST)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": time.time(),
        "files": {p.relative_to(directory).as_posix(): sha256_file(p) for p in files},
    }
    write_json(directory / MANIFEST, manifest)
    return files


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


def verify_version_dir(version_dir: Path) -> dict[str, str]:
    """Check the manifest's format version and every checksum; returns ``{file: sha256}``."""
    manifest_path = version_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(manifest_path, f"cannot be read as JSON ({exc})",
                                "restore the version from a backup or retrain") from None
    fmt = manifest.get("format_version") if isinstance(manifest, dict) else None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(fmt, int) or not isinstance(files, dict):
        raise CorruptModelError(manifest_path, "lacks format_version or files",
                                "restore the version from a backup or retrain")
    if fmt > FORMAT_VERSION:
        raise UnsupportedFormatError(manifest_path, f"found format version {fmt}, this pdm reads up to "
                                     f"{FORMAT_VERSION}", "upgrade pdm to load this model")
    if fmt < 1:
        raise UnsupportedFormatError(manifest_path, f"found format version {fmt}, expected 1..{FORMAT_VERSION}",
                                     "retrain the model with this pdm")
    for name, expected in files.items():
        if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
            raise CorruptModelError(manifest_path, f"lists an unsafe path {name!r}", "restore from a backup or retrain")
        path = version_dir / name
        if not path.is_file():
            raise CorruptModelError(path, "is missing", "restore the version from a backup or retrain")
        if sha256_file(path) != expected:
            raise ChecksumMismatchError(path, "does not match its SHA-256 in manifest.json (changed or truncated "
                                        "after saving)", "restore the version from a backup or retrain")
    return {str(k): str(v) for k, v in files.items()}


def read_model_json(version_dir: Path, name: str, model: type[M]) -> M:
    """Read and validate one JSON file of a verified version directory."""
    path = version_dir / name
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise CorruptModelError(path, "is missing", "restore the version from a backup or retrain") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CorruptModelError(path, f"is not valid: {where}: {first['msg']}",
                                "restore the version from a backup or retrain") from None


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
