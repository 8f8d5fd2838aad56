"""``manifest.json``: a version directory's format version and the SHA-256 of every other file in it.

Rules:

- The manifest lists **every** file below the version directory, sub-directories included (a companion model such
  as ``baseline/`` is listed file by file, its own ``baseline/manifest.json`` too); only the top ``manifest.json``
  itself is left out. A file present but not listed, or listed but absent, makes the version corrupt: nothing in a
  version is trusted without its checksum.
- Paths are relative, with ``/`` separators, and never leave the directory (no ``..``, no leading ``/``).
- ``format_version`` newer than `FORMAT_VERSION` is refused (`pdm.errors.UnsupportedFormatError`, "upgrade pdm").

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (Path(d) / "a.json").write_text("{}")
...     _ = write_manifest(Path(d))
...     sorted(read_manifest(Path(d)).files)
['a.json']
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pdm.errors import CorruptModelError, UnsupportedFormatError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RESTORE = "restore the version from a backup or retrain"


class Manifest(BaseModel):
    """The content of ``manifest.json``."""

    model_config = ConfigDict(frozen=True)
    format_version: int = Field(description="format of the version directory")
    created_at: float | None = Field(None, description="Unix epoch seconds the version was written")
    files: dict[str, str] = Field(description="relative path -> SHA-256 (hex) of every file but manifest.json")

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            if not name or name.startswith("/") or "\\" in name or ".." in name.split("/") or name == MANIFEST:
                raise ValueError(f"found the path {name!r}, expected a relative path inside the version directory")
        return files


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


def present_files(directory: Path) -> dict[str, Path]:
    """Every file below ``directory`` but its ``manifest.json``, by relative path."""
    return {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*"))
            if p.is_file() and p != directory / MANIFEST}


def write_manifest(directory: Path) -> list[Path]:
    """Write ``manifest.json`` covering every file below ``directory``; returns those files."""
    files = present_files(directory)
    manifest = Manifest(format_version=FORMAT_VERSION, created_at=time.time(),
                        files={name: sha256_file(p) for name, p in files.items()})
    write_json(directory / MANIFEST, manifest)
    return list(files.values())


def read_manifest(directory: Path) -> Manifest:
    """The validated manifest of ``directory`` (checksums not checked: see `pdm.saving.version_dir`)."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptModelError(path, "is missing", RESTORE) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(path, f"cannot be read as JSON ({exc})", RESTORE) from None
    fmt = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(fmt, int) and fmt > FORMAT_VERSION:
        raise UnsupportedFormatError(path, f"found format version {fmt}, this pdm reads up to {FORMAT_VERSION}",
                                     "upgrade pdm to load this model")
    if isinstance(fmt, int) and fmt < 1:
        raise UnsupportedFormatError(path, f"found format version {fmt}, expected 1..{FORMAT_VERSION}",
                                     "retrain the model with this pdm")
    if not isinstance(data, dict) or "format_version" not in data or "files" not in data:
        raise CorruptModelError(path, "lacks format_version or files", RESTORE)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise CorruptModelError(path, f"is not valid: {first_error(exc)}", RESTORE) from None


def first_error(exc: ValidationError) -> str:
    """``where: message`` of a validation error's first problem."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"
