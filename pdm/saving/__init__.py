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

__all__ = [
    "FORMAT_VERSION",
    "read_model_json",
    "resolve_version_dir",
    "set_current",
    "verify_version_dir",
    "versions",
    "write_json",
    "write_manifest",
    "write_version",
]
