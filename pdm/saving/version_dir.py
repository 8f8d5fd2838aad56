"""`VersionDir`: one saved model version, verified once when opened, then read through typed accessors.

Opening (`VersionDir.open`) resolves a model name directory to its ``current`` version, reads the manifest
(`pdm.saving.manifest`) and checks that it covers the directory exactly: a file present but not listed ("not listed
in manifest.json (added after saving)"), a listed file that is absent ("is missing") and a file whose SHA-256
differs (`pdm.errors.ChecksumMismatchError`) are each a typed error naming the file. Afterwards nothing re-reads the
manifest: `has`, `path`, `read_json` and `read_optional_json` answer from it.

Required and optional files: a reader says which files it needs (`require`, `read_json`); a missing one is a
`pdm.errors.CorruptModelError` ("is missing"). An optional file (`read_optional_json`) may be absent only when the
manifest does not list it (a version saved before the file existed); listed, it must be there and intact.

``skippable`` names files whose damage does not condemn the version (a faster copy of the weights, say): their
problem is kept in `VersionDir.skipped` instead of raised, and the version behaves as if it did not hold them.

Companions (`sub`): a sub-directory with its own ``manifest.json`` (``baseline/``) is a version directory of its
own, verified against the entries the parent's manifest already checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pdm.errors import ChecksumMismatchError, CorruptModelError
from pdm.saving.manifest import MANIFEST, RESTORE, Manifest, first_error, present_files, read_manifest, sha256_file
from pdm.saving.model_dir import resolve_version_dir

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
UNLISTED_FIX = "remove it, or restore the version from a backup"


class VersionDir:
    """A verified version directory; build it with `VersionDir.open` (see the module docstring)."""

    def __init__(self, directory: Path, manifest: Manifest, skipped: dict[str, CorruptModelError]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.skipped = skipped

    @classmethod
    def open(cls, path: Path | str, *, skippable: Iterable[str] = ()) -> VersionDir:
        """Resolve ``path`` (a model name directory's ``current``, or a version) and verify every file."""
        directory = resolve_version_dir(path)
        manifest = read_manifest(directory)
        skip = set(skippable)
        skipped: dict[str, CorruptModelError] = {}
        for name, error in _problems(directory, manifest):
            if name not in skip:
                raise error
            skipped[name] = error
        return cls(directory, manifest, skipped)

    def __repr__(self) -> str:
        return f"VersionDir({str(self.directory)!r})"

    @property
    def name(self) -> str:
        """The version's name (its directory's), e.g. ``20261123T051200Z``."""
        return self.directory.name

    @property
    def files(self) -> dict[str, str]:
        """Usable files (skipped ones left out): relative path -> SHA-256."""
        return {k: v for k, v in self.manifest.files.items() if k not in self.skipped}

    def has(self, name: str) -> bool:
        """Whether the version holds ``name`` (listed, verified, not skipped)."""
        return name in self.files

    def require(self, *names: str) -> None:
        """`pdm.errors.CorruptModelError` naming the first of ``names`` the version does not hold."""
        for name in names:
            self.path(name)

    def path(self, name: str) -> Path:
        """The verified file ``name``; a missing or skipped one is a typed error naming it."""
        if name in self.skipped:
            raise self.skipped[name]
        if name not in self.manifest.files:
            raise CorruptModelError(self.directory / name, "is missing (not in manifest.json)", RESTORE)
        return self.directory / name

    def sha256(self, name: str) -> str:
        """The SHA-256 the manifest records for ``name`` (verified when opened)."""
        self.path(name)
        return self.manifest.files[name]

    def read_json(self, name: str, model: type[M]) -> M:
        """Required JSON file ``name``, validated by ``model``."""
        path = self.path(name)
        try:
            return model.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise CorruptModelError(path, f"is not valid: {first_error(exc)}", RESTORE) from None
        except OSError as exc:
            raise CorruptModelError(path, f"cannot be read ({exc.strerror or exc})", RESTORE) from None

    def read_optional_json(self, name: str, model: type[M]) -> M | None:
        """Optional JSON file ``name``, validated; ``None`` when the manifest does not list it."""
        return self.read_json(name, model) if self.has(name) else None

    def read_object(self, name: str) -> dict[str, Any]:
        """Required JSON file ``name`` holding any JSON object (free-form figures)."""
        path = self.path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptModelError(path, f"cannot be read as JSON ({exc})", RESTORE) from None
        if not isinstance(data, dict):
            raise CorruptModelError(path, f"found a JSON {type(data).__name__}, expected an object", RESTORE)
        return data

    def has_sub(self, name: str) -> bool:
        """Whether the version holds a companion version directory ``name`` (with its own manifest)."""
        return self.has(f"{name}/{MANIFEST}")

    def sub(self, name: str) -> VersionDir:
        """Companion ``name`` (e.g. ``baseline``) as a version directory of its own. Its files were checked with
        the parent; its manifest must list exactly those, with the same checksums."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"found companion name {name!r}, expected a plain directory name")
        self.path(f"{name}/{MANIFEST}")
        directory = self.directory / name
        manifest = read_manifest(directory)
        prefix = f"{name}/"
        expected = {k.removeprefix(prefix): v for k, v in self.files.items()
                    if k.startswith(prefix) and k != prefix + MANIFEST}
        for rel in sorted(set(expected) | set(manifest.files)):
            if rel not in manifest.files:
                raise CorruptModelError(directory / rel, f"is not listed in {name}/{MANIFEST}", RESTORE)
            if expected.get(rel) != manifest.files[rel]:
                raise ChecksumMismatchError(directory / rel, f"has another SHA-256 in {name}/{MANIFEST} than in "
                                            f"{MANIFEST}", RESTORE)
        return VersionDir(directory, manifest, {})


def _problems(directory: Path, manifest: Manifest) -> Iterable[tuple[str, CorruptModelError]]:
    """Each file that breaks the manifest rule, with its typed error."""
    present = present_files(directory)
    for name in sorted(set(present) - set(manifest.files)):
        yield name, CorruptModelError(present[name], f"is not listed in {MANIFEST} (added after saving)",
                                      UNLISTED_FIX)
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            yield name, CorruptModelError(path, "is missing", RESTORE)
        elif sha256_file(path) != expected:
            yield name, ChecksumMismatchError(path, f"does not match its SHA-256 in {MANIFEST} (changed or "
                                              "truncated after saving)", RESTORE)


def open_version(path: Path | str | VersionDir, *, skippable: Iterable[str] = ()) -> VersionDir:
    """``path`` opened (`VersionDir.open`), or itself when it is one already."""
    if isinstance(path, VersionDir):
        return path
    return VersionDir.open(path, skippable=skippable)

