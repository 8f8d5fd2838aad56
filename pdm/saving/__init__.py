"""Model directories: atomic, versioned, verified. See `pdm.saving.model_dir`."""

from pdm.saving.model_dir import (
    FORMAT_VERSION,
    read_model_json,
    resolve_version_dir,
    set_current,
    verify_version_dir,
    versions,
    write_json,
    write_manifest,
    write_version,
)
from pdm.saving.versions import current_version, ordered_versions, prune_versions, remove_version, version_key

__all__ = [
    "FORMAT_VERSION",
    "current_version",
    "ordered_versions",
    "prune_versions",
    "read_model_json",
    "remove_version",
    "resolve_version_dir",
    "set_current",
    "verify_version_dir",
    "version_key",
    "versions",
    "write_json",
    "write_manifest",
    "write_version",
]
