"""Model directories: atomic, versioned, verified.

- `pdm.saving.manifest`: ``manifest.json``, the SHA-256 of every file of a version;
- `pdm.saving.model_dir`: writing a version atomically (companions included), the ``current`` pointer;
- `pdm.saving.version_dir`: `VersionDir`, a version verified once when opened, read through typed accessors;
- `pdm.saving.history`: ordering, listing, removing and pruning versions.
"""

from pdm.saving.history import current_version, ordered_versions, prune_versions, remove_version, version_key
from pdm.saving.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    read_manifest,
    sha256_file,
    write_json,
    write_manifest,
)
from pdm.saving.model_dir import CURRENT, WriteFiles, resolve_version_dir, set_current, versions, write_version
from pdm.saving.version_dir import VersionDir, open_version

__all__ = [
    "CURRENT",
    "FORMAT_VERSION",
    "MANIFEST",
    "Manifest",
    "VersionDir",
    "WriteFiles",
    "current_version",
    "open_version",
    "ordered_versions",
    "prune_versions",
    "read_manifest",
    "remove_version",
    "resolve_version_dir",
    "set_current",
    "sha256_file",
    "version_key",
    "versions",
    "write_json",
    "write_manifest",
    "write_version",
]
